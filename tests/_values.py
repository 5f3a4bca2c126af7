"""Comparing values type for type, for tests of caches and fast paths that must give back
exactly what the slow path gives."""

from __future__ import annotations

from typing import Any


def typed(value: Any) -> Any:
    """``value`` with the type of every node beside it (1, 1.0 and True differ; NaN is
    equal to itself)."""
    if isinstance(value, dict):
        return (type(value), [(typed(k), typed(v)) for k, v in value.items()])
    if isinstance(value, list | tuple):
        return (type(value), [typed(v) for v in value])
    if isinstance(value, float) and value != value:
        return (type(value), "nan")
    return (type(value), value)
