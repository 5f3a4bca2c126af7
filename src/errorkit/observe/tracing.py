"""Optional OpenTelemetry support: errors on spans, trace ids in context and logs.

Only ``opentelemetry-api`` is needed; without it every function here is a cheap no-op.
:func:`record_error` marks the current span the way the semantic conventions say
(``exception`` event with ``exception.type``, ``exception.message``,
``exception.stacktrace``; ``error.type`` attribute; status ERROR), with the message and
stack trace scrubbed first. :func:`enable_tracing` does it for every error errorkit
reports, in the thread that reports it, where the span is current.
"""

from __future__ import annotations

import sys
import threading
import traceback
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Final

from errorkit._guard import guard
from errorkit.classification import classify
from errorkit.context import ErrorContext, context_scope
from errorkit.errors import error_id_of
from errorkit.scrubbing import default_scrubber

__all__ = [
    "current_trace_ids",
    "disable_tracing",
    "enable_tracing",
    "record_error",
    "trace_context",
    "tracing_enabled",
]

_MAX_STACK_CHARS: Final = 8192


def _trace_api() -> Any:
    """``opentelemetry.trace`` if installed, else None (imported lazily, once)."""
    module = sys.modules.get("opentelemetry.trace")
    if module is not None:
        return module
    try:
        from opentelemetry import trace
    except ImportError:
        return None
    return trace


def current_trace_ids() -> tuple[str | None, str | None]:
    """The current span's trace id (32 hex) and span id (16 hex), or ``(None, None)``."""
    trace = _trace_api()
    if trace is None:
        return None, None
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return None, None
    return format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")


@contextmanager
def trace_context() -> Iterator[ErrorContext]:
    """Bind the current span's trace and span ids into :mod:`errorkit.context` for a block,
    so events, logs and answers carry them."""
    trace_id, span_id = current_trace_ids()
    values = {} if trace_id is None else {"trace_id": trace_id, "span_id": span_id}
    with context_scope(**values) as ctx:
        yield ctx


def _qualified(exc: BaseException) -> str:
    cls = type(exc)
    module = cls.__module__
    return (
        cls.__qualname__ if module in ("builtins", "__main__") else f"{module}.{cls.__qualname__}"
    )


def record_error(
    exc: BaseException,
    *,
    span: Any = None,
    attributes: Mapping[str, str | int | float | bool] | None = None,
) -> bool:
    """Record ``exc`` on ``span`` (default: the current one) and set its status to ERROR.

    Returns whether a recording span was marked. Never raises."""
    with guard("tracing.record_error"):
        trace = _trace_api()
        if trace is None:
            return False
        target = span if span is not None else trace.get_current_span()
        if not target.is_recording():
            return False
        scrubber = default_scrubber()
        classification = classify(exc)
        exc_type = _qualified(exc)
        message = scrubber.scrub_text(str(exc), single_line=True)
        stack = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        if len(stack) > _MAX_STACK_CHARS:
            stack = stack[-_MAX_STACK_CHARS:]
        event_attributes: dict[str, Any] = {
            "exception.type": exc_type,
            "exception.message": message,
            "exception.stacktrace": scrubber.scrub_text(stack),
        }
        target.add_event("exception", event_attributes)
        span_attributes: dict[str, Any] = {
            "error.type": exc_type,
            "errorkit.error_id": error_id_of(exc),
            "errorkit.error_code": classification.code,
            "errorkit.error_type": classification.error_type,
        }
        if attributes:
            span_attributes.update(attributes)
        target.set_attributes(span_attributes)
        from opentelemetry.trace import Status, StatusCode

        target.set_status(Status(StatusCode.ERROR, f"{classification.code}: {message}"[:256]))
        return True
    return False


_lock = threading.Lock()
_enabled = False


def _observer(exc: BaseException, error_id: str, context: Mapping[str, Any]) -> None:
    record_error(exc)


def enable_tracing() -> bool:
    """Record every error errorkit reports on the span current where it is reported.

    Returns False (and changes nothing) when ``opentelemetry-api`` is not installed."""
    global _enabled
    if _trace_api() is None:
        return False
    from errorkit._reporting import add_observer

    with _lock:
        if not _enabled:
            add_observer(_observer)
            _enabled = True
    return True


def disable_tracing() -> None:
    """Stop recording reported errors on spans."""
    global _enabled
    from errorkit._reporting import remove_observer

    with _lock:
        if _enabled:
            remove_observer(_observer)
            _enabled = False


def tracing_enabled() -> bool:
    return _enabled
