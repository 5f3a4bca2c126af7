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

import logging
import logging.handlers
import os
import sys
import threading
from collections.abc import Iterable, MutableMapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal, Protocol, cast

import structlog
from structlog.exceptions import DropEvent
from structlog.tracebacks import ExceptionDictTransformer
from structlog.types import EventDict, Processor, WrappedLogger

from errorkit._guard import guard, report_internal_error
from errorkit.config import ConfigError, get_settings
from errorkit.context import current_context
from errorkit.scrub import Scrubber, default_scrubber, neutralize_newlines

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
    for name in _CONTEXT_FIELDS:
        value = getattr(ctx, name)
        if value is not None and name not in event:
            event[name] = value
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
    from errorkit.classify import classify
    from errorkit.errors import error_id_of

    classification = classify(exc)
    event.setdefault("error_id", error_id_of(exc))
    event.setdefault("error_code", classification.code)
    event.setdefault("error_type", classification.error_type)
    return event


_FIRST_KEYS: Final = ("timestamp", "level", "event", "logger", "category")

# Log lines repeat the same short strings (event names, ids of one request, logger names):
# the scrubbed form of each is remembered. Bounded: at most _CACHE_ITEMS entries of at most
# _CACHE_MAX_CHARS characters; the cache starts over when full.
_CACHE_ITEMS: Final = 2048
_CACHE_MAX_CHARS: Final = 256


class _Caches:
    """The scrubbed form of short strings and the verdict on keys, for one scrubber."""

    __slots__ = ("keys", "owner", "texts")

    def __init__(self, owner: Scrubber) -> None:
        self.owner = owner
        self.texts: dict[str, str] = {}
        self.keys: dict[str, bool] = {}

    def text(self, text: str) -> str:
        if len(text) > _CACHE_MAX_CHARS:
            return self.owner.scrub_text(text, single_line=True)
        texts = self.texts
        cached = texts.get(text)
        if cached is None:
            if len(texts) >= _CACHE_ITEMS:
                texts.clear()
            cached = texts[text] = self.owner.scrub_text(text, single_line=True)
        return cached

    def sensitive(self, key: str) -> bool:
        keys = self.keys
        cached = keys.get(key)
        if cached is None:
            if len(keys) >= _CACHE_ITEMS:
                keys.clear()
            cached = keys[key] = self.owner.is_sensitive_key(key)
        return cached


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
    """A scrubbed copy of an event dict whose every value fits on one log line (the usual
    fields first, so lines read alike)."""
    s = scrubber or default_scrubber()
    caches = _caches_for(s)
    out: dict[str, Any] = {}
    for key in _FIRST_KEYS:
        if key in event:
            value = event[key]
            out[key] = value if key in _GENERATED_KEYS else _scrub_value(s, caches, value)
    for key, value in event.items():
        if key in out:
            continue
        if type(key) is str and key.isidentifier():
            name = key
        else:
            name = neutralize_newlines(s.scrub_text(str(key), single_line=True))
        if key not in _TRUSTED_KEYS and caches.sensitive(str(key)):
            out[name] = s.replacement
        else:
            out[name] = _scrub_value(s, caches, value)
    return out


def _scrub_value(s: Scrubber, caches: _Caches, value: Any) -> Any:
    kind = type(value)
    if kind is str:
        return caches.text(value)
    if value is None or kind is bool or kind is float or (kind is int and value < 10**12):
        return value
    return s.scrub(value, single_line=True)


class _Scrub:
    """The processor form of :func:`scrub_event` (reads the process scrubber each time, so
    ``set_default_scrubber`` applies to a running setup)."""

    def __init__(self, scrubber: Scrubber | None) -> None:
        self._scrubber = scrubber

    def __call__(self, logger: WrappedLogger, method: str, event: EventDict) -> EventDict:
        return scrub_event(event, self._scrubber)


class _SafeChain:
    """Runs processors in order; one that raises is skipped and counted, the rest still run.

    A failing processor of errorkit's own is a bug (strict in errorkit's tests); a failing
    processor of yours is counted under ``logging.processor`` and never reaches the caller.
    """

    __slots__ = ("_last_renders", "_ours", "_procs")

    def __init__(
        self, procs: Sequence[Processor], ours: Iterable[Processor], *, renders: bool = False
    ) -> None:
        self._procs = tuple(procs)
        self._ours = frozenset(id(p) for p in ours)
        # Every processor returns an event dict, except a final renderer (returns the line).
        self._last_renders = len(self._procs) - 1 if renders else len(self._procs)

    def __call__(self, logger: WrappedLogger, method: str, event: EventDict) -> Any:
        procs = self._procs
        n = len(procs)
        last_renders = self._last_renders
        i = 0
        result: Any = event
        while i < n:
            try:
                while i < n:
                    out = procs[i](logger, method, result)
                    if i != last_renders and type(out) is not dict:
                        msg = f"processor {procs[i]!r} returned {type(out).__name__}, not a dict"
                        raise TypeError(msg)
                    result = out
                    i += 1
            except DropEvent:
                raise
            except Exception as exc:  # noqa: BLE001 - logging must never raise into the app
                self._failed(procs[i], exc)
                i += 1
        return result

    def _failed(self, proc: Processor, exc: Exception) -> None:
        if id(proc) in self._ours:
            with guard("logging.processor"):
                raise exc
        else:
            report_internal_error("logging.processor", exc)


class _Dispatch:
    """The one processor structlog is configured with. It forwards to the chain of the
    setup in force, so loggers cached before a later setup still follow it."""

    chain: _SafeChain | None = None

    def __call__(self, logger: WrappedLogger, method: str, event: EventDict) -> EventDict:
        chain = self.chain
        return event if chain is None else chain(logger, method, event)


_dispatch = _Dispatch()


# --- handlers --------------------------------------------------------------------------------


class _SafeHandlerMixin:
    """A handler whose failures (disk full, closed stream, a bad formatter) are counted,
    never printed per record and never raised into the logging call."""

    def handleError(self, record: logging.LogRecord) -> None:
        exc = sys.exc_info()[1]
        report_internal_error(
            "logging.handler", exc if exc is not None else RuntimeError("handler error")
        )


class SafeStreamHandler(_SafeHandlerMixin, logging.StreamHandler):  # type: ignore[type-arg]
    """A StreamHandler that never raises or prints when writing fails."""


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

    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        add_errorkit_context,
        add_category,
        resolve_exc_info,
    ]
    ours = list(shared)
    foreign_pre_chain: list[Processor] = [
        _SafeChain([structlog.stdlib.ExtraAdder(), *shared, *processors], ours)
    ]
    native_chain = _SafeChain([*shared, *processors], ours)

    formatter = _build_formatter(renderer, foreign_pre_chain, scrubber, colors, stream)
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
            else _build_formatter("json", foreign_pre_chain, scrubber, False, None)
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
            processors=[
                structlog.stdlib.filter_by_level,
                _dispatch,
                structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
            ],
            logger_factory=structlog.stdlib.LoggerFactory(),
            wrapper_class=structlog.stdlib.BoundLogger,
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
    foreign_pre_chain: Sequence[Processor],
    scrubber: Scrubber | None,
    colors: bool | None,
    stream: Writable | None,
) -> structlog.stdlib.ProcessorFormatter:
    final: list[Processor]
    if renderer == "json":
        final = [
            structlog.processors.ExceptionRenderer(
                ExceptionDictTransformer(show_locals=False, max_frames=50)
            ),
            _Scrub(scrubber),
            structlog.processors.JSONRenderer(),
        ]
    else:
        if colors is None:
            target = stream if stream is not None else sys.stderr
            colors = bool(getattr(target, "isatty", lambda: False)())
        final = [
            structlog.processors.format_exc_info,
            _Scrub(scrubber),
            structlog.dev.ConsoleRenderer(colors=colors),
        ]
    return structlog.stdlib.ProcessorFormatter(
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            _SafeChain(final, final, renders=True),
        ],
        foreign_pre_chain=foreign_pre_chain,
    )


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
