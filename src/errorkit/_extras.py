"""Optional dependencies: one typed error that names the extra to install."""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["MissingExtraError", "require"]


class MissingExtraError(ImportError):
    """An integration was imported without the library it integrates with."""


def require(module: str, *, extra: str, feature: str) -> ModuleType:
    """Import ``module`` or raise :class:`MissingExtraError` saying what to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        msg = (
            f"{feature} needs the {module!r} package, which is not installed; "
            f"install it with: pip install 'errorkit[{extra}]'"
        )
        raise MissingExtraError(msg, name=module) from exc
