"""Timeouts that raise :class:`errorkit.OperationTimeoutError` naming the operation and limit.

Async code is cancelled at the limit (``asyncio.timeout``). Sync code cannot be interrupted
safely in Python (no signals outside the main thread, no killing threads): a sync call runs
in a worker thread of a bounded pool, the caller stops waiting at the limit and gets the
error, and the worker keeps running until the function returns. Give sync functions their
own lower-level timeouts too (socket, HTTP client, ``statement_timeout``) so workers come
back; the pool's bound keeps a stuck dependency from creating threads without end.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import timedelta
from types import TracebackType
from typing import Any, ParamSpec, TypeVar

from errorkit.errors import OperationTimeoutError
from errorkit.resilience._common import (
    check_count,
    check_seconds,
    operation_name,
    wrap_calls,
)

__all__ = ["Timeout", "configure_timeout_pool", "timeout"]

P = ParamSpec("P")
T = TypeVar("T")

logger = logging.getLogger("errorkit.timeout")

_pool_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None
_pool_size = 32


def configure_timeout_pool(max_workers: int) -> None:
    """Set how many sync calls may run under a timeout at once (default 32). Calls beyond
    that wait for a worker, and time out if none frees up in time."""
    global _pool, _pool_size
    check_count("configure_timeout_pool", "max_workers", max_workers)
    with _pool_lock:
        old, _pool, _pool_size = _pool, None, max_workers
    if old is not None:
        old.shutdown(wait=False)


def _executor() -> ThreadPoolExecutor:
    global _pool
    pool = _pool
    if pool is None:
        with _pool_lock:
            if _pool is None:
                _pool = ThreadPoolExecutor(
                    max_workers=_pool_size, thread_name_prefix="errorkit-timeout"
                )
            pool = _pool
    return pool


class Timeout:
    """A time limit for one operation: a decorator, ``call``/``call_async``, or
    ``async with``. Build one with :func:`timeout`."""

    __slots__ = ("_scope", "operation", "seconds")

    def __init__(self, seconds: float | timedelta, *, operation: str | None = None) -> None:
        self.seconds = check_seconds("timeout", "seconds", seconds, allow_zero=False)
        self.operation = operation
        self._scope: asyncio.Timeout | None = None

    def _error(self, name: str) -> OperationTimeoutError:
        return OperationTimeoutError(operation=name, timeout=self.seconds)

    def call(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Run ``fn(*args, **kwargs)`` in a worker thread; stop waiting after the limit."""
        name = self.operation or operation_name(fn)
        context = contextvars.copy_context()
        future: Future[T] = _executor().submit(context.run, fn, *args, **kwargs)
        try:
            return future.result(timeout=self.seconds)
        except TimeoutError as exc:
            if future.done() and not future.cancelled() and future.exception() is exc:
                raise  # the function's own TimeoutError, not ours
            if not future.cancel():
                logger.warning(
                    "%s passed its %gs limit; its worker thread runs on until it returns "
                    "(a sync function cannot be stopped)",
                    name,
                    self.seconds,
                    extra={"operation": name, "timeout": self.seconds},
                )
            raise self._error(name) from None

    async def call_async(self, fn: Callable[..., Awaitable[T]], /, *args: Any, **kwargs: Any) -> T:
        """Await ``fn(*args, **kwargs)``, cancelling it at the limit."""
        name = self.operation or operation_name(fn)
        scope = asyncio.timeout(self.seconds)
        try:
            async with scope:
                return await fn(*args, **kwargs)
        except TimeoutError as exc:
            if scope.expired():
                raise self._error(name) from exc
            raise

    def __call__(self, fn: Callable[P, T]) -> Callable[P, T]:
        """Limit every call of ``fn`` (sync functions run in a worker thread)."""
        return wrap_calls(fn, self.call, self.call_async, "timeout")

    async def __aenter__(self) -> Timeout:
        if self._scope is not None:
            msg = "this timeout is already guarding a block: call timeout(...) for each block"
            raise RuntimeError(msg)
        self._scope = asyncio.timeout(self.seconds)
        await self._scope.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        scope, self._scope = self._scope, None
        if scope is None:  # pragma: no cover - __aenter__ always sets it
            return
        try:
            await scope.__aexit__(exc_type, exc, tb)
        except TimeoutError as timed_out:
            if scope.expired():
                raise self._error(self.operation or "block") from timed_out
            raise

    def __enter__(self) -> Timeout:
        msg = (
            "a sync `with` block cannot be interrupted: use timeout(...).call(fn, *args) or "
            "@timeout(...) on the function (it runs in a worker thread), or `async with` in "
            "async code"
        )
        raise TypeError(msg)

    def __exit__(self, *exc_info: object) -> None:  # pragma: no cover - __enter__ refuses
        return None

    def __repr__(self) -> str:
        return f"Timeout({self.seconds!r}, operation={self.operation!r})"


def timeout(seconds: float | timedelta, *, operation: str | None = None) -> Timeout:
    """A time limit of ``seconds`` for ``operation`` (defaults to the function's name)."""
    return Timeout(seconds, operation=operation)
