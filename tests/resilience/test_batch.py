"""Partial success: every item runs, successes and classified failures come back in order."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator

import pytest
from tests.resilience._support import Reports

import errorkit
from errorkit import bind_context, current_context, reset_context
from errorkit.resilience import BatchError, run_batch, run_batch_async


def square_unless_bad(n: int) -> int:
    if n == 3:
        raise errorkit.ValidationError(field="n", reason="three is not allowed")
    if n == 5:
        raise errorkit.ExternalServiceError()
    return n * n


@pytest.mark.parametrize("concurrency", [1, 4])
def test_successes_and_failures_come_back_in_input_order(
    concurrency: int, reports: Reports
) -> None:
    """Each failure carries its item, code, status, retriable flag and error id."""
    result = run_batch(square_unless_bad, range(1, 7), concurrency=concurrency, operation="sq")
    assert result.values == [1, 4, 16, 36]
    assert [s.item for s in result.successes] == [1, 2, 4, 6]
    assert [(f.index, f.item, f.code, f.status, f.retriable) for f in result.failures] == [
        (2, 3, "VALIDATION_ERROR", 422, False),
        (4, 5, "EXTERNAL_SERVICE_ERROR", 502, True),
    ]
    assert result.failures[0].error_id == result.failures[0].error.error_id  # type: ignore[attr-defined]
    assert (result.ok, result.total) == (False, 6)


def test_each_failure_is_reported_with_its_operation_and_index(reports: Reports) -> None:
    """Capture gets every failure once; capture=False reports none."""
    run_batch(square_unless_bad, range(1, 7), operation="sq")
    assert [(ctx["extra"]["operation"], ctx["extra"]["item_index"]) for _, ctx in reports] == [
        ("sq", 2),
        ("sq", 4),
    ]
    reports.clear()
    run_batch(square_unless_bad, range(1, 7), capture=False)
    assert reports == []


def test_raise_on_failure_raises_an_exception_group_keeping_the_successes() -> None:
    """On demand the failures come as a BatchError (an ExceptionGroup) with the result."""
    with pytest.raises(BatchError) as caught:
        run_batch(square_unless_bad, range(1, 7), raise_on_failure=True, capture=False)
    group = caught.value
    assert isinstance(group, ExceptionGroup)
    assert [type(e).__name__ for e in group.exceptions] == [
        "ValidationError",
        "ExternalServiceError",
    ]
    assert group.result.values == [1, 4, 16, 36]
    assert str(group).startswith("2 of 6 items failed")
    validation, rest = group.split(errorkit.ValidationError)
    assert validation is not None and len(validation.exceptions) == 1
    assert rest is not None and isinstance(rest, BatchError) and rest.result is group.result


def test_threads_run_at_most_concurrency_items_at_once() -> None:
    """concurrency=3 runs three items at a time, never more."""
    lock = threading.Lock()
    inside = 0
    most = 0
    trio = threading.Barrier(3)

    def work(n: int) -> int:
        nonlocal inside, most
        with lock:
            inside += 1
            most = max(most, inside)
        trio.wait(timeout=30)  # only passes when three are inside together
        with lock:
            inside -= 1
        return n

    assert run_batch(work, range(9), concurrency=3).values == list(range(9))
    assert most == 3


def test_worker_threads_see_the_callers_context() -> None:
    """Items running in worker threads see the request context of the caller."""
    token = bind_context(request_id="req-7")
    try:
        result = run_batch(lambda _: current_context().request_id, range(4), concurrency=2)
    finally:
        reset_context(token)
    assert result.values == ["req-7"] * 4


async def test_async_batches_limit_concurrency() -> None:
    """run_batch_async runs at most ``concurrency`` items at once and keeps the order."""
    inside = 0
    most = 0
    gate = asyncio.Event()

    async def work(n: int) -> int:
        nonlocal inside, most
        inside += 1
        most = max(most, inside)
        if inside == 4:
            gate.set()
        await gate.wait()
        inside -= 1
        if n % 3 == 0:
            raise errorkit.UpstreamTimeoutError()
        return n

    result = await run_batch_async(work, range(10), concurrency=4, capture=False)
    assert most == 4
    assert result.values == [1, 2, 4, 5, 7, 8]
    assert [f.code for f in result.failures] == ["UPSTREAM_TIMEOUT"] * 4


async def test_async_batches_accept_async_iterables() -> None:
    """Items may come from an async iterator (a cursor, a stream)."""

    async def items() -> AsyncIterator[int]:
        for n in range(5):
            yield n

    async def double(n: int) -> int:
        return n * 2

    assert (await run_batch_async(double, items(), concurrency=2)).values == [0, 2, 4, 6, 8]


def test_the_summary_holds_no_item_data() -> None:
    """as_dict() gives counts, codes and error ids, never the items or error texts."""
    result = run_batch(square_unless_bad, [3], capture=False)
    data = result.as_dict()
    assert data["failed"] == 1
    assert "three is not allowed" not in str(data)
    assert set(data["failures"][0]) == {"index", "error", "code", "status", "retriable", "error_id"}


def test_concurrency_must_be_positive() -> None:
    """concurrency=0 is refused with the fix."""
    with pytest.raises(ValueError, match="whole number >= 1"):
        run_batch(str, [1], concurrency=0)
