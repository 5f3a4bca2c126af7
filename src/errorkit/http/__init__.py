"""The HTTP side of errorkit, framework-free: error formats, request ids, streaming.

The integrations (:mod:`errorkit.fastapi`, :mod:`errorkit.starlette`, :mod:`errorkit.flask`)
build on this package; importing it imports no web framework.
"""

from __future__ import annotations

from errorkit.http._common import RequestState, current_request
from errorkit.http.envelope import (
    FORMATS,
    EncodedAnswer,
    ErrorAnswer,
    ErrorMeta,
    Renderer,
    get_renderer,
    problem_renderer,
    render_default,
    render_problem,
    render_wrapped,
)
from errorkit.http.request_id import (
    REQUEST_ID_HEADER,
    TraceParent,
    accept_request_id,
    is_valid_request_id,
    new_request_id,
    parse_traceparent,
)
from errorkit.http.sse import DONE, error_event, sse_event, stream_errors

__all__ = [
    "DONE",
    "FORMATS",
    "REQUEST_ID_HEADER",
    "EncodedAnswer",
    "ErrorAnswer",
    "ErrorMeta",
    "Renderer",
    "RequestState",
    "TraceParent",
    "accept_request_id",
    "current_request",
    "error_event",
    "get_renderer",
    "is_valid_request_id",
    "new_request_id",
    "parse_traceparent",
    "problem_renderer",
    "render_default",
    "render_problem",
    "render_wrapped",
    "sse_event",
    "stream_errors",
]
