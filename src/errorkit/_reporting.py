"""The seam between the places errors happen and the capture pipeline.

HTTP integrations, the streaming wrapper, retries that give up, failing health checks and
background-job wrappers all call :func:`report`. It names the occurrence (the same error id
the HTTP answer shows), reports each exception object once however many layers see it, and
hands it to the reporter that ``errorkit.capturing.configure`` installs. Without a reporter it
only names the occurrence, so errorkit works before (or without) a store.

A later report of an exception already reported is no second occurrence, but it may know
more: a retry that gave up reports first, without the request, and the HTTP layer reports
the same exception with its user agent and payload. Such a report goes to the reporter's
``amend`` method when it has one (capture's fills the empty fields of the event while it
waits to be written); observers see each exception once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Protocol

from errorkit import hooks
from errorkit._guard import guard
from errorkit._state import state_of
from errorkit.errors import error_id_of

__all__ = [
    "Amender",
    "HandlingObserver",
    "Observer",
    "Reporter",
    "add_handling_observer",
    "add_observer",
    "get_reporter",
    "handled",
    "notify_observers",
    "remove_handling_observer",
    "remove_observer",
    "report",
    "set_reporter",
    "was_reported",
]


class Reporter(Protocol):
    """Receives one occurrence: the exception, its error id and its context fields
    (``error_type``, ``endpoint``, ``method``, ``user_agent``, ``request_payload``,
    ``status``, ``severity``, ``extra``, ...)."""

    def __call__(self, exc: BaseException, *, error_id: str, **context: Any) -> None: ...


class Amender(Protocol):
    """A reporter's optional ``amend``: a later report of an exception already reported."""

    def __call__(self, exc: BaseException, *, error_id: str, **context: Any) -> None: ...


Observer = Callable[[BaseException, str, dict[str, Any]], None]
"""Sees each reported occurrence ``(exc, error_id, context)`` in the reporting thread, before
the reporter (OpenTelemetry marks the span current there)."""

HandlingObserver = Callable[[str, float], None]
"""Hears how long the HTTP integrations took to handle one error: ``(error_type, seconds)``
(classify, report and render the answer)."""

_reporter: Reporter | None = None
_lock = threading.Lock()
_observers = hooks._channel("report")
_handling_observers = hooks._channel("handled")


def set_reporter(reporter: Reporter | Callable[..., None] | None) -> Reporter | None:
    """Install ``reporter`` (None removes it); returns the previous one."""
    global _reporter
    with _lock:
        previous = _reporter
        _reporter = reporter
    return previous


def get_reporter() -> Reporter | None:
    return _reporter


def add_observer(observer: Observer) -> None:
    """Call ``observer`` for every occurrence reported from now on (once per callable):
    ``errorkit.hooks.add("report", observer)``."""
    hooks.add("report", observer)


def remove_observer(observer: Observer) -> None:
    """``errorkit.hooks.remove("report", observer)``."""
    hooks.remove("report", observer)


def add_handling_observer(observer: HandlingObserver) -> None:
    """Call ``observer(error_type, seconds)`` for every error an HTTP integration answers:
    ``errorkit.hooks.add("handled", observer)``."""
    hooks.add("handled", observer)


def remove_handling_observer(observer: HandlingObserver) -> None:
    """``errorkit.hooks.remove("handled", observer)``."""
    hooks.remove("handled", observer)


def handled(error_type: str, seconds: float) -> None:
    """An HTTP integration finished handling one error in ``seconds``. Never raises."""
    _handling_observers.emit(error_type, seconds)


def was_reported(exc: BaseException) -> bool:
    state = state_of(exc, create=False)
    return state is not None and state.reported


def notify_observers(exc: BaseException, error_id: str, context: dict[str, Any]) -> None:
    """Let the ``"report"`` hooks see ``exc``, once however many paths see it: :func:`report`
    calls this, and so does a direct ``errorkit.capture(exc)``. Never raises."""
    if not _observers.hooks:
        return
    state = state_of(exc)
    if state.observed:
        return
    state.observed = True
    _observers.emit(exc, error_id, context)


def report(exc: BaseException, **context: Any) -> str:
    """Report ``exc`` once; return its error id. Never raises into the caller."""
    error_id = error_id_of(exc)
    state = state_of(exc)
    if state.reported:
        amend: Amender | None = getattr(_reporter, "amend", None)
        if amend is not None:
            with guard("report.amend"):
                amend(exc, error_id=error_id, **context)
        return error_id
    state.reported = True
    notify_observers(exc, error_id, context)
    reporter = _reporter
    if reporter is not None:
        with guard("report"):
            reporter(exc, error_id=error_id, **context)
    return error_id
