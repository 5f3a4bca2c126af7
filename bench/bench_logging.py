"""Nanoseconds per JSON log line with request context: errorkit's setup vs its peers.

Every variant writes the same event (``order_created`` with two fields and the request,
correlation and session ids of the current request) as one JSON line to a stream that
discards it, so only the logging path is measured:

- ``errorkit``: ``setup_logging(renderer="json")``, a structlog logger;
- ``errorkit-stdlib``: the same setup, a plain ``logging.getLogger`` call (third-party path);
- ``structlog``: structlog's own fast path (contextvars, level, ISO time, JSONRenderer,
  PrintLogger), no stdlib, no scrubbing;
- ``structlog-stdlib``: structlog routed through stdlib with ProcessorFormatter, as its docs
  recommend for apps with third-party logs (what errorkit builds on), no scrubbing;
- ``stdlib``: ``logging`` with a JSON formatter and a filter that adds the context ids;
- ``*-filtered``: a ``debug`` call while the level is INFO (what a disabled line costs).

errorkit also scrubs every value (secrets, card numbers, line breaks) and adds categories and
error ids; the ratios show what that costs. errorkit encodes with orjson when it is installed
(``errorkit[logging]``), the peers with the standard library's json, as their docs show by
default. Rounds are interleaved; the best round counts.
Environment: ``ERRORKIT_BENCH_LINES`` (default 20000), ``ERRORKIT_BENCH_ROUNDS`` (default 5).
"""

from __future__ import annotations

import contextvars
import io
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import structlog
from structlog.types import Processor

Emit = Callable[[], None]

_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("rid", default=None)


class _Null(io.TextIOBase):
    def write(self, s: str) -> int:
        return len(s)

    def flush(self) -> None:
        return


NULL = _Null()
CONTEXT = {"request_id": "req-7f8a9b2c", "correlation_id": "corr-91ab", "session_id": "sess-1"}


@contextmanager
def _root_handler(handler: logging.Handler) -> Iterator[None]:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    for old in saved[0]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield
    finally:
        root.removeHandler(handler)
        for old in saved[0]:
            root.addHandler(old)
        root.setLevel(saved[1])


@contextmanager
def errorkit_native() -> Iterator[Emit]:
    with _errorkit():
        log = structlog.get_logger("bench.orders")
        yield lambda: log.info("order_created", order_id=17, user="alice")


@contextmanager
def errorkit_stdlib() -> Iterator[Emit]:
    with _errorkit():
        log = logging.getLogger("bench.lib")
        extra = {"order_id": 17, "user": "alice"}
        yield lambda: log.info("order_created", extra=extra)


@contextmanager
def errorkit_filtered() -> Iterator[Emit]:
    with _errorkit():
        log = structlog.get_logger("bench.orders")
        yield lambda: log.debug("order_created", order_id=17, user="alice")


@contextmanager
def _errorkit() -> Iterator[None]:
    from errorkit.context import context_scope
    from errorkit.observe.logging import setup_logging

    setup = setup_logging(stream=NULL, renderer="json", level="INFO")
    try:
        with context_scope(**CONTEXT):
            yield
    finally:
        setup.close()


@contextmanager
def structlog_plain() -> Iterator[Emit]:
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.JSONRenderer(),
        ],
        logger_factory=structlog.PrintLoggerFactory(NULL),  # type: ignore[arg-type]
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        cache_logger_on_first_use=True,
    )
    log = structlog.get_logger("bench.orders")
    tokens = structlog.contextvars.bind_contextvars(**CONTEXT)
    try:
        yield lambda: log.info("order_created", order_id=17, user="alice")
    finally:
        structlog.contextvars.reset_contextvars(**tokens)
        structlog.reset_defaults()


@contextmanager
def structlog_stdlib() -> Iterator[Emit]:
    with _structlog_stdlib() as log:
        yield lambda: log.info("order_created", order_id=17, user="alice")


@contextmanager
def structlog_stdlib_filtered() -> Iterator[Emit]:
    with _structlog_stdlib() as log:
        yield lambda: log.debug("order_created", order_id=17, user="alice")


@contextmanager
def _structlog_stdlib() -> Iterator[Any]:
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(NULL)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.dict_tracebacks,
                structlog.processors.JSONRenderer(),
            ],
            foreign_pre_chain=shared,
        )
    )
    log = structlog.get_logger("bench.orders")
    tokens = structlog.contextvars.bind_contextvars(**CONTEXT)
    try:
        with _root_handler(handler):
            yield log
    finally:
        structlog.contextvars.reset_contextvars(**tokens)
        structlog.reset_defaults()


class _JSONFormatter(logging.Formatter):
    _skip = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message"}

    def format(self, record: logging.LogRecord) -> str:
        data = {
            "timestamp": self.formatTime(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        data.update((k, v) for k, v in record.__dict__.items() if k not in self._skip)
        return json.dumps(data, default=str)


class _ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = CONTEXT["request_id"] if _request_id.get() else None
        record.correlation_id = CONTEXT["correlation_id"]
        record.session_id = CONTEXT["session_id"]
        return True


@contextmanager
def stdlib_json() -> Iterator[Emit]:
    handler = logging.StreamHandler(NULL)
    handler.setFormatter(_JSONFormatter())
    handler.addFilter(_ContextFilter())
    log = logging.getLogger("bench.orders")
    extra = {"order_id": 17, "user": "alice"}
    token = _request_id.set(CONTEXT["request_id"])
    try:
        with _root_handler(handler):
            yield lambda: log.info("order_created", extra=extra)
    finally:
        _request_id.reset(token)


Variant = Callable[[], AbstractContextManager[Emit]]


def _measure(factory: Variant, lines: int) -> float:
    with factory() as emit:
        for _ in range(min(1000, lines)):
            emit()
        started = time.perf_counter_ns()
        for _ in range(lines):
            emit()
        elapsed = time.perf_counter_ns() - started
    return elapsed / lines


def main() -> None:
    lines = int(os.environ.get("ERRORKIT_BENCH_LINES", "20000"))
    rounds = int(os.environ.get("ERRORKIT_BENCH_ROUNDS", "5"))
    variants: dict[str, Variant] = {
        "errorkit": errorkit_native,
        "errorkit-stdlib": errorkit_stdlib,
        "structlog": structlog_plain,
        "structlog-stdlib": structlog_stdlib,
        "stdlib": stdlib_json,
        "errorkit-filtered": errorkit_filtered,
        "structlog-stdlib-filtered": structlog_stdlib_filtered,
    }
    best: dict[str, float] = {}
    for _ in range(rounds):
        for name, factory in variants.items():
            ns = _measure(factory, lines)
            best[name] = min(best.get(name, ns), ns)
    print(f"{lines} lines x {rounds} rounds, best round, ns per JSON line with context")
    print(f"{'variant':<26}{'ns/line':>10}")
    for name, ns in best.items():
        print(f"{name:<26}{ns:>10.0f}")
    print()
    print(f"{'ratio (ours / peer)':<40}{'':>6}")
    for ours in ("errorkit", "errorkit-stdlib"):
        for peer in ("structlog", "structlog-stdlib", "stdlib"):
            label = f"{ours} / {peer}"
            print(f"{label:<40}{best[ours] / best[peer]:>6.2f}")
    label = "errorkit-filtered / structlog-stdlib-filtered"
    print(f"{label:<46}{best['errorkit-filtered'] / best['structlog-stdlib-filtered']:>6.2f}")


if __name__ == "__main__":
    main()
