"""The public shape: no public name hides a module of the same package."""

from __future__ import annotations

import importlib
import pkgutil
import types
from collections.abc import Iterator

import errorkit


def _packages(package: types.ModuleType) -> Iterator[types.ModuleType]:
    yield package
    for info in pkgutil.iter_modules(package.__path__):
        if info.ispkg and not info.name.startswith("_"):
            yield from _packages(importlib.import_module(f"{package.__name__}.{info.name}"))


def test_no_public_name_shadows_a_submodule() -> None:
    """``errorkit.X`` is the module ``errorkit/X.py`` whenever that module exists: a
    function or object of the same name would make ``import errorkit.X`` and
    ``errorkit.X`` mean two things."""
    shadowed = []
    for package in _packages(errorkit):
        for info in pkgutil.iter_modules(package.__path__):
            module = importlib.import_module(f"{package.__name__}.{info.name}")
            value = getattr(package, info.name, module)
            if value is not module:
                shadowed.append(f"{package.__name__}.{info.name} is a {type(value).__name__}")
            public = getattr(package, "__all__", ())
            if info.name in public and value is not module:
                shadowed.append(f"{package.__name__}.__all__ lists {info.name}")
    assert shadowed == []
