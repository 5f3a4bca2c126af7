"""``with_error_recovery``: retry + circuit breaker + fallback + capture in one decorator.

::

    @with_error_recovery("gcs", "upload", max_retries=2, fallback=save_locally)
    def upload_video(path, content): ...

Each call goes ``fallback( retry( breaker( timeout( fn ) ) ) )``:

* every attempt passes the service's breaker (one per service in the default registry,
  shared by all its operations), so failed attempts count towards opening it;
* an open breaker is not retried: the call goes straight to the fallback, or raises
  :class:`errorkit.CircuitOpenError` (503 with ``Retry-After``), or the breaker's
  ``open_error``;
* errors that say the service is failing (retriable or server-side) are retried and then
  handed to the fallback; client errors (4xx) propagate at once, untouched;
* what finally failed is reported to capture once, with the service, operation, attempts
  and whether a fallback answered. Rejections by an open breaker are not reported again.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, ParamSpec, TypeVar, cast

from errorkit._reporting import report
from errorkit.classification import classify
from errorkit.errors import CircuitOpenError, error_class
from errorkit.resilience._common import (
    ErrorFilter,
    check_count,
    error_matcher,
    is_async_callable,
    operation_name,
    reject_generators,
    repeatable,
    server_side,
)
from errorkit.resilience.breaker import CircuitBreaker
from errorkit.resilience.clock import Clock
from errorkit.resilience.fallback import fallback_used
from errorkit.resilience.registry import circuit_breaker
from errorkit.resilience.retrying import RetryPolicy
from errorkit.resilience.timeouts import Timeout

__all__ = ["with_error_recovery"]

P = ParamSpec("P")
T = TypeVar("T")

logger = logging.getLogger("errorkit.recovery")


def _retriable(exc: BaseException) -> bool:
    return not isinstance(exc, CircuitOpenError) and repeatable(classify(exc))


def with_error_recovery(
    service: str,
    operation: str | None = None,
    *,
    max_retries: int = 3,
    fallback: Callable[..., Any] | None = None,
    breaker: CircuitBreaker | None = None,
    retry_on: ErrorFilter | None = None,
    timeout: float | timedelta | None = None,
    wait_initial: float | timedelta = 0.1,
    wait_max: float | timedelta = 5.0,
    deadline: float | timedelta | None = None,
    capture: bool = True,
    clock: Clock | None = None,
    idempotent: bool = True,
) -> Callable[[Callable[P, T]], Callable[P, T]]:
    """Protect calls to ``service`` with retries, its circuit breaker and a fallback.

    ``max_retries`` counts retries after the first call. ``fallback`` is called with the
    same arguments when the service failed or its breaker is open. ``breaker`` defaults to
    ``circuit_breaker(service)``; ``retry_on`` replaces which errors are retried;
    ``timeout`` limits each attempt (sync functions then run in a worker thread).
    ``idempotent=False`` (a charge, an e-mail) retries only failures that prove the request
    was never sent. A client error (4xx other than 408 and 429) is neither retried, nor
    counted by the breaker, nor replaced by the fallback: it propagates unchanged.
    """
    check_count("with_error_recovery", "max_retries", max_retries, minimum=0)
    if fallback is not None and not callable(fallback):
        msg = (
            f"with_error_recovery(fallback={fallback!r}): pass a callable taking the same "
            "arguments as the decorated function (use `lambda *a, **k: value` for a value)"
        )
        raise TypeError(msg)
    if retry_on is not None:
        error_matcher(retry_on, _retriable, owner="with_error_recovery")  # checks the type

    def decorate(fn: Callable[P, T]) -> Callable[P, T]:
        reject_generators(fn, "with_error_recovery")
        op = operation or getattr(fn, "__name__", None) or operation_name(fn)
        name = f"{service}.{op}"
        guard = breaker if breaker is not None else circuit_breaker(service)
        limit = Timeout(timeout, operation=name) if timeout is not None else None
        policy = RetryPolicy(
            attempts=max_retries + 1,
            on=retry_on if retry_on is not None else _retriable,
            wait_initial=wait_initial,
            wait_max=wait_max,
            deadline=deadline,
            operation=name,
            capture=False,
            clock=clock,
            idempotent=idempotent,
        )
        fallback_name = operation_name(fallback) if fallback is not None else None
        # The breaker's refusals are handled here as CircuitOpenError (never retried), and
        # turned into its open_error only when nothing answers instead.
        opened = guard._open if guard.open_error is not None else None

        def finish(
            exc: Exception, attempts: int, last: BaseException | None
        ) -> Callable[..., Any] | None:
            """Report what failed; the fallback to answer with, if any."""
            if not server_side(exc):
                return None
            if isinstance(exc, CircuitOpenError):
                logger.info(
                    "%s: circuit open%s",
                    name,
                    ", using fallback" if fallback is not None else "",
                    extra={"service": service, "operation": op, "fallback": fallback_name},
                )
                if last is None:  # refused before any attempt: nothing new to report
                    if fallback is not None:
                        fallback_used(name, fallback_name or "fallback", None)
                    return fallback
            cause = exc if last is None or not isinstance(exc, CircuitOpenError) else last
            if capture:
                report(
                    cause,
                    error_type=classify(cause).error_type,
                    extra={
                        "service": service,
                        "operation": op,
                        "attempts": attempts,
                        "fallback": fallback_name,
                    },
                )
            if fallback is not None:
                fallback_used(name, fallback_name or "fallback", cause)
                logger.warning(
                    "%s failed after %d attempt(s) (%s); using fallback %s",
                    name,
                    attempts,
                    error_class(cause),
                    fallback_name,
                    extra={
                        "service": service,
                        "operation": op,
                        "attempts": attempts,
                        "error_class": error_class(cause),
                        "fallback": fallback_name,
                    },
                )
            return fallback

        if is_async_callable(fn):
            afn = cast("Callable[..., Awaitable[Any]]", fn)

            @functools.wraps(fn)
            async def async_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
                attempts = 0
                last: BaseException | None = None
                refused: CircuitOpenError | None = None

                async def attempt() -> Any:
                    nonlocal attempts, last, refused
                    try:
                        permit = await guard._permit_async()
                    except CircuitOpenError as exc:
                        refused = exc
                        raise
                    attempts += 1
                    try:
                        if limit is not None:
                            result = await limit.call_async(afn, *args, **kwargs)
                        else:
                            result = await afn(*args, **kwargs)
                    except BaseException as exc:
                        last = exc
                        await permit.release_async(exc)
                        raise
                    await permit.release_async()
                    return result

                try:
                    return await policy.call_async(attempt)
                except Exception as exc:
                    answer = finish(exc, attempts, last)
                    if answer is None:
                        if exc is refused and opened is not None:
                            raise opened(exc) from exc
                        raise
                value = answer(*args, **kwargs)
                if isinstance(value, Awaitable):
                    return await value
                return value

            return cast("Callable[P, T]", async_wrapper)

        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
            attempts = 0
            last: BaseException | None = None
            refused: CircuitOpenError | None = None

            def attempt() -> Any:
                nonlocal attempts, last, refused
                try:
                    permit = guard._permit()
                except CircuitOpenError as exc:
                    refused = exc
                    raise
                attempts += 1
                try:
                    result = limit.call(fn, *args, **kwargs) if limit else fn(*args, **kwargs)
                except BaseException as exc:
                    last = exc
                    permit.release(exc)
                    raise
                permit.release()
                return result

            try:
                return policy.call(attempt)
            except Exception as exc:
                answer = finish(exc, attempts, last)
                if answer is None:
                    if exc is refused and opened is not None:
                        raise opened(exc) from exc
                    raise
            return answer(*args, **kwargs)

        return cast("Callable[P, T]", wrapper)

    return decorate
