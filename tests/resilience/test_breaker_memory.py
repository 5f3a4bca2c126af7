"""A flood of rejections on an open breaker costs no memory."""

from __future__ import annotations

import gc
import tracemalloc

import pytest

import errorkit
from errorkit.resilience import CircuitBreaker, ManualClock

REJECTIONS = 1_000_000
BOUND = 1024 * 1024  # bytes of growth allowed over the whole flood


def _reject(breaker: CircuitBreaker, times: int) -> None:
    def never_called() -> None:
        raise AssertionError

    for _ in range(times):
        try:  # noqa: SIM105 - the cheapest form: this loop runs a million times
            breaker.call(never_called)
        except errorkit.CircuitOpenError:
            pass


@pytest.mark.slow
def test_a_million_rejections_leave_memory_flat(clock: ManualClock) -> None:
    """1,000,000 rejected calls grow traced memory by less than 1 MiB: each rejection is a
    fresh exception that nothing keeps (no shared object whose traceback grows)."""
    breaker = CircuitBreaker("flood", failure_threshold=1, recovery_timeout=3600, clock=clock)
    with pytest.raises(errorkit.ServiceUnavailableError):
        breaker.call(lambda: (_ for _ in ()).throw(errorkit.ServiceUnavailableError()))
    _reject(breaker, 10_000)  # warm up caches and free lists before measuring
    gc.collect()
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        _reject(breaker, REJECTIONS)
        gc.collect()
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert breaker.status().rejected == REJECTIONS + 10_000
    assert after - before < BOUND, f"grew by {after - before} bytes"
