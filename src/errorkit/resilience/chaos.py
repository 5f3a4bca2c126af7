"""Chaos: inject failures and latency into a function or a dependency, on purpose.

::

    chaos = Chaos(probability=0.2, error=503, latency=(0.05, 0.3), seed=7)

    @chaos
    def fetch_rates(): ...

    flaky_cache = chaos.wrap(redis_client, methods=["get", "set"])

Nothing is injected unless chaos is switched on: per instance (``Chaos(enabled=True)``),
process-wide (:func:`enable_chaos`), or by the environment (``ERRORKIT_CHAOS=1``). A
``seed`` makes the sequence of injected failures repeatable, so tests are deterministic.
``error`` is an exception class, an instance (copied for each injection), a factory, or an
HTTP status that becomes the matching errorkit error (503 -> ServiceUnavailableError, 429
-> UpstreamRateLimitedError with ``retry_after``, ...).
"""

from __future__ import annotations

import copy
import functools
import inspect
import logging
import os
import random
import threading
from collections.abc import Callable, Iterable
from typing import Any, ParamSpec, TypeVar, cast

from errorkit.classification import code_for_status
from errorkit.codes import catalog
from errorkit.config import ConfigError
from errorkit.errors import (
    AppError,
    ClientError,
    ExternalServiceError,
    InternalError,
    ServiceUnavailableError,
    UpstreamRateLimitedError,
    UpstreamTimeoutError,
)
from errorkit.resilience._common import (
    check_seconds,
    is_async_callable,
    operation_name,
    reject_generators,
)
from errorkit.resilience.clock import SYSTEM_CLOCK, Clock

__all__ = ["Chaos", "chaos_enabled", "disable_chaos", "enable_chaos", "set_chaos"]

P = ParamSpec("P")
T = TypeVar("T")

logger = logging.getLogger("errorkit.chaos")

ENV_VAR = "ERRORKIT_CHAOS"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}

_switch_lock = threading.Lock()
_switch: bool | None = None  # None: follow the environment
_env_cache: bool | None = None

ErrorSpec = type[BaseException] | BaseException | int | Callable[[], BaseException]


def _from_env() -> bool:
    raw = os.environ.get(ENV_VAR, "")
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    msg = f"environment {ENV_VAR}={raw!r} is not valid: use 1/true/yes/on or 0/false/no/off"
    raise ConfigError(msg)


def set_chaos(enabled: bool | None) -> None:
    """Switch chaos on or off for the process; None follows ``ERRORKIT_CHAOS`` again
    (re-read now)."""
    global _switch, _env_cache
    with _switch_lock:
        _switch = enabled
        _env_cache = None


def enable_chaos() -> None:
    set_chaos(True)


def disable_chaos() -> None:
    set_chaos(False)


def chaos_enabled() -> bool:
    """Whether chaos is on for the process (explicit switch, else ``ERRORKIT_CHAOS``)."""
    global _env_cache
    if _switch is not None:
        return _switch
    cached = _env_cache
    if cached is None:
        cached = _env_cache = _from_env()
    return cached


_STATUS_ERRORS: dict[int, type[AppError]] = {
    429: UpstreamRateLimitedError,
    500: InternalError,
    502: ExternalServiceError,
    503: ServiceUnavailableError,
    504: UpstreamTimeoutError,
}


def _check_probability(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        msg = f"Chaos({name}={value!r}): use a probability between 0 and 1 (0.1 = 10% of calls)"
        raise ValueError(msg)
    return float(value)


class Chaos:
    """Injects failures (with ``probability``) and latency into calls."""

    def __init__(
        self,
        *,
        probability: float = 0.1,
        error: ErrorSpec | None = ServiceUnavailableError,
        latency: float | tuple[float, float] | None = None,
        latency_probability: float = 1.0,
        retry_after: float | None = None,
        seed: int | None = None,
        enabled: bool | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.probability = _check_probability("probability", probability)
        self.latency_probability = _check_probability("latency_probability", latency_probability)
        if isinstance(error, int) and not isinstance(error, bool):
            if not 400 <= error <= 599:
                msg = f"Chaos(error={error!r}): an HTTP status must be 400-599"
                raise ValueError(msg)
        elif not (
            error is None
            or isinstance(error, BaseException)
            or (isinstance(error, type) and issubclass(error, BaseException))
            or callable(error)
        ):
            msg = (
                f"Chaos(error={error!r}): pass an exception class or instance, a factory "
                "returning one, an HTTP status such as 503, or None for latency only"
            )
            raise TypeError(msg)
        self.error = error
        self._latency: tuple[float, float] | None
        if latency is None:
            self._latency = None
        elif isinstance(latency, tuple):
            low = check_seconds("Chaos", "latency", latency[0])
            high = check_seconds("Chaos", "latency", latency[1])
            if high < low:
                msg = f"Chaos(latency={latency!r}): give (low, high) with low <= high"
                raise ValueError(msg)
            self._latency = (low, high)
        else:
            fixed = check_seconds("Chaos", "latency", latency)
            self._latency = (fixed, fixed)
        self.retry_after = retry_after
        self.enabled = enabled
        self.clock = clock if clock is not None else SYSTEM_CLOCK
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self.injected_failures = 0
        self.injected_delays = 0

    @property
    def active(self) -> bool:
        return self.enabled if self.enabled is not None else chaos_enabled()

    # -- deciding -------------------------------------------------------------------------------

    def _plan(self) -> tuple[float, bool]:
        """(delay, fail) for one call, drawn from the seeded generator."""
        with self._lock:
            delay = 0.0
            if self._latency is not None and self._random.random() < self.latency_probability:
                low, high = self._latency
                delay = low if low == high else self._random.uniform(low, high)
                self.injected_delays += 1
            fail = self.error is not None and self._random.random() < self.probability
            if fail:
                self.injected_failures += 1
        return delay, fail

    def make_error(self, operation: str) -> BaseException:
        """The error to inject into ``operation``."""
        spec = self.error
        text = f"chaos: injected failure in {operation}"
        details = {"chaos": True, "operation": operation}
        if isinstance(spec, int) and not isinstance(spec, bool):
            cls = _STATUS_ERRORS.get(spec)
            if cls is not None:
                return cls(text, details=details, retry_after=self.retry_after)
            info = catalog.get(code_for_status(spec))
            base = ClientError if spec < 500 else AppError
            return base(
                text,
                details=details,
                code=code_for_status(spec),
                status=spec,
                retriable=info.retriable if info else False,
                retry_after=self.retry_after,
            )
        if isinstance(spec, BaseException):
            return copy.copy(spec)  # a fresh object: a re-raised one would grow its traceback
        if isinstance(spec, type) and issubclass(spec, BaseException):
            if issubclass(spec, AppError):
                return spec(text, details=details, retry_after=self.retry_after)
            return spec(text)
        if callable(spec):
            made = spec()
            if not isinstance(made, BaseException):
                msg = f"Chaos(error=...): the factory returned {made!r}, not an exception"
                raise TypeError(msg)
            return made
        msg = "Chaos(error=None) injects latency only"  # pragma: no cover - _plan checks
        raise RuntimeError(msg)

    def _fail(self, operation: str) -> BaseException:
        logger.warning(
            "chaos: injecting a failure into %s",
            operation,
            extra={"operation": operation, "chaos": True},
        )
        return self.make_error(operation)

    def inject(self, operation: str = "call") -> None:
        """Maybe wait, maybe raise: call this at the point where a failure should appear."""
        if not self.active:
            return
        delay, fail = self._plan()
        if delay:
            self.clock.sleep(delay)
        if fail:
            raise self._fail(operation)

    async def inject_async(self, operation: str = "call") -> None:
        if not self.active:
            return
        delay, fail = self._plan()
        if delay:
            await self.clock.asleep(delay)
        if fail:
            raise self._fail(operation)

    # -- wrapping -------------------------------------------------------------------------------

    def __call__(self, fn: Callable[P, T]) -> Callable[P, T]:
        """Inject into every call of ``fn`` (sync or async) while chaos is on."""
        reject_generators(fn, "Chaos")
        name = operation_name(fn)
        if is_async_callable(fn):

            @functools.wraps(fn)
            async def async_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
                await self.inject_async(name)
                return await fn(*args, **kwargs)  # type: ignore[misc]

            return cast("Callable[P, T]", async_wrapper)

        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
            self.inject(name)
            return fn(*args, **kwargs)

        return wrapper

    def wrap(self, target: T, *, methods: Iterable[str] | None = None) -> T:
        """A stand-in for ``target`` whose methods (all public ones, or ``methods``) get
        chaos injected; everything else passes through."""
        names = None if methods is None else frozenset(methods)
        if names is not None:
            missing = sorted(n for n in names if not callable(getattr(target, n, None)))
            if missing:
                msg = f"Chaos.wrap(): {type(target).__name__} has no method(s) {missing}"
                raise AttributeError(msg)
        return cast("T", _ChaosProxy(target, self, names))

    def __repr__(self) -> str:
        return (
            f"Chaos(probability={self.probability!r}, error={self.error!r}, "
            f"latency={self._latency!r}, active={self.active!r})"
        )


class _ChaosProxy:
    __slots__ = ("_chaos", "_names", "_target", "_wrapped")

    def __init__(self, target: Any, chaos: Chaos, names: frozenset[str] | None) -> None:
        object.__setattr__(self, "_target", target)
        object.__setattr__(self, "_chaos", chaos)
        object.__setattr__(self, "_names", names)
        object.__setattr__(self, "_wrapped", {})

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._target, name)
        selected = name in self._names if self._names is not None else not name.startswith("_")
        if not selected or not callable(value) or inspect.isclass(value):
            return value
        cached = self._wrapped.get(name)
        if cached is None:
            label = f"{type(self._target).__name__}.{name}"
            chaos = self._chaos
            if is_async_callable(value):

                async def async_method(*args: Any, **kwargs: Any) -> Any:
                    await chaos.inject_async(label)
                    return await getattr(self._target, name)(*args, **kwargs)

                cached = async_method
            else:

                def method(*args: Any, **kwargs: Any) -> Any:
                    chaos.inject(label)
                    return getattr(self._target, name)(*args, **kwargs)

                cached = method
            self._wrapped[name] = cached
        return cached

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._target, name, value)

    def __repr__(self) -> str:
        return f"<chaos proxy of {self._target!r}>"
