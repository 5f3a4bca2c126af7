"""The short logging path: what it skips, what it keeps, and that the lines stay the same."""

from __future__ import annotations

import asyncio
import gc
import inspect
import json
import logging
import sys
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import structlog
from structlog.exceptions import DropEvent

from errorkit import _guard
from errorkit.observe import logging as observe_logging
from errorkit.observe.logging import LoggingSetup, log_security_event, scrub_event
from errorkit.scrubbing import Scrubber

from .conftest import Lines

SECRET = "hunter2-very-secret"


class _Collect(logging.Handler):
    """A handler of the app's own, added beside errorkit's."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def collected() -> Iterator[_Collect]:
    """A collecting handler on the root logger for the duration of the test."""
    handler = _Collect()
    root = logging.getLogger()
    root.addHandler(handler)
    yield handler
    root.removeHandler(handler)


class _Counting:
    """A user processor that counts the records it sees."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, logger: Any, method: str, event: dict[str, Any]) -> dict[str, Any]:
        self.calls += 1
        return event


@pytest.mark.parametrize("emit", ["structlog", "stdlib"])
def test_filtered_levels_cost_no_processing(
    configure_logging: Callable[..., LoggingSetup], emit: str
) -> None:
    """A record below the level never reaches a processor."""
    counting = _Counting()
    stream = Lines()
    configure_logging(stream=stream, level="INFO", renderer="json", processors=[counting])
    if emit == "structlog":
        structlog.get_logger("quiet").debug("skipped", payload={"big": "x" * 1000})
    else:
        logging.getLogger("quiet").debug("skipped")
    assert counting.calls == 0
    assert stream.getvalue() == ""


@pytest.mark.parametrize("emit", ["structlog", "stdlib"])
def test_a_record_is_rendered_once_for_console_and_files(
    configure_logging: Callable[..., LoggingSetup], tmp_path: Path, emit: str
) -> None:
    """The console and the category file share one rendering of the same record."""
    counting = _Counting()
    stream = Lines()
    setup = configure_logging(
        stream=stream, renderer="json", log_dir=tmp_path, processors=[counting]
    )
    if emit == "structlog":
        structlog.get_logger("shop").info("order_created", order_id=7)
    else:
        logging.getLogger("shop").info("order_created", extra={"order_id": 7})
    for handler in setup.handlers:
        handler.flush()
    assert counting.calls == 1
    console = stream.getvalue().splitlines()
    assert (tmp_path / "app.log").read_text().splitlines() == console
    assert json.loads(console[0])["order_id"] == 7


def test_other_handlers_see_the_caller_of_a_structlog_call(
    json_lines: Lines, collected: _Collect
) -> None:
    """The app's own handlers get the record with the file, line and function that logged."""
    line = inspect.currentframe().f_lineno + 1  # type: ignore[union-attr]
    structlog.get_logger("shop").warning("low_stock", sku="A1")
    (record,) = collected.records
    assert (record.pathname, record.lineno, record.funcName) == (
        __file__,
        line,
        "test_other_handlers_see_the_caller_of_a_structlog_call",
    )
    assert record.levelno == logging.WARNING
    assert record.name == "shop"
    assert json_lines.records()[0]["event"] == "low_stock"


@pytest.mark.parametrize(
    ("call", "level"),
    [
        (lambda log: log.debug("e"), "debug"),
        (lambda log: log.warn("e"), "warning"),
        (lambda log: log.critical("e"), "critical"),
        (lambda log: log.fatal("e"), "critical"),
        (lambda log: log.log(logging.ERROR, "e"), "error"),
        (lambda log: log.bind(shop="s1").info("e"), "info"),
        (lambda log: asyncio.run(log.ainfo("e")), "info"),
    ],
    ids=["debug", "warn", "critical", "fatal", "log", "bound", "async"],
)
def test_every_logging_method_writes_at_its_level(
    json_lines: Lines, call: Callable[[Any], None], level: str
) -> None:
    """Each structlog method, bound or async, writes one line at its level."""
    call(structlog.get_logger("shop"))
    (record,) = [r for r in json_lines.records() if r["logger"] == "shop"]
    assert (record["event"], record["level"]) == ("e", level)


def test_category_helpers_name_the_app_code_that_called_them(
    json_lines: Lines, collected: _Collect
) -> None:
    """A security event's record points at the app's call, not at errorkit's helper."""
    line = inspect.currentframe().f_lineno + 1  # type: ignore[union-attr]
    log_security_event("failed_login", "three failed logins", user_id="u1")
    (record,) = collected.records
    assert (record.pathname, record.lineno) == (__file__, line)
    assert json_lines.records()[0]["category"] == "security"


def test_exception_records_carry_the_exception_for_other_handlers(
    json_lines: Lines, collected: _Collect
) -> None:
    """``log.exception`` gives stdlib handlers the exception, as ``logging.exception`` does."""
    try:
        raise KeyError("sku")
    except KeyError as exc:
        caught = exc
        structlog.get_logger("shop").exception("lookup_failed")
    (record,) = collected.records
    assert record.exc_info is not None
    assert record.exc_info[1] is caught
    assert json_lines.records()[0]["exception"][0]["exc_type"] == "KeyError"


def test_a_formatter_does_not_change_the_record(json_lines: Lines, collected: _Collect) -> None:
    """Rendering leaves the record as logged, for the handlers after errorkit's."""
    logging.getLogger("lib").info("paid %s", "order-7", extra={"amount": 3})
    (record,) = collected.records
    assert (record.msg, record.args, record.amount) == ("paid %s", ("order-7",), 3)  # type: ignore[attr-defined]
    assert json_lines.records()[0]["event"] == "paid order-7"


def test_the_timestamp_is_iso_8601_in_utc(json_lines: Lines) -> None:
    """Every line's timestamp parses as an ISO 8601 time in UTC, to the microsecond."""
    structlog.get_logger().info("tick")
    stamp = json_lines.records()[0]["timestamp"]
    parsed = datetime.fromisoformat(stamp)
    assert parsed.utcoffset() == UTC.utcoffset(None)
    assert len(stamp) == len("2026-01-31T12:00:00.000000Z")


def test_a_secret_used_as_a_key_is_scrubbed(json_lines: Lines) -> None:
    """Keys are scrubbed like values: a credential spread in as a field name is removed."""
    key = "sk_live_" + "a1B2c3D4e5F6g7H8"
    structlog.get_logger().info("config", **{key: "on"})
    text = json_lines.getvalue()
    assert key not in text
    assert "[Filtered]" in text


def test_a_key_that_cannot_be_printed_does_not_lose_the_line(
    configure_logging: Callable[..., LoggingSetup],
) -> None:
    """A field whose key breaks ``str()`` is written under a placeholder name."""

    class BadKey:
        def __str__(self) -> str:
            raise RuntimeError("no text")

    def add_bad_key(logger: Any, method: str, event: dict[Any, Any]) -> dict[Any, Any]:
        event[BadKey()] = SECRET
        return event

    stream = Lines()
    configure_logging(stream=stream, renderer="json", processors=[add_bad_key])
    structlog.get_logger().info("kept")
    (record,) = stream.records()
    assert record["event"] == "kept"
    assert record["[unrepresentable key]"] == "[Filtered]"


@pytest.mark.usefixtures("lenient_guard")
def test_a_record_the_scrubber_fails_on_is_never_written_raw(
    configure_logging: Callable[..., LoggingSetup],
) -> None:
    """If scrubbing itself fails, the line says so and keeps only errorkit's own fields."""

    class Broken(Scrubber):
        def scrub_text(self, text: str, *, single_line: bool = False) -> str:
            raise RuntimeError("scrubber bug")

    stream = Lines()
    configure_logging(stream=stream, renderer="json", scrubber=Broken())
    before = _guard.internal_error_counts().get("logging.scrub", 0)
    structlog.get_logger("shop").info(f"password={SECRET}")
    (record,) = stream.records()
    assert SECRET not in stream.getvalue()
    assert record["event"].startswith("[errorkit: this record could not be scrubbed")
    assert (record["logger"], record["level"]) == ("shop", "info")
    assert _guard.internal_error_counts()["logging.scrub"] == before + 1


def test_a_processor_can_drop_a_stdlib_record(
    configure_logging: Callable[..., LoggingSetup], tmp_path: Path
) -> None:
    """``DropEvent`` from your processor drops a third-party record everywhere, uncounted."""

    def drop_health_checks(logger: Any, method: str, event: dict[str, Any]) -> dict[str, Any]:
        if "GET /health" in event["event"]:
            raise DropEvent
        return event

    stream = Lines()
    setup = configure_logging(
        stream=stream, renderer="json", log_dir=tmp_path, processors=[drop_health_checks]
    )
    before = _guard.internal_error_counts().get("logging.handler", 0)
    logging.getLogger("lib.access").info("GET /health 200")
    logging.getLogger("lib.access").info("GET /orders 200")
    for handler in setup.handlers:
        handler.flush()
    for text in (stream.getvalue(), (tmp_path / "app.log").read_text()):
        assert [json.loads(line)["event"] for line in text.splitlines()] == ["GET /orders 200"]
    assert _guard.internal_error_counts().get("logging.handler", 0) == before


def test_structlog_reconfigured_by_the_app_is_obeyed(
    configure_logging: Callable[..., LoggingSetup],
) -> None:
    """If the app replaces structlog's processors after the setup, its chain is the one used."""
    seen: list[dict[str, Any]] = []

    def keep(logger: Any, method: str, event: dict[str, Any]) -> dict[str, Any]:
        seen.append(dict(event))
        raise DropEvent

    stream = Lines()
    configure_logging(stream=stream, renderer="json")
    structlog.configure(processors=[keep])
    structlog.get_logger("custom").info("mine", n=1)
    assert seen == [{"event": "mine", "n": 1}]
    assert stream.getvalue() == ""


def test_a_cached_logger_keeps_working_after_close(
    configure_logging: Callable[..., LoggingSetup],
) -> None:
    """A logger held across ``close()`` neither raises nor writes into the closed setup."""
    stream = Lines()
    setup = configure_logging(stream=stream, renderer="json")
    log = structlog.get_logger("held")
    log.info("before")
    setup.close()
    log.info("after")
    assert [r["event"] for r in stream.records()] == ["before"]


@pytest.fixture(params=["orjson", "json"])
def encoder(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each JSON encoder errorkit can use (orjson when installed, the standard library)."""
    if request.param == "orjson":
        if observe_logging._orjson_dumps is None:
            pytest.skip("orjson is not installed (errorkit[logging] installs it)")
    else:
        monkeypatch.setattr(observe_logging, "_orjson_dumps", None)
    return str(request.param)


@pytest.mark.parametrize(
    "fields",
    [
        {"order_id": 7, "price": 12.5, "paid": True, "note": None},
        {"name": "Zoë", "city": "Malmö"},
        {"sep": "line\u2028break"},
        {"huge": 2**70},
    ],
    ids=["scalars", "non-ascii", "line-separator", "int-past-64-bits"],
)
def test_lines_are_the_same_text_with_either_encoder(encoder: str, fields: dict[str, Any]) -> None:
    """A line is compact ASCII JSON whichever encoder wrote it."""
    event = scrub_event({"event": "e", **fields})
    line = observe_logging._json_line(event)
    assert line.isascii()
    assert "\n" not in line and "\u2028" not in line
    assert line == json.dumps(event, separators=(",", ":"), default=repr)
    assert json.loads(line) == event


@pytest.mark.parametrize("emit", ["structlog", "stdlib", "stdlib-exception"])
def test_the_formatter_writes_what_processor_formatter_writes(
    configure_logging: Callable[..., LoggingSetup], monkeypatch: pytest.MonkeyPatch, emit: str
) -> None:
    """errorkit's formatter skips parts of structlog's ProcessorFormatter.format; for the same
    record both write the same line."""
    monkeypatch.setattr(observe_logging, "_now_iso", lambda: "2026-01-31T12:00:00.000000Z")
    setup = configure_logging(stream=Lines(), renderer="json")
    collected = _Collect()
    logging.getLogger().addHandler(collected)
    if emit == "structlog":
        structlog.get_logger("shop").info("order_created", order_id=7, user="Zoë")
    elif emit == "stdlib":
        logging.getLogger("lib").warning("paid %s", "order-7", extra={"amount": 3})
    else:
        try:
            raise KeyError("sku")
        except KeyError:
            logging.getLogger("lib").exception("lookup failed")
    logging.getLogger().removeHandler(collected)
    (record,) = collected.records
    formatter = setup.handlers[0].formatter
    assert isinstance(formatter, structlog.stdlib.ProcessorFormatter)
    fresh = logging.makeLogRecord(
        {k: v for k, v in record.__dict__.items() if k != "_errorkit_line"}
    )
    plain = structlog.stdlib.ProcessorFormatter.format(formatter, fresh)
    fresh.__dict__.pop("_errorkit_line", None)
    assert formatter.format(fresh) == plain
    assert json.loads(plain)["logger"] == ("shop" if emit == "structlog" else "lib")


class _Stacks(logging.Handler):
    """Records the modules of the frames between the logging call and the handler."""

    def __init__(self, caller: str) -> None:
        super().__init__(logging.DEBUG)
        self.caller = caller
        self.modules: list[list[str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        modules = []
        frame = sys._getframe(1)
        while frame is not None and frame.f_code.co_name != self.caller:
            modules.append(str(frame.f_globals.get("__name__")))
            frame = frame.f_back  # type: ignore[assignment]
        self.modules.append(modules)


def test_a_structlog_call_goes_to_the_handlers_in_one_step(json_lines: Lines) -> None:
    """Under errorkit's setup a structlog call reaches the stdlib handlers without passing
    through structlog's processor loop (its layers cost a third of a line)."""
    stacks = _Stacks("test_a_structlog_call_goes_to_the_handlers_in_one_step")
    logging.getLogger().addHandler(stacks)
    try:
        structlog.get_logger("shop").info("order_created", order_id=7)
        structlog.get_logger("shop").bind(user="u1").warning("low_stock", sku="A1")
    finally:
        logging.getLogger().removeHandler(stacks)
    assert len(stacks.modules) == 2
    for modules in stacks.modules:
        assert [m for m in modules if m.startswith("structlog")] == []
    assert [r["event"] for r in json_lines.records()] == ["order_created", "low_stock"]


def test_a_structlog_call_raises_nothing_on_its_way(json_lines: Lines) -> None:
    """No exception is raised and caught inside a structlog call (structlog's path ends
    each event with ``DropEvent``, which costs about a microsecond); the end of a loop in
    ``merge_contextvars`` does not count."""
    log = structlog.get_logger("shop")
    log.info("warm_up")
    raised: list[str] = []

    def trace(frame: Any, event: str, arg: Any) -> Any:
        module = str(frame.f_globals.get("__name__"))
        if (
            event == "exception"
            and module.startswith(("errorkit", "structlog", "logging"))
            and not issubclass(arg[0], StopIteration)
        ):
            raised.append(f"{module}.{frame.f_code.co_name}: {arg[0].__name__}")
        return trace

    gc.disable()  # no finalizer of other code runs inside the traced call
    sys.settrace(trace)
    try:
        log.info("order_created", order_id=7)
    finally:
        sys.settrace(None)
        gc.enable()
    assert raised == []
    assert json_lines.records()[-1]["event"] == "order_created"


@pytest.mark.parametrize("emit", ["info", "exception", "positional", "log"])
def test_the_short_path_writes_what_structlog_path_writes(
    configure_logging: Callable[..., LoggingSetup], monkeypatch: pytest.MonkeyPatch, emit: str
) -> None:
    """A structlog call on errorkit's one-step path writes the line structlog's own path
    through the same processors writes."""
    monkeypatch.setattr(observe_logging, "_now_iso", lambda: "2026-01-31T12:00:00.000000Z")
    stream = Lines()
    configure_logging(stream=stream, renderer="json", level="DEBUG")
    structlog.contextvars.bind_contextvars(tenant="t1")
    fast = structlog.get_logger("shop").bind(user="Zoë")
    slow = structlog.stdlib.BoundLogger(
        logging.getLogger("shop"), observe_logging._PROCESSORS, {"user": "Zoë"}
    )
    try:
        raise KeyError("sku")  # one exception (one error id) for both lines
    except KeyError:
        try:
            for log in (fast, slow):
                if emit == "info":
                    log.info("order_created", order_id=7, note="card 4111 1111 1111 1111")
                elif emit == "positional":
                    log.info("paid %s", "order-7", amount=3)
                elif emit == "log":
                    log.log(logging.WARNING, "low_stock", sku="A1")
                else:
                    log.exception("lookup_failed", sku="A1")
        finally:
            structlog.contextvars.unbind_contextvars("tenant")
    first, second = stream.getvalue().splitlines()
    assert first == second
    assert json.loads(first)["user"] == "Zoë"


class _CountingLock:
    """A handler lock that counts how often it is taken."""

    def __init__(self) -> None:
        self.inner = threading.RLock()
        self.taken = 0

    def acquire(self, *args: Any) -> bool:
        self.taken += 1
        return self.inner.acquire(*args)

    def release(self) -> None:
        self.inner.release()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


class _Flushes(Lines):
    """A stream that counts its flushes."""

    flushes = 0

    def flush(self) -> None:
        self.flushes += 1
        super().flush()


def test_a_line_takes_the_console_lock_once_and_is_flushed(
    configure_logging: Callable[..., LoggingSetup],
) -> None:
    """The console handler writes and flushes each line under the one lock ``handle()``
    takes (``StreamHandler.flush`` would take it a second time)."""
    stream = _Flushes()
    setup = configure_logging(stream=stream, renderer="json")
    lock = _CountingLock()
    setup.handlers[0].lock = lock  # type: ignore[assignment]
    structlog.get_logger("shop").info("order_created")
    logging.getLogger("lib").info("paid")
    assert lock.taken == 2
    assert stream.flushes == 2
    assert [r["event"] for r in stream.records()] == ["order_created", "paid"]
