"""One call that sets up structured logging for the whole process.

:func:`setup_logging` configures structlog *and* the standard library so that both go
through the same processors: ``structlog.get_logger()`` and ``logging.getLogger()`` (your
own modules and every third-party library) produce the same lines. Production writes JSON
lines, development a readable console. Every record gets the request, correlation, session
and trace ids of :mod:`errorkit.context`, exceptions become structured data, and the
scrubber runs on every record just before it is rendered. Optional category files (app,
errors, security, performance) each hold only their category and rotate by size.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, Final, Literal, Protocol, cast

import structlog
from structlog.contextvars import merge_contextvars
from structlog.exceptions import DropEvent
from structlog.tracebacks import ExceptionDictTransformer
from structlog.types import EventDict, Processor, WrappedLogger

from errorkit._cache import BoundedCache
from errorkit._guard import guard, report_internal_error
from errorkit.config import ConfigError, get_settings
from errorkit.context import current_context
from errorkit.scrubbing import Scrubber, default_scrubber

__all__ = [
    "CATEGORIES",
    "DEVELOPMENT_ENVIRONMENTS",
    "LoggingSetup",
    "get_logger",
    "log_performance_metric",
    "log_security_event",
    "scrub_event",
    "setup_logging",
]


class Writable(Protocol):
    """Where lines go: anything with ``write(str)`` (and ``flush()``), like ``sys.stderr``."""

    def write(self, s: str, /) -> object: ...

    def flush(self) -> object: ...


Category = Literal["app", "errors", "security", "performance"]
CATEGORIES: Final[tuple[Category, ...]] = ("app", "errors", "security", "performance")
DEVELOPMENT_ENVIRONMENTS: Final[frozenset[str]] = frozenset({"development", "dev", "local"})

SECURITY_LOGGER: Final = "errorkit.security"
PERFORMANCE_LOGGER: Final = "errorkit.performance"
_LOGGER_CATEGORY: Final[dict[str, Category]] = {
    SECURITY_LOGGER: "security",
    PERFORMANCE_LOGGER: "performance",
}
_RECORD_CATEGORY_ATTR: Final = "errorkit_category"
# A record's rendered line, kept on the record with the formatter that rendered it.
_LINE_ATTR: Final = "_errorkit_line"
# On a record errorkit's structlog logger made: (the stdlib logger, structlog's method name).
_OWN_RECORD_ATTR: Final = "_errorkit_structlog"
# Attributes of a stdlib record that are not ``extra={...}`` fields of the call.
_RECORD_KEYS: Final[frozenset[str]] = frozenset(
    logging.LogRecord("", 0, "", 0, "", (), None).__dict__
) | {"message", "asctime", "taskName", _LINE_ATTR, _OWN_RECORD_ATTR, _RECORD_CATEGORY_ATTR}
_LEVEL_NAMES: Final[dict[str, str]] = {"warn": "warning", "exception": "error"}
_METHOD_LEVEL: Final[dict[str, int]] = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "exception": logging.ERROR,
    "critical": logging.CRITICAL,
    "fatal": logging.CRITICAL,
}

# Context fields errorkit adds to every record. They are identifiers errorkit carries on
# purpose, so the key rule ("session_id" looks like a credential) does not remove them; their
# values are still scrubbed as text.
_CONTEXT_FIELDS: Final = ("request_id", "correlation_id", "session_id", "trace_id", "span_id")
_TRUSTED_KEYS: Final[frozenset[str]] = frozenset(_CONTEXT_FIELDS)
# Fields errorkit itself writes from trusted values: not scrubbed at all (saves work per line).
_GENERATED_KEYS: Final[frozenset[str]] = frozenset({"timestamp", "level", "logger", "category"})


# --- processors ------------------------------------------------------------------------------


def add_errorkit_context(logger: WrappedLogger, method: str, event: EventDict) -> EventDict:
    """Add the request, correlation, session and trace ids of :mod:`errorkit.context`."""
    ctx = current_context()
    # The fields of _CONTEXT_FIELDS, in its order, written out: this runs for every line.
    value: str | None = ctx.request_id
    if value is not None and "request_id" not in event:
        event["request_id"] = value
    value = ctx.correlation_id
    if value is not None and "correlation_id" not in event:
        event["correlation_id"] = value
    value = ctx.session_id
    if value is not None and "session_id" not in event:
        event["session_id"] = value
    value = ctx.trace_id
    if value is not None and "trace_id" not in event:
        event["trace_id"] = value
    value = ctx.span_id
    if value is not None and "span_id" not in event:
        event["span_id"] = value
    if ctx.trace_id is None and "trace_id" not in event and "opentelemetry.trace" in sys.modules:
        from errorkit.observe.tracing import current_trace_ids

        trace_id, span_id = current_trace_ids()
        if trace_id is not None:
            event["trace_id"] = trace_id
            event["span_id"] = span_id
    return event


def _category_for(explicit: object, logger_name: str | None, levelno: int) -> Category:
    if isinstance(explicit, str) and explicit in CATEGORIES:
        return explicit
    if logger_name is not None:
        named = _LOGGER_CATEGORY.get(logger_name)
        if named is not None:
            return named
    return "errors" if levelno >= logging.ERROR else "app"


def record_category(record: logging.LogRecord) -> Category:
    """The one category a stdlib record belongs to (cached on the record)."""
    cached = record.__dict__.get(_RECORD_CATEGORY_ATTR)
    if cached is not None:
        return cast(Category, cached)
    msg = record.msg
    explicit = msg.get("category") if isinstance(msg, dict) else getattr(record, "category", None)
    category = _category_for(explicit, record.name, record.levelno)
    record.__dict__[_RECORD_CATEGORY_ATTR] = category
    return category


def add_category(logger: WrappedLogger, method: str, event: EventDict) -> EventDict:
    """Name the record's category: ``security``/``performance`` when asked for (or logged on
    their loggers), else ``errors`` from level ERROR up, else ``app``."""
    record = event.get("_record")
    if record is not None:
        event.pop(_RECORD_CATEGORY_ATTR, None)  # copied by ExtraAdder from the filter's cache
        event["category"] = record_category(record)
        return event
    name = getattr(logger, "name", None)
    levelno = _METHOD_LEVEL.get(method, logging.INFO)
    event["category"] = _category_for(event.get("category"), name, levelno)
    return event


def resolve_exc_info(logger: WrappedLogger, method: str, event: EventDict) -> EventDict:
    """Turn ``exc_info=True`` / an exception into a tuple while still inside ``except``,
    and name the occurrence the way the store and the HTTP answer do."""
    exc_info = event.get("exc_info")
    if not exc_info:
        return event
    if isinstance(exc_info, BaseException):
        exc_info = (type(exc_info), exc_info, exc_info.__traceback__)
    elif not isinstance(exc_info, tuple):
        exc_info = sys.exc_info()
    if exc_info[1] is None:
        event.pop("exc_info", None)
        return event
    event["exc_info"] = exc_info
    exc = exc_info[1]
    from errorkit.classification import classify
    from errorkit.errors import error_id_of

    classification = classify(exc)
    event.setdefault("error_id", error_id_of(exc))
    event.setdefault("error_code", classification.code)
    event.setdefault("error_type", classification.error_type)
    return event


_second: tuple[int, str] = (-1, "")


def _now_iso() -> str:
    """Now in UTC as ``2026-01-31T12:00:00.123456Z`` (the date and time of one second are
    formatted once)."""
    global _second
    seconds, nanos = divmod(time.time_ns(), 1_000_000_000)
    cached = _second
    if cached[0] != seconds:
        cached = _second = (seconds, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)))
    return f"{cached[1]}.{nanos // 1000:06d}Z"


def add_errorkit_fields(logger: WrappedLogger, method: str, event: EventDict) -> EventDict:
    """Everything errorkit adds to a record, in one step: ``structlog.contextvars`` values,
    ``level``, ``logger``, ``timestamp`` (UTC, ISO 8601), the context ids, the category and
    the structured exception's ids."""
    merge_contextvars(logger, method, event)
    event["level"] = _LEVEL_NAMES.get(method, method)
    record = event.get("_record")
    if record is not None:
        name = record.name
        category = record_category(record)
    else:
        name = getattr(logger, "name", None)
        category = _category_for(
            event.get("category"), name, _METHOD_LEVEL.get(method, logging.INFO)
        )
    event["logger"] = name
    event["timestamp"] = _now_iso()
    add_errorkit_context(logger, method, event)
    # add_category's work, from what was read above (the context does not change it)
    if record is not None:
        event.pop(_RECORD_CATEGORY_ATTR, None)  # copied by ExtraAdder from the filter's cache
    event["category"] = category
    if event.get("exc_info"):
        resolve_exc_info(logger, method, event)
    return event


def add_record_fields(logger: WrappedLogger, method: str, event: EventDict) -> EventDict:
    """:func:`add_errorkit_fields` for a stdlib record, after copying its ``extra={...}``
    fields (errorkit's own bookkeeping on the record is left out)."""
    record = event.get("_record")
    if record is not None:
        for key, value in record.__dict__.items():
            if key not in _RECORD_KEYS:
                event[key] = value
    return add_errorkit_fields(logger, method, event)


# errorkit's own fields (_GENERATED_KEYS) and the event: scrub_event writes them first.
_FIRST_KEYS: Final = ("timestamp", "level", "event", "logger", "category")

# Log lines repeat the same short strings (event names, ids of one request, logger names,
# field names): the scrubbed form of each is remembered. Bounded: at most _CACHE_ITEMS
# entries of at most _CACHE_MAX_CHARS characters each; a cache starts over when full.
_CACHE_ITEMS: Final = 2048
_CACHE_MAX_CHARS: Final = 256
_UNREPRESENTABLE_KEY: Final = "[unrepresentable key]"


class _Caches:
    """The scrubbed form of short strings, and of keys with their verdict, for one scrubber."""

    __slots__ = ("keys", "owner", "texts")

    def __init__(self, owner: Scrubber) -> None:
        self.owner = owner
        self.texts: BoundedCache[str, str] = BoundedCache(_CACHE_ITEMS)
        # key -> (the name it is written under, whether its value is hidden)
        self.keys: BoundedCache[str, tuple[str, bool]] = BoundedCache(_CACHE_ITEMS)

    def text(self, text: str) -> str:
        if len(text) > _CACHE_MAX_CHARS:
            return self.owner.scrub_text(text, single_line=True)
        texts = self.texts
        cached = texts.get(text)
        if cached is None:
            cached = texts.put(text, self.owner.scrub_text(text, single_line=True))
        return cached

    def key(self, key: object) -> tuple[str, bool]:
        if type(key) is not str or len(key) > _CACHE_MAX_CHARS:
            return self._judge(key)
        keys = self.keys
        verdict = keys.get(key)
        if verdict is None:
            verdict = keys.put(key, self._judge(key))
        return verdict

    def _judge(self, key: object) -> tuple[str, bool]:
        s = self.owner
        try:
            text = key if isinstance(key, str) else str(key)
        except Exception:  # noqa: BLE001 - a broken __str__ must not lose the record
            return _UNREPRESENTABLE_KEY, True
        # Keys are scrubbed like values: a secret can arrive as a key (`**user_data`).
        name = s.scrub_text(text, single_line=True)
        return name, key not in _TRUSTED_KEYS and s.is_sensitive_key(text)


_caches = _Caches(default_scrubber())


def _caches_for(s: Scrubber) -> _Caches:
    # One scrubber's caches at a time, swapped as a whole, so a thread never reads results
    # another scrubber produced.
    global _caches
    caches = _caches
    if caches.owner is not s:
        caches = _caches = _Caches(s)
    return caches


def scrub_event(
    event: MutableMapping[str, Any], scrubber: Scrubber | None = None
) -> dict[str, Any]:
    """A scrubbed copy of an event dict whose every key and value fits on one log line (the
    usual fields first, so lines read alike)."""
    s = scrubber or default_scrubber()
    caches = _caches
    if caches.owner is not s:
        caches = _caches_for(s)
    texts = caches.texts
    keys = caches.keys
    # The usual fields first (errorkit's own as they are, the event scrubbed in place).
    out: dict[str, Any] = {key: event[key] for key in _FIRST_KEYS if key in event}
    if "event" in out:
        value = out["event"]
        clean = texts.get(value) if type(value) is str else None
        out["event"] = clean if clean is not None else _scrub_value(s, caches, value)
    replacement = s.replacement
    # The loop below is _scrub_value with the cache lookups inlined: it runs per field of
    # every line.
    for key, value in event.items():
        if key in out:
            continue
        verdict = keys.get(key) if type(key) is str else None
        if verdict is None:
            verdict = caches.key(key)
        name, hidden = verdict
        if hidden:
            out[name] = replacement
            continue
        kind = type(value)
        if kind is str:
            clean = texts.get(value)
            out[name] = clean if clean is not None else caches.text(value)
        elif value is None or kind is bool or kind is float or (kind is int and value < _BIG_INT):
            out[name] = value
        else:
            out[name] = s.scrub(value, single_line=True)
    return out


# Plain scalars are already safe, except an int of 13+ digits (it may be a card number).
_BIG_INT: Final = 10**12


def _scrub_value(s: Scrubber, caches: _Caches, value: Any) -> Any:
    kind = type(value)
    if kind is str:
        return caches.text(value)
    if value is None or kind is bool or kind is float or (kind is int and value < _BIG_INT):
        return value
    return s.scrub(value, single_line=True)


def _own_failure(site: str, exc: Exception) -> None:
    """Count a failure of errorkit's own logging code (raised again in errorkit's tests)."""
    with guard(site):
        raise exc


class _SafeChain:
    """Runs processors in order; one that raises is skipped and counted, the rest still run.

    A failing processor of errorkit's own is a bug (strict in errorkit's tests); a failing
    processor of yours is counted under ``logging.processor`` and never reaches the caller.
    """

    __slots__ = ("_ours", "_procs")

    def __init__(self, procs: Sequence[Processor], ours: Iterable[Processor]) -> None:
        self._procs = tuple(procs)
        self._ours = frozenset(id(p) for p in ours)

    def __call__(self, logger: WrappedLogger, method: str, event: EventDict) -> EventDict:
        procs = self._procs
        n = len(procs)
        i = 0
        result = event
        while i < n:
            try:
                while i < n:
                    out = procs[i](logger, method, result)
                    if type(out) is not dict:
                        msg = f"processor {procs[i]!r} returned {type(out).__name__}, not a dict"
                        raise TypeError(msg)
                    result = out
                    i += 1
            except DropEvent:
                raise
            except Exception as exc:  # noqa: BLE001 - logging must never raise into the app
                if id(procs[i]) in self._ours:
                    _own_failure("logging.processor", exc)
                else:
                    report_internal_error("logging.processor", exc)
                i += 1
        return result


class _Dispatch:
    """The one processor structlog is configured with. It forwards to the chain of the
    setup in force, so loggers cached before a later setup still follow it."""

    chain: _SafeChain | None = None

    def __call__(self, logger: WrappedLogger, method: str, event: EventDict) -> EventDict:
        chain = self.chain
        return event if chain is None else chain(logger, method, event)


# --- rendering -------------------------------------------------------------------------------

_UNSCRUBBABLE: Final = "[errorkit: this record could not be scrubbed and was not written]"
# Lines are compact JSON in ASCII. orjson (installed with ``errorkit[logging]``) encodes
# them when present; a line it cannot encode, or that holds non-ASCII text, is encoded by the
# standard library instead, so the text of a line does not depend on which one is installed.
_JSON: Final = json.JSONEncoder(default=repr, separators=(",", ":"))


def _load_orjson() -> Callable[[Any], bytes] | None:
    try:
        from orjson import dumps  # type: ignore[import-not-found, unused-ignore]
    except ImportError:  # pragma: no cover - depends on the installed extras
        return None
    return cast(Callable[[Any], bytes], dumps)


_orjson_dumps = _load_orjson()


def _json_line(event: Mapping[str, Any]) -> str:
    if _orjson_dumps is not None:
        try:
            raw: bytes = _orjson_dumps(event)
        except TypeError:  # orjson.JSONEncodeError: an int past 64 bits, say
            pass
        else:
            if raw.isascii():
                return raw.decode("ascii")
    return _JSON.encode(event)


class _Render:
    """The end of every record: its exception as data (or text), the scrubber, the renderer.

    Rendering never sees an unscrubbed record: if scrubbing fails, a line that keeps only
    the fields errorkit wrote itself says so instead."""

    __slots__ = ("_exceptions", "_render", "_scrubber")

    def __init__(
        self,
        exceptions: Processor,
        scrubber: Scrubber | None,
        render: Callable[[WrappedLogger, str, EventDict], str],
    ) -> None:
        self._exceptions = exceptions
        self._scrubber = scrubber
        self._render = render

    def __call__(self, logger: WrappedLogger, method: str, event: EventDict) -> str:
        event.pop("_record", None)
        event.pop("_from_structlog", None)
        if "exc_info" in event:
            try:
                event = cast(EventDict, self._exceptions(logger, method, event))
            except Exception as exc:  # noqa: BLE001 - logging must never raise into the app
                event.pop("exc_info", None)
                _own_failure("logging.exception", exc)
        return self.line(logger, method, event)

    def line(self, logger: WrappedLogger, method: str, event: EventDict) -> str:
        """The scrubbed, rendered line of an event dict with no exception (left to
        ``__call__``) and no ``_record``; the event dict is not changed."""
        try:
            clean = scrub_event(event, self._scrubber)
        except Exception as exc:  # noqa: BLE001 - never render what was not scrubbed
            _own_failure("logging.scrub", exc)
            return self._placeholder(event)
        try:
            return self._render(logger, method, clean)
        except Exception as exc:  # noqa: BLE001 - the line is replaced, never raised
            _own_failure("logging.render", exc)
            return self._placeholder(event)

    @staticmethod
    def _placeholder(event: EventDict) -> str:
        kept: dict[str, str] = {
            k: str(event[k]) for k in _FIRST_KEYS if k in _GENERATED_KEYS and k in event
        }
        kept["event"] = _UNSCRUBBABLE
        return _json_line(kept)


def _render_json(logger: WrappedLogger, method: str, event: EventDict) -> str:
    return _json_line(event)


class _Formatter(structlog.stdlib.ProcessorFormatter):
    """structlog's ``ProcessorFormatter``: a structlog record (its event dict already through
    errorkit's chain) goes straight to the renderer; any other record is first given the
    same fields by ``foreign``. The record itself is not changed, and its line is rendered
    once however many handlers (console, category files) share this formatter.

    A record errorkit's own structlog logger made (``_to_stdlib``) and a third-party record
    skip the parts of ``ProcessorFormatter.format`` they do not need: the copy of the record
    (nothing here changes it) and ``logging.Formatter``'s ``%(message)s`` step; they cost a
    third of a line. The processors see the event dict ``ProcessorFormatter`` builds, so
    the line is the same text (a test compares both); any other record (from a structlog
    configured elsewhere in the process) goes through ``ProcessorFormatter.format``."""

    def __init__(self, foreign: _SafeChain, render: _Render) -> None:
        super().__init__(processors=[render], foreign_pre_chain=[foreign])
        self._errorkit_render = render

    def format(self, record: logging.LogRecord) -> str:
        attrs = record.__dict__
        cached = attrs.get(_LINE_ATTR)
        if cached is not None and cached[0] is self:
            if cached[1] is None:
                raise DropEvent
            return cast(str, cached[1])
        own = attrs.get(_OWN_RECORD_ATTR)
        try:
            if type(record.msg) is not dict:  # not from structlog: a third-party record
                line = self._format_foreign(record)
            elif own is not None:
                msg = record.msg
                render = self._errorkit_render
                processors = self.processors
                if "exc_info" not in msg and len(processors) == 1 and processors[0] is render:
                    # The renderer (scrubbing, then JSON or console) leaves an event dict
                    # without an exception as it is, and ignores ``_record``: the record's
                    # own dict is enough.
                    line = render.line(own[0], own[1], msg)
                else:
                    line = self._format_own(record, own[0], own[1])
            else:
                line = super().format(record)
        except DropEvent:
            attrs[_LINE_ATTR] = (self, None)
            raise
        attrs[_LINE_ATTR] = (self, line)
        return line

    def _format_own(self, record: logging.LogRecord, logger: logging.Logger, method: str) -> str:
        event: Any = dict(cast(EventDict, record.msg))
        event["_record"] = record
        event["_from_structlog"] = True
        for processor in self.processors:
            event = processor(logger, method, event)
        return cast(str, event)

    def _format_foreign(self, record: logging.LogRecord) -> str:
        # The event dict ProcessorFormatter builds for a record not from structlog (its
        # message, the record, its exception and stack), through foreign_pre_chain.
        method = record.levelname.lower()
        event: Any = {
            "event": record.getMessage() if self.use_get_message else str(record.msg),
            "_record": record,
            "_from_structlog": False,
        }
        if self.pass_foreign_args:
            event["positional_args"] = record.args
        if record.exc_info:
            event["exc_info"] = record.exc_info
        if record.stack_info:
            event["stack_info"] = record.stack_info
        for processor in self.foreign_pre_chain or ():
            event = processor(self.logger, method, event)
        for processor in self.processors:
            event = processor(self.logger, method, event)
        return cast(str, event)


# --- the structlog logger ----------------------------------------------------------------------


def _to_stdlib(logger: WrappedLogger, method: str, event: EventDict) -> EventDict:
    """The last processor of structlog's own path (a logger held across ``close()``, or a
    call :class:`_BoundLogger` does not shorten): hand the event dict to its stdlib logger
    as a record (:func:`_hand_over`). Nothing is left for structlog to pass on."""
    if not isinstance(logger, logging.Logger):
        return event  # not a stdlib logger: structlog passes it on as configured
    _hand_over(logger, method, _METHOD_LEVEL.get(method, logging.INFO), event)
    raise DropEvent


_STANDARD_MAKE_RECORD: Final = logging.Logger.makeRecord
_wrap_for_formatter: Final = structlog.stdlib.ProcessorFormatter.wrap_for_formatter


def _hand_over(
    logger: logging.Logger, method: str, level: int, event: EventDict, depth: int = 2
) -> None:
    """Give the event dict to its stdlib logger as a record, in the form
    ``ProcessorFormatter`` reads (``wrap_for_formatter``), with the file, line and function
    of the logging call (structlog's and errorkit's own frames skipped, whatever class the
    stdlib logger has). The stdlib logger's filters, ``caplog`` and your own handlers see the
    record. The record is made by the record factory, as ``Logger.makeRecord`` makes it
    (a logger class with a ``makeRecord`` of its own gets it called)."""
    try:
        args, kw = _wrap_for_formatter(logger, method, event)
        exc_info: Any = None
        if method == "exception":
            exc_info = event.get("exc_info") or sys.exc_info()
        extra: dict[str, Any] = kw["extra"]
        extra[_OWN_RECORD_ATTR] = (logger, method)
        frame = _caller_frame(depth)
        code = frame.f_code
        if type(logger).makeRecord is _STANDARD_MAKE_RECORD:
            record = logging.getLogRecordFactory()(
                logger.name,
                level,
                code.co_filename,
                frame.f_lineno,
                args[0],
                (),
                exc_info,
                code.co_name,
                None,
            )
            record.__dict__.update(extra)
        else:
            record = logger.makeRecord(
                logger.name,
                level,
                code.co_filename,
                frame.f_lineno,
                args[0],
                (),
                exc_info,
                code.co_name,
                extra,
            )
    except Exception as exc:  # noqa: BLE001 - logging must never raise into the app
        _own_failure("logging.emit", exc)
        return
    logger.handle(record)


def _log(
    logger: logging.Logger,
    method: str,
    level: int,
    context: Mapping[str, Any],
    event: str | None,
    args: tuple[Any, ...],
    kw: dict[str, Any],
) -> None:
    """What structlog's path does with errorkit's processors, in one step: the event dict
    structlog builds (the context, the keywords, ``positional_args``, ``event``), errorkit's
    chain, the record. The level was checked by the caller."""
    chain = _dispatch.chain
    if chain is None:  # the setup was closed a moment ago
        return
    event_dict: EventDict = {**context, **kw}
    if args:
        event_dict["positional_args"] = args
    if event is not None:
        event_dict["event"] = event
    try:
        event_dict = chain(logger, method, event_dict)
    except DropEvent:
        return
    _hand_over(logger, method, level, event_dict, 4)


_dispatch = _Dispatch()
_PROCESSORS: Final[list[Processor]] = [structlog.stdlib.filter_by_level, _dispatch, _to_stdlib]
# The level names structlog's ``log(level, ...)`` uses for the standard levels.
_LEVEL_METHOD: Final[dict[int, str]] = {
    logging.DEBUG: "debug",
    logging.INFO: "info",
    logging.WARNING: "warning",
    logging.ERROR: "error",
    logging.CRITICAL: "critical",
}


class _BoundLogger(structlog.stdlib.BoundLogger):
    """structlog's stdlib ``BoundLogger`` whose logging methods return at once when their
    level is disabled, before any processor or event dict (structlog's own way,
    ``filter_by_level``, runs the processor loop first).

    A logger structlog made with errorkit's processors around a stdlib logger, with a
    ``dict`` context (what its public constructor is given says so), logs in one step while
    a setup is in force (:func:`_log`): the same event dict, the same chain and the same
    record as structlog's path through those processors, without that path's layers and its
    ``DropEvent``. Any other logger of this class takes structlog's own path."""

    def __init__(self, logger: WrappedLogger, processors: Iterable[Processor], context: Any):
        super().__init__(logger, processors, context)
        # The stdlib logger and the context when this is one of errorkit's loggers.
        ours = (
            processors is _PROCESSORS
            and isinstance(logger, logging.Logger)
            and type(context) is dict
        )
        self._errorkit_stdlib: logging.Logger | None = logger if ours else None
        self._errorkit_context: Mapping[str, Any] = context

    def log(self, level: int, event: str | None = None, *args: Any, **kw: Any) -> Any:
        """``log(level, event, ...)``: a disabled level returns before anything is done."""
        own = self._errorkit_stdlib
        if own is not None and _dispatch.chain is not None and level in _LEVEL_METHOD:
            if own.isEnabledFor(level):
                _log(own, _LEVEL_METHOD[level], level, self._errorkit_context, event, args, kw)
            return None
        try:
            if not self.isEnabledFor(level):
                return None
        except AttributeError:  # a wrapped logger that is not a stdlib one
            pass
        return super().log(level, event, *args, **kw)


def _level_method(attribute: str, level: int) -> Callable[..., Any]:
    """``debug``, ``info``, ...: a disabled level returns before anything else is done; an
    enabled one logs in one step (errorkit's loggers) or takes structlog's own method."""
    parent = getattr(structlog.stdlib.BoundLogger, attribute)
    # The method name processors see (structlog's: warn and fatal are aliases).
    method = {"warn": "warning", "fatal": "critical"}.get(attribute, attribute)
    exception = method == "exception"

    def log_at_level(self: _BoundLogger, event: str | None = None, *args: Any, **kw: Any) -> Any:
        own = self._errorkit_stdlib
        if own is not None and _dispatch.chain is not None:
            if own.isEnabledFor(level):
                if exception:
                    kw.setdefault("exc_info", True)
                _log(own, method, level, self._errorkit_context, event, args, kw)
            return None
        try:
            if not self.isEnabledFor(level):
                return None
        except AttributeError:  # a wrapped logger that is not a stdlib one
            pass
        return parent(self, event, *args, **kw)

    return log_at_level


for _method, _level in _METHOD_LEVEL.items():
    _function = _level_method(_method, _level)
    _function.__name__ = _function.__qualname__ = _method
    setattr(_BoundLogger, _method, _function)


def _caller_frame(depth: int = 2) -> FrameType:
    """The frame of the logging call: the first one outside this module and structlog, from
    ``depth`` frames up (the callers of ``_caller_frame`` known to be errorkit's skipped)."""
    try:
        frame = sys._getframe(depth)
    except ValueError:  # a shallower stack than expected
        frame = sys._getframe(1)
    while frame.f_back is not None:
        module = frame.f_globals.get("__name__", "")
        if module != __name__ and not module.startswith("structlog"):
            break
        frame = frame.f_back
    return frame


# --- handlers --------------------------------------------------------------------------------


class _SafeHandlerMixin(logging.Handler):
    """A handler whose failures (disk full, closed stream, a bad formatter) are counted,
    never printed per record and never raised into the logging call. A record one of your
    processors dropped (``DropEvent``) is not written."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            super().emit(record)
        except DropEvent:
            return

    def handleError(self, record: logging.LogRecord) -> None:
        exc = sys.exc_info()[1]
        report_internal_error(
            "logging.handler", exc if exc is not None else RuntimeError("handler error")
        )


class SafeStreamHandler(_SafeHandlerMixin, logging.StreamHandler):  # type: ignore[type-arg]
    """A StreamHandler that never raises or prints when writing fails."""

    def emit(self, record: logging.LogRecord) -> None:
        """``StreamHandler.emit`` and its ``flush()`` in one step: ``handle()`` already
        holds the lock ``flush()`` would take again."""
        try:
            msg = self.format(record)
            stream = self.stream
            stream.write(msg + self.terminator)
            if stream and hasattr(stream, "flush"):
                stream.flush()
        except DropEvent:
            return
        except RecursionError:  # as StreamHandler.emit: see issue 36272 of CPython
            raise
        except Exception:  # noqa: BLE001 - counted by handleError, never raised
            self.handleError(record)


class SafeRotatingFileHandler(_SafeHandlerMixin, logging.handlers.RotatingFileHandler):
    """A size-rotated file handler that never raises or prints when writing fails."""


class CategoryFilter(logging.Filter):
    """Let through only records of one category."""

    def __init__(self, category: Category) -> None:
        super().__init__()
        self.category = category

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            return record_category(record) == self.category
        except Exception as exc:  # noqa: BLE001 - a filter must not break logging
            report_internal_error("logging.filter", exc)
            return self.category == "app"


# --- setup -----------------------------------------------------------------------------------


@dataclass
class LoggingSetup:
    """What :func:`setup_logging` installed; :meth:`close` undoes it."""

    level: int
    renderer: Literal["json", "console"]
    handlers: tuple[logging.Handler, ...]
    files: dict[str, Path] = field(default_factory=dict)
    _previous_root: tuple[list[logging.Handler], int] = field(default=([], 0), repr=False)
    _previous_structlog: dict[str, Any] = field(default_factory=dict, repr=False)
    _taken_over: dict[str, tuple[list[logging.Handler], bool]] = field(
        default_factory=dict, repr=False
    )
    _closed: bool = field(default=False, repr=False)

    def close(self) -> None:
        """Remove errorkit's handlers, close its files and restore the previous setup."""
        with _setup_lock:
            if self._closed:
                return
            self._closed = True
            root = logging.getLogger()
            for handler in self.handlers:
                root.removeHandler(handler)
                handler.close()
            handlers, level = self._previous_root
            for handler in handlers:
                root.addHandler(handler)
            root.setLevel(level)
            for name, (old_handlers, propagate) in self._taken_over.items():
                logger = logging.getLogger(name)
                for handler in old_handlers:
                    logger.addHandler(handler)
                logger.propagate = propagate
            global _active
            if _active is self:
                _active = None
                _dispatch.chain = None
                structlog.configure(**self._previous_structlog)
                logging.captureWarnings(False)


_setup_lock = threading.RLock()
_active: LoggingSetup | None = None

_DEFAULT_TAKE_OVER: Final = (
    "uvicorn",
    "uvicorn.error",
    "uvicorn.access",
    "gunicorn",
    "gunicorn.error",
    "gunicorn.access",
    "hypercorn.error",
    "hypercorn.access",
)


def _parse_level(level: int | str) -> int:
    if isinstance(level, int) and not isinstance(level, bool):
        return level
    text = str(level).strip().upper()
    mapping = logging.getLevelNamesMapping()
    if text in mapping:
        return mapping[text]
    if text.isdigit():
        return int(text)
    msg = (
        f"log level {level!r} is not known; use one of DEBUG, INFO, WARNING, ERROR, CRITICAL "
        "(argument level=... or environment LOG_LEVEL)"
    )
    raise ConfigError(msg)


def setup_logging(
    *,
    level: int | str | None = None,
    environment: str | None = None,
    renderer: Literal["json", "console"] | None = None,
    stream: Writable | None = None,
    console: bool = True,
    log_dir: str | os.PathLike[str] | None = None,
    categories: Iterable[Category] = CATEGORIES,
    max_bytes: int = 10 * 1024 * 1024,
    backup_count: int = 5,
    scrubber: Scrubber | None = None,
    processors: Sequence[Processor] = (),
    take_over: Iterable[str] = _DEFAULT_TAKE_OVER,
    colors: bool | None = None,
) -> LoggingSetup:
    """Configure structlog and the standard library to write the same structured lines.

    ``level`` defaults to ``LOG_LEVEL`` (INFO); ``environment`` to ``ERRORKIT_ENV``
    (production): development environments get a console renderer, all others JSON lines
    (``renderer`` forces one). Lines go to ``stream`` (stderr) unless ``console=False``.
    With ``log_dir``, each of ``categories`` gets ``<category>.log`` holding only its
    records, rotated at ``max_bytes`` with ``backup_count`` old files kept. ``processors``
    run after errorkit's own and before scrubbing and rendering. Loggers named in
    ``take_over`` (uvicorn, gunicorn, ...) lose their own handlers and propagate to ours.

    Calling it again replaces the previous setup. Returns a handle whose ``close()``
    restores what was there before.
    """
    settings = get_settings()
    levelno = _parse_level(level if level is not None else settings.log_level)
    env = (environment if environment is not None else settings.environment).strip().lower()
    if renderer is None:
        renderer = "console" if env in DEVELOPMENT_ENVIRONMENTS else "json"
    if renderer not in ("json", "console"):
        msg = f"renderer={renderer!r}: use 'json' or 'console' (or leave it None)"
        raise ConfigError(msg)
    wanted = tuple(dict.fromkeys(categories))
    unknown = [c for c in wanted if c not in CATEGORIES]
    if unknown:
        msg = f"unknown log categories {unknown}; use some of {list(CATEGORIES)}"
        raise ConfigError(msg)
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1024:
        msg = f"max_bytes={max_bytes!r}: a log file rotates at this size; use >= 1024 bytes"
        raise ConfigError(msg)
    if isinstance(backup_count, bool) or not isinstance(backup_count, int) or backup_count < 1:
        msg = (
            f"backup_count={backup_count!r}: keep at least 1 rotated file "
            "(0 would let a log file grow without bound)"
        )
        raise ConfigError(msg)
    for proc in processors:
        if not callable(proc):
            msg = f"processors: {proc!r} is not callable (logger, method_name, event_dict)"
            raise ConfigError(msg)

    native_chain = _SafeChain([add_errorkit_fields, *processors], [add_errorkit_fields])
    foreign_chain = _SafeChain([add_record_fields, *processors], [add_record_fields])

    formatter = _build_formatter(renderer, foreign_chain, scrubber, colors, stream)
    handlers: list[logging.Handler] = []
    files: dict[str, Path] = {}
    if console:
        handler: logging.Handler = SafeStreamHandler(stream if stream is not None else sys.stderr)
        handler.setFormatter(formatter)
        handlers.append(handler)
    if log_dir is not None:
        directory = Path(log_dir)
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            msg = f"log_dir={str(directory)!r} cannot be created ({exc}); pick a writable directory"
            raise ConfigError(msg) from exc
        file_formatter = (
            formatter
            if renderer == "json"
            else _build_formatter("json", foreign_chain, scrubber, False, None)
        )
        for category in wanted:
            path = directory / f"{category}.log"
            try:
                file_handler = SafeRotatingFileHandler(
                    path, maxBytes=max_bytes, backupCount=backup_count, encoding="utf-8"
                )
            except OSError as exc:
                msg = f"cannot open log file {str(path)!r} ({exc}); pick a writable log_dir"
                raise ConfigError(msg) from exc
            file_handler.setFormatter(file_formatter)
            file_handler.addFilter(CategoryFilter(category))
            handlers.append(file_handler)
            files[category] = path

    with _setup_lock:
        global _active
        previous = _active
        if previous is not None:
            previous.close()
        root = logging.getLogger()
        previous_root = (list(root.handlers), root.level)
        for old in list(root.handlers):
            root.removeHandler(old)
        for new in handlers:
            root.addHandler(new)
        root.setLevel(levelno)
        taken: dict[str, tuple[list[logging.Handler], bool]] = {}
        for name in take_over:
            logger = logging.getLogger(name)
            taken[name] = (list(logger.handlers), logger.propagate)
            for old in list(logger.handlers):
                logger.removeHandler(old)
            logger.propagate = True
        previous_structlog = structlog.get_config()
        _dispatch.chain = native_chain
        structlog.configure(
            processors=_PROCESSORS,
            logger_factory=structlog.stdlib.LoggerFactory(),
            wrapper_class=_BoundLogger,
            context_class=dict,
            cache_logger_on_first_use=True,
        )
        setup = LoggingSetup(
            level=levelno,
            renderer=renderer,
            handlers=tuple(handlers),
            files=files,
            _previous_root=previous_root,
            _previous_structlog=previous_structlog,
            _taken_over=taken,
        )
        _active = setup
    logging.captureWarnings(True)
    return setup


def _build_formatter(
    renderer: Literal["json", "console"],
    foreign_chain: _SafeChain,
    scrubber: Scrubber | None,
    colors: bool | None,
    stream: Writable | None,
) -> _Formatter:
    if renderer == "json":
        render = _Render(
            structlog.processors.ExceptionRenderer(
                ExceptionDictTransformer(show_locals=False, max_frames=50)
            ),
            scrubber,
            _render_json,
        )
    else:
        if colors is None:
            target = stream if stream is not None else sys.stderr
            colors = bool(getattr(target, "isatty", lambda: False)())
        render = _Render(
            structlog.processors.format_exc_info,
            scrubber,
            structlog.dev.ConsoleRenderer(colors=colors),
        )
    return _Formatter(foreign_chain, render)


def get_logger(name: str | None = None, **initial_values: Any) -> Any:
    """A structlog logger (``structlog.get_logger``) bound to ``initial_values``."""
    return structlog.get_logger(name, **initial_values)


# --- category helpers --------------------------------------------------------------------------


def log_security_event(
    event_type: str,
    message: str,
    *,
    severity: Literal["info", "warning", "error", "critical"] = "warning",
    user_id: str | None = None,
    ip_address: str | None = None,
    **fields: Any,
) -> None:
    """Write a security event (failed login, token misuse, ...) to the ``security`` category.

    Never raises; its fields are scrubbed like every record."""
    with guard("logging.security_event"):
        method = severity if severity in ("info", "warning", "error", "critical") else "warning"
        extra = {"user_id": user_id, "ip_address": ip_address, **fields}
        logger = structlog.get_logger(SECURITY_LOGGER)
        getattr(logger, method)(
            message,
            category="security",
            security_event=event_type,
            **{k: v for k, v in extra.items() if v is not None},
        )


def log_performance_metric(name: str, value: float, *, unit: str = "ms", **fields: Any) -> None:
    """Write one measurement (``render_time``, 1234.5, unit="ms") to the ``performance``
    category. Never raises."""
    with guard("logging.performance_metric"):
        structlog.get_logger(PERFORMANCE_LOGGER).info(
            "performance_metric",
            category="performance",
            metric=name,
            value=value,
            unit=unit,
            **fields,
        )
