"""Partial success: run one operation over many items, keep what worked and say what did not.

::

    result = run_batch(send_email, recipients, concurrency=8, operation="newsletter")
    result.values            # the successful results, in input order
    result.failures          # each with its item, error, code, status and error id
    result.raise_for_failures()   # or raise_on_failure=True: a BatchError (ExceptionGroup)

Every item runs even when others fail; at most ``concurrency`` run at once (worker threads
for sync functions, tasks for async ones), and results keep the input order. Each failure
is classified (code, status, retriable) and, unless ``capture=False``, reported to capture.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from errorkit._reporting import report
from errorkit.classification import classify
from errorkit.errors import error_class, error_id_of
from errorkit.resilience._common import check_count, operation_name

__all__ = [
    "BatchError",
    "BatchResult",
    "ItemFailure",
    "ItemSuccess",
    "run_batch",
    "run_batch_async",
]

I = TypeVar("I")  # noqa: E741 - the item type
R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class ItemSuccess(Generic[I, R]):
    index: int
    item: I
    value: R


@dataclass(frozen=True, slots=True)
class ItemFailure(Generic[I]):
    """One item that failed, classified like any other error."""

    index: int
    item: I
    error: Exception
    code: str
    status: int
    retriable: bool
    error_id: str

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, without the item or the error text (they may hold user data)."""
        return {
            "index": self.index,
            "error": error_class(self.error),
            "code": self.code,
            "status": self.status,
            "retriable": self.retriable,
            "error_id": self.error_id,
        }


class BatchError(ExceptionGroup[Exception]):
    """Some items of a batch failed; ``result`` still holds the successes."""

    result: BatchResult[Any, Any]

    def __new__(
        cls, message: str, errors: Any, result: BatchResult[Any, Any] | None = None
    ) -> BatchError:
        self = super().__new__(cls, message, errors)
        if result is not None:
            self.result = result
        return self

    def __init__(
        self, message: str, errors: Any, result: BatchResult[Any, Any] | None = None
    ) -> None:
        super().__init__(message, errors)

    def derive(self, excs: Any, /) -> BatchError:  # type: ignore[override]
        derived = BatchError(self.message, excs)
        if hasattr(self, "result"):
            derived.result = self.result
        return derived


@dataclass(frozen=True, slots=True)
class BatchResult(Generic[I, R]):
    """Successes and failures of one batch, each in input order."""

    operation: str
    successes: tuple[ItemSuccess[I, R], ...]
    failures: tuple[ItemFailure[I], ...]

    @property
    def ok(self) -> bool:
        return not self.failures

    @property
    def values(self) -> list[R]:
        return [s.value for s in self.successes]

    @property
    def total(self) -> int:
        return len(self.successes) + len(self.failures)

    def raise_for_failures(self) -> None:
        """Raise a :class:`BatchError` holding every failure's error, if any failed."""
        if self.failures:
            raise BatchError(
                f"{len(self.failures)} of {self.total} items failed in {self.operation}",
                [f.error for f in self.failures],
                self,
            )

    def as_dict(self) -> dict[str, Any]:
        return {
            "operation": self.operation,
            "succeeded": len(self.successes),
            "failed": len(self.failures),
            "failures": [f.as_dict() for f in self.failures],
        }


def _failure(
    index: int, item: Any, exc: Exception, operation: str, capture: bool
) -> ItemFailure[Any]:
    c = classify(exc)
    if capture:
        report(exc, error_type=c.error_type, extra={"operation": operation, "item_index": index})
    return ItemFailure(index, item, exc, c.code, c.status, c.retriable, error_id_of(exc))


def _finish(
    operation: str,
    outcomes: dict[int, ItemSuccess[Any, Any] | ItemFailure[Any]],
    raise_on_failure: bool,
) -> BatchResult[Any, Any]:
    ordered = [outcomes[i] for i in sorted(outcomes)]
    result: BatchResult[Any, Any] = BatchResult(
        operation,
        tuple(o for o in ordered if isinstance(o, ItemSuccess)),
        tuple(o for o in ordered if isinstance(o, ItemFailure)),
    )
    if raise_on_failure:
        result.raise_for_failures()
    return result


def run_batch(
    fn: Callable[[I], R],
    items: Iterable[I],
    *,
    concurrency: int = 1,
    operation: str | None = None,
    raise_on_failure: bool = False,
    capture: bool = True,
) -> BatchResult[I, R]:
    """Call ``fn(item)`` for every item; collect successes and failures.

    ``concurrency`` > 1 runs items on that many worker threads (each with the caller's
    context). ``raise_on_failure=True`` raises :class:`BatchError` if any item failed."""
    check_count("run_batch", "concurrency", concurrency)
    name = operation or operation_name(fn)
    outcomes: dict[int, ItemSuccess[Any, Any] | ItemFailure[Any]] = {}

    def one(index: int, item: I) -> None:
        try:
            outcomes[index] = ItemSuccess(index, item, fn(item))
        except Exception as exc:  # noqa: BLE001 - partial success: every item's error is kept
            outcomes[index] = _failure(index, item, exc, name, capture)

    if concurrency == 1:
        for index, item in enumerate(items):
            one(index, item)
        return _finish(name, outcomes, raise_on_failure)

    source = enumerate(items)
    lock = threading.Lock()

    def worker() -> None:
        while True:
            with lock:
                nxt = next(source, None)
            if nxt is None:
                return
            one(*nxt)

    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="errorkit-batch") as pool:
        futures = [pool.submit(contextvars.copy_context().run, worker) for _ in range(concurrency)]
        for future in futures:
            future.result()
    return _finish(name, outcomes, raise_on_failure)


async def run_batch_async(
    fn: Callable[[I], Awaitable[R]],
    items: Iterable[I] | AsyncIterable[I],
    *,
    concurrency: int = 10,
    operation: str | None = None,
    raise_on_failure: bool = False,
    capture: bool = True,
) -> BatchResult[I, R]:
    """Await ``fn(item)`` for every item, at most ``concurrency`` at a time.

    Cancelling the batch cancels the items in flight."""
    check_count("run_batch_async", "concurrency", concurrency)
    name = operation or operation_name(fn)
    outcomes: dict[int, ItemSuccess[Any, Any] | ItemFailure[Any]] = {}
    queue: asyncio.Queue[tuple[int, I] | None] = asyncio.Queue(maxsize=concurrency * 2)

    async def worker() -> None:
        while True:
            nxt = await queue.get()
            if nxt is None:
                return
            index, item = nxt
            try:
                outcomes[index] = ItemSuccess(index, item, await fn(item))
            except Exception as exc:  # noqa: BLE001 - partial success: every error is kept
                outcomes[index] = _failure(index, item, exc, name, capture)

    async with asyncio.TaskGroup() as group:
        for _ in range(concurrency):
            group.create_task(worker())
        index = 0
        if isinstance(items, AsyncIterable):
            async for item in items:
                await queue.put((index, item))
                index += 1
        else:
            for item in items:
                await queue.put((index, item))
                index += 1
        for _ in range(concurrency):
            await queue.put(None)
    return _finish(name, outcomes, raise_on_failure)
