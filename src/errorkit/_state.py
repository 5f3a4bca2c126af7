"""What errorkit remembers about one exception object, in one attribute.

Several layers see the same exception: the HTTP integration answers it, :func:`report`
hands it to capture, ``errorkit.capture(exc)`` may be called on it again, a retry that gave
up reports it first. Each needs to know what the others did, and all must name the same
occurrence. That memory lives on the exception itself (it travels with it through ``raise
... from``, ``except`` blocks and threads, and dies with it) as one small
:class:`ErrorState` under one attribute, :data:`STATE_ATTR`.

An exception type that refuses attributes (a ``__setattr__`` that raises, a frozen
dataclass) gets a fresh detached state on every call: it is answered, reported and captured
each time a layer sees it, and gets a new error id each time, rather than making errorkit
fail.

A shallow copy of an exception (``copy.copy``) shares its state with the original: both
name the same occurrence.
"""

from __future__ import annotations

from typing import Literal, overload

__all__ = ["STATE_ATTR", "ErrorState", "attach", "state_of"]

STATE_ATTR = "__errorkit_state__"
"""The one attribute errorkit sets on an exception that is not its own."""


class ErrorState:
    """errorkit's memory of one exception object."""

    __slots__ = ("answered", "captured", "error_id", "observed", "reported")

    error_id: str | None
    """The occurrence's id, given on first use (:func:`errorkit.errors.error_id_of`)."""
    answered: bool
    """An HTTP integration already answered it (a later layer does not render it again)."""
    reported: bool
    """:func:`errorkit._reporting.report` handed it on (a later report only amends)."""
    observed: bool
    """The ``"report"`` hooks saw it (they see each exception once)."""
    captured: bool
    """The capture pipeline took it (a later capture only amends the event)."""

    def __init__(self) -> None:
        self.error_id = None
        self.answered = False
        self.reported = False
        self.observed = False
        self.captured = False

    def __repr__(self) -> str:
        names = ("answered", "reported", "observed", "captured")
        flags = [name for name in names if getattr(self, name)]
        return f"ErrorState(error_id={self.error_id!r}, {', '.join(flags) or 'fresh'})"

    def __getstate__(self) -> dict[str, object]:
        return {name: getattr(self, name) for name in self.__slots__}

    def __setstate__(self, state: dict[str, object]) -> None:
        for name in self.__slots__:
            object.__setattr__(self, name, state.get(name, None if name == "error_id" else False))


@overload
def state_of(exc: BaseException, create: Literal[True] = True) -> ErrorState: ...
@overload
def state_of(exc: BaseException, create: bool) -> ErrorState | None: ...


def state_of(exc: BaseException, create: bool = True) -> ErrorState | None:
    """``exc``'s state: the one it has, or (``create=True``) a new one attached to it (a
    detached one when its type refuses attributes). ``create=False`` returns None when
    errorkit has not seen ``exc`` yet, and never attaches anything."""
    state = getattr(exc, STATE_ATTR, None)
    if state.__class__ is ErrorState:
        return state
    return attach(exc) if create else None


def attach(exc: BaseException) -> ErrorState:
    """A new state for ``exc``, attached to it (detached when its type refuses attributes),
    replacing any it had. For callers that just found none (:func:`state_of`)."""
    state = ErrorState()
    try:  # noqa: SIM105 - runs on every error; cheaper than contextlib.suppress
        setattr(exc, STATE_ATTR, state)
    except (AttributeError, TypeError):  # a type that refuses attributes: a detached state
        pass
    return state
