"""Comparing values type for type, for tests of caches and fast paths that must give back
exactly what the slow path gives."""

from __future__ import annotations

import json
from typing import Any

from errorkit.store._clean import _safe_dumps


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


REFERENCE = json.JSONEncoder(
    ensure_ascii=False, allow_nan=False, check_circular=False, separators=(",", ":")
).encode


def reference_dumps(value: Any) -> str:
    """The store's JSON of a value as it was made before the fast paths: the json module's
    text, else the sanitised one."""
    try:
        text = REFERENCE(value)
        text.encode("utf-8")
    except (TypeError, ValueError, RecursionError):
        return _safe_dumps(value)
    return _safe_dumps(value) if "\\u0000" in text else text
