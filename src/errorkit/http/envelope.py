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

import functools
import json
import math
import operator
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from types import MappingProxyType
from typing import Any, NamedTuple, TypeAlias

from errorkit._cache import BoundedCache
from errorkit._guard import report_internal_error
from errorkit.classification import Classification
from errorkit.codes import catalog
from errorkit.config import ConfigError, get_settings
from errorkit.errors import FieldError
from errorkit.scrubbing import Scrubber, default_scrubber

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
        return _timestamp_text(self.timestamp)


_last_second: tuple[float, str] = (math.nan, "")


def _timestamp_text(ts: datetime) -> str:
    global _last_second
    if ts.tzinfo is not UTC:
        ts = ts if ts.tzinfo else ts.replace(tzinfo=UTC)
        return ts.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    # Errors come in bursts: format the date and time of day once per second, then only
    # add the milliseconds (a third of the cost of isoformat() each time). One tuple, so
    # that threads always read a matching second and text.
    second = ts.timestamp() // 1
    cached = _last_second
    if cached[0] != second:
        cached = _last_second = (second, ts.isoformat(timespec="seconds")[:19])
    return f"{cached[1]}.{ts.microsecond // 1000:03d}Z"


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


_BUILTIN_ATTR = "_errorkit_builtin_renderer"


def _builtin(renderer: Renderer) -> Renderer:
    """Mark one of errorkit's own renderers: they never change the classification they
    are given and use the meta values as they are, so the answer path may take shortcuts
    (see :func:`encode_answer`)."""
    setattr(renderer, _BUILTIN_ATTR, True)
    return renderer


def _is_builtin(renderer: Renderer) -> bool:
    return getattr(renderer, _BUILTIN_ATTR, False) is True


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

    return _builtin(render)


_builtin(render_default)
_builtin(render_wrapped)
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
        self._texts: BoundedCache[str, str] = BoundedCache(self.max_entries)

    def text(self, scrubber: Scrubber, value: str) -> str:
        if scrubber is not self._scrubber:
            self._scrubber, self._texts = scrubber, BoundedCache(self.max_entries)
        if len(value) > self.max_length:
            return scrubber.scrub_text(value, single_line=True)
        cached = self._texts.get(value)
        if cached is None:
            cached = self._texts.put(value, scrubber.scrub_text(value, single_line=True))
        return cached


_cache = _ScrubCache()
_CARD_FREE = 10**12  # integers below this cannot be card numbers


def _plain(value: Any) -> bool:
    if value is None or isinstance(value, bool | float):
        return True
    return isinstance(value, int) and abs(value) < _CARD_FREE


def _scrub_details(scrubber: Scrubber, details: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
    """The details as a client may see them, and whether scrubbing changed anything."""
    # The common case, a flat mapping of scalars, uses the scrubber's own rules through the
    # cache; anything else goes through the scrubber whole.
    if len(details) <= scrubber.max_items:
        out: dict[str, Any] = {}
        changed = False
        for key, value in details.items():
            if not isinstance(key, str):
                break
            safe_key = _cache.text(scrubber, key)
            if scrubber.is_sensitive_key(key):
                out[safe_key] = scrubber.replacement
                changed = True
            elif _plain(value):
                out[safe_key] = value
            elif isinstance(value, str):
                safe_value = out[safe_key] = _cache.text(scrubber, value)
                changed = changed or safe_value != value
            else:
                break
            changed = changed or safe_key != key
        else:
            return out, changed or len(out) != len(details)
    scrubbed = scrubber.scrub(dict(details), single_line=True)
    return (scrubbed if isinstance(scrubbed, dict) else {}), True


def safe_for_client(c: Classification) -> Classification:
    """``c`` with message, details and field errors passed through the scrubber."""
    return _client_view(c, shared=False)


def _client_view(c: Classification, *, shared: bool) -> Classification:
    """:func:`safe_for_client`; with ``shared=True`` (for errorkit's own renderers, which
    only read it) ``c`` itself when scrubbing changes nothing."""
    scrubber = default_scrubber()
    message = _cache.text(scrubber, c.message)
    details, changed = _scrub_details(scrubber, c.details) if c.details else ({}, False)
    errors = c.errors
    if errors:
        errors = tuple(FieldError(e.loc, _cache.text(scrubber, e.message), e.type) for e in errors)
        changed = changed or errors != c.errors
    if shared and not changed and message == c.message:
        return c
    # Positional rather than dataclasses.replace(), which costs twice as much.
    return Classification(
        c.error_type,
        c.code,
        c.status,
        c.severity,
        c.retriable,
        c.category,
        message,
        details,
        c.retry_after,
        c.headers,
        errors,
    )


@dataclass(frozen=True, slots=True)
class EncodedAnswer:
    """An answer ready for the wire: status, body bytes, headers (content type included)."""

    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...]

    def header(self, name: str) -> str | None:
        low = name.lower()
        return next((v for k, v in self.headers if k.lower() == low), None)

    def raw_headers(self, extra: Iterable[tuple[str, str]] = ()) -> list[tuple[bytes, bytes]]:
        """The headers as an ASGI answer sends them: ``extra`` added, ``content-length``
        set, a charset on ``text/*`` content types."""
        raw: list[tuple[bytes, bytes]] = []
        media_type = JSON
        for name, value in (*self.headers, *extra):
            low = name.lower()
            if low == "content-type":
                media_type = value
            else:
                raw.append((low.encode("latin-1"), value.encode("latin-1", "replace")))
        if not (self.status < 200 or self.status in (204, 304)):
            raw.append((b"content-length", str(len(self.body)).encode()))
        if media_type.startswith("text/") and "charset=" not in media_type.lower():
            media_type += "; charset=utf-8"
        raw.append((b"content-type", media_type.encode("latin-1", "replace")))
        return raw


_DROPPED_HEADERS = frozenset({"content-type", "content-length", "transfer-encoding"})


def _base_headers(c: Classification) -> dict[str, str]:
    headers: dict[str, str] = {}
    if c.headers:
        for name, value in c.headers.items():
            if name.lower() not in _DROPPED_HEADERS:
                headers[name.lower()] = str(value)
    retry_after = _retry_after_seconds(c)
    if retry_after is not None:
        headers.setdefault("retry-after", str(retry_after))
    return headers


# Compact JSON (non-ASCII kept, unknown objects as ``str()``), the same text as
# ``json.dumps(..., ensure_ascii=False, separators=(",", ":"), default=str)``, from one
# encoder made once (``dumps`` with options makes a new one per call). No circular-reference
# check: bodies are built from scrubbed, bounded data, and a cycle still fails, with a
# ``RecursionError``.
_to_json = json.JSONEncoder(
    ensure_ascii=False, check_circular=False, separators=(",", ":"), default=str
).encode


def _encode_body(body: Any) -> bytes:
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode("utf-8")
    return _to_json(body).encode()


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
    if not _is_builtin(renderer):
        return _encode(c, meta, renderer, shared=False)
    # errorkit's own renderers: errors repeat, so their answers are mostly the same bytes.
    answer = _templates.encode(renderer, c, meta)
    return answer if answer is not None else _encode(c, meta, renderer, shared=True)


def _encode(
    c: Classification, meta: ErrorMeta, renderer: Renderer, *, shared: bool
) -> EncodedAnswer:
    c = _client_view(c, shared=shared)
    try:
        answer, body = _run(renderer, c, meta)
    except Exception as exc:  # noqa: BLE001 - a user's renderer must not break the answer
        report_internal_error("http.renderer", exc)
        answer, body = _run(render_default, c, meta)
    return _finish(c, answer, body)


def _finish(c: Classification, answer: ErrorAnswer, body: bytes) -> EncodedAnswer:
    headers = _base_headers(c)
    media_type = answer.media_type
    if answer.headers:
        for name, value in answer.headers.items():
            if name.lower() == "content-type":
                media_type = str(value)
            elif name.lower() not in _DROPPED_HEADERS:
                headers[name.lower()] = str(value)
    pairs = (("content-type", media_type), *headers.items())
    return EncodedAnswer(answer.status, body, pairs)


# --- answers encoded once ---------------------------------------------------------------------
#
# An answer of errorkit's own renderers depends on the classification's code, status,
# message, retriable, retry_after, headers and details, and on the meta values. The first
# six and the names of the details repeat: for such a combination (seen twice) the answer
# is rendered once with markers in place of the meta values and the details' values, and
# cut at the markers. Later answers only fill in those values (escaped as the encoder
# would) and join: the same bytes as rendering (tested), at a third of the cost.

_TOKEN = os.urandom(8).hex()
_META_MARKS = tuple(f"ek{_TOKEN}m{i}x" for i in range(5))  # inside JSON strings
_MARK_RE = re.compile(f'ek{_TOKEN}m([0-4])x|"ek{_TOKEN}d([0-9]+)x"')
_MAX_TEMPLATE_DETAILS = 16


class _MarkedMeta(ErrorMeta):
    """Meta whose every value is a marker, to find where a renderer puts each one."""

    __slots__ = ()

    @property
    def timestamp_text(self) -> str:
        return _META_MARKS[2]


@dataclass(frozen=True, slots=True)
class _Template:
    """An encoded answer cut at the places the per-occurrence values go."""

    scrubber: Scrubber
    answer: EncodedAnswer | None  # None: this answer cannot be a template
    text: str = ""  # the body as a %-format: one %s per value
    pick: Callable[[list[str]], tuple[str, ...]] = tuple  # the values for the %s, in order
    sensitive: tuple[bool, ...] = ()  # per detail (in order): its value is always filtered


_NEEDS_ESCAPE = re.compile(r'["\\\x00-\x1f]')  # what JSON escapes (non-ASCII is kept)


def _escape(value: str) -> str:
    # The text between the quotes of a JSON string, as the body's encoder writes it.
    return _to_json(value)[1:-1]


_INF = math.inf


def _value_json(value: Any, scrubber: Scrubber) -> str | None:
    """A detail's value as the client sees it (see _scrub_details), as JSON; None when it
    is not a scalar the flat path handles."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return _to_json(_cache.text(scrubber, value))
    if isinstance(value, float):
        if value != value:
            return "NaN"
        if value == _INF:
            return "Infinity"
        if value == -_INF:
            return "-Infinity"
        return float.__repr__(value)
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) < _CARD_FREE:
        return int.__repr__(value)
    return None


class _Templates:
    """The templates, per renderer and classification content (bounded)."""

    max_entries = 512

    def __init__(self) -> None:
        self._entries: BoundedCache[tuple[Any, ...], _Template] = BoundedCache(self.max_entries)
        self._seen: BoundedCache[tuple[Any, ...], None] = BoundedCache(self.max_entries)

    def encode(
        self, renderer: Renderer, c: Classification, meta: ErrorMeta
    ) -> EncodedAnswer | None:
        """The answer from a template, or None to render it the usual way."""
        request_id, correlation_id, instance = meta.request_id, meta.correlation_id, meta.instance
        if c.errors or not (request_id and correlation_id and instance):
            # Field errors, or a missing value that renders differently (null, a fallback).
            return None
        details = c.details
        try:
            key = (
                renderer,
                c.code,
                c.status,
                c.message,
                c.retriable,
                c.retry_after,
                tuple(c.headers.items()) if c.headers else (),
                tuple(details) if details else (),
            )
            entry = self._entries.get(key)
        except TypeError:  # something unhashable: render it
            return None
        scrubber = default_scrubber()
        if entry is None or entry.scrubber is not scrubber:
            if key not in self._seen:
                # Once is not a pattern: a template pays off from the second time on.
                self._seen.put(key, None)
                return None
            entry = self._entries.put(key, _build(renderer, c, scrubber))
        template = entry
        if template.answer is None:
            return None
        error_id = meta.error_id
        if _NEEDS_ESCAPE.search(error_id + request_id + correlation_id + instance) is None:
            values = [error_id, request_id, meta.timestamp_text, correlation_id, instance]
        else:
            values = [
                _escape(error_id),
                _escape(request_id),
                meta.timestamp_text,
                _escape(correlation_id),
                _escape(instance),
            ]
        if details:
            for value, sensitive in zip(details.values(), template.sensitive, strict=True):
                text = "" if sensitive else _value_json(value, scrubber)
                if text is None:
                    return None
                values.append(text)
        body = (template.text % template.pick(values)).encode()
        return EncodedAnswer(template.answer.status, body, template.answer.headers)


def _build(renderer: Renderer, c: Classification, scrubber: Scrubber) -> _Template:
    """Render ``c`` with markers and cut the answer at them."""
    none = _Template(scrubber, None)
    details = c.details
    if len(details) > min(scrubber.max_items, _MAX_TEMPLATE_DETAILS) or "errors" in details:
        return none
    if not all(isinstance(k, str) for k in details):
        return none
    marked_details: dict[str, Any] = {}
    sensitive: list[bool] = []
    for i, key in enumerate(details):
        filtered = scrubber.is_sensitive_key(key)
        sensitive.append(filtered)
        marked_details[_cache.text(scrubber, key)] = (
            scrubber.replacement if filtered else f"ek{_TOKEN}d{i}x"
        )
    marked = Classification(
        c.error_type,
        c.code,
        c.status,
        c.severity,
        c.retriable,
        c.category,
        _cache.text(scrubber, c.message),
        marked_details,
        c.retry_after,
        c.headers,
        (),
    )
    meta = _MarkedMeta(_META_MARKS[0], _META_MARKS[1], datetime.now(UTC), *_META_MARKS[3:])
    try:
        answer, body = _run(renderer, marked, meta)
    except Exception:  # noqa: BLE001 - render it the usual way, which reports the failure
        return none
    try:
        text = body.decode()
    except UnicodeDecodeError:
        return none
    pieces = _MARK_RE.split(text)
    # split() gives text, meta group, detail group, text, ...
    parts = pieces[0::3]
    if any(_TOKEN in part for part in parts):
        return none  # a marker somewhere a value cannot be filled in
    fields = [
        int(m) if m is not None else 5 + int(d)
        for m, d in zip(pieces[1::3], pieces[2::3], strict=True)
    ]
    text = "%s".join(p.replace("%", "%%") for p in parts)
    pick: Callable[[list[str]], tuple[str, ...]]
    if len(fields) > 1:
        pick = operator.itemgetter(*fields)
    else:
        pick = functools.partial(_pick, tuple(fields))
    encoded = _finish(c, answer, body)
    if any(_TOKEN in value for _, value in encoded.headers):
        return none
    return _Template(scrubber, encoded, text, pick, tuple(sensitive))


def _pick(fields: tuple[int, ...], values: list[str]) -> tuple[str, ...]:
    return tuple(values[i] for i in fields)


_templates = _Templates()
