"""The event model: what the caller's thread takes, and the record the writer builds from it.

:class:`ErrorEvent` is deliberately raw: the exception object (with its traceback), a
snapshot of the context, the time and the fields the caller passed. Everything that can wait
(stack formatting, source lines, the exception chain, classification, scrubbing, size caps,
serialisation) happens in :class:`RecordBuilder` on the writer's thread.
"""

from __future__ import annotations

import functools
import json
import linecache
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from errorkit import _guard
from errorkit._cache import BoundedCache
from errorkit.classification import classify
from errorkit.codes import Severity
from errorkit.context import ErrorContext
from errorkit.errors import AppError, ErrorType, _new_error_id
from errorkit.scrubbing import _CACHED_TEXT as _SCRUBBER_CACHES
from errorkit.scrubbing import CLEAN_NO_FLOAT, DIRTY, Scrubber
from errorkit.store._clean import json_dumps, json_string, plain_json
from errorkit.store.records import EncodedData, ErrorRecord

from .fingerprint import is_in_app

__all__ = [
    "KNOWN_FIELDS",
    "MAX_CHAIN",
    "MAX_FRAMES",
    "MAX_GROUP_MEMBERS",
    "MAX_STACK_CHARS",
    "MESSAGE_CODE",
    "ErrorEvent",
    "RecordBuilder",
    "normalize_severity",
]

#: Frames kept per exception: the outermost 10 and the innermost 90.
MAX_FRAMES = 100
_HEAD_FRAMES = 10
#: Exceptions kept from one cause/context chain.
MAX_CHAIN = 8
#: Members kept per ExceptionGroup, and how deep nested groups are followed.
MAX_GROUP_MEMBERS = 10
MAX_GROUP_DEPTH = 3
#: The stack trace text is cut to this many characters.
MAX_STACK_CHARS = 65_536
#: User agents are cut to this many characters.
MAX_USER_AGENT = 512
#: Short identifiers (request id, session id, endpoint, ...) are cut to this many characters.
MAX_ID_CHARS = 256
#: The longest error id the store keeps (a UUID's text).
MAX_ERROR_ID = 36
#: The code of events captured from a message rather than an exception.
MESSAGE_CODE = "LOG_MESSAGE"

#: Context fields with a column of their own; any other keyword goes to ``data["extra"]``.
KNOWN_FIELDS = frozenset(
    {
        "error_type",
        "code",
        "status",
        "severity",
        "endpoint",
        "method",
        "user_agent",
        "request_id",
        "session_id",
        "correlation_id",
        "trace_id",
        "user_id",
        "request_payload",
        "response_payload",
        "headers",
        "extra",
        "tags",
        "logger",
        "mechanism",
    }
)

_SEVERITY_ALIASES = {
    "fatal": "critical",
    "warn": "warning",
    "exception": "error",
    "notset": "debug",
    "trace": "debug",
}
_SEVERITIES = frozenset(s.value for s in Severity)


def normalize_severity(value: object, default: str = "error") -> str:
    """A severity name from a :class:`Severity`, a logging level name or number."""
    if value is None:
        return default
    if isinstance(value, int) and not isinstance(value, bool):
        if value >= 50:
            return "critical"
        if value >= 40:
            return "error"
        if value >= 30:
            return "warning"
        return "info" if value >= 20 else "debug"
    text = str(value).strip().lower()
    text = _SEVERITY_ALIASES.get(text, text)
    return text if text in _SEVERITIES else default


class ErrorEvent:
    """One occurrence as the caller's thread hands it over: nothing formatted yet."""

    __slots__ = (
        "context",
        "error_id",
        "exception",
        "fields",
        "fingerprint",
        "level",
        "message",
        "timestamp",
        "title",
    )

    def __init__(
        self,
        error_id: str,
        exception: BaseException | None,
        message: str | None,
        level: str | None,
        timestamp: float,
        context: ErrorContext,
        fields: dict[str, Any],
        fingerprint: str,
        title: str,
    ) -> None:
        self.error_id = error_id
        self.exception = exception
        self.message = message
        self.level = level
        self.timestamp = timestamp
        self.context = context
        self.fields = fields
        self.fingerprint = fingerprint
        self.title = title

    def __repr__(self) -> str:
        return f"ErrorEvent(error_id={self.error_id!r}, title={self.title!r})"


def _type_path(exc_type: type[BaseException]) -> str:
    path = _TYPE_PATHS.get(exc_type)
    if path is None:
        module = exc_type.__module__
        qualname = exc_type.__qualname__
        path = qualname if module == "builtins" else f"{module}.{qualname}"
        _TYPE_PATHS.put(exc_type, path)
    return path


_TYPE_PATHS: BoundedCache[type[BaseException], str] = BoundedCache(1024)


def _text(value: Any) -> str:
    try:
        return value if isinstance(value, str) else str(value)
    except Exception:  # noqa: BLE001 - a broken __str__ must not lose the event
        return f"<unprintable {type(value).__name__}>"


def _exception_message(exc: BaseException) -> str:
    if isinstance(exc, AppError):
        return _text(exc.message)
    return _text(exc)


def _cap_bytes(text: str, limit: int) -> str:
    if len(text) <= limit and text.isascii():  # isascii() is O(1): no need to encode
        return text
    data = text.encode("utf-8", "surrogatepass")
    if len(data) <= limit:
        return text
    cut = data[:limit].decode("utf-8", "ignore")
    return f"{cut}...[truncated {len(data) - limit} bytes]"


def _short(value: Any, limit: int = MAX_ID_CHARS) -> str | None:
    if value is None:
        return None
    text = value if type(value) is str else _text(value)
    return text if len(text) <= limit else text[:limit]


# The payloads' JSON (compact, other objects as their text), with one encoder made once:
# json.dumps() with options makes a new one per call. Scrubbed values have no cycles to look
# for.
_payload_json = json.JSONEncoder(
    ensure_ascii=False, check_circular=False, separators=(",", ":"), default=str
).encode


class _FrameList(list[dict[str, Any]]):
    """The frames of one code path: built once, then shared read-only by the records that
    follow the path, together with their JSON text and traceback lines."""

    __slots__ = ("json", "omitted", "text")

    def __init__(self, frames: list[dict[str, Any]], omitted: int) -> None:
        super().__init__(frames)
        self.omitted = omitted
        self.json = json_dumps(frames)
        self.text = _frame_lines(frames, omitted, "")


class RecordBuilder:
    """Builds the stored :class:`ErrorRecord` of an :class:`ErrorEvent` (writer's thread)."""

    def __init__(
        self,
        *,
        service: str,
        environment: str | None,
        release: str | None,
        max_payload_bytes: int,
        scrubber: Scrubber,
    ) -> None:
        self.service = service
        self.environment = environment
        self.release = release
        self.max_payload_bytes = max_payload_bytes
        self.scrubber = scrubber
        self._payload_scrubber = replace(scrubber, max_string=max(max_payload_bytes, 1))
        self._lines: BoundedCache[tuple[str, int], str] = BoundedCache(16_384)
        self._cleaned: tuple[BoundedCache[str, str], BoundedCache[str, str]] = (
            BoundedCache(4096),  # as is
            BoundedCache(4096),  # one line
        )
        # path (code ids and line numbers) -> its frames, and the code objects (kept alive)
        self._frames: BoundedCache[tuple[int, ...], tuple[_FrameList, tuple[Any, ...]]] = (
            BoundedCache(4096)
        )

    def clean(self, text: str, *, single_line: bool = False) -> str:
        """``text`` scrubbed; texts up to 1 KiB are cached, as the same messages, titles and
        endpoints come back with every occurrence of an error (the scrubber itself caches
        the shortest ones)."""
        if len(text) <= _SCRUBBER_CACHES or len(text) > 1024:
            return self.scrubber.scrub_text(text, single_line=single_line)
        cache = self._cleaned[single_line]
        cleaned = cache.get(text)
        if cleaned is None:
            cleaned = self.scrubber.scrub_text(text, single_line=single_line)
            cache.put(text, cleaned)
        return cleaned

    # -- the record -----------------------------------------------------------------------

    def build(self, event: ErrorEvent) -> ErrorRecord:
        """The record for ``event``; a failure here yields a minimal record, never none."""
        try:
            return self._build(event)
        except Exception as exc:
            _guard.report_internal_error("capture.build_record", exc)
            if _guard._strict:  # errorkit's own tests want its bugs to fail
                raise
            return self.minimal(event, f"{type(exc).__name__} while building the event")

    def minimal(self, event: ErrorEvent, why: str) -> ErrorRecord:
        """A record holding only what cannot fail (id, time, group), saying ``why``."""
        error_id = event.error_id
        if not isinstance(error_id, str) or not 0 < len(error_id) <= MAX_ERROR_ID:
            error_id = _new_error_id()
        return ErrorRecord(
            error_id=error_id,
            timestamp=datetime.fromtimestamp(event.timestamp, UTC),
            error_type=ErrorType.UNKNOWN.value,
            error_code="INTERNAL_ERROR",
            error_message=f"errorkit could not build this event ({why})",
            severity="error",
            fingerprint=event.fingerprint,
            title=event.title,
            service=self.service,
            environment=self.environment,
            release=self.release,
        )

    def _build(self, event: ErrorEvent) -> ErrorRecord:
        fields = event.fields
        get = fields.get
        ctx = event.context
        exc = event.exception
        level = event.level
        scrub = self.scrubber
        data: dict[str, Any] = {}
        stack: str | None = None
        exception_type: str | None = None
        app_error: AppError | None = None
        chain: list[dict[str, Any]] = []
        classification_message = ""
        if exc is not None:
            classification = classify(exc)
            classification_message = classification.message
            exception_type = _type_path(type(exc))
            chain = self._chain(exc)  # its first item's message is exc's, scrubbed
            data["exceptions"] = chain
            stack = _cap_bytes(_join_chain(chain), MAX_STACK_CHARS)
            data["classification"] = {
                "category": str(classification.category),
                "retriable": classification.retriable,
            }
            error_type = _text(get("error_type") or classification.error_type)
            code = _text(get("code") or classification.code)
            status = get("status", classification.status)
            severity = normalize_severity(get("severity"), str(classification.severity))
            if isinstance(exc, AppError):
                app_error = exc
        else:
            error_type = _text(get("error_type") or ErrorType.UNKNOWN.value)
            code = _text(get("code") or MESSAGE_CODE)
            status = get("status")
            severity = normalize_severity(get("severity"), normalize_severity(level, "error"))
        if level is not None:
            data["level"] = level

        request_id = (
            get("request_id") or ctx.request_id or (app_error.request_id if app_error else None)
        )
        correlation_id = (
            get("correlation_id")
            or ctx.correlation_id
            or (app_error.correlation_id if app_error else None)
        )
        context_tags = ctx.tags
        tags = dict(context_tags) if context_tags else {}  # dict() of an empty proxy: 0.8 us
        passed_tags = get("tags")
        if passed_tags is not None and isinstance(passed_tags, Mapping):
            tags.update({_text(k): _text(v) for k, v in passed_tags.items()})
        context = ctx.as_dict()
        if context_tags:
            del context["tags"]
        if context:
            data["context"] = scrub.scrub(context, single_line=True)
        if tags:
            data["tags"] = scrub.scrub(tags, single_line=True)
        headers = get("headers")
        if headers is not None:
            data["headers"] = scrub.scrub_headers(headers)
        extra = {k: v for k, v in fields.items() if k not in KNOWN_FIELDS}
        passed_extra = get("extra")
        if passed_extra is not None and isinstance(passed_extra, Mapping):
            extra.update(passed_extra)
        if extra:
            data["extra"] = self._bounded(scrub.scrub(extra))
        for key in ("logger", "mechanism"):
            value = get(key)
            if value is not None:
                data[key] = _short(value)

        if chain:
            # An exception without text (httpx.ReadTimeout()) says what it is through its
            # classification: "The upstream service timed out.", not "".
            message = chain[0]["message"] or self.clean(classification_message)
        else:
            message = self.clean(event.message or "")
        error_id = event.error_id
        if not isinstance(error_id, str) or not 0 < len(error_id) <= MAX_ERROR_ID:
            # The store keys rows by a UUID-sized id; keep an odd one (an app's own) as data.
            data["original_error_id"] = _text(error_id)[:MAX_ID_CHARS]
            error_id = _new_error_id()
        endpoint = get("endpoint") or ctx.endpoint
        user_agent = get("user_agent")
        request_payload = get("request_payload")
        response_payload = get("response_payload")
        return ErrorRecord(
            error_id,
            datetime.fromtimestamp(event.timestamp, UTC),
            _short(error_type, 64) or ErrorType.UNKNOWN.value,
            _short(code, 64) or "INTERNAL_ERROR",
            message,
            severity,
            event.fingerprint,
            self.clean(event.title, single_line=True),
            stack,
            exception_type,
            _status(status),
            None
            if (session_id := get("session_id") or ctx.session_id) is None
            else _short(session_id),
            None if request_id is None else _short(request_id),
            None if correlation_id is None else _short(correlation_id),
            None if (trace_id := get("trace_id") or ctx.trace_id) is None else _short(trace_id),
            None if (user_id := get("user_id") or ctx.user_id) is None else _short(user_id),
            _short(self.clean(_text(endpoint), single_line=True)) if endpoint else None,
            _short(get("method") or ctx.method, 16),
            self.clean(_text(user_agent)[:MAX_USER_AGENT], single_line=True)
            if user_agent
            else None,
            None if request_payload is None else self.payload(request_payload),
            None if response_payload is None else self.payload(response_payload),
            self.service,
            self.environment,
            self.release,
            _encode(data),
        )

    # -- payloads -------------------------------------------------------------------------

    def payload(self, value: Any) -> str | None:
        """A request or response body as scrubbed text of at most ``max_payload_bytes``.

        Bytes and text that hold JSON are parsed so that sensitive keys are found; other
        text is scrubbed for secrets inside it."""
        if value is None:
            return None
        limit = self.max_payload_bytes
        scrubber = self._payload_scrubber
        kind = type(value)
        if kind is dict or kind is list:
            pass  # a parsed body (the common case): neither bytes nor text
        elif isinstance(value, bytes | bytearray | memoryview):
            raw = bytes(value)
            if len(raw) > limit * 4:  # too big to parse: keep (and scrub) the start only
                text = raw[: limit * 2].decode("utf-8", "replace")
                return _cap_bytes(scrubber.scrub_text(text), limit)
            value = raw.decode("utf-8", "replace")
        if kind is not dict and kind is not list and isinstance(value, str):
            stripped = value.lstrip()
            if stripped[:1] in ("{", "[") and len(value) <= limit * 4:
                try:
                    value = json.loads(value)
                except ValueError:
                    return _cap_bytes(scrubber.scrub_text(value), limit)
            else:
                return _cap_bytes(scrubber.scrub_text(value), limit)
        # Most bodies hold nothing to remove: one test over all their strings says so, and
        # they are serialised as they are instead of copied node by node (without a float,
        # by orjson: the same text).
        state = scrubber.cleanness(value)
        if state == CLEAN_NO_FLOAT:
            plain = plain_json(value)
            if plain is not None:
                return _cap_bytes(plain, limit)
        cleaned = value if state != DIRTY else scrubber.scrub(value)
        return _cap_bytes(_payload_json(cleaned), limit)

    def _bounded(self, value: Any) -> Any:
        text = json.dumps(value, ensure_ascii=False, default=str)
        if len(text.encode("utf-8", "surrogatepass")) <= self.max_payload_bytes:
            return value
        return _cap_bytes(text, self.max_payload_bytes)

    # -- stacks ---------------------------------------------------------------------------

    def _source(self, filename: str, lineno: int) -> str:
        key = (filename, lineno)
        line = self._lines.get(key)
        if line is None:
            raw = linecache.getline(filename, lineno).strip()
            line = self.scrubber.scrub_text(raw[:500], single_line=True) if raw else ""
            self._lines.put(key, line)
        return line

    def frames(self, exc: BaseException) -> tuple[list[dict[str, Any]], int]:
        """The frames of ``exc``'s traceback (outermost first) and how many were omitted.

        Occurrences of one error come through the same code at the same lines: the frames
        are built once per path and shared (read-only) by the records that follow it. The
        path is keyed by the code objects' ids (hashing a code object costs 0.2-0.6 us; an
        int almost nothing), so the entry keeps its code objects alive: no id is reused
        while it is cached."""
        path: list[int] = []
        tb = exc.__traceback__
        while tb is not None:
            path.append(id(tb.tb_frame.f_code))
            path.append(tb.tb_lineno)
            tb = tb.tb_next
        key = tuple(path)
        cached = self._frames.get(key)
        if cached is None:
            tbs = []
            tb = exc.__traceback__
            while tb is not None:
                tbs.append(tb)
                tb = tb.tb_next
            cached = (self._build_frames(tbs), tuple(t.tb_frame.f_code for t in tbs))
            self._frames.put(key, cached)
        frames = cached[0]
        return frames, frames.omitted

    def _build_frames(self, tbs: list[Any]) -> _FrameList:
        omitted = 0
        if len(tbs) > MAX_FRAMES:
            omitted = len(tbs) - MAX_FRAMES
            tbs = tbs[:_HEAD_FRAMES] + tbs[-(MAX_FRAMES - _HEAD_FRAMES) :]
        out = []
        for tb in tbs:
            frame = tb.tb_frame
            code = frame.f_code
            filename = code.co_filename
            lineno = tb.tb_lineno or 0
            out.append(
                {
                    "filename": filename,
                    "lineno": lineno,
                    "function": code.co_qualname,
                    "module": _text(frame.f_globals.get("__name__", "")),
                    "source": self._source(filename, lineno),
                    "in_app": is_in_app(filename),
                }
            )
        return _FrameList(out, omitted)

    def _describe(self, exc: BaseException, depth: int) -> dict[str, Any]:
        frames, omitted = self.frames(exc)
        item: dict[str, Any] = {
            "type": _type_path(type(exc)),
            "message": self.clean(_exception_message(exc)),
            "frames": frames,
        }
        if omitted:
            item["frames_omitted"] = omitted
        if isinstance(exc, AppError):
            item["code"] = exc.code
        if isinstance(exc, BaseExceptionGroup) and depth < MAX_GROUP_DEPTH:
            members = list(exc.exceptions)
            item["members"] = [self._describe(m, depth + 1) for m in members[:MAX_GROUP_MEMBERS]]
            if len(members) > MAX_GROUP_MEMBERS:
                item["members_omitted"] = len(members) - MAX_GROUP_MEMBERS
        return item

    def _chain(self, exc: BaseException) -> list[dict[str, Any]]:
        """``exc`` then its causes and contexts (nearest first), each with its frames."""
        out: list[dict[str, Any]] = []
        seen: set[int] = set()
        current: BaseException | None = exc
        while current is not None and id(current) not in seen and len(out) < MAX_CHAIN:
            seen.add(id(current))
            item = self._describe(current, 0)
            if current.__cause__ is not None:
                item["relation"] = "cause"
                nxt: BaseException | None = current.__cause__
            elif not current.__suppress_context__ and current.__context__ is not None:
                item["relation"] = "context"
                nxt = current.__context__
            else:
                nxt = None
            out.append(item)
            current = nxt
        return out


def _frame_lines(frames: list[dict[str, Any]], omitted: int, indent: str) -> str:
    """The "Traceback (most recent call last):" part of a stack, each line ending in "\n"."""
    if not frames:
        return ""
    lines = [f"{indent}Traceback (most recent call last):"]
    for index, frame in enumerate(frames):
        if index == _HEAD_FRAMES and omitted:
            lines.append(f"{indent}  [... {omitted} frames omitted ...]")
        lines.append(
            f'{indent}  File "{frame["filename"]}", line {frame["lineno"]}, in {frame["function"]}'
        )
        if frame["source"]:
            lines.append(f"{indent}    {frame['source']}")
    return "\n".join(lines) + "\n"


def _format_one(item: dict[str, Any], indent: str) -> str:
    frames = item["frames"]
    if not indent and isinstance(frames, _FrameList):
        head = frames.text  # made once per code path
    else:
        head = _frame_lines(frames, item.get("frames_omitted", 0), indent)
    message = item["message"]
    line = f"{indent}{item['type']}: {message}" if message else f"{indent}{item['type']}"
    if "members" not in item and not item.get("members_omitted"):
        return f"{head}{line}\n"  # the common case: one copy of the frames' text
    lines = [line]
    for number, member in enumerate(item.get("members", ()), start=1):
        lines.append(f"{indent}+---------------- {number} ----------------")
        lines.append(_format_one(member, indent + "| "))
    if item.get("members_omitted"):
        lines.append(f"{indent}+---------------- ... ----------------")
        lines.append(f"{indent}| and {item['members_omitted']} more exceptions")
    return head + "\n".join(lines) + "\n"


def _item_parts(item: dict[str, Any], out: list[str]) -> None:
    """Append one exception of the chain as JSON parts to ``out``, its frames' text reused
    (as json_dumps writes it)."""
    frames = item["frames"]
    if not isinstance(frames, _FrameList) or "members" in item:
        out.append(json_dumps(item))
        return
    out += (
        '{"type":',
        _type_json(item["type"]),
        ',"message":',
        json_string(item["message"]),
        ',"frames":',
        frames.json,
    )
    for key in ("frames_omitted", "code", "relation"):
        if key in item:
            out += (',"', key, '":', json_dumps(item[key]))
    out.append("}")


@functools.lru_cache(maxsize=1024)
def _type_json(path: str) -> str:
    return json_string(path)


def _encode(data: dict[str, Any], known: Mapping[str, str] | None = None) -> EncodedData:
    """``data`` with its JSON text, made from parts serialised once where possible and
    joined once (the frames' text is the bulk of it: it is copied once, not per level).
    ``known`` holds the text :func:`json_dumps` gives of some of the values already."""
    out = ["{"]
    for key, value in data.items():
        if len(out) > 1:
            out.append(",")
        out += (_KEY_JSON.get(key) or json_string(key), ":")
        if key == "exceptions":
            out.append("[")
            for index, item in enumerate(value):
                if index:
                    out.append(",")
                _item_parts(item, out)
            out.append("]")
        elif key == "classification":
            out.append(_classification_json(value["category"], value["retriable"]))
        elif known is not None and key in known:
            out.append(known[key])
        else:
            out.append(json_dumps(value))
    out.append("}")
    return EncodedData(data, "".join(out))


_KEY_JSON = {
    key: json_string(key)
    for key in (
        "exceptions",
        "classification",
        "level",
        "context",
        "tags",
        "headers",
        "extra",
        "logger",
        "mechanism",
        "original_error_id",
        # and those of events an SDK sent (errorkit.ingest)
        "original_timestamp",
        "breadcrumbs",
        "user",
        "request",
        "server_name",
        "dist",
        "transaction",
        "platform",
        "sdk",
    )
}


@functools.lru_cache(maxsize=64)
def _classification_json(category: str, retriable: bool) -> str:
    return json_dumps({"category": category, "retriable": retriable})


def _join_chain(chain: list[dict[str, Any]]) -> str:
    """Python's own traceback layout: the oldest cause first, the raised error last, with the
    right separator between each pair."""
    if len(chain) == 1:
        return _format_one(chain[0], "")
    blocks = [_format_one(item, "") for item in reversed(chain)]
    relations = [item.get("relation") for item in reversed(chain)]
    out = [blocks[0]]
    for index in range(1, len(blocks)):
        # blocks[index] is newer than blocks[index - 1]; its own relation names the link.
        relation = relations[index]
        if relation == "cause":
            out.append("\nThe above exception was the direct cause of the following exception:\n\n")
        else:
            out.append("\nDuring handling of the above exception, another exception occurred:\n\n")
        out.append(blocks[index])
    return "".join(out)


def _status(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        status = int(value)
    except (TypeError, ValueError):
        return None
    return status if 0 <= status <= 999 else None
