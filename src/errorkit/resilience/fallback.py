"""Fallback and failover: a primary, then ordered fallbacks, with the reason for each step.

::

    read = fallback_chain(step("cache", cache_get), step("db", db_get), operation="profile")
    result = read.run(user_id)      # FallbackResult: value, source, steps (each with a reason)
    value = read.call(user_id)      # just the value

Steps are callables (called with the same arguments) or plain values. A step's error moves
on to the next step only when it says the dependency is failing (by default: what
classification calls retriable or server-side; ``on=`` changes that); a client error (4xx)
is an answer and propagates at once. When every step failed, :class:`FallbackExhaustedError`
(a 503 :class:`errorkit.ServiceUnavailableError`) is raised ``from`` an ``ExceptionGroup``
holding every step's error, so the typed answer and all the causes travel together.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, Literal, ParamSpec, TypeVar

from errorkit import hooks
from errorkit.classification import classify
from errorkit.errors import ServiceUnavailableError, error_class
from errorkit.resilience._common import (
    ErrorFilter,
    error_matcher,
    is_async_callable,
    reject_generators,
    server_side,
)

__all__ = [
    "FallbackChain",
    "FallbackEvent",
    "FallbackExhaustedError",
    "FallbackListener",
    "FallbackResult",
    "FallbackStep",
    "Step",
    "add_fallback_listener",
    "fallback_chain",
    "fallback_used",
    "remove_fallback_listener",
    "step",
    "with_fallback",
]

P = ParamSpec("P")
T = TypeVar("T")

logger = logging.getLogger("errorkit.fallback")


@dataclass(frozen=True, slots=True)
class FallbackEvent:
    """A fallback answered instead of the primary: a fallback chain's later step, a
    breaker's ``fallback=`` or ``with_error_recovery``'s ``fallback=``."""

    operation: str
    """The chain's operation, the breaker's name, or ``service.operation``."""
    source: str
    """The fallback that answered (step or function name)."""
    error: BaseException | None
    """What made the primary fail (None when an open breaker refused the call)."""


FallbackListener = Callable[[FallbackEvent], object]
"""``listener(event)``: called each time any fallback answers."""

_listeners = hooks._channel("fallback")


def add_fallback_listener(listener: FallbackListener) -> None:
    """Call ``listener(FallbackEvent)`` each time a fallback answers, anywhere in the
    process. Subscribing the same callable twice subscribes it once; a listener that raises
    is counted and never breaks the call: ``errorkit.hooks.add("fallback", listener)``."""
    hooks.add("fallback", listener)


def remove_fallback_listener(listener: FallbackListener) -> None:
    """Unsubscribe ``listener`` (nothing happens if it was not subscribed):
    ``errorkit.hooks.remove("fallback", listener)``."""
    hooks.remove("fallback", listener)


def fallback_used(operation: str, source: str, error: BaseException | None = None) -> None:
    """Tell the ``"fallback"`` hooks that ``source`` answered for ``operation``. Never
    raises."""
    if _listeners.hooks:
        _listeners.emit(FallbackEvent(operation, source, error))


class FallbackExhaustedError(ServiceUnavailableError):
    """Every step of a fallback chain failed; ``steps`` says how, the cause holds the errors."""

    code = "FALLBACK_EXHAUSTED"
    message = "{operation} is unavailable: every fallback failed."
    plain_message = "The operation is unavailable: every fallback failed."

    steps: tuple[FallbackStep, ...] = ()


@dataclass(frozen=True, slots=True)
class Step:
    """A named step: a callable (called with the chain's arguments) or a value."""

    name: str
    target: Any

    def is_callable(self) -> bool:
        return callable(self.target)


def step(name: str, target: Any) -> Step:
    """Name a step (``step("replica", read_replica)``, ``step("default", {})``)."""
    if not isinstance(name, str) or not name:
        msg = f"step(name={name!r}): give the step a non-empty name, e.g. 'replica'"
        raise ValueError(msg)
    return Step(name, target)


@dataclass(frozen=True, slots=True)
class FallbackStep:
    """What happened at one step, and why it was taken."""

    name: str
    outcome: Literal["ok", "failed"]
    reason: str
    error: BaseException | None = None
    code: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "outcome": self.outcome, "reason": self.reason}
        if self.error is not None:
            out["error"] = error_class(self.error)
            out["code"] = self.code
        return out


@dataclass(frozen=True, slots=True)
class FallbackResult(Generic[T]):
    """The value, which step gave it, and every step taken on the way."""

    value: T
    source: str
    steps: tuple[FallbackStep, ...]

    @property
    def degraded(self) -> bool:
        """True when the value came from a fallback rather than the primary."""
        return len(self.steps) > 1

    @property
    def errors(self) -> list[BaseException]:
        return [s.error for s in self.steps if s.error is not None]


def _as_step(target: Any, index: int) -> Step:
    if isinstance(target, Step):
        return target
    if callable(target):
        reject_generators(target, "fallback_chain")
        name = getattr(target, "__name__", None) or type(target).__name__
        return Step(str(name), target)
    return Step("value" if index else "primary", target)


class FallbackChain(Generic[T]):
    """A primary and its ordered fallbacks. Immutable; safe to share between threads."""

    __slots__ = ("_matches", "operation", "steps")

    def __init__(
        self, *steps: Any, operation: str | None = None, on: ErrorFilter | None = None
    ) -> None:
        if len(steps) < 2:
            msg = (
                "fallback_chain() needs a primary and at least one fallback, e.g. "
                "fallback_chain(read_primary, read_replica)"
            )
            raise ValueError(msg)
        self.steps = tuple(_as_step(s, i) for i, s in enumerate(steps))
        self.operation = operation or self.steps[0].name
        self._matches = error_matcher(on, server_side, owner="fallback_chain")

    def _reason(self, previous: FallbackStep | None) -> str:
        if previous is None:
            return "primary"
        return f"{previous.name} failed: {error_class(previous.error)} ({previous.code})"  # type: ignore[arg-type]

    def _failed(self, index: int, exc: Exception, reason: str) -> FallbackStep:
        code = classify(exc).code
        failed = FallbackStep(self.steps[index].name, "failed", reason, exc, code)
        if index + 1 < len(self.steps):
            logger.warning(
                "%s: %s failed (%s, %s); falling back to %s",
                self.operation,
                failed.name,
                error_class(exc),
                code,
                self.steps[index + 1].name,
                extra={
                    "operation": self.operation,
                    "step": failed.name,
                    "next_step": self.steps[index + 1].name,
                    "error_class": error_class(exc),
                    "error_code": code,
                },
            )
        return failed

    def _answered(self, value: Any, source: str, taken: list[FallbackStep]) -> FallbackResult[T]:
        if len(taken) > 1:
            fallback_used(self.operation, source, taken[-2].error)
        return FallbackResult(value, source, tuple(taken))

    def _exhausted(self, taken: list[FallbackStep]) -> FallbackExhaustedError:
        """The error to raise, logged, caused by a group of every step's error."""
        error = FallbackExhaustedError(operation=self.operation)
        error.steps = tuple(taken)
        logger.error(
            "%s: every step failed (%s)",
            self.operation,
            ", ".join(s.name for s in taken),
            extra={"operation": self.operation, "steps": [s.as_dict() for s in taken]},
        )
        error.__cause__ = ExceptionGroup(
            f"{self.operation}: every step failed",
            [s.error for s in taken if isinstance(s.error, Exception)],
        )
        return error

    def run(self, *args: Any, **kwargs: Any) -> FallbackResult[T]:
        """Try each step in order; the value with the steps taken."""
        taken: list[FallbackStep] = []
        previous: FallbackStep | None = None
        for index, current in enumerate(self.steps):
            reason = self._reason(previous)
            if not current.is_callable():
                taken.append(FallbackStep(current.name, "ok", reason))
                return self._answered(current.target, current.name, taken)
            try:
                value = current.target(*args, **kwargs)
            except Exception as exc:
                if not self._matches(exc):
                    raise
                previous = self._failed(index, exc, reason)
                taken.append(previous)
                continue
            if inspect.isawaitable(value):
                _close(value)
                msg = (
                    f"step {current.name!r} of {self.operation!r} is async: "
                    "use run_async()/call_async()"
                )
                raise TypeError(msg)
            taken.append(FallbackStep(current.name, "ok", reason))
            return self._answered(value, current.name, taken)
        raise self._exhausted(taken)

    async def run_async(self, *args: Any, **kwargs: Any) -> FallbackResult[T]:
        """Like :meth:`run`; steps may be sync or async."""
        taken: list[FallbackStep] = []
        previous: FallbackStep | None = None
        for index, current in enumerate(self.steps):
            reason = self._reason(previous)
            if not current.is_callable():
                taken.append(FallbackStep(current.name, "ok", reason))
                return self._answered(current.target, current.name, taken)
            try:
                value = current.target(*args, **kwargs)
                if inspect.isawaitable(value):
                    value = await value
            except Exception as exc:
                if not self._matches(exc):
                    raise
                previous = self._failed(index, exc, reason)
                taken.append(previous)
                continue
            taken.append(FallbackStep(current.name, "ok", reason))
            return self._answered(value, current.name, taken)
        raise self._exhausted(taken)

    def call(self, *args: Any, **kwargs: Any) -> T:
        """The value of the first step that succeeds."""
        return self.run(*args, **kwargs).value

    async def call_async(self, *args: Any, **kwargs: Any) -> T:
        return (await self.run_async(*args, **kwargs)).value

    def __repr__(self) -> str:
        names = ", ".join(s.name for s in self.steps)
        return f"FallbackChain({self.operation!r}: {names})"


def _close(awaitable: object) -> None:
    close = getattr(awaitable, "close", None)
    if callable(close):
        close()


def fallback_chain(
    primary: Any, *fallbacks: Any, operation: str | None = None, on: ErrorFilter | None = None
) -> FallbackChain[Any]:
    """A primary then ordered fallbacks (callables, values or :func:`step`)."""
    return FallbackChain(primary, *fallbacks, operation=operation, on=on)


def with_fallback(
    *fallbacks: Any, operation: str | None = None, on: ErrorFilter | None = None
) -> Callable[[Callable[P, T]], Callable[P, T]]:
    """Decorate a primary with ordered fallbacks (sync or async). ``fn.chain.run(...)``
    on the decorated function gives the steps taken as well."""
    if not fallbacks:
        msg = "with_fallback() needs at least one fallback (a callable or a value)"
        raise ValueError(msg)

    def decorate(fn: Callable[P, T]) -> Callable[P, T]:
        chain: FallbackChain[Any] = FallbackChain(
            fn, *fallbacks, operation=operation or getattr(fn, "__qualname__", None), on=on
        )
        if is_async_callable(fn):

            @functools.wraps(fn)
            async def async_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
                return await chain.call_async(*args, **kwargs)

            async_wrapper.chain = chain  # type: ignore[attr-defined]
            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
            return chain.call(*args, **kwargs)

        wrapper.chain = chain  # type: ignore[attr-defined]
        return wrapper

    return decorate
