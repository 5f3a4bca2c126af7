"""A Sentry event (as an SDK sends it) turned into the record local capture would store.

The mapping reuses capture's parts rather than restating them: the same
:class:`~errorkit.scrubbing.Scrubber`, the size caps and payload handling of
:class:`~errorkit.capturing.event.RecordBuilder`, the traceback text of a local record, and
the grouping rule of :mod:`errorkit.capturing.fingerprint` (type, code, in-app frames as
``module:function``, the normalised message), with the project as the service, so two
projects never share a group. An event that cannot become a record is refused with an
:class:`~errorkit.ingest.limits.IngestRefused` (400) naming the field.
"""

from __future__ import annotations

import builtins
import marshal
import math
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from errorkit._cache import BoundedCache
from errorkit.capturing.event import (
    _HEAD_FRAMES,
    MAX_CHAIN,
    MAX_FRAMES,
    MAX_ID_CHARS,
    MAX_STACK_CHARS,
    MAX_USER_AGENT,
    MESSAGE_CODE,
    RecordBuilder,
    _cap_bytes,
    _encode,
    _FrameList,
    _join_chain,
    _payload_json,
    _short,
    normalize_severity,
)
from errorkit.capturing.fingerprint import (
    DEFAULT_PLACEHOLDER,
    MAX_GROUPING_CHAIN,
    ChainLink,
    Grouping,
    apply_override,
    chain_grouping,
    chain_structure,
    frames_signature,
    group_message,
    is_in_app,
)
from errorkit.classification import Classification, classify
from errorkit.errors import ErrorType
from errorkit.ingest.limits import IngestRefused
from errorkit.scrubbing import CLEAN_NO_FLOAT, DIRTY, Scrubber
from errorkit.store._clean import json_dumps, json_plain, plain_json
from errorkit.store.records import ErrorRecord

__all__ = ["MAX_BREADCRUMBS", "client_report_items", "event_to_record"]

#: Breadcrumbs kept per event (the latest ones).
MAX_BREADCRUMBS = 100
#: Source lines kept before and after a frame's line.
MAX_CONTEXT_LINES = 5
#: A frame's source line is cut to this many characters (as in local capture).
MAX_SOURCE_CHARS = 500
#: File names and function names are cut to this many characters.
MAX_NAME_CHARS = 1024
#: Unclassified exceptions' code (it takes no part in their fingerprint).
_UNCLASSIFIED = "INTERNAL_ERROR"
_DEFAULT_PAYLOAD_BYTES = 16_384


def _refuse(message: str) -> IngestRefused:
    return IngestRefused(400, f"event: {message}")


def _kind(value: Any) -> str:
    return type(value).__name__


def _mapping(parent: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any] | None:
    value = parent.get(key)
    if value is None or type(value) is dict:
        return value
    if not isinstance(value, Mapping):
        raise _refuse(f"field '{where}{key}' must be an object, not {_kind(value)}")
    return value


def _string(parent: Mapping[str, Any], key: str, where: str = "") -> str | None:
    value = parent.get(key)
    if value is None or type(value) is str or isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise _refuse(f"field '{where}{key}' must be a string, not {_kind(value)}")


def _values(value: Any, where: str) -> list[Any]:
    """A Sentry "values" interface: ``{"values": [...]}`` or (older SDKs) the list itself."""
    if value is None:
        return []
    if type(value) is dict or isinstance(value, Mapping):
        value = value.get("values")
        if value is None:
            return []
    if not isinstance(value, list):
        raise _refuse(f"field '{where}' must be a list (or {{\"values\": [...]}})")
    return value


# --- builders shared per scrubber ----------------------------------------------------------


class _Stack(_FrameList):
    """The frames of one stack as the ingest shares them: with what grouping reads of them
    (``(module, function, in_app)`` of each frame, and their signature)."""

    __slots__ = ("entries", "signature")

    def __init__(self, frames: list[dict[str, Any]], omitted: int) -> None:
        super().__init__(frames, omitted)
        self.entries = [(f["module"] or "?", f["function"], f["in_app"]) for f in frames]
        self.signature = frames_signature(self.entries)


class _Builder(RecordBuilder):
    """The capture's record builder, with the frames of the stacks it has seen: a stack
    comes back with every occurrence of its error, and its frames, their JSON and
    traceback text are built once (keyed by each frame's raw fields, see
    :func:`_frames_key`, or by the frames' marshalled bytes, see :func:`_frames`)."""

    def __init__(self, *, max_payload_bytes: int, scrubber: Scrubber) -> None:
        super().__init__(
            service="",
            environment=None,
            release=None,
            max_payload_bytes=max_payload_bytes,
            scrubber=scrubber,
        )
        self.stacks: BoundedCache[tuple[Any, ...], _Stack] = BoundedCache(4096)
        self.raw_stacks: BoundedCache[bytes, _Stack] = BoundedCache(4096)
        # (project, code, (type, frames' signature) of each link) -> chain_structure()
        self.structures: BoundedCache[tuple[Any, ...], str] = BoundedCache(4096)
        # Whether what the scrubber keeps of a body, the payload scrubber keeps too.
        self.same_bodies = self._payload_scrubber.max_string >= scrubber.max_string

    def part(self, value: Any, state: int, single_line: bool, bounded: bool) -> Any:
        """``value`` scrubbed (and, when ``bounded``, capped by :meth:`_bounded`) and its
        text as :func:`json_dumps` writes it, as a pair; ``state`` is what the scrubber's
        :meth:`~Scrubber.cleanness` says of it.

        A value the scrubber would give back as it is stays the value itself (not a
        copy). Without a float its JSON comes from one call to orjson, and it is within
        the size cap when its compact text plus one byte per ',' and ':' is (``_bounded``
        measures that text's UTF-8 with a space after each separator)."""
        if state == CLEAN_NO_FLOAT:
            text = plain_json(value)
            if text is not None and "\\u0000" not in text:
                if not bounded:
                    return value, text
                size = len(text) if text.isascii() else len(text.encode("utf-8"))
                if size + text.count(",") + text.count(":") <= self.max_payload_bytes:
                    return value, text
        if state == DIRTY:
            value = self.scrubber.scrub(value, single_line=single_line)
        if bounded:
            value = self._bounded(value)
        return value, json_dumps(value)

    def body(self, value: Any, state: int) -> str | None:
        """:meth:`payload` of a parsed body (a dict or a list) the scrubber said ``state``
        of (the payload scrubber says the same: it differs only by a longer text limit)."""
        if state == CLEAN_NO_FLOAT:
            text = plain_json(value)
            if text is not None:
                return _cap_bytes(text, self.max_payload_bytes)
        elif state != DIRTY:
            return _cap_bytes(_payload_json(value), self.max_payload_bytes)
        return self.payload(value)


_builders: BoundedCache[tuple[int, int], tuple[Scrubber, _Builder]] = BoundedCache(64)


def _builder(scrubber: Scrubber, max_payload_bytes: int) -> _Builder:
    """The capture's record builder for ``scrubber`` (its caches live across events)."""
    key = (id(scrubber), max_payload_bytes)
    found = _builders.get(key)
    if found is None or found[0] is not scrubber:
        builder = _Builder(max_payload_bytes=max_payload_bytes, scrubber=scrubber)
        found = _builders.put(key, (scrubber, builder))
    return found[1]


# --- ids and times ---------------------------------------------------------------------------


def _event_id(event: Mapping[str, Any]) -> str:
    value = event.get("event_id")
    if value is None:
        return uuid.uuid4().hex
    if not isinstance(value, str):
        raise _refuse(f"field 'event_id' must be a string of 32 hex digits, not {_kind(value)}")
    text = value.replace("-", "").lower()
    if len(text) != 32 or text.strip("0123456789abcdef"):
        raise _refuse(f"field 'event_id' must be 32 hex digits (a UUID), not {value[:64]!r}")
    return text


def _timestamp(value: Any, received_at: datetime) -> datetime | None:
    """The event's time, or None when it is not one (the caller falls back)."""
    if value is None:
        return received_at
    try:
        if isinstance(value, int | float) and not isinstance(value, bool):
            if not math.isfinite(value):
                return None
            return datetime.fromtimestamp(value, UTC)
        if isinstance(value, str):
            parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
            return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except (ValueError, OverflowError, OSError):
        return None
    return None


# --- exceptions ------------------------------------------------------------------------------


def _type_path(value: Mapping[str, Any], index: int) -> str:
    where = f"exception.values[{index}]."
    exc_type = _string(value, "type", where) or ""
    module = _string(value, "module", where)
    if not exc_type:
        exc_type = "Error" if value.get("value") is not None else "UnknownError"
    exc_type = exc_type[:MAX_NAME_CHARS]
    if module and module not in ("builtins", "__main__"):
        return f"{module[:MAX_NAME_CHARS]}.{exc_type}"
    return exc_type


def _lines(value: Any, where: str, builder: RecordBuilder) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        raise _refuse(f"field '{where}' must be a list of source lines")
    return [
        builder.clean(str(line)[:MAX_SOURCE_CHARS].strip(), single_line=True)
        for line in value[-MAX_CONTEXT_LINES:]
    ]


def _frame(raw: Any, where: str, builder: RecordBuilder) -> dict[str, Any]:
    if not isinstance(raw, Mapping):
        raise _refuse(f"field '{where}' must be an object, not {_kind(raw)}")
    filename = (_string(raw, "abs_path", where) or _string(raw, "filename", where) or "?")[
        :MAX_NAME_CHARS
    ]
    lineno = raw.get("lineno")
    if not isinstance(lineno, int) or isinstance(lineno, bool) or lineno < 0:
        lineno = 0
    in_app = raw.get("in_app")
    source = _string(raw, "context_line", where) or ""
    frame: dict[str, Any] = {
        "filename": filename,
        "lineno": lineno,
        "function": (_string(raw, "function", where) or "?")[:MAX_NAME_CHARS],
        "module": (_string(raw, "module", where) or "")[:MAX_NAME_CHARS],
        "source": builder.clean(source[:MAX_SOURCE_CHARS].strip(), single_line=True),
        "in_app": in_app if isinstance(in_app, bool) else is_in_app(filename),
    }
    for key in ("pre_context", "post_context"):
        lines = _lines(raw.get(key), f"{where}{key}", builder)
        if lines:
            frame[key] = lines
    return frame


def _frames_key(raw: list[Any]) -> tuple[Any, ...] | None:
    """What :func:`_frame` reads of each of ``raw``'s frames, as one key; None when a value
    is not of the exact type the key tells apart (text, a whole number, a boolean): 1,
    1.0 and True are equal keys but not equal frames, so such stacks are not cached, and
    neither are the malformed ones (their refusal names the field)."""
    key: list[Any] = []
    add = key.append
    for frame in raw:
        if type(frame) is not dict:
            return None
        get = frame.get
        lineno = get("lineno")
        in_app = get("in_app")
        if not (lineno is None or type(lineno) is int) or not (
            in_app is None or type(in_app) is bool
        ):
            return None
        texts = (get("abs_path"), get("filename"), get("function"), get("module"))
        source = get("context_line")
        for text in (*texts, source):
            if text is not None and type(text) is not str:
                return None
        around: list[tuple[str, ...] | None] = []
        for name in ("pre_context", "post_context"):
            lines = get(name)
            if lines is None:
                around.append(None)
                continue
            if type(lines) is not list or not all(type(line) is str for line in lines):
                return None
            around.append(tuple(lines))
        add((texts, lineno, in_app, source, around[0], around[1]))
    return tuple(key)


#: The fields of a frame :func:`_frame` reads.
_FRAME_FIELDS = frozenset(
    (
        "abs_path",
        "filename",
        "function",
        "module",
        "lineno",
        "in_app",
        "context_line",
        "pre_context",
        "post_context",
    )
)


def _raw_key(raw: list[Any]) -> bytes | None:
    """The frames ``raw`` as marshal writes them, when they hold only the fields
    :func:`_frame` reads (local variables, which change with every occurrence, would make
    every key new); None otherwise.

    marshal takes only objects of exact builtin types and writes each with its type (1,
    1.0 and True differ; a tuple is not a list; a subclass, an enum or a UUID is refused),
    so equal bytes are equal values of the same types, but for one thing: whatever has a
    buffer (bytes, bytearray, memoryview) is written as bytes. A stack is cached under
    these bytes only when :func:`_frames_key` says its fields hold no such value, so a
    later stack with the same bytes holds none there either."""
    first = raw[0]
    if type(first) is not dict or not _FRAME_FIELDS.issuperset(first):
        return None
    try:
        return marshal.dumps(raw, 4)
    except ValueError:  # an object marshal does not take, or too deep
        return None


def _frames(value: Mapping[str, Any], where: str, builder: _Builder) -> tuple[list[Any], int]:
    stacktrace = _mapping(value, "stacktrace", where)
    if stacktrace is None:
        return [], 0
    raw = stacktrace.get("frames")
    if raw is None:
        return [], 0
    if not isinstance(raw, list):
        raise _refuse(f"field '{where}stacktrace.frames' must be a list")
    raw_key = _raw_key(raw) if raw else None
    if raw_key is not None:
        found = builder.raw_stacks.get(raw_key)
        if found is not None:
            return found, found.omitted
    key = _frames_key(raw)
    if key is not None:
        cached = builder.stacks.get(key)
        if cached is not None:
            _remember(builder, raw_key, raw, cached)
            return cached, cached.omitted
    omitted = 0
    indexed = list(enumerate(raw))
    if len(indexed) > MAX_FRAMES:
        omitted = len(indexed) - MAX_FRAMES
        indexed = indexed[:_HEAD_FRAMES] + indexed[-(MAX_FRAMES - _HEAD_FRAMES) :]
    frames = [_frame(f, f"{where}stacktrace.frames[{i}].", builder) for i, f in indexed]
    if key is None:
        return frames, omitted
    # Shared read-only by the records of this stack, with its JSON and traceback text.
    stack = builder.stacks.put(key, _Stack(frames, omitted))
    _remember(builder, raw_key, raw, stack)
    return stack, omitted


def _remember(builder: _Builder, raw_key: bytes | None, raw: list[Any], stack: _Stack) -> None:
    """Keep ``stack`` under its frames' bytes too, when every frame (not only the first,
    which :func:`_raw_key` looked at) holds only the fields :func:`_frame` reads."""
    if raw_key is not None and all(map(_FRAME_FIELDS.issuperset, raw)):
        builder.raw_stacks.put(raw_key, stack)


def _foreign_classification(type_name: str, message: str, platform: str | None) -> Classification:
    """What local capture's classify() says of this exception when it is one of Python's
    own (rebuilt from its name and text); unclassified otherwise."""
    cls = getattr(builtins, type_name, None) if platform in (None, "python") else None
    if isinstance(cls, type) and issubclass(cls, BaseException):
        try:
            return classify(cls(message))
        except Exception:  # noqa: BLE001, S110 - a type that cannot be rebuilt is unclassified
            pass
    return classify(_Unclassified())


class _Unclassified(Exception):
    """What an exception of another process is to :func:`classify`: unknown."""


class _Exceptions:
    """The chain of an event's ``exception.values`` (oldest first, the raised one last)."""

    def __init__(self, values: list[Any], builder: _Builder) -> None:
        for index, value in enumerate(values):
            if type(value) is not dict and not isinstance(value, Mapping):
                raise _refuse(f"field 'exception.values[{index}]' must be an object")
        # nearest first, as local capture stores a chain
        newest = list(enumerate(values))[::-1][:MAX_CHAIN]
        self.items: list[dict[str, Any]] = []
        self.links: list[ChainLink] = []
        # each link's type and frames' signature, while all their frames are cached stacks
        self.signatures: list[str] | None = []
        for position, (index, value) in enumerate(newest):
            where = f"exception.values[{index}]."
            type_path = _type_path(value, index)
            frames, omitted = _frames(value, where, builder)
            text = _string(value, "value", where) or ""
            item: dict[str, Any] = {
                "type": type_path,
                "message": builder.clean(text),
                "frames": frames,
            }
            if omitted:
                item["frames_omitted"] = omitted
            if position + 1 < len(newest):
                older = newest[position + 1][1]
                mechanism = older.get("mechanism")
                source = mechanism.get("source") if isinstance(mechanism, Mapping) else None
                item["relation"] = "cause" if source == "__cause__" else "context"
            self.items.append(item)
            if position < MAX_GROUPING_CHAIN:
                if type(frames) is _Stack:
                    self.links.append(ChainLink(type_path, frames.entries))
                    if self.signatures is not None:
                        self.signatures += (type_path, frames.signature)
                else:
                    entries = [(f["module"] or "?", f["function"], f["in_app"]) for f in frames]
                    self.links.append(ChainLink(type_path, entries))
                    self.signatures = None
        raised = values[-1]
        module = _string(raised, "module")
        # A builtin's name only when nothing says it is another module's class.
        self.builtin_type = (_string(raised, "type") or "") if module in (None, "builtins") else ""
        self.raised_text = _string(raised, "value") or ""
        mechanism = raised.get("mechanism")
        self.mechanism = (
            _string(mechanism, "type", "exception.mechanism.")
            if isinstance(mechanism, Mapping)
            else None
        )


# --- the fingerprint -------------------------------------------------------------------------


def _structure(chain: _Exceptions, project: str, code: str, builder: _Builder) -> str:
    """:func:`chain_structure` of the chain's links, remembered when the frames of each
    are a cached stack: all it reads of them is then their known signature."""
    if chain.signatures is None:
        return chain_structure(chain.links, project, code)
    key = (project, code, *chain.signatures)
    found = builder.structures.get(key)
    if found is None:
        found = builder.structures.put(key, chain_structure(chain.links, project, code))
    return found


def _override(event: Mapping[str, Any], default: Grouping, project: str) -> Grouping:
    value = event.get("fingerprint")
    if value is None or value == []:
        return default
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(
        isinstance(p, str | int | float) and not isinstance(p, bool) for p in value
    ):
        raise _refuse("field 'fingerprint' must be a list of strings")
    parts = [
        DEFAULT_PLACEHOLDER if str(p).replace(" ", "") == "{{default}}" else str(p)[:MAX_ID_CHARS]
        for p in value[: MAX_CHAIN * 4]
    ]
    return apply_override(parts, default, project)


# --- messages --------------------------------------------------------------------------------


def _message(event: Mapping[str, Any]) -> tuple[str, str]:
    """(text shown, template grouped on) of a message event."""
    logentry = _mapping(event, "logentry", "") or _mapping(event, "sentry.interfaces.Message", "")
    raw = event.get("message")
    if isinstance(raw, Mapping):  # some SDKs send the logentry shape under "message"
        logentry = logentry or raw
        raw = None
    elif raw is not None and not isinstance(raw, str):
        raise _refuse(f"field 'message' must be a string, not {_kind(raw)}")
    template = formatted = raw or ""
    if logentry is not None:
        template = _string(logentry, "message", "logentry.") or template
        formatted = _string(logentry, "formatted", "logentry.") or formatted or template
    return formatted or template, template or formatted


# --- the record ------------------------------------------------------------------------------


def _pairs(value: Any, where: str) -> list[tuple[Any, Any]]:
    """An object's items, or (older SDKs) a list of ``[key, value]`` pairs."""
    if value is None:
        return []
    if type(value) is dict or isinstance(value, Mapping):
        return list(value.items())
    if isinstance(value, list) and all(isinstance(p, list | tuple) and len(p) == 2 for p in value):
        return [(p[0], p[1]) for p in value]
    raise _refuse(f"field '{where}' must be an object (or a list of [key, value] pairs)")


def _tags(value: Any) -> dict[str, str]:
    pairs = _pairs(value, "tags")
    return {str(k)[:MAX_ID_CHARS]: str(v)[:MAX_ID_CHARS] for k, v in pairs[:200]}


def _headers(request: Mapping[str, Any]) -> dict[str, str]:
    pairs = _pairs(request.get("headers"), "request.headers")
    return {str(k): "" if v is None else str(v) for k, v in pairs}


def _header(headers: Mapping[str, str], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return None


def event_to_record(
    event: Mapping[str, Any],
    *,
    project: str,
    scrubber: Scrubber,
    received_at: datetime,
    max_payload_bytes: int = _DEFAULT_PAYLOAD_BYTES,
) -> ErrorRecord:
    """The :class:`ErrorRecord` of a Sentry ``event`` received for ``project`` (its name:
    the record's service and its groups' namespace) at ``received_at``.

    Raises :class:`IngestRefused` (400) for an event that cannot become a record, naming
    the field."""
    if type(event) is not dict and not isinstance(event, Mapping):
        raise _refuse(f"must be a JSON object, not {_kind(event)}")
    builder = _builder(scrubber, max_payload_bytes)
    error_id = _event_id(event)
    data: dict[str, Any] = {}
    timestamp = _timestamp(event.get("timestamp"), received_at)
    if timestamp is None:
        data["original_timestamp"] = str(event.get("timestamp"))[:64]
        timestamp = received_at
    platform = _string(event, "platform")
    level = _string(event, "level")
    values = _values(event.get("exception"), "exception")
    status: int | None = None
    if values:
        chain = _Exceptions(values, builder)
        classification = _foreign_classification(chain.builtin_type, chain.raised_text, platform)
        code = str(classification.code)
        grouping = chain_grouping(
            _structure(chain, project, "" if code == _UNCLASSIFIED else code, builder),
            chain.links[0].type_name,
            chain.raised_text,
        )
        data["exceptions"] = chain.items
        data["classification"] = {
            "category": str(classification.category),
            "retriable": classification.retriable,
        }
        stack: str | None = _cap_bytes(_join_chain(chain.items), MAX_STACK_CHARS)
        exception_type: str | None = chain.items[0]["type"]
        error_type = str(classification.error_type)
        severity = normalize_severity(level, str(classification.severity))
        status = classification.status
        message = chain.items[0]["message"] or builder.clean(classification.message)
        if chain.mechanism:
            data["mechanism"] = _short(chain.mechanism)
    else:
        shown, template = _message(event)
        logger = _string(event, "logger")
        grouping = group_message(template or "<unlabeled event>", project, logger)
        stack = exception_type = None
        error_type = ErrorType.UNKNOWN.value
        code = MESSAGE_CODE
        severity = normalize_severity(level, "error")
        message = builder.clean(shown)
    grouping = _override(event, grouping, project)
    if level is not None:
        data["level"] = _short(level, 32)
    logger = _string(event, "logger")
    if logger is not None:
        data["logger"] = _short(logger)

    # What is scrubbed as a whole: (the key in data, the value, one line, bounded), in the
    # order data holds them (data["request"] is at its place already, for its query).
    scrubbed: list[tuple[str, Any, bool, bool]] = []
    tags = _tags(event.get("tags"))
    if tags:
        data["tags"] = None
        scrubbed.append(("tags", tags, True, False))
    contexts = _mapping(event, "contexts", "")
    trace_id = None
    if contexts is not None:
        trace = contexts.get("trace")
        if isinstance(trace, Mapping):
            trace_id = _string(trace, "trace_id", "contexts.trace.")
        response = contexts.get("response")
        if isinstance(response, Mapping) and isinstance(response.get("status_code"), int):
            status = response["status_code"]
        data["context"] = None
        scrubbed.append(("context", dict(contexts), False, True))
    extra = _mapping(event, "extra", "")
    if extra:
        data["extra"] = None
        scrubbed.append(("extra", dict(extra), False, True))
    crumbs = _values(event.get("breadcrumbs"), "breadcrumbs")
    if crumbs:
        data["breadcrumbs"] = None
        scrubbed.append(("breadcrumbs", crumbs[-MAX_BREADCRUMBS:], False, True))

    user = _mapping(event, "user", "")
    user_id = None
    if user is not None:
        user_id = _string(user, "id", "user.")
        rest = {k: v for k, v in user.items() if k != "id" and v != "{{auto}}"}
        if rest:
            data["user"] = None
            scrubbed.append(("user", rest, True, False))

    request = _mapping(event, "request", "")
    endpoint = method = user_agent = request_id = request_payload = None
    headers: dict[str, str] = {}
    if request is not None:
        headers = _headers(request)
        if headers:
            data["headers"] = scrubber.scrub_headers(headers)
        user_agent = _header(headers, "user-agent")
        request_id = _header(headers, "x-request-id")
        url = _string(request, "url", "request.")
        if url:
            parts = urlsplit(url) if len(url) <= 8192 else None
            endpoint = parts.path if parts is not None and parts.path else url
            data["request"] = {"url": builder.clean(url[:8192], single_line=True)}
        query = request.get("query_string")
        if query:
            data.setdefault("request", {})["query_string"] = None
            query = query if isinstance(query, Mapping | list) else str(query)
            scrubbed.append(("query_string", query, False, True))
        method = _string(request, "method", "request.")
        body = request.get("data")
        if body is not None:
            kind = type(body)
            if (kind is dict or kind is list) and builder.same_bodies:
                scrubbed.append(("request_payload", body, False, False))
            else:
                request_payload = builder.payload(body)

    for key in ("server_name", "dist", "transaction", "platform"):
        value = _string(event, key)
        if value:
            data[key] = builder.clean(value[:MAX_ID_CHARS], single_line=True)
    sdk = _mapping(event, "sdk", "")
    if sdk is not None:
        data["sdk"] = {
            k: _short(sdk[k]) for k in ("name", "version") if isinstance(sdk.get(k), str)
        }

    # The JSON of values made here, as json_dumps() writes it: _encode() joins it in.
    known: dict[str, str] = {}
    if scrubbed:
        states = scrubber.cleanness_all([(value, line) for _, value, line, _ in scrubbed])
        for (key, value, line, bounded), state in zip(scrubbed, states, strict=True):
            if key == "request_payload":
                request_payload = builder.body(value, state)
            elif key == "query_string":
                data["request"]["query_string"] = builder.part(value, state, line, bounded)[0]
            else:
                data[key], known[key] = builder.part(value, state, line, bounded)
    if headers:
        known["headers"] = json_plain(data["headers"])  # text only
    if "request" in data and all(type(v) is str for v in data["request"].values()):
        known["request"] = json_plain(data["request"])
    if sdk is not None:
        known["sdk"] = json_plain(data["sdk"])  # text only

    return ErrorRecord(
        error_id=error_id,
        timestamp=timestamp,
        error_type=_short(error_type, 64) or ErrorType.UNKNOWN.value,
        error_code=_short(code, 64) or _UNCLASSIFIED,
        error_message=message,
        severity=severity,
        fingerprint=grouping.fingerprint,
        title=builder.clean(grouping.title, single_line=True),
        stack_trace=stack,
        exception_type=None if exception_type is None else _short(exception_type),
        status=status if status is None or 0 <= status <= 999 else None,
        request_id=None
        if request_id is None
        else _short(builder.clean(request_id, single_line=True)),
        trace_id=None if trace_id is None else _short(trace_id),
        user_id=None if user_id is None else _short(user_id),
        endpoint=_short(builder.clean(endpoint, single_line=True)) if endpoint else None,
        method=_short(method.upper(), 16) if method else None,
        user_agent=builder.clean(user_agent[:MAX_USER_AGENT], single_line=True)
        if user_agent
        else None,
        request_payload=request_payload,
        service=project,
        environment=_short(_string(event, "environment")),
        release=_short(_string(event, "release")),
        # its JSON made here, the frames' part once per stack: the store writes it as is
        data=_encode(data, known),
    )


def client_report_items(report: Mapping[str, Any]) -> list[tuple[str, str, int]]:
    """``(category, reason, quantity)`` of each loss an SDK's client report tells of
    (``discarded_events``; ``rate_limited_events`` etc. of older SDKs count as such).

    Raises :class:`IngestRefused` (400) for a report that is not one."""
    if not isinstance(report, Mapping):
        msg = f"client report must be a JSON object, not {_kind(report)}"
        raise IngestRefused(400, msg)
    out: list[tuple[str, str, int]] = []
    for key, fixed_reason in (
        ("discarded_events", None),
        ("rate_limited_events", "ratelimit_backoff"),
        ("network_error_events", "network_error"),
        ("event_processor_events", "event_processor"),
        ("sample_rate_events", "sample_rate"),
    ):
        entries = report.get(key)
        if entries is None:
            continue
        if not isinstance(entries, list):
            msg = f"client report: field '{key}' must be a list"
            raise IngestRefused(400, msg)
        for index, entry in enumerate(entries[:1000]):
            where = f"client report: {key}[{index}]"
            if not isinstance(entry, Mapping):
                msg = f"{where} must be an object"
                raise IngestRefused(400, msg)
            category = entry.get("category")
            reason = fixed_reason or entry.get("reason")
            quantity = entry.get("quantity")
            if not isinstance(category, str) or not category:
                msg = f"{where}: field 'category' must be a non-empty string"
                raise IngestRefused(400, msg)
            if not isinstance(reason, str) or not reason:
                msg = f"{where}: field 'reason' must be a non-empty string"
                raise IngestRefused(400, msg)
            if not isinstance(quantity, int) or isinstance(quantity, bool) or quantity < 0:
                msg = f"{where}: field 'quantity' must be a whole number >= 0"
                raise IngestRefused(400, msg)
            if quantity:
                out.append((category[:64], reason[:64], quantity))
    return out
