"""What the ASGI and WSGI sides share: per-request state and "answer this exception"."""

from __future__ import annotations

import contextvars
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from errorkit._guard import guard
from errorkit._reporting import handled, report
from errorkit._state import state_of
from errorkit.classification import Classification, classify
from errorkit.codes import Severity
from errorkit.config import DEFAULT_SETTINGS, get_settings
from errorkit.context import ErrorContext, current_context, replace_context, reset_context
from errorkit.errors import AppError, ErrorType, error_class, error_id_of
from errorkit.http.envelope import EncodedAnswer, ErrorMeta, Renderer, encode_answer, get_renderer
from errorkit.http.request_id import (
    accept_request_id,
    is_valid_request_id,
    parse_traceparent,
)

__all__ = [
    "DEFAULT_BODY_LIMIT",
    "STATE_KEY",
    "RequestState",
    "answer_exception",
    "check_options",
    "current_request",
    "detached_state",
    "finish_request",
    "http_options",
    "mark_answered",
    "prepare_install",
    "report_request",
    "start_request",
    "was_answered",
]

DEFAULT_BODY_LIMIT = DEFAULT_SETTINGS.body_limit
logger = logging.getLogger("errorkit.http")
"""One ERROR line (``errors`` log category) per request answered with a 5xx, naming its error
id; the error itself is captured, so ``ErrorkitHandler`` does not capture these lines again."""
STATE_KEY = "errorkit.request"  # where the state lives in an ASGI scope / WSGI environ

_current: contextvars.ContextVar[RequestState | None] = contextvars.ContextVar(
    "errorkit_request", default=None
)


@dataclass(slots=True, eq=False)
class RequestState:
    """One request as errorkit sees it: ids, what to report, and the body read so far."""

    request_id: str
    correlation_id: str
    method: str
    path: str
    user_agent: str | None = None
    content_type: str | None = None
    body_limit: int = DEFAULT_BODY_LIMIT
    body: bytearray = field(default_factory=bytearray)
    body_truncated: bool = False
    request_id_header: str = "x-request-id"
    root_path: str = ""

    def record(self, chunk: bytes) -> None:
        """Keep what the app reads, up to ``body_limit`` bytes."""
        if not chunk:
            return
        room = self.body_limit - len(self.body)
        if room <= 0:
            self.body_truncated = True
            return
        if len(chunk) > room:
            self.body_truncated = True
            chunk = chunk[:room]
        self.body += chunk

    def payload(self) -> Any:
        """The body for the report: parsed JSON when it is complete JSON, else raw bytes."""
        if not self.body:
            return None
        data = bytes(self.body)
        if not self.body_truncated and self.content_type and "json" in self.content_type:
            try:
                return json.loads(data)
            except ValueError:
                return data
        return data


def http_options(
    request_id_header: str | None, trust_request_id: bool | None, body_limit: int | None
) -> tuple[str, bool, int]:
    """``install()``'s options: each one given, else the setting in force
    (``ERRORKIT_REQUEST_ID_HEADER``, ``ERRORKIT_TRUST_REQUEST_ID``, ``ERRORKIT_BODY_LIMIT``)."""
    settings = get_settings()
    return (
        settings.request_id_header if request_id_header is None else request_id_header,
        settings.trust_request_id if trust_request_id is None else trust_request_id,
        settings.body_limit if body_limit is None else body_limit,
    )


def check_options(request_id_header: str, body_limit: int) -> None:
    """Refuse options that cannot work, saying what to pass instead."""
    if (
        not isinstance(request_id_header, str)
        or not request_id_header
        or not all(c.isalnum() or c in "-_" for c in request_id_header)
    ):
        msg = (
            f"request_id_header={request_id_header!r} is not a usable header name; "
            "use letters, digits and dashes, e.g. 'X-Request-ID'"
        )
        raise ValueError(msg)
    if isinstance(body_limit, bool) or not isinstance(body_limit, int) or body_limit < 0:
        msg = (
            f"body_limit={body_limit!r}: must be a whole number of bytes >= 0 "
            "(0 keeps no request body for reports)"
        )
        raise ValueError(msg)


def prepare_install(
    format: str | Renderer | None,
    request_id_header: str,
    body_limit: int,
    endpoints: object,
    *,
    installed: bool,
) -> Renderer:
    """What every framework's ``install()`` checks before it changes the app: its options,
    its endpoints, its format and that errorkit is not on the app yet; returns the renderer."""
    # Imported here: errorkit.http alone (the streaming wrapper, the envelopes) loads no
    # endpoint or health machinery; install() runs once per app.
    from errorkit.observe.endpoints import check_endpoints

    check_options(request_id_header, body_limit)
    check_endpoints(endpoints)
    renderer = get_renderer(format)
    if installed:
        msg = "errorkit is already installed on this app; call install() once per app"
        raise RuntimeError(msg)
    return renderer


def current_request() -> RequestState | None:
    """The request errorkit is handling in this context (None outside one)."""
    return _current.get()


def start_request(
    *,
    incoming_id: str | None,
    correlation: str | None,
    traceparent: str | None,
    user_agent: str | None,
    content_type: str | None,
    method: str,
    path: str,
    request_id_header: str,
    body_limit: int,
) -> tuple[RequestState, contextvars.Token[Any], contextvars.Token[Any]]:
    """Build the state from the request's headers (None when absent; ``incoming_id`` None
    too when incoming ids are not trusted), bind the context; return the state and the two
    tokens that undo the binding."""
    request_id = accept_request_id(incoming_id)
    correlation_id = (
        correlation if correlation is not None and is_valid_request_id(correlation) else request_id
    )
    state = RequestState(
        request_id,
        correlation_id,
        method,
        path,
        user_agent,
        content_type,
        body_limit,
        bytearray(),
        False,
        request_id_header,
    )
    base = current_context()
    trace = parse_traceparent(traceparent) if traceparent else None
    ctx_token = replace_context(
        ErrorContext(
            request_id,
            correlation_id,
            base.session_id,
            base.user_id,
            base.trace_id if trace is None else trace.trace_id,
            base.span_id if trace is None else trace.span_id,
            path,
            method,
            base.tags,
        )
    )
    return state, _current.set(state), ctx_token


def finish_request(
    current_token: contextvars.Token[Any], ctx_token: contextvars.Token[Any]
) -> None:
    """Undo what :func:`start_request` bound."""
    _current.reset(current_token)
    reset_context(ctx_token)


def detached_state(
    header: Callable[[str], str | None],
    *,
    method: str,
    path: str,
    request_id_header: str = "x-request-id",
) -> RequestState:
    """A state for an exception caught outside errorkit's middleware (no context bound)."""
    request_id = accept_request_id(header(request_id_header.lower()))
    return RequestState(
        request_id=request_id,
        correlation_id=request_id,
        method=method,
        path=path,
        user_agent=header("user-agent"),
        content_type=header("content-type"),
        request_id_header=request_id_header.lower(),
    )


def mark_answered(exc: BaseException) -> None:
    """Remember that ``exc`` already got its answer (so a later layer does not render it)."""
    state_of(exc).answered = True


def was_answered(exc: BaseException) -> bool:
    state = state_of(exc, create=False)
    return state is not None and state.answered


_FALLBACK = Classification(
    error_type=ErrorType.UNKNOWN,
    code="INTERNAL_ERROR",
    status=500,
    severity=Severity.ERROR,
    retriable=False,
)


def _minimal(error_id: str, request_id: str) -> EncodedAnswer:
    body = json.dumps(
        {
            "error": {
                "code": "INTERNAL_ERROR",
                "message": "An internal error occurred.",
                "error_id": error_id,
                "request_id": request_id,
            }
        }
    ).encode()
    return EncodedAnswer(500, body, (("content-type", "application/json"),))


def report_request(
    exc: BaseException,
    c: Classification,
    state: RequestState,
    *,
    error_type: str,
    endpoint: str | None = None,
) -> str:
    """Report ``exc`` with what ``state`` knows of its request; return its error id."""
    return report(
        exc,
        error_type=error_type,
        endpoint=endpoint or state.path,
        method=state.method,
        user_agent=state.user_agent,
        request_id=state.request_id,
        session_id=current_context().session_id,
        request_payload=state.payload() if state.body else None,
        status=c.status,
        severity=str(c.severity),
        code=c.code,
    )


def _log_answered(
    exc: BaseException, c: Classification, error_id: str, state: RequestState, endpoint: str | None
) -> None:
    name = error_class(exc)
    logger.error(
        "%s %s answered %d %s: %s (error id %s)",
        state.method,
        state.path,
        c.status,
        c.code,
        name,
        error_id,
        extra={
            "error_id": error_id,
            "error_code": c.code,
            "error_class": name,
            "status": c.status,
            "method": state.method,
            "path": state.path,
            "endpoint": endpoint or state.path,
        },
    )


def answer_exception(
    exc: BaseException,
    state: RequestState,
    renderer: Renderer,
    *,
    endpoint: str | None = None,
) -> tuple[EncodedAnswer, Classification]:
    """Classify ``exc``, report it once, and render the answer. Never raises outside tests:
    if errorkit itself fails here, the client still gets a minimal 500 with the error id."""
    started = time.perf_counter()
    answer: EncodedAnswer | None = None
    c = _FALLBACK
    with guard("http.answer"):
        c = classify(exc)
        error_id = report_request(exc, c, state, error_type=str(c.error_type), endpoint=endpoint)
        meta = ErrorMeta(
            error_id,
            state.request_id,
            exc.timestamp if isinstance(exc, AppError) else datetime.now(UTC),
            state.correlation_id,
            state.path,
        )
        answer = encode_answer(c, meta, renderer)
        if c.status >= 500:
            _log_answered(exc, c, error_id, state, endpoint)
    handled(str(c.error_type), time.perf_counter() - started)
    if answer is None:
        return _minimal(error_id_of(exc), state.request_id), _FALLBACK
    return answer, c
