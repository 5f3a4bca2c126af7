"""The HTTP error answer: three body formats and the renderer contract.

A renderer is any callable ``(Classification, ErrorMeta) -> ErrorAnswer``. errorkit ships
three, chosen by name at install time:

- ``"default"``: ``{"error": {"code", "message", "details", "timestamp", "request_id",
  "error_id", "retriable"}}`` (+ ``retry_after`` when known);
- ``"problem"``: RFC 9457 ``application/problem+json``;
- ``"wrapped"``: ``{"success": false, "data": null, "error": {...}}``.

The classification a renderer sees is already safe to show: its message and details went
through the scrubber, and an unexpected server error carries only a generic message.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from http import HTTPStatus
from types import MappingProxyType
from typing import Any, NamedTuple, TypeAlias

from errorkit._guard import report_internal_error
from errorkit.catalog import catalog
from errorkit.classify import Classification
from errorkit.config import ConfigError, get_settings
from errorkit.errors import FieldError
from errorkit.scrub import Scrubber, default_scrubber

__all__ = [
    "FORMATS",
    "JSON",
    "PROBLEM_JSON",
    "EncodedAnswer",
    "ErrorAnswer",
    "ErrorMeta",
    "Renderer",
    "encode_answer",
    "get_renderer",
    "problem_renderer",
    "render_default",
    "render_problem",
    "render_wrapped",
    "safe_for_client",
]

JSON = "application/json"
PROBLEM_JSON = "application/problem+json"
_NO_HEADERS: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class ErrorMeta:
    """What an answer knows besides the classification: which occurrence, which request."""

    error_id: str
    request_id: str | None
    timestamp: datetime
    correlation_id: str | None = None
    instance: str | None = None  # the request path

    @property
    def timestamp_text(self) -> str:
        """The timestamp as ISO 8601 in UTC with milliseconds and a ``Z``."""
        ts = self.timestamp if self.timestamp.tzinfo else self.timestamp.replace(tzinfo=UTC)
        return ts.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class ErrorAnswer(NamedTuple):
    """What a renderer returns. ``body`` is JSON-ready data, or ``str``/``bytes`` as is."""

    body: Any
    status: int
    headers: Mapping[str, str] = _NO_HEADERS
    media_type: str = JSON


Renderer: TypeAlias = Callable[
    [Classification, ErrorMeta],
    ErrorAnswer | tuple[Any, int] | tuple[Any, int, Mapping[str, str]],
]
"""``(classification, meta) -> ErrorAnswer``; a ``(body, status)`` or
``(body, status, headers)`` tuple is accepted too."""


def _retry_after_seconds(c: Classification) -> int | None:
    if c.retry_after is None:
        return None
    return max(0, math.ceil(c.retry_after))


def _field_errors(c: Classification) -> list[dict[str, Any]]:
    errors = c.details.get("errors") if isinstance(c.details, Mapping) else None
    if isinstance(errors, list):
        return errors
    return [e.as_dict() for e in c.errors]


def _error_object(c: Classification, meta: ErrorMeta) -> dict[str, Any]:
    error: dict[str, Any] = {
        "code": c.code,
        "message": c.message,
        "details": dict(c.details),
        "timestamp": meta.timestamp_text,
        "request_id": meta.request_id,
        "error_id": meta.error_id,
        "retriable": c.retriable,
    }
    retry_after = _retry_after_seconds(c)
    if retry_after is not None:
        error["retry_after"] = retry_after
    return error


def render_default(c: Classification, meta: ErrorMeta) -> ErrorAnswer:
    """``{"error": {"code", "message", "details", "timestamp", "request_id", "error_id",
    "retriable"[, "retry_after"]}}``."""
    return ErrorAnswer({"error": _error_object(c, meta)}, c.status)


def render_wrapped(c: Classification, meta: ErrorMeta) -> ErrorAnswer:
    """``{"success": false, "data": null, "error": {... as default, + correlation_id}}``."""
    error = _error_object(c, meta)
    error["correlation_id"] = meta.correlation_id or meta.request_id
    return ErrorAnswer({"success": False, "data": None, "error": error}, c.status)


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def problem_renderer(type_base: str | None = None) -> Renderer:
    """An RFC 9457 renderer. Without ``type_base`` the ``type`` is ``about:blank`` and the
    ``title`` the HTTP status phrase; with one, ``type`` is ``type_base`` + the code in
    lowercase-dashes (a page that documents it) and ``title`` the catalog's title."""

    def render(c: Classification, meta: ErrorMeta) -> ErrorAnswer:
        if type_base is None:
            problem_type, title = "about:blank", _phrase(c.status)
        else:
            info = catalog.get(c.code)
            problem_type = type_base + c.code.lower().replace("_", "-")
            title = info.title if info is not None else _phrase(c.status)
        body: dict[str, Any] = {
            "type": problem_type,
            "title": title,
            "status": c.status,
            "detail": c.message,
            "instance": meta.instance,
            "code": c.code,
            "timestamp": meta.timestamp_text,
            "request_id": meta.request_id,
            "error_id": meta.error_id,
            "retriable": c.retriable,
        }
        retry_after = _retry_after_seconds(c)
        if retry_after is not None:
            body["retry_after"] = retry_after
        errors = _field_errors(c)
        if errors:
            body["errors"] = errors
        details = {k: v for k, v in c.details.items() if k != "errors"}
        if details:
            body["details"] = details
        return ErrorAnswer(body, c.status, media_type=PROBLEM_JSON)

    return render


render_problem: Renderer = problem_renderer()
"""RFC 9457 ``application/problem+json`` with ``type`` ``about:blank``."""

FORMATS: Mapping[str, Renderer] = MappingProxyType(
    {"default": render_default, "problem": render_problem, "wrapped": render_wrapped}
)


def get_renderer(format: str | Renderer | None = None) -> Renderer:
    """The renderer for a format name or a callable; None means the configured
    ``response_format`` (``ERRORKIT_RESPONSE_FORMAT``, default ``"default"``)."""
    if format is None:
        format = get_settings().response_format
    if callable(format):
        return format
    if isinstance(format, str) and format in FORMATS:
        return FORMATS[format]
    msg = (
        f"format={format!r} is not a known error format; use 'default', 'problem', 'wrapped' "
        "or a callable(classification, meta) -> ErrorAnswer"
    )
    raise ConfigError(msg)


class _ScrubCache:
    """Error answers repeat the same messages, keys and short values: remember what the
    scrubber made of them (bounded; emptied when the process-wide scrubber changes)."""

    max_entries = 4096
    max_length = 256

    def __init__(self) -> None:
        self._scrubber: Scrubber | None = None
        self._texts: dict[str, str] = {}

    def text(self, scrubber: Scrubber, value: str) -> str:
        if scrubber is not self._scrubber:
            self._scrubber, self._texts = scrubber, {}
        if len(value) > self.max_length:
            return scrubber.scrub_text(value, single_line=True)
        cached = self._texts.get(value)
        if cached is None:
            if len(self._texts) >= self.max_entries:
                self._texts.clear()
            cached = self._texts[value] = scrubber.scrub_text(value, single_line=True)
        return cached


_cache = _ScrubCache()
_CARD_FREE = 10**12  # integers below this cannot be card numbers


def _plain(value: Any) -> bool:
    if value is None or isinstance(value, bool | float):
        return True
    return isinstance(value, int) and abs(value) < _CARD_FREE


def _scrub_details(scrubber: Scrubber, details: Mapping[str, Any]) -> dict[str, Any]:
    # The common case, a flat mapping of scalars, uses the scrubber's own rules through the
    # cache; anything else goes through the scrubber whole.
    if len(details) <= scrubber.max_items:
        out: dict[str, Any] = {}
        for key, value in details.items():
            if not isinstance(key, str):
                break
            if scrubber.is_sensitive_key(key):
                out[_cache.text(scrubber, key)] = scrubber.replacement
            elif _plain(value):
                out[_cache.text(scrubber, key)] = value
            elif isinstance(value, str):
                out[_cache.text(scrubber, key)] = _cache.text(scrubber, value)
            else:
                break
        else:
            return out
    scrubbed = scrubber.scrub(dict(details), single_line=True)
    return scrubbed if isinstance(scrubbed, dict) else {}


def safe_for_client(c: Classification) -> Classification:
    """``c`` with message, details and field errors passed through the scrubber."""
    scrubber = default_scrubber()
    details = _scrub_details(scrubber, c.details) if c.details else {}
    errors = tuple(FieldError(e.loc, _cache.text(scrubber, e.message), e.type) for e in c.errors)
    return replace(c, message=_cache.text(scrubber, c.message), details=details, errors=errors)


@dataclass(frozen=True, slots=True)
class EncodedAnswer:
    """An answer ready for the wire: status, body bytes, headers (content type included)."""

    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...]

    def header(self, name: str) -> str | None:
        low = name.lower()
        return next((v for k, v in self.headers if k.lower() == low), None)


_DROPPED_HEADERS = frozenset({"content-type", "content-length", "transfer-encoding"})


def _base_headers(c: Classification) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in c.headers.items():
        if name.lower() not in _DROPPED_HEADERS:
            headers[name.lower()] = str(value)
    retry_after = _retry_after_seconds(c)
    if retry_after is not None and "retry-after" not in headers:
        headers["retry-after"] = str(retry_after)
    return headers


def _encode_body(body: Any) -> bytes:
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode("utf-8")
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"), default=str).encode()


def _run(renderer: Renderer, c: Classification, meta: ErrorMeta) -> tuple[ErrorAnswer, bytes]:
    result = renderer(c, meta)
    answer = result if isinstance(result, ErrorAnswer) else ErrorAnswer(*result)
    if not isinstance(answer.status, int) or not 100 <= answer.status <= 599:
        msg = f"renderer returned status {answer.status!r}; it must be an int from 100 to 599"
        raise ValueError(msg)
    return answer, _encode_body(answer.body)


def encode_answer(c: Classification, meta: ErrorMeta, renderer: Renderer) -> EncodedAnswer:
    """Render and encode. A renderer that fails falls back to the default format (and the
    failure is reported on stderr once), so a bug in it never turns into a bare 500."""
    c = safe_for_client(c)
    try:
        answer, body = _run(renderer, c, meta)
    except Exception as exc:  # noqa: BLE001 - a user's renderer must not break the answer
        report_internal_error("http.renderer", exc)
        answer, body = _run(render_default, c, meta)
    headers = _base_headers(c)
    media_type = answer.media_type
    for name, value in answer.headers.items():
        if name.lower() == "content-type":
            media_type = str(value)
        elif name.lower() not in _DROPPED_HEADERS:
            headers[name.lower()] = str(value)
    pairs = (("content-type", media_type), *headers.items())
    return EncodedAnswer(answer.status, body, pairs)
