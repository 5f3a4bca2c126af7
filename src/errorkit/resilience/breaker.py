"""Circuit breaker: closed, open, half-open; thread-safe and asyncio-native.

* The state lock is held only to read and update counters, never while the protected call
  runs, so one slow call never serialises the others.
* Half-open admits at most ``half_open_max_calls`` probes at a time, each holding a lease
  that expires after ``probe_timeout`` so a probe that never returns cannot wedge it.
* An open breaker raises a fresh :class:`errorkit.CircuitOpenError` per rejection (503,
  ``retry_after`` = seconds until a probe may pass), built cheaply and never retained, so a
  flood of rejections costs no memory.
* State lives in a backend: in memory by default (:class:`MemoryBackend`), or shared between
  processes and hosts through Redis (:class:`errorkit.resilience.RedisBackend`).
"""

from __future__ import annotations

import contextvars
import logging
import math
import re
import threading
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from types import TracebackType
from typing import Any, ParamSpec, Protocol, TypeVar, cast

from errorkit import hooks
from errorkit._guard import guard
from errorkit.errors import AppError, CircuitOpenError, error_class
from errorkit.resilience._common import (
    ErrorFilter,
    check_count,
    check_seconds,
    error_matcher,
    operation_name,
    safe_message,
    server_side,
    wrap_calls,
)
from errorkit.resilience.clock import SYSTEM_CLOCK, Clock
from errorkit.resilience.fallback import fallback_used

__all__ = [
    "BreakerBackend",
    "BreakerConfig",
    "BreakerState",
    "BreakerStatus",
    "CircuitBreaker",
    "CircuitState",
    "LastFailure",
    "MemoryBackend",
    "OpenError",
    "Permit",
    "Ticket",
    "TransitionListener",
    "validate_breaker_name",
]

P = ParamSpec("P")
T = TypeVar("T")

logger = logging.getLogger("errorkit.breaker")


class CircuitState(StrEnum):
    """Where a breaker is: passing calls, refusing them, or letting probes through."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


OpenError = type[BaseException] | Callable[[CircuitOpenError], BaseException]
"""What an open breaker raises instead of :class:`CircuitOpenError`: an exception class, or
a factory given the ``CircuitOpenError`` (``retry_after``, ``details["service"]``)."""

# The members as plain globals for the call path: ``CircuitState.OPEN`` is an attribute
# lookup on an enum class, which costs about ten times a global read.
_CLOSED = CircuitState.CLOSED
_OPEN = CircuitState.OPEN

TransitionListener = Callable[[str, CircuitState, CircuitState], object]
"""``listener(name, old_state, new_state)``, called after each transition."""

_breaker_hooks = hooks._channel("breaker")

_NAME_RE = re.compile(r"^[A-Za-z0-9_.:/@-]{1,200}$")


def validate_breaker_name(name: object, what: str = "breaker name") -> str:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        msg = (
            f"{what} {name!r} is not valid: use 1-200 letters, digits or _ . : / @ - "
            "(for example 'payments-api' or 'db.replica:5432')"
        )
        raise ValueError(msg)
    return name


@dataclass(frozen=True, slots=True)
class BreakerConfig:
    """When a breaker opens and how it recovers. Checked when built, with the fix named."""

    failure_threshold: int | None = 5
    """Consecutive counted failures that open a closed breaker (None: rate only)."""
    recovery_timeout: float = 30.0
    """Seconds an open breaker refuses calls before letting a probe through."""
    success_threshold: int = 1
    """Successful probes in half-open that close the breaker."""
    half_open_max_calls: int = 1
    """Probes admitted at the same time while half-open."""
    failure_rate_threshold: float | None = None
    """Open when this fraction (0-1] of calls in ``window`` failed (None: count only)."""
    window: float = 60.0
    """Seconds of history the failure rate looks at."""
    minimum_calls: int = 10
    """Calls in the window before the failure rate may open the breaker."""
    probe_timeout: float = 60.0
    """Seconds after which a probe that has not reported back frees its slot."""

    def __post_init__(self) -> None:
        owner = "circuit_breaker"
        if self.failure_threshold is None and self.failure_rate_threshold is None:
            msg = (
                "circuit_breaker(failure_threshold=None) with no failure_rate_threshold would "
                "never open: set failure_threshold=<count> or failure_rate_threshold=<0-1>"
            )
            raise ValueError(msg)
        if self.failure_threshold is not None:
            check_count(owner, "failure_threshold", self.failure_threshold)
        object.__setattr__(
            self,
            "recovery_timeout",
            check_seconds(owner, "recovery_timeout", self.recovery_timeout),
        )
        check_count(owner, "success_threshold", self.success_threshold)
        check_count(owner, "half_open_max_calls", self.half_open_max_calls)
        rate = self.failure_rate_threshold
        if rate is not None and (
            isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 < rate <= 1
        ):
            msg = (
                f"circuit_breaker(failure_rate_threshold={rate!r}): use a fraction in (0, 1], "
                "for example 0.5 to open when half the calls fail"
            )
            raise ValueError(msg)
        object.__setattr__(
            self, "window", check_seconds(owner, "window", self.window, allow_zero=False)
        )
        check_count(owner, "minimum_calls", self.minimum_calls)
        object.__setattr__(
            self,
            "probe_timeout",
            check_seconds(owner, "probe_timeout", self.probe_timeout, allow_zero=False),
        )


@dataclass(frozen=True, slots=True)
class LastFailure:
    """The most recent counted failure: its class and scrubbed message, and when."""

    type: str
    message: str
    at: datetime

    def as_dict(self) -> dict[str, str]:
        return {"type": self.type, "message": self.message, "at": self.at.isoformat()}


@dataclass(frozen=True, slots=True)
class BreakerStatus:
    """A breaker at one moment, for people and dashboards."""

    name: str
    state: CircuitState
    backend: str
    failures: int
    """Consecutive counted failures while closed."""
    successes: int
    """Successful probes so far in half-open."""
    window_calls: int
    window_failures: int
    probes_in_flight: int
    rejected: int
    """Calls refused since the process (memory) or the shared state (Redis) started."""
    last_failure: LastFailure | None
    opened_at: datetime | None
    next_probe_at: datetime | None
    config: BreakerConfig = field(repr=False, default_factory=BreakerConfig)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "state": str(self.state),
            "backend": self.backend,
            "failures": self.failures,
            "successes": self.successes,
            "window_calls": self.window_calls,
            "window_failures": self.window_failures,
            "probes_in_flight": self.probes_in_flight,
            "rejected": self.rejected,
            "last_failure": self.last_failure.as_dict() if self.last_failure else None,
            "opened_at": self.opened_at.isoformat() if self.opened_at else None,
            "next_probe_at": self.next_probe_at.isoformat() if self.next_probe_at else None,
            "failure_threshold": self.config.failure_threshold,
            "failure_rate_threshold": self.config.failure_rate_threshold,
            "recovery_timeout": self.config.recovery_timeout,
            "half_open_max_calls": self.config.half_open_max_calls,
        }


@dataclass(frozen=True, slots=True)
class Ticket:
    """What a state hands out when it admits a call; the outcome is recorded against it.

    ``generation`` changes at every transition and reset, so the outcome of a call admitted
    before a transition cannot be mistaken for one admitted after it."""

    generation: int
    probe: bool
    lease: str | int | None = None
    shared: bool = False
    """Issued by shared (Redis) state rather than this process's own."""
    quiet: bool = False
    """A success would change nothing (closed, no failures counted): no need to record it."""


Outcome = bool | None
"""True: success; False: counted failure; None: neutral (an ignored error, or a cancelled
call): no verdict on the dependency, counts nothing, only frees a probe slot."""


class BreakerState(Protocol):
    """The state of one breaker, wherever it is kept. ``acquire`` returns a :class:`Ticket`
    or, when the call is refused, the seconds until one may pass (any number: what is not a
    ``Ticket`` is a refusal, which is how the breaker tells the two apart)."""

    backend: str
    sync_only: bool
    """True when the async methods just call the sync ones (they never wait on I/O)."""

    def acquire(self) -> Ticket | float: ...
    async def acquire_async(self) -> Ticket | float: ...
    def record(self, ticket: Ticket, outcome: Outcome, failure: LastFailure | None) -> None: ...
    async def record_async(
        self, ticket: Ticket, outcome: Outcome, failure: LastFailure | None
    ) -> None: ...
    def status(self, name: str) -> BreakerStatus: ...
    async def status_async(self, name: str) -> BreakerStatus: ...
    def reset(self) -> None: ...
    async def reset_async(self) -> None: ...


class BreakerBackend(Protocol):
    """Makes the state of each breaker by name."""

    def state_for(
        self,
        name: str,
        config: BreakerConfig,
        clock: Clock,
        notify: Callable[[CircuitState, CircuitState], None],
    ) -> BreakerState: ...


class _Window:
    """Calls and failures over the last ``window`` seconds, in ten buckets (bounded)."""

    __slots__ = ("_buckets", "_width", "calls", "failures")

    BUCKETS = 10

    def __init__(self, window: float) -> None:
        self._width = window / self.BUCKETS
        self._buckets: deque[list[int]] = deque()
        self.calls = 0
        self.failures = 0

    def _prune(self, index: int) -> None:
        buckets = self._buckets
        while buckets and buckets[0][0] <= index - self.BUCKETS:
            _, calls, failures = buckets.popleft()
            self.calls -= calls
            self.failures -= failures

    def add(self, now: float, failed: bool) -> None:
        index = math.floor(now / self._width)
        self._prune(index)
        buckets = self._buckets
        if buckets and buckets[-1][0] == index:
            bucket = buckets[-1]
        else:
            bucket = [index, 0, 0]
            buckets.append(bucket)
        bucket[1] += 1
        self.calls += 1
        if failed:
            bucket[2] += 1
            self.failures += 1

    def totals(self, now: float) -> tuple[int, int]:
        self._prune(math.floor(now / self._width))
        return self.calls, self.failures

    def clear(self) -> None:
        self._buckets.clear()
        self.calls = 0
        self.failures = 0


def _wall(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC)


class MemoryState:
    """One breaker's state in this process. A short lock guards the counters only."""

    backend = "memory"
    sync_only = True

    def __init__(
        self,
        config: BreakerConfig,
        clock: Clock,
        notify: Callable[[CircuitState, CircuitState], None],
    ) -> None:
        self._config = config
        self._monotonic = clock.monotonic
        self._time = clock.time
        self._notify = notify
        self._lock = threading.Lock()
        self._state = CircuitState.CLOSED
        self._generation = 0
        self._closed_ticket = Ticket(0, False)
        self._failures = 0
        self._successes = 0
        self._opened_at = 0.0
        self._opened_wall: float | None = None
        self._probes: dict[object, float] = {}  # a probe's lease -> when it expires
        self._probe_seq = 0
        self._rejected = 0
        self._last_failure: LastFailure | None = None
        self._window = _Window(config.window) if config.failure_rate_threshold else None

    # -- transitions (called with the lock held; return what to announce) ---------------------

    def _move(self, new: CircuitState, now: float) -> tuple[CircuitState, CircuitState]:
        old = self._state
        self._state = new
        self._generation += 1
        self._probes.clear()
        self._successes = 0
        if new is CircuitState.OPEN:
            self._opened_at = now
            self._opened_wall = self._time()
        elif new is CircuitState.CLOSED:
            self._failures = 0
            self._opened_wall = None
            if self._window is not None:
                self._window.clear()
        self._closed_ticket = Ticket(self._generation, False)
        return old, new

    def _should_open(self, now: float) -> bool:
        threshold = self._config.failure_threshold
        if threshold is not None and self._failures >= threshold:
            return True
        window = self._window
        rate = self._config.failure_rate_threshold
        if window is not None and rate is not None:
            calls, failures = window.totals(now)
            return calls >= self._config.minimum_calls and failures >= rate * calls
        return False

    # -- the protocol ---------------------------------------------------------------------------

    def acquire(self) -> Ticket | float:
        ticket = self._closed_ticket
        state = self._state
        if state is _CLOSED:
            return ticket  # no lock: an outcome of a stale generation is ignored on record
        now = self._monotonic()
        config = self._config
        if state is _OPEN:
            # Refused without the lock, so that a flood of refusals does not queue on it; a
            # move made meanwhile is seen by the next call. The count is an int increment
            # with no call inside, which the GIL does not interrupt.
            left = self._opened_at + config.recovery_timeout - now
            if left > 0:
                self._rejected += 1
                return left
        moved = None
        with self._lock:
            current: CircuitState = self._state  # re-read: it may have moved meanwhile
            if current is _CLOSED:
                return self._closed_ticket
            if current is _OPEN:
                left = self._opened_at + config.recovery_timeout - now
                if left > 0:
                    self._rejected += 1
                    return left
                moved = self._move(CircuitState.HALF_OPEN, now)
            probes = self._probes
            if probes:
                for key in [k for k, expiry in probes.items() if expiry <= now]:
                    del probes[key]
            if len(probes) >= config.half_open_max_calls:
                self._rejected += 1
                result: Ticket | float = max(
                    1e-3, min(config.recovery_timeout, min(probes.values()) - now)
                )
            else:
                self._probe_seq += 1
                probes[self._probe_seq] = now + config.probe_timeout
                result = Ticket(self._generation, True, self._probe_seq)
        if moved is not None:
            self._notify(*moved)
        return result

    async def acquire_async(self) -> Ticket | float:
        return self.acquire()

    def record(self, ticket: Ticket, outcome: Outcome, failure: LastFailure | None) -> None:
        if (
            outcome is True
            and not ticket.probe
            and self._failures == 0
            and self._window is None
            and ticket.generation == self._generation
        ):
            return  # the common case: a success while closed and healthy changes nothing
        now = self._monotonic()
        moved = None
        with self._lock:
            if failure is not None:
                self._last_failure = failure
            if ticket.probe:
                self._probes.pop(ticket.lease, None)
            if outcome is None or ticket.generation != self._generation:
                return
            state = self._state
            if state is CircuitState.CLOSED:
                if outcome:
                    self._failures = 0
                else:
                    self._failures += 1
                if self._window is not None:
                    self._window.add(now, not outcome)
                if not outcome and self._should_open(now):
                    moved = self._move(CircuitState.OPEN, now)
            elif state is CircuitState.HALF_OPEN and ticket.probe:
                if outcome:
                    self._successes += 1
                    if self._successes >= self._config.success_threshold:
                        moved = self._move(CircuitState.CLOSED, now)
                else:
                    moved = self._move(CircuitState.OPEN, now)
        if moved is not None:
            self._notify(*moved)

    async def record_async(
        self, ticket: Ticket, outcome: Outcome, failure: LastFailure | None
    ) -> None:
        self.record(ticket, outcome, failure)

    def status(self, name: str) -> BreakerStatus:
        now = self._monotonic()
        wall_now = self._time()
        config = self._config
        with self._lock:
            state = self._state
            window_calls, window_failures = (
                self._window.totals(now) if self._window is not None else (0, 0)
            )
            live = [expiry for expiry in self._probes.values() if expiry > now]
            next_probe: float | None = None
            if state is CircuitState.OPEN:
                next_probe = wall_now + max(0.0, self._opened_at + config.recovery_timeout - now)
            elif state is CircuitState.HALF_OPEN:
                full = len(live) >= config.half_open_max_calls
                next_probe = wall_now + (max(0.0, min(live) - now) if full else 0.0)
            return BreakerStatus(
                name=name,
                state=state,
                backend=self.backend,
                failures=self._failures,
                successes=self._successes,
                window_calls=window_calls,
                window_failures=window_failures,
                probes_in_flight=len(live),
                rejected=self._rejected,
                last_failure=self._last_failure,
                opened_at=_wall(self._opened_wall),
                next_probe_at=_wall(next_probe),
                config=config,
            )

    async def status_async(self, name: str) -> BreakerStatus:
        return self.status(name)

    def reset(self) -> None:
        now = self._monotonic()
        with self._lock:
            was = self._state
            moved = self._move(CircuitState.CLOSED, now)
            self._last_failure = None
        if was is not CircuitState.CLOSED:
            self._notify(*moved)

    async def reset_async(self) -> None:
        self.reset()

    # -- for shared state standing in on this process's state ---------------------------------

    @property
    def current(self) -> CircuitState:
        return self._state

    @property
    def opened_wall(self) -> float | None:
        """When it opened, on the clock's ``time()`` (None while closed)."""
        return self._opened_wall

    def adopt(self, state: CircuitState, opened_wall: float | None) -> None:
        """Take ``state`` (opened at ``opened_wall`` on the clock's ``time()``) without
        announcing it: the caller already did, it is what the shared state said."""
        now = self._monotonic()
        with self._lock:
            self._move(state, now)
            if state is not CircuitState.CLOSED:
                wall = self._time() if opened_wall is None else opened_wall
                self._opened_wall = wall
                self._opened_at = now - max(0.0, self._time() - wall)
                self._failures = 0


class MemoryBackend:
    """Breaker state kept in this process (the default)."""

    def state_for(
        self,
        name: str,
        config: BreakerConfig,
        clock: Clock,
        notify: Callable[[CircuitState, CircuitState], None],
    ) -> MemoryState:
        return MemoryState(config, clock, notify)

    def __repr__(self) -> str:
        return "MemoryBackend()"


# -- the breaker ----------------------------------------------------------------------------

_active: contextvars.ContextVar[tuple[tuple[CircuitBreaker, Ticket], ...]] = contextvars.ContextVar(
    "errorkit_breaker_tickets", default=()
)


class Permit:
    """Leave to make one call through a breaker; report how it went exactly once.

    ``breaker.acquire()`` hands one out (or raises :class:`CircuitOpenError`);
    ``permit.release(exc)`` records the outcome (``exc=None``: success). For code that
    cannot use ``call``, the decorator or ``with breaker``."""

    __slots__ = ("_breaker", "_done", "ticket")

    def __init__(self, breaker: CircuitBreaker, ticket: Ticket) -> None:
        self._breaker = breaker
        self.ticket = ticket
        self._done = False

    def release(self, exc: BaseException | None = None) -> None:
        if self._done:
            return
        self._done = True
        outcome, failure = self._breaker._outcome(exc)
        self._breaker._state.record(self.ticket, outcome, failure)

    async def release_async(self, exc: BaseException | None = None) -> None:
        if self._done:
            return
        self._done = True
        outcome, failure = self._breaker._outcome(exc)
        await self._breaker._state.record_async(self.ticket, outcome, failure)


class CircuitBreaker:
    """Stops calling a failing dependency for a while, then probes it.

    Use it as a decorator (sync or async), with ``call``/``call_async``, or as a context
    manager (``with breaker:`` / ``async with breaker:``). An open breaker raises
    :class:`errorkit.CircuitOpenError`, or returns ``fallback(*args, **kwargs)`` when a
    fallback is given (the fallback also answers when a counted failure happens).
    ``open_error`` raises the caller's own error instead: an exception class (an errorkit
    error is made with ``retry_after=``, any other with the message) or a factory called
    with the ``CircuitOpenError``; either way its ``__cause__`` is the ``CircuitOpenError``.

    Each call has one of three outcomes: a **success** (it returned, or by default raised a
    client error: the dependency answered), a **failure** (counted towards opening), or
    **neutral** (counts nothing: the failure count is kept, a half-open probe frees its slot
    and the breaker stays half-open). By default errors that say the dependency is failing
    (what classification calls retriable or server-side) are failures and client errors
    (4xx) successes. ``failure_on`` (exception classes or a predicate) names the failures
    instead, and every other exception is then neutral. ``ignore_on`` (exception classes or
    a predicate) makes exceptions neutral whatever else says, e.g. a local bug.
    """

    def __init__(
        self,
        name: str,
        *,
        failure_threshold: int | None = 5,
        recovery_timeout: float = 30.0,
        success_threshold: int = 1,
        half_open_max_calls: int = 1,
        failure_rate_threshold: float | None = None,
        window: float = 60.0,
        minimum_calls: int = 10,
        probe_timeout: float = 60.0,
        failure_on: ErrorFilter | None = None,
        ignore_on: ErrorFilter | None = None,
        fallback: Callable[..., Any] | None = None,
        open_error: OpenError | None = None,
        backend: BreakerBackend | None = None,
        clock: Clock | None = None,
        listeners: Sequence[TransitionListener] = (),
    ) -> None:
        self.name = validate_breaker_name(name)
        self.config = BreakerConfig(
            failure_threshold=failure_threshold,
            recovery_timeout=recovery_timeout,
            success_threshold=success_threshold,
            half_open_max_calls=half_open_max_calls,
            failure_rate_threshold=failure_rate_threshold,
            window=window,
            minimum_calls=minimum_calls,
            probe_timeout=probe_timeout,
        )
        self._counts = error_matcher(
            failure_on, server_side, owner="circuit_breaker", argument="failure_on"
        )
        # With failure_on, what it does not name is neutral; by default a client error is
        # an answer (success).
        self._other: Outcome = None if failure_on is not None else True
        self._ignores = (
            error_matcher(ignore_on, _never, owner="circuit_breaker", argument="ignore_on")
            if ignore_on is not None
            else None
        )
        self._failure_on = failure_on
        self._ignore_on = ignore_on
        if fallback is not None and not callable(fallback):
            msg = (
                f"circuit_breaker(fallback={fallback!r}): pass a callable taking the same "
                "arguments as the protected call (use `lambda *a, **k: value` for a value)"
            )
            raise TypeError(msg)
        self.fallback = fallback
        if open_error is not None and not (
            (isinstance(open_error, type) and issubclass(open_error, BaseException))
            or (callable(open_error) and not isinstance(open_error, type))
        ):
            msg = (
                f"circuit_breaker(open_error={open_error!r}): pass an exception class, or a "
                "callable(CircuitOpenError) returning the exception to raise"
            )
            raise TypeError(msg)
        self.open_error = open_error
        self.clock = clock if clock is not None else SYSTEM_CLOCK
        self.backend: BreakerBackend = backend if backend is not None else MemoryBackend()
        self._listeners: list[TransitionListener] = list(listeners)
        self._shared_listeners: list[TransitionListener] = []
        self._message = f"{self.name} is unavailable (circuit open)."
        self._state: BreakerState = self.backend.state_for(
            self.name, self.config, self.clock, self._on_transition
        )

    # -- observing ------------------------------------------------------------------------------

    @property
    def state(self) -> CircuitState:
        """The state as last stored (an open breaker past its timeout turns half-open on the
        next call)."""
        return self._state.status(self.name).state

    def status(self) -> BreakerStatus:
        return self._state.status(self.name)

    async def status_async(self) -> BreakerStatus:
        return await self._state.status_async(self.name)

    def add_listener(self, listener: TransitionListener) -> None:
        """Call ``listener(name, old_state, new_state)`` after each transition this process
        makes or (with shared state) observes. Listener failures never reach the protected
        call."""
        if not callable(listener):
            msg = f"add_listener({listener!r}): pass a callable(name, old_state, new_state)"
            raise TypeError(msg)
        self._listeners.append(listener)

    def remove_listener(self, listener: TransitionListener) -> None:
        self._listeners[:] = [cb for cb in self._listeners if cb is not listener]

    def reset(self) -> None:
        """Close the breaker and clear its counters (for every process sharing it)."""
        self._state.reset()

    async def reset_async(self) -> None:
        await self._state.reset_async()

    def _on_transition(self, old: CircuitState, new: CircuitState) -> None:
        level = logging.WARNING if new is CircuitState.OPEN else logging.INFO
        logger.log(
            level,
            "circuit %s: %s -> %s",
            self.name,
            old,
            new,
            extra={
                "breaker": self.name,
                "old_state": str(old),
                "new_state": str(new),
                "backend": type(self.backend).__name__,
            },
        )
        for listener in (*self._listeners, *self._shared_listeners):
            with guard("breaker.listener"):
                listener(self.name, old, new)
        _breaker_hooks.emit(self.name, old, new)  # errorkit.hooks.add("breaker", ...)

    # -- permits --------------------------------------------------------------------------------

    def _verdict(self, exc: Exception) -> Outcome:
        """What an exception from the protected call says: failure (False), success (True)
        or neutral (None)."""
        ignores = self._ignores
        if ignores is not None and ignores(exc):
            return None
        if self._counts(exc):
            return False
        return self._other

    def _outcome(self, exc: BaseException | None) -> tuple[Outcome, LastFailure | None]:
        if exc is None:
            return True, None
        if not isinstance(exc, Exception):
            return None, None  # cancelled or interrupted: no verdict on the dependency
        verdict = self._verdict(exc)
        return verdict, (self._failure(exc) if verdict is False else None)

    def _failure(self, exc: BaseException) -> LastFailure:
        at = datetime.fromtimestamp(self.clock.time(), UTC)
        return LastFailure(error_class(exc), safe_message(exc), at)

    def _reject(self, retry_after: float) -> BaseException:
        # Not logged one by one: a flood of refusals would flood the logs. The transition to
        # open is logged, and status().rejected counts them.
        rejection = CircuitOpenError.rejection(self.name, retry_after, self._message)
        if self.open_error is None:
            return rejection
        return self._open(rejection)

    def _open(self, rejection: CircuitOpenError) -> BaseException:
        """The error ``open_error`` makes of ``rejection`` (``rejection`` itself without)."""
        make = self.open_error
        if make is None:
            return rejection
        error: object
        if isinstance(make, type):
            cls = cast("type[BaseException]", make)
            if issubclass(cls, AppError):
                error = cls(retry_after=rejection.retry_after)
            else:
                error = cls(rejection.message)
        else:
            error = make(rejection)
        if not isinstance(error, BaseException):
            msg = (
                f"circuit breaker {self.name!r}: open_error={make!r} returned {error!r}; "
                "it must return the exception to raise"
            )
            raise TypeError(msg)
        error.__cause__ = rejection
        error.__suppress_context__ = True
        return error

    def _admitted(self, ticket: Ticket | float) -> Ticket:
        """The ticket, or the refusal (seconds to wait) raised."""
        if not isinstance(ticket, Ticket):
            raise self._reject(ticket)
        return ticket

    def _permit(self) -> Permit:
        """Like :meth:`acquire`, but a refusal is always the plain CircuitOpenError."""
        ticket = self._state.acquire()
        if not isinstance(ticket, Ticket):
            raise CircuitOpenError.rejection(self.name, ticket, self._message)
        return Permit(self, ticket)

    async def _permit_async(self) -> Permit:
        ticket = await self._state.acquire_async()
        if not isinstance(ticket, Ticket):
            raise CircuitOpenError.rejection(self.name, ticket, self._message)
        return Permit(self, ticket)

    def acquire(self) -> Permit:
        """A :class:`Permit` for one call, or :class:`CircuitOpenError` (or ``open_error``)
        when refused."""
        return Permit(self, self._admitted(self._state.acquire()))

    async def acquire_async(self) -> Permit:
        return Permit(self, self._admitted(await self._state.acquire_async()))

    # -- calling --------------------------------------------------------------------------------

    def call(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)`` through the breaker."""
        state = self._state
        ticket = state.acquire()
        if not isinstance(ticket, Ticket):
            if self.fallback is not None:
                return cast("T", self._fallback(args, kwargs))
            if self.open_error is None:  # the common refusal, made here: one call less
                raise CircuitOpenError.rejection(self.name, ticket, self._message)
            raise self._reject(ticket)
        try:
            result = fn(*args, **kwargs)
        except Exception as exc:
            verdict = self._verdict(exc)
            if verdict is False:
                state.record(ticket, False, self._failure(exc))
                if self.fallback is not None:
                    return cast("T", self._fallback(args, kwargs, exc))
            else:
                state.record(ticket, verdict, None)
            raise
        except BaseException:
            state.record(ticket, None, None)
            raise
        state.record(ticket, True, None)
        return result

    async def call_async(self, fn: Callable[..., Awaitable[T]], /, *args: Any, **kwargs: Any) -> T:
        """``await fn(*args, **kwargs)`` through the breaker."""
        state = self._state
        sync = state.sync_only
        ticket = state.acquire() if sync else await state.acquire_async()
        if not isinstance(ticket, Ticket):
            if self.fallback is not None:
                return cast("T", await self._fallback_async(args, kwargs))
            if self.open_error is None:
                raise CircuitOpenError.rejection(self.name, ticket, self._message)
            raise self._reject(ticket)
        try:
            result = await fn(*args, **kwargs)
        except Exception as exc:
            outcome = self._verdict(exc)
            counted = outcome is False
            failure = self._failure(exc) if counted else None
            if sync:
                state.record(ticket, outcome, failure)
            else:
                await state.record_async(ticket, outcome, failure)
            if counted and self.fallback is not None:
                return cast("T", await self._fallback_async(args, kwargs, exc))
            raise
        except BaseException:
            if sync:
                state.record(ticket, None, None)
            else:
                await _abandon_async(state, ticket)
            raise
        if sync:
            state.record(ticket, True, None)
        else:
            await state.record_async(ticket, True, None)
        return result

    def _fallback(
        self, args: tuple[Any, ...], kwargs: dict[str, Any], exc: BaseException | None = None
    ) -> Any:
        fallback = self.fallback
        if fallback is None:  # pragma: no cover - callers check first
            raise self._reject(0.0)
        _log_fallback(self.name, exc)
        fallback_used(self.name, operation_name(fallback), exc)
        return fallback(*args, **kwargs)

    async def _fallback_async(
        self, args: tuple[Any, ...], kwargs: dict[str, Any], exc: BaseException | None = None
    ) -> Any:
        result = self._fallback(args, kwargs, exc)
        if isinstance(result, Awaitable):
            return await result
        return result

    # -- decorator and context managers ---------------------------------------------------------

    def __call__(self, fn: Callable[P, T]) -> Callable[P, T]:
        """Protect every call of ``fn`` (sync or async) with this breaker."""
        return wrap_calls(fn, self.call, self.call_async, f"circuit breaker {self.name!r}")

    def __enter__(self) -> CircuitBreaker:
        ticket = self._admitted(self._state.acquire())
        _active.set((*_active.get(), (self, ticket)))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        ticket = self._pop_ticket()
        outcome, failure = self._outcome(exc)
        self._state.record(ticket, outcome, failure)

    async def __aenter__(self) -> CircuitBreaker:
        ticket = self._admitted(await self._state.acquire_async())
        _active.set((*_active.get(), (self, ticket)))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        ticket = self._pop_ticket()
        outcome, failure = self._outcome(exc)
        if outcome is None:
            await _abandon_async(self._state, ticket)
        else:
            await self._state.record_async(ticket, outcome, failure)

    def _pop_ticket(self) -> Ticket:
        stack = _active.get()
        for i in range(len(stack) - 1, -1, -1):
            if stack[i][0] is self:
                _active.set(stack[:i] + stack[i + 1 :])
                return stack[i][1]
        msg = f"circuit breaker {self.name!r} exited a `with` block it did not enter"
        raise RuntimeError(msg)

    def __repr__(self) -> str:
        return f"CircuitBreaker({self.name!r}, backend={self.backend!r}, config={self.config!r})"


def _never(exc: BaseException) -> bool:
    return False


async def _abandon_async(state: BreakerState, ticket: Ticket) -> None:
    # The task is being cancelled: free the probe slot, and never let this raise.
    with guard("breaker.abandon"):
        await state.record_async(ticket, None, None)


def _log_fallback(name: str, exc: BaseException | None) -> None:
    if exc is None:
        logger.debug("circuit %s: open, using fallback", name, extra={"breaker": name})
    else:
        logger.warning(
            "circuit %s: call failed (%s), using fallback",
            name,
            error_class(exc),
            extra={"breaker": name, "error_class": error_class(exc)},
        )
