"""timeout(): the typed error names the operation and the limit; sync and async."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Iterator

import pytest

import errorkit
from errorkit.resilience import configure_timeout_pool, timeout

LIMIT = 0.05  # the functions below wait on Events that are never set in time


@pytest.fixture
def never() -> Iterator[threading.Event]:
    """An Event nobody sets until the test ends (so stuck workers finish afterwards)."""
    event = threading.Event()
    yield event
    event.set()


def test_a_sync_call_past_its_limit_raises_the_typed_error(never: threading.Event) -> None:
    """The caller stops waiting at the limit and gets OperationTimeoutError(operation, limit)."""
    with pytest.raises(errorkit.OperationTimeoutError) as caught:
        timeout(LIMIT, operation="render video").call(never.wait)
    error = caught.value
    assert error.details == {"operation": "render video", "timeout": LIMIT}
    assert error.message == f"render video timed out after {LIMIT}s."
    assert (error.status, error.retriable) == (504, True)


def test_a_sync_call_within_its_limit_returns_or_raises_its_own_errors() -> None:
    """Values come back; the function's own errors (even a TimeoutError) propagate as-is."""
    limit = timeout(30)
    assert limit.call(lambda a, b: a + b, 1, b=2) == 3
    own = TimeoutError("socket read timed out")

    def fails() -> None:
        raise own

    with pytest.raises(TimeoutError) as caught:
        limit.call(fails)
    assert caught.value is own


def test_the_worker_sees_the_callers_context() -> None:
    """Context variables (request id, ...) reach the worker thread."""
    request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id")
    request_id.set("req-42")
    assert timeout(30).call(request_id.get) == "req-42"


def test_the_pool_is_bounded(never: threading.Event) -> None:
    """With one worker stuck, a second call waits for the pool and times out too."""
    configure_timeout_pool(1)
    try:
        with pytest.raises(errorkit.OperationTimeoutError):
            timeout(LIMIT).call(never.wait)
        ran: list[bool] = []
        with pytest.raises(errorkit.OperationTimeoutError):
            timeout(LIMIT).call(lambda: ran.append(True))
        assert ran == []  # it never got a worker
    finally:
        never.set()
        configure_timeout_pool(32)


async def test_an_async_call_is_cancelled_at_its_limit() -> None:
    """The awaited work is cancelled and OperationTimeoutError is raised from TimeoutError."""
    cancelled = asyncio.Event()

    async def slow() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    with pytest.raises(errorkit.OperationTimeoutError) as caught:
        await timeout(LIMIT, operation="llm call").call_async(slow)
    assert cancelled.is_set()
    assert isinstance(caught.value.__cause__, TimeoutError)
    assert caught.value.details["operation"] == "llm call"


async def test_an_async_functions_own_timeout_error_is_not_ours() -> None:
    """A TimeoutError raised by the function itself propagates unchanged."""

    async def fails() -> None:
        raise TimeoutError("upstream said so")

    with pytest.raises(TimeoutError, match="upstream said so"):
        await timeout(30).call_async(fails)


async def test_async_with_limits_a_block() -> None:
    """`async with timeout(...)` limits the block and raises the typed error."""
    with pytest.raises(errorkit.OperationTimeoutError, match="nightly sync timed out"):
        async with timeout(LIMIT, operation="nightly sync"):
            await asyncio.Event().wait()
    async with timeout(30):
        await asyncio.sleep(0)


async def test_the_decorator_names_the_function(never: threading.Event) -> None:
    """@timeout(...) limits every call; the operation defaults to the function's name."""

    @timeout(LIMIT)
    def blocking() -> None:
        never.wait()

    @timeout(LIMIT)
    async def waiting() -> None:
        await asyncio.Event().wait()

    with pytest.raises(errorkit.OperationTimeoutError, match="blocking"):
        blocking()
    with pytest.raises(errorkit.OperationTimeoutError, match="waiting"):
        await waiting()


def test_a_sync_with_block_is_refused_with_the_alternatives() -> None:
    """A sync block cannot be interrupted: `with timeout()` says what to use instead."""
    with pytest.raises(TypeError, match=r"timeout\(...\)\.call"), timeout(1):
        pass


@pytest.mark.parametrize("seconds", [0, -1, float("inf")])
def test_a_limit_must_be_positive_and_finite(seconds: float) -> None:
    """timeout(0), negative or infinite limits are refused."""
    with pytest.raises(ValueError, match="> 0"):
        timeout(seconds)
