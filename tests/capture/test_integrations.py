"""The logging handler, the job wrapper and the public testing helper."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator

import pytest

from errorkit.capturing import ErrorkitHandler, capture_errors
from errorkit.capturing import api as capture
from errorkit.store import ErrorRecord
from errorkit.testing import MemoryStore, capture_events


@pytest.fixture
def logger() -> Iterator[logging.Logger]:
    """A logger with only errorkit's handler on it."""
    log = logging.getLogger("tests.capture.orders")
    log.propagate = False
    handler = ErrorkitHandler()
    log.addHandler(handler)
    yield log
    log.removeHandler(handler)
    log.propagate = True


# --- logging ---------------------------------------------------------------------------------


def test_logger_exception_is_captured_with_its_stack(logger: logging.Logger) -> None:
    """logger.exception(...) captures the exception, with the log line as context."""
    with capture_events() as events:
        try:
            int("x")
        except ValueError:
            logger.exception("parsing order %s failed", 17)
    (event,) = events
    assert event.exception_type == "ValueError"
    assert event.data["logger"] == "tests.capture.orders"
    assert event.data["mechanism"] == "logging"
    assert event.data["extra"]["log_message"] == "parsing order 17 failed"
    assert event.stack_trace and 'int("x")' in event.stack_trace


def test_error_records_without_exception_group_by_template(logger: logging.Logger) -> None:
    """logger.error(...) is captured as a message grouped by its template, not its values."""
    with capture_events() as events:
        logger.error("payment %s declined", "order-17")
        logger.error("payment %s declined", "order-99")
        logger.critical("queue stalled")
    first, second, third = events
    assert first.fingerprint == second.fingerprint
    assert first.error_message == "payment order-17 declined"
    assert third.severity == "critical"


def test_records_below_error_are_ignored(logger: logging.Logger) -> None:
    """Warnings and info stay out of the store by default."""
    with capture_events() as events:
        logger.warning("slow query")
        logger.info("started")
    assert events == []


def test_handler_can_capture_exceptions_only() -> None:
    """capture_messages=False keeps plain error lines out."""
    log = logging.getLogger("tests.capture.quiet")
    log.propagate = False
    handler = ErrorkitHandler(capture_messages=False)
    log.addHandler(handler)
    try:
        with capture_events() as events:
            log.error("just a line")
        assert events == []
    finally:
        log.removeHandler(handler)
        log.propagate = True


def test_a_broken_log_call_does_not_break_the_app() -> None:
    """A record whose format string does not match its arguments is still captured."""
    record = logging.LogRecord(
        "tests.capture.orders", logging.ERROR, __file__, 1, "two %s %s", ("one",), None
    )
    with capture_events() as events:
        ErrorkitHandler().handle(record)
    assert events[0].error_message == "two %s %s"


# --- jobs ------------------------------------------------------------------------------------


def test_decorator_captures_and_reraises() -> None:
    """@capture_errors captures the job's error with its name, then re-raises it."""

    @capture_errors(job="nightly-report")
    def nightly() -> None:
        raise RuntimeError("report failed")

    with capture_events() as events, pytest.raises(RuntimeError, match="report failed"):
        nightly()
    assert events[0].data["tags"] == {"job": "nightly-report"}
    assert events[0].data["mechanism"] == "job"


def test_bare_decorator_names_the_job_after_the_function() -> None:
    """@capture_errors without arguments uses the function's name."""

    @capture_errors
    def sync_inventory() -> int:
        raise KeyError("sku")

    with capture_events() as events, pytest.raises(KeyError):
        sync_inventory()
    assert events[0].data["tags"]["job"].endswith("sync_inventory")


def test_reraise_false_swallows_after_capturing() -> None:
    """reraise=False: the error is captured and the call returns None."""

    @capture_errors(job="cleanup", reraise=False)
    def cleanup() -> int:
        raise OSError("disk")

    with capture_events() as events:
        assert cleanup() is None
    assert len(events) == 1


async def test_async_function_and_async_context_manager() -> None:
    """Coroutines and ``async with`` blocks are covered the same way."""

    @capture_errors(job="consumer")
    async def consume() -> None:
        await asyncio.sleep(0)
        raise TimeoutError("broker")

    with capture_events() as events:
        with pytest.raises(TimeoutError):
            await consume()
        async with capture_errors(job="batch", reraise=False):
            raise ValueError("row 3")
    assert [e.data["tags"]["job"] for e in events] == ["consumer", "batch"]


def test_context_manager_exposes_the_error_id() -> None:
    """``with capture_errors() as job:`` tells the block's error id afterwards."""
    with capture_events() as events, capture_errors(job="script", reraise=False) as job:
        raise RuntimeError("step 2")
    assert job.error_id == events[0].error_id


def test_success_and_interrupts_are_not_captured() -> None:
    """A job that succeeds, or is interrupted (KeyboardInterrupt), captures nothing."""

    @capture_errors
    def ok() -> int:
        return 3

    with capture_events() as events:
        assert ok() == 3
        with pytest.raises(KeyboardInterrupt), capture_errors(job="interactive"):
            raise KeyboardInterrupt
    assert events == []


def test_capture_errors_refuses_a_non_function() -> None:
    """Passing something that is not a function says how to call it."""
    with pytest.raises(TypeError, match="keywords only"):
        capture_errors(42)  # type: ignore[call-overload]


# --- the testing helper ----------------------------------------------------------------------


def test_capture_events_yields_scrubbed_records() -> None:
    """capture_events() hands back the records as they would be stored: scrubbed."""
    with capture_events() as events:
        try:
            raise PermissionError("token=abc123secret rejected")
        except PermissionError as exc:
            capture.capture(exc, request_payload={"password": "pw-123", "user": "ann"})
    (event,) = events
    assert isinstance(event, ErrorRecord)
    assert "abc123secret" not in event.error_message
    assert event.request_payload == '{"password":"[Filtered]","user":"ann"}'


def test_capture_events_restores_the_previous_state(sqlite_url: str) -> None:
    """Leaving the block puts back whatever was configured before."""
    capture.configure(store_url=sqlite_url)
    with capture_events():
        assert capture.is_configured()
    assert capture.current_store() is not None
    assert "errors.db" in capture.current_store().url


def test_memory_store_is_idempotent() -> None:
    """MemoryStore keeps the real store's contract: a replayed batch counts nothing."""
    store = MemoryStore()
    with capture_events() as events:
        capture.capture_message("x")
    store.write_batch(events)
    again = store.write_batch(events)
    assert (again.inserted, again.duplicates, store.total) == (0, 1, 1)


def test_capturing_while_errorkit_works_does_not_deadlock() -> None:
    """An exception whose __str__ logs an error (captured in turn) is captured, in the
    synchronous testing mode too, without the pipeline waiting on itself."""
    log = logging.getLogger("tests.capture.chatty")
    log.propagate = False
    handler = ErrorkitHandler()
    log.addHandler(handler)

    class Chatty(Exception):
        def __str__(self) -> str:
            log.error("rendering a chatty error")
            return "chatty"

    done: list[list[ErrorRecord]] = []

    def run() -> None:
        with capture_events() as events:
            capture.capture(Chatty())
        done.append(events)

    worker = threading.Thread(target=run, daemon=True)
    try:
        worker.start()
        worker.join(timeout=30)
    finally:
        log.removeHandler(handler)
        log.propagate = True
    assert not worker.is_alive()
    assert "chatty" in [e.error_message for e in done[0]]
