"""The manual clock and the testing switch that every timing test relies on."""

from __future__ import annotations

import pytest

from errorkit.resilience import (
    SYSTEM_CLOCK,
    Clock,
    ManualClock,
    is_testing,
    no_waits,
    set_testing,
)


def test_the_manual_clock_moves_only_when_told_or_slept_on() -> None:
    """advance() and sleep() move it; sleeps are recorded; wall time moves with it."""
    clock = ManualClock(start=5.0, wall=1000.0)
    assert (clock.monotonic(), clock.time()) == (5.0, 1000.0)
    clock.advance(2)
    clock.sleep(3)
    assert (clock.monotonic(), clock.time(), clock.sleeps) == (10.0, 1005.0, [3])


async def test_the_manual_clock_sleeps_asynchronously_without_waiting() -> None:
    """asleep() records and advances, yielding to the loop once."""
    clock = ManualClock()
    await clock.asleep(1.5)
    assert (clock.monotonic(), clock.sleeps) == (1.5, [1.5])


def test_a_clock_cannot_go_back() -> None:
    """advance(-1) is refused."""
    with pytest.raises(ValueError, match="cannot go back"):
        ManualClock().advance(-1)


def test_both_clocks_satisfy_the_protocol() -> None:
    """SYSTEM_CLOCK and ManualClock are both Clocks."""
    assert isinstance(SYSTEM_CLOCK, Clock)
    assert isinstance(ManualClock(), Clock)


def test_no_waits_restores_the_previous_mode() -> None:
    """The context manager form turns testing on, then restores what was there."""
    assert not is_testing()
    with no_waits():
        assert is_testing()
    assert not is_testing()


def test_a_bad_attempts_cap_is_refused() -> None:
    """set_testing(attempts=0) says what to pass."""
    with pytest.raises(ValueError, match="whole number >= 1"):
        set_testing(True, attempts=0)
