"""Request-scoped context carried by :mod:`contextvars`.

One immutable :class:`ErrorContext` lives in one ``ContextVar``: reading a snapshot for an
event is a single ``.get()``, it survives ``await``, is inherited by asyncio tasks, and by
threads started with a copied context (``contextvars.copy_context().run`` or
``asyncio.to_thread``).
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

__all__ = [
    "ErrorContext",
    "bind_context",
    "context_scope",
    "current_context",
    "replace_context",
    "reset_context",
    "set_tag",
]

_EMPTY_TAGS: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class ErrorContext:
    """Who and what an error belongs to."""

    request_id: str | None = None
    correlation_id: str | None = None
    session_id: str | None = None
    user_id: str | None = None
    trace_id: str | None = None
    span_id: str | None = None
    endpoint: str | None = None
    method: str | None = None
    tags: Mapping[str, str] = field(default_factory=lambda: _EMPTY_TAGS)

    def as_dict(self) -> dict[str, Any]:
        """The set fields only (tags as a plain dict)."""
        out: dict[str, Any] = {}
        for name in _FIELDS:
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        if self.tags:
            out["tags"] = dict(self.tags)
        return out


_FIELDS = (
    "request_id",
    "correlation_id",
    "session_id",
    "user_id",
    "trace_id",
    "span_id",
    "endpoint",
    "method",
)
_EMPTY = ErrorContext()
_var: contextvars.ContextVar[ErrorContext] = contextvars.ContextVar(
    "errorkit_context", default=_EMPTY
)


def current_context() -> ErrorContext:
    """The context of the running code (cheap: one ``ContextVar.get``)."""
    return _var.get()


_ALLOWED = frozenset((*_FIELDS, "tags"))
_INDEX = {name: i for i, name in enumerate(_FIELDS)}


def _merged(base: ErrorContext, values: Mapping[str, Any]) -> ErrorContext:
    if not _ALLOWED.issuperset(values):
        unknown = set(values) - _ALLOWED
        msg = (
            f"unknown context field(s) {sorted(unknown)}; use one of {list(_FIELDS)} "
            "or tags={...} for anything else"
        )
        raise TypeError(msg)
    # Built positionally rather than with dataclasses.replace(): this runs once per
    # request, and replace() costs twice as much.
    fields = [
        base.request_id,
        base.correlation_id,
        base.session_id,
        base.user_id,
        base.trace_id,
        base.span_id,
        base.endpoint,
        base.method,
    ]
    tags = base.tags
    for key, value in values.items():
        if key == "tags":
            tags = MappingProxyType({**tags, **{str(k): str(v) for k, v in (value or {}).items()}})
        else:
            fields[_INDEX[key]] = None if value is None else str(value)
    r, c, s, u, t, sp, e, m = fields
    return ErrorContext(r, c, s, u, t, sp, e, m, tags)


def bind_context(**values: Any) -> contextvars.Token[ErrorContext]:
    """Set context fields for the rest of the current context; returns a reset token."""
    return _var.set(_merged(_var.get(), values))


def replace_context(context: ErrorContext) -> contextvars.Token[ErrorContext]:
    """Make ``context`` the whole current context (integrations that build one per request
    use it: cheaper than :func:`bind_context`); returns a reset token."""
    return _var.set(context)


def reset_context(token: contextvars.Token[ErrorContext]) -> None:
    """Undo a :func:`bind_context`."""
    _var.reset(token)


@contextmanager
def context_scope(**values: Any) -> Iterator[ErrorContext]:
    """Bind context fields inside a ``with`` block and restore the previous ones after it."""
    token = bind_context(**values)
    try:
        yield _var.get()
    finally:
        _var.reset(token)


def set_tag(key: str, value: object) -> None:
    """Add one tag to the current context."""
    bind_context(tags={key: value})
