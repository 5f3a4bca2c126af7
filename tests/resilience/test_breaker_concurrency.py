"""The breaker under threads and asyncio tasks: probes limited, counts exact, no lock held
across the protected call. Every wait is on an Event, never on time."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

import errorkit
from errorkit.resilience import CircuitBreaker, CircuitState, ManualClock

CALLERS = 10


def half_open_breaker(clock: ManualClock, probes: int) -> CircuitBreaker:
    breaker = CircuitBreaker(
        "x", failure_threshold=1, half_open_max_calls=probes, success_threshold=probes, clock=clock
    )
    with pytest.raises(errorkit.ServiceUnavailableError):
        breaker.call(_fail)
    clock.advance(30)
    return breaker


def _fail() -> None:
    raise errorkit.ServiceUnavailableError()


@pytest.mark.parametrize("probes", [1, 2, 3])
def test_half_open_admits_at_most_n_probes_across_threads(clock: ManualClock, probes: int) -> None:
    """Ten threads call at once while half-open: exactly N get through, the rest are refused."""
    breaker = half_open_breaker(clock, probes)
    release = threading.Event()
    inside = threading.Semaphore(0)
    refusals = threading.Semaphore(0)
    start = threading.Barrier(CALLERS)

    def probe() -> str:
        inside.release()
        release.wait(timeout=30)
        return "ok"

    def caller() -> str:
        start.wait(timeout=30)
        try:
            return breaker.call(probe)
        except errorkit.CircuitOpenError:
            refusals.release()
            return "refused"

    with ThreadPoolExecutor(CALLERS) as pool:
        futures = [pool.submit(caller) for _ in range(CALLERS)]
        for _ in range(probes):
            assert inside.acquire(timeout=30)
        for _ in range(CALLERS - probes):  # the others are refused while the probes run
            assert refusals.acquire(timeout=30)
        assert breaker.status().probes_in_flight == probes
        release.set()
        results = sorted(f.result(timeout=30) for f in futures)
    assert results.count("ok") == probes
    assert results.count("refused") == CALLERS - probes
    status = breaker.status()
    assert (status.state, status.rejected) == (CircuitState.CLOSED, CALLERS - probes)


@pytest.mark.parametrize("probes", [1, 2, 3])
async def test_half_open_admits_at_most_n_probes_across_tasks(
    clock: ManualClock, probes: int
) -> None:
    """Ten tasks call at once while half-open: exactly N run, the rest are refused."""
    breaker = half_open_breaker(clock, probes)
    release = asyncio.Event()
    running = 0

    async def probe() -> str:
        nonlocal running
        running += 1
        await release.wait()
        return "ok"

    async def caller() -> str:
        try:
            return await breaker.call_async(probe)
        except errorkit.CircuitOpenError:
            return "refused"

    tasks = [asyncio.create_task(caller()) for _ in range(CALLERS)]
    while sum(t.done() for t in tasks) < CALLERS - probes:
        await asyncio.sleep(0)
    assert running == probes
    release.set()
    results = await asyncio.gather(*tasks)
    assert results.count("ok") == probes
    assert breaker.state is CircuitState.CLOSED


def test_counts_stay_exact_under_threads(clock: ManualClock) -> None:
    """8 threads x 250 counted failures leave exactly 2000 failures and window entries."""
    breaker = CircuitBreaker(
        "x",
        failure_threshold=1_000_000,
        failure_rate_threshold=1.0,
        minimum_calls=1_000_000,
        clock=clock,
    )
    start = threading.Barrier(8)

    def hammer() -> None:
        start.wait(timeout=30)
        for _ in range(250):
            with contextlib.suppress(errorkit.ServiceUnavailableError):
                breaker.call(_fail)

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    status = breaker.status()
    assert (status.failures, status.window_calls, status.window_failures) == (2000, 2000, 2000)


def test_no_lock_is_held_while_the_protected_call_runs(clock: ManualClock) -> None:
    """While thread 1 is parked inside a call, thread 2's call through the same breaker
    runs and returns."""
    breaker = CircuitBreaker("x", clock=clock)
    parked = threading.Event()
    release = threading.Event()

    def slow() -> str:
        parked.set()
        release.wait(timeout=30)
        return "slow"

    first = threading.Thread(target=breaker.call, args=(slow,))
    first.start()
    try:
        assert parked.wait(timeout=30)
        second: list[str] = []
        other = threading.Thread(target=lambda: second.append(breaker.call(lambda: "fast")))
        other.start()
        other.join(timeout=30)
        assert second == ["fast"]  # finished while the first call is still parked
        assert first.is_alive()
    finally:
        release.set()
        first.join(timeout=30)


def test_no_lock_is_held_while_a_half_open_probe_runs(clock: ManualClock) -> None:
    """A parked probe does not stop status, reset or refusals from answering."""
    breaker = half_open_breaker(clock, 1)
    parked = threading.Event()
    release = threading.Event()

    def probe() -> None:
        parked.set()
        release.wait(timeout=30)

    first = threading.Thread(target=breaker.call, args=(probe,))
    first.start()
    try:
        assert parked.wait(timeout=30)
        with pytest.raises(errorkit.CircuitOpenError):
            breaker.call(lambda: None)
        assert breaker.status().probes_in_flight == 1
    finally:
        release.set()
        first.join(timeout=30)


async def test_no_lock_is_held_across_an_await(clock: ManualClock) -> None:
    """While one task awaits inside a call, another task's call completes."""
    breaker = CircuitBreaker("x", clock=clock)
    parked = asyncio.Event()
    release = asyncio.Event()

    async def slow() -> str:
        parked.set()
        await release.wait()
        return "slow"

    first = asyncio.create_task(breaker.call_async(slow))
    await parked.wait()

    async def fast() -> str:
        return "fast"

    assert await breaker.call_async(fast) == "fast"
    assert not first.done()
    release.set()
    assert await first == "slow"
