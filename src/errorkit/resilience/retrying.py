"""Retry with exponential backoff and jitter, sync and async, decorator and call forms.

By default a call is retried exactly when :func:`errorkit.classify` calls its error
retriable (timeouts, connection errors, 5xx-like upstream errors, 429 and 503), never for a
client error, and never sooner than the ``Retry-After`` the error carries. When the
attempts or the deadline run out, the last error propagates unchanged (same object, same
traceback, same chain) and is reported once to capture with the number of attempts.

Each call keeps its own attempt state in local variables: concurrent calls of one decorated
function (threads or asyncio tasks) never share a counter.
"""

from __future__ import annotations

import functools
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from types import TracebackType
from typing import Any, Literal, ParamSpec, TypeVar, cast, overload

from errorkit import hooks
from errorkit._guard import guard
from errorkit._reporting import report
from errorkit.classification import classify
from errorkit.errors import error_class
from errorkit.resilience._common import (
    ErrorFilter,
    check_count,
    check_seconds,
    is_async_callable,
    is_error_types,
    never_sent,
    operation_name,
    reject_generators,
    repeatable,
    safe_message,
)
from errorkit.resilience.clock import SYSTEM_CLOCK, Clock, is_testing, testing_attempts_cap

__all__ = [
    "Attempt",
    "Jitter",
    "RetryEvent",
    "RetryListener",
    "RetryPolicy",
    "add_retry_listener",
    "remove_retry_listener",
    "retry",
]

P = ParamSpec("P")
T = TypeVar("T")

Jitter = Literal["none", "full", "equal"]
RetryPredicate = Callable[[BaseException], bool | float | timedelta | None]

logger = logging.getLogger("errorkit.retry")


@dataclass(frozen=True, slots=True)
class RetryEvent:
    """One retry about to happen (handed to ``on_retry`` hooks and retry listeners), or,
    with ``exhausted=True``, a policy giving up (retry listeners only)."""

    operation: str
    attempt: int
    """The attempt that just failed (1 for the first call)."""
    max_attempts: int | None
    wait: float
    """Seconds until the next attempt (0 when giving up)."""
    elapsed: float
    """Seconds since the first attempt started."""
    error: BaseException
    code: str
    exhausted: bool = False
    """True when this failure ends the retries: the error propagates to the caller."""
    reason: str | None = None
    """Why the retries ended (``attempts exhausted``, ``deadline exceeded``, ...)."""


RetryListener = Callable[[RetryEvent], object]
"""``listener(event)``: called for every retry of every policy, and once when one gives up."""

_listeners = hooks._channel("retry")


def add_retry_listener(listener: RetryListener) -> None:
    """Call ``listener(RetryEvent)`` for every retry of every policy in this process, and
    once with ``exhausted=True`` when a policy gives up. Subscribing the same callable twice
    subscribes it once; a listener that raises is counted and never breaks the retry:
    ``errorkit.hooks.add("retry", listener)``."""
    hooks.add("retry", listener)


def remove_retry_listener(listener: RetryListener) -> None:
    """Unsubscribe ``listener`` (nothing happens if it was not subscribed):
    ``errorkit.hooks.remove("retry", listener)``."""
    hooks.remove("retry", listener)


def _classified(exc: BaseException) -> tuple[bool, float | None, str, str]:
    c = classify(exc)
    return repeatable(c), c.retry_after, c.code, str(c.error_type)


def _operation_argument(operation: object, name: object) -> str | None:
    """``operation=``, or its older spelling ``name=`` (both given: they must agree)."""
    if operation is not None and name is not None and operation != name:
        msg = (
            f"retry(operation={operation!r}, name={name!r}): name= is the older spelling of "
            "operation=; pass only operation="
        )
        raise TypeError(msg)
    value = operation if operation is not None else name
    if value is not None and (not isinstance(value, str) or not value.strip()):
        what = "operation" if operation is not None else "name"
        msg = f"retry({what}={value!r}): pass a non-empty string naming the operation"
        raise TypeError(msg)
    return value


class RetryPolicy:
    """How to retry: build one with :func:`retry`, then decorate, ``call`` or iterate it.

    Immutable and safe to share: every call it runs has its own attempt state.
    """

    __slots__ = (
        "_attempts",
        "_capture",
        "_clock",
        "_deadline",
        "_idempotent",
        "_jitter",
        "_monotonic",
        "_on",
        "_on_retry",
        "_operation",
        "_predicate",
        "_random",
        "_retry_after_max",
        "_types",
        "_wait_initial",
        "_wait_max",
        "_wait_multiplier",
    )

    def __init__(
        self,
        *,
        attempts: int | None = 3,
        on: ErrorFilter | RetryPredicate | None = None,
        deadline: float | timedelta | None = None,
        wait_initial: float | timedelta = 0.1,
        wait_multiplier: float = 2.0,
        wait_max: float | timedelta = 5.0,
        jitter: Jitter = "full",
        retry_after_max: float | timedelta = 60.0,
        on_retry: Callable[[RetryEvent], object] | None = None,
        operation: str | None = None,
        name: str | None = None,
        capture: bool = True,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        idempotent: bool = True,
    ) -> None:
        owner = "retry"
        self._operation = _operation_argument(operation, name)
        if attempts is None:
            if deadline is None:
                msg = (
                    "retry(attempts=None) retries until the deadline, but no deadline was "
                    "given: pass deadline=<seconds> as well, or a number of attempts"
                )
                raise ValueError(msg)
        else:
            check_count(owner, "attempts", attempts)
        self._attempts = attempts
        self._deadline = None if deadline is None else check_seconds(owner, "deadline", deadline)
        self._wait_initial = check_seconds(owner, "wait_initial", wait_initial)
        self._wait_max = check_seconds(owner, "wait_max", wait_max)
        if isinstance(wait_multiplier, bool) or not isinstance(wait_multiplier, int | float):
            msg = f"retry(wait_multiplier={wait_multiplier!r}): pass a number >= 1"
            raise TypeError(msg)
        if not wait_multiplier >= 1:
            msg = f"retry(wait_multiplier={wait_multiplier!r}): must be >= 1 (2 doubles each wait)"
            raise ValueError(msg)
        self._wait_multiplier = float(wait_multiplier)
        if jitter not in ("none", "full", "equal"):
            msg = f"retry(jitter={jitter!r}): use 'none', 'full' or 'equal'"
            raise ValueError(msg)
        self._jitter = jitter
        self._retry_after_max = check_seconds(owner, "retry_after_max", retry_after_max)
        self._types: type[BaseException] | tuple[type[BaseException], ...] | None = None
        self._predicate: RetryPredicate | None = None
        if on is not None:
            if is_error_types(on):
                self._types = on  # type: ignore[assignment]
            elif callable(on) and not isinstance(on, type):
                self._predicate = on
            else:
                msg = (
                    f"retry(on={on!r}): pass an exception class, a tuple of exception classes,"
                    " or a callable(exception) -> bool (or seconds to wait)"
                )
                raise TypeError(msg)
        self._on = on
        if on_retry is not None and not callable(on_retry):
            msg = f"retry(on_retry={on_retry!r}): pass a callable(RetryEvent)"
            raise TypeError(msg)
        self._on_retry = on_retry
        self._capture = bool(capture)
        self._clock = clock if clock is not None else SYSTEM_CLOCK
        self._monotonic = self._clock.monotonic
        self._random = (rng or random.Random()).random
        if not isinstance(idempotent, bool):
            msg = f"retry(idempotent={idempotent!r}): pass True or False"
            raise TypeError(msg)
        self._idempotent = idempotent

    # -- public properties ----------------------------------------------------------------------

    @property
    def attempts(self) -> int | None:
        return self._attempts

    @property
    def deadline(self) -> float | None:
        return self._deadline

    @property
    def operation(self) -> str | None:
        """The name retries are logged, reported and counted under (None: each decorated
        function's qualified name)."""
        return self._operation

    def backoff(self, attempt: int) -> float:
        """The wait after failed attempt number ``attempt`` (1-based), jitter applied."""
        exponent = max(0, attempt - 1)
        try:
            base = self._wait_initial * self._wait_multiplier**exponent
        except OverflowError:
            base = self._wait_max
        base = min(self._wait_max, base)
        if self._jitter == "full":
            return base * self._random()
        if self._jitter == "equal":
            return base / 2 + (base / 2) * self._random()
        return base

    # -- decorator ------------------------------------------------------------------------------

    def __call__(self, fn: Callable[P, T]) -> Callable[P, T]:
        """Decorate ``fn`` (sync or async) so that every call of it is retried."""
        reject_generators(fn, "retry")
        name = self._operation or operation_name(fn)
        monotonic = self._monotonic

        if is_async_callable(fn):
            afn = cast("Callable[..., Awaitable[Any]]", fn)

            @functools.wraps(fn)
            async def async_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
                started = monotonic()
                try:
                    return await afn(*args, **kwargs)
                except Exception as exc:
                    wait = self._decide(exc, 1, started, name)
                    if wait is None:
                        raise
                return await self._async_loop(afn, args, kwargs, name, started, wait)

            return cast("Callable[P, T]", async_wrapper)

        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
            started = monotonic()
            try:
                return fn(*args, **kwargs)
            except Exception as exc:
                wait = self._decide(exc, 1, started, name)
                if wait is None:
                    raise
            return self._sync_loop(fn, args, kwargs, name, started, wait)

        return wrapper

    # -- call forms -----------------------------------------------------------------------------

    def call(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Call ``fn(*args, **kwargs)`` under this policy."""
        name = self._operation or operation_name(fn)
        started = self._monotonic()
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            wait = self._decide(exc, 1, started, name)
            if wait is None:
                raise
        return self._sync_loop(fn, args, kwargs, name, started, wait)

    async def call_async(self, fn: Callable[..., Awaitable[T]], /, *args: Any, **kwargs: Any) -> T:
        """Await ``fn(*args, **kwargs)`` under this policy."""
        name = self._operation or operation_name(fn)
        started = self._monotonic()
        try:
            return await fn(*args, **kwargs)
        except Exception as exc:
            wait = self._decide(exc, 1, started, name)
            if wait is None:
                raise
        return await self._async_loop(fn, args, kwargs, name, started, wait)

    def __iter__(self) -> Iterator[Attempt]:
        """``for attempt in retry(...): with attempt: ...`` retries the block."""
        return _AttemptIterator(self)

    def __aiter__(self) -> AsyncIterator[Attempt]:
        """``async for attempt in retry(...): with attempt: ...`` retries the block."""
        return _AsyncAttemptIterator(self)

    # -- the loop -------------------------------------------------------------------------------

    def _sync_loop(
        self,
        fn: Callable[..., T],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        name: str,
        started: float,
        wait: float,
    ) -> T:
        attempt = 1
        while True:
            self._sleep(wait)
            attempt += 1
            try:
                return fn(*args, **kwargs)
            except Exception as exc:
                next_wait = self._decide(exc, attempt, started, name)
                if next_wait is None:
                    raise
            wait = next_wait

    async def _async_loop(
        self,
        fn: Callable[..., Awaitable[T]],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        name: str,
        started: float,
        wait: float,
    ) -> T:
        attempt = 1
        while True:
            await self._asleep(wait)
            attempt += 1
            try:
                return await fn(*args, **kwargs)
            except Exception as exc:
                next_wait = self._decide(exc, attempt, started, name)
                if next_wait is None:
                    raise
            wait = next_wait

    def _sleep(self, wait: float) -> None:
        if not is_testing():
            self._clock.sleep(wait)

    async def _asleep(self, wait: float) -> None:
        if not is_testing():
            await self._clock.asleep(wait)

    def _max_attempts(self) -> int | None:
        cap = testing_attempts_cap()
        if cap is None:
            return self._attempts
        return cap if self._attempts is None else min(cap, self._attempts)

    def _decide(self, exc: BaseException, attempt: int, started: float, name: str) -> float | None:
        """Seconds to wait before the next attempt, or None to let ``exc`` propagate."""
        forced_wait: float | None = None
        if not self._idempotent and not never_sent(exc):
            return None  # the call may have had its effect: repeating it could do it twice
        if self._types is not None:
            if not isinstance(exc, self._types):
                return None
            _, retry_after, code, error_type = _classified(exc)
        elif self._predicate is not None:
            verdict = self._predicate(exc)
            if verdict is None or verdict is False:
                return None
            if verdict is not True:
                forced_wait = check_seconds("retry", "on() result", verdict)
            _, retry_after, code, error_type = _classified(exc)
        else:
            retriable, retry_after, code, error_type = _classified(exc)
            if not retriable:
                return None

        max_attempts = self._max_attempts()
        elapsed = self._monotonic() - started
        if max_attempts is not None and attempt >= max_attempts:
            reason = "attempts exhausted"
            self._give_up(exc, attempt, max_attempts, elapsed, name, code, error_type, reason)
            return None
        wait = forced_wait if forced_wait is not None else self.backoff(attempt)
        if retry_after is not None:
            if retry_after > self._retry_after_max:
                reason = (
                    f"Retry-After {retry_after:g}s is longer than retry_after_max "
                    f"{self._retry_after_max:g}s"
                )
                self._give_up(exc, attempt, max_attempts, elapsed, name, code, error_type, reason)
                return None
            wait = max(wait, retry_after)
        if self._deadline is not None and elapsed + wait > self._deadline:
            reason = "deadline exceeded"
            self._give_up(exc, attempt, max_attempts, elapsed, name, code, error_type, reason)
            return None

        skipped = is_testing()
        logger.warning(
            (
                "retrying %s now (wait of %.3fs skipped: testing mode) after attempt %d failed: "
                "%s (%s)"
                if skipped
                else "retrying %s in %.3fs after attempt %d failed: %s (%s)"
            ),
            name,
            wait,
            attempt,
            error_class(exc),
            code,
            extra={
                "operation": name,
                "attempt": attempt,
                "max_attempts": max_attempts,
                "wait": wait,
                "wait_skipped": skipped,
                "elapsed": elapsed,
                "error_class": error_class(exc),
                "error_code": code,
                "error_message": safe_message(exc),
            },
        )
        hook = self._on_retry
        listeners = _listeners.hooks
        if hook is not None or listeners:
            event = RetryEvent(name, attempt, max_attempts, wait, elapsed, exc, code)
            # A hook that is also a process-wide listener is called once, not twice.
            if hook is not None and hook not in listeners:
                with guard("retry.on_retry"):
                    hook(event)
            _listeners.emit(event)
        return wait

    def _give_up(
        self,
        exc: BaseException,
        attempt: int,
        max_attempts: int | None,
        elapsed: float,
        name: str,
        code: str,
        error_type: str,
        reason: str,
    ) -> None:
        listeners = _listeners.hooks
        if listeners:
            event = RetryEvent(
                name, attempt, max_attempts, 0.0, elapsed, exc, code, exhausted=True, reason=reason
            )
            _listeners.emit(event)
        if attempt > 1 or reason != "attempts exhausted":
            logger.error(
                "giving up on %s after %d attempt(s): %s: %s (%s)",
                name,
                attempt,
                reason,
                error_class(exc),
                code,
                extra={
                    "operation": name,
                    "attempts": attempt,
                    "reason": reason,
                    "error_class": error_class(exc),
                    "error_code": code,
                },
            )
        if self._capture:
            report(exc, error_type=error_type, extra={"attempts": attempt, "operation": name})

    def __repr__(self) -> str:
        return (
            f"RetryPolicy(attempts={self._attempts!r}, on={self._on!r}, "
            f"deadline={self._deadline!r}, wait_initial={self._wait_initial!r}, "
            f"wait_multiplier={self._wait_multiplier!r}, wait_max={self._wait_max!r}, "
            f"jitter={self._jitter!r}, operation={self._operation!r})"
        )


class Attempt:
    """One attempt of a retried block: use it as ``with attempt:``."""

    __slots__ = ("_run", "number")

    def __init__(self, run: _Run, number: int) -> None:
        self._run = run
        self.number = number

    def __enter__(self) -> Attempt:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        run = self._run
        if exc is None:
            run.done = True
            return False
        if not isinstance(exc, Exception):
            return False
        wait = run.policy._decide(exc, self.number, run.started, run.name)
        if wait is None:
            return False
        run.wait = wait
        return True  # swallowed: the iterator waits and hands out the next attempt

    def __repr__(self) -> str:
        return f"Attempt(number={self.number})"


class _Run:
    """What the attempts of one retried block share; iterated sync or async below."""

    __slots__ = ("done", "name", "number", "policy", "started", "wait")

    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy
        self.name = policy._operation or "retried block"
        self.started = policy._monotonic()
        self.number = 0
        self.done = False
        self.wait: float | None = None


class _AttemptIterator(_Run):
    __slots__ = ()

    def __iter__(self) -> _AttemptIterator:
        return self

    def __next__(self) -> Attempt:
        if self.done:
            raise StopIteration
        if self.number:
            wait = _take_wait(self)
            self.policy._sleep(wait)
        self.number += 1
        return Attempt(self, self.number)


class _AsyncAttemptIterator(_Run):
    __slots__ = ()

    def __aiter__(self) -> _AsyncAttemptIterator:
        return self

    async def __anext__(self) -> Attempt:
        if self.done:
            raise StopAsyncIteration
        if self.number:
            wait = _take_wait(self)
            await self.policy._asleep(wait)
        self.number += 1
        return Attempt(self, self.number)


def _take_wait(run: _Run) -> float:
    wait = run.wait
    if wait is None:
        msg = (
            "each attempt of a retried block must be used as a context manager: "
            "`for attempt in retry(...):` then `with attempt:` around the work"
        )
        raise RuntimeError(msg)
    run.wait = None
    return wait


@overload
def retry(fn: Callable[P, T], /) -> Callable[P, T]: ...
@overload
def retry(
    fn: None = None,
    /,
    *,
    attempts: int | None = 3,
    on: ErrorFilter | RetryPredicate | None = None,
    deadline: float | timedelta | None = None,
    wait_initial: float | timedelta = 0.1,
    wait_multiplier: float = 2.0,
    wait_max: float | timedelta = 5.0,
    jitter: Jitter = "full",
    retry_after_max: float | timedelta = 60.0,
    on_retry: Callable[[RetryEvent], object] | None = None,
    operation: str | None = None,
    name: str | None = None,
    capture: bool = True,
    clock: Clock | None = None,
    rng: random.Random | None = None,
    idempotent: bool = True,
) -> RetryPolicy: ...
def retry(fn: Callable[P, T] | None = None, /, **options: Any) -> Callable[P, T] | RetryPolicy:
    """Retry transient failures with exponential backoff and jitter.

    ``@retry`` and ``@retry(attempts=5)`` decorate sync and async functions;
    ``retry(...).call(fn, *args)`` / ``await retry(...).call_async(fn, *args)`` call once;
    ``for attempt in retry(...): with attempt: ...`` retries a block (``async for`` too).

    ``attempts`` counts every call including the first. ``on`` replaces the default decision
    (what :func:`errorkit.classify` calls retriable) with exception classes or a predicate
    (returning True, False, or seconds to wait). The wait after attempt *n* is
    ``min(wait_max, wait_initial * wait_multiplier ** (n - 1))`` with ``jitter`` applied,
    and at least the error's ``Retry-After``; a ``Retry-After`` longer than
    ``retry_after_max``, or a wait that would pass ``deadline`` (seconds since the first
    attempt), ends the retries.

    ``operation`` names what is retried in log lines (field ``operation``), retry events
    (``RetryEvent.operation``), metrics (``errorkit_retries_total{operation}``) and the
    capture report; by default the decorated function's qualified name. ``name`` is an older
    spelling of it, still accepted.

    A client error (4xx) is never retried by default, whatever its ``retriable`` says,
    except 408 and 429; name its class in ``on`` to retry it anyway. ``idempotent=False``
    (a charge, an e-mail) retries only failures that prove the request was never sent
    (connection refused, DNS failure, connect timeout), even with ``on``.
    """
    policy = RetryPolicy(**options)
    if fn is None:
        return policy
    return policy(fn)
