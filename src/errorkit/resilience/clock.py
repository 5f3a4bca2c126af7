"""Time for retries, breakers, timeouts and chaos: one injectable clock, and a switch that
turns every retry wait off in tests.

Every timing decision in :mod:`errorkit.resilience` reads a :class:`Clock`. Production code
uses :data:`SYSTEM_CLOCK`; tests pass a :class:`ManualClock`, which only moves when told to
(or when something sleeps on it) and records every wait, so backoff and breaker timing are
tested without sleeping and without flakiness.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Protocol, runtime_checkable

__all__ = [
    "SYSTEM_CLOCK",
    "Clock",
    "ManualClock",
    "SystemClock",
    "is_testing",
    "no_waits",
    "set_testing",
]


@runtime_checkable
class Clock(Protocol):
    """Where errorkit reads time and how it waits."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (intervals, deadlines)."""
        ...

    def time(self) -> float:
        """Seconds since the epoch (timestamps shown to people, state shared between hosts)."""
        ...

    def sleep(self, seconds: float) -> None:
        """Block the calling thread for ``seconds``."""
        ...

    async def asleep(self, seconds: float) -> None:
        """Suspend the calling task for ``seconds``."""
        ...


class SystemClock:
    """The real clock: :func:`time.monotonic`, :func:`time.time`, real sleeping."""

    __slots__ = ()

    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)

    async def asleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))

    def __repr__(self) -> str:
        return "SystemClock()"


SYSTEM_CLOCK = SystemClock()


class ManualClock:
    """A clock that moves only when told to, or when something sleeps on it.

    ``sleep``/``asleep`` do not wait: they record the requested duration in :attr:`sleeps`
    and move the clock forward by it, so code under test sees exactly the time it asked for.
    Thread-safe.
    """

    def __init__(self, start: float = 0.0, *, wall: float = 1_700_000_000.0) -> None:
        self._now = float(start)
        self._wall_offset = float(wall) - float(start)
        self._lock = threading.Lock()
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self._now

    def time(self) -> float:
        return self._now + self._wall_offset

    def advance(self, seconds: float) -> None:
        """Move the clock forward by ``seconds`` (>= 0)."""
        if seconds < 0:
            msg = f"ManualClock.advance({seconds!r}): a clock cannot go back; pass seconds >= 0"
            raise ValueError(msg)
        with self._lock:
            self._now += seconds

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self._now += max(0.0, seconds)

    async def asleep(self, seconds: float) -> None:
        self.sleep(seconds)
        await asyncio.sleep(0)  # still a suspension point, like a real sleep

    def __repr__(self) -> str:
        return f"ManualClock(now={self._now!r})"


class _Testing:
    __slots__ = ("attempts", "enabled")

    def __init__(self) -> None:
        self.enabled = False
        self.attempts: int | None = None


_testing = _Testing()


def set_testing(enabled: bool, *, attempts: int | None = None) -> None:
    """Turn retry waits off (``enabled=True``) or back on, process-wide.

    While testing mode is on, retries still happen and are still logged, but nothing sleeps.
    ``attempts`` additionally caps every retry policy's attempts (``attempts=1``: no retries
    at all), so a test of a failure path does not run the same failing call again and again.
    """
    if attempts is not None and (not isinstance(attempts, int) or attempts < 1):
        msg = f"set_testing(attempts={attempts!r}): use a whole number >= 1, or None for no cap"
        raise ValueError(msg)
    _testing.enabled = bool(enabled)
    _testing.attempts = attempts if enabled else None


def is_testing() -> bool:
    """Whether :func:`set_testing` turned retry waits off."""
    return _testing.enabled


@contextlib.contextmanager
def no_waits(*, attempts: int | None = None) -> Iterator[None]:
    """Testing mode inside a ``with`` block; the previous mode is restored afterwards."""
    previous = (_testing.enabled, _testing.attempts)
    set_testing(True, attempts=attempts)
    try:
        yield
    finally:
        _testing.enabled, _testing.attempts = previous


def testing_attempts_cap() -> int | None:
    """The attempts cap of testing mode (None when off or uncapped)."""
    return _testing.attempts if _testing.enabled else None
