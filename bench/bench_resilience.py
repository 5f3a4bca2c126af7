"""Recovery tools against their peers: happy-path cost per call (sync and async), the cost of
a rejected call on an open breaker, and whether a breaker serialises calls through its lock.

Peers: tenacity, stamina, backoff (retry); pybreaker, circuitbreaker, aiobreaker, purgatory
(breakers); and a minimal hand-written retry loop. Ratios are ours / peer (below 1 = we are
cheaper). Bounded to well under a minute.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
import warnings
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import errorkit
from errorkit.resilience import CircuitBreaker, retry

CALLS = 50_000
SLOW_CALLS = 5_000  # for peers costing tens of microseconds per call
REPEATS = 3


def _value() -> int:
    return 1


async def _avalue() -> int:
    return 1


def per_call(fn: Callable[[], Any], calls: int) -> float:
    """Best-of-REPEATS seconds per call."""
    best = float("inf")
    for _ in range(REPEATS):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        best = min(best, (time.perf_counter() - start) / calls)
    return best


def per_call_async(fn: Callable[[], Awaitable[Any]], calls: int) -> float:
    async def run() -> float:
        best = float("inf")
        for _ in range(REPEATS):
            start = time.perf_counter()
            for _ in range(calls):
                await fn()
            best = min(best, (time.perf_counter() - start) / calls)
        return best

    return asyncio.run(run())


def per_rejection(fn: Callable[[], Any], calls: int) -> float:
    def once() -> None:
        with contextlib.suppress(Exception):
            fn()

    return per_call(once, calls)


def per_rejection_async(fn: Callable[[], Awaitable[Any]], calls: int) -> float:
    async def once() -> None:
        with contextlib.suppress(Exception):
            await fn()

    return per_call_async(once, calls)


def _us(seconds: float) -> str:
    return f"{seconds * 1e6:9.3f} µs"


def table(title: str, ours: tuple[str, float], peers: list[tuple[str, float]]) -> None:
    name, mine = ours
    print(f"\n{title}")
    print(f"  {'implementation':<34} {'per call':>12}  {'ours/peer':>9}")
    print(f"  {name:<34} {_us(mine):>12}  {'-':>9}")
    for peer, cost in peers:
        print(f"  {peer:<34} {_us(cost):>12}  {mine / cost:9.2f}")


# -- retry: happy path -----------------------------------------------------------------------


def hand_written(fn: Callable[[], Any], attempts: int = 3) -> Callable[[], Any]:
    def wrapper() -> Any:
        for attempt in range(attempts):
            try:
                return fn()
            except ConnectionError:
                if attempt == attempts - 1:
                    raise
                time.sleep(0.1 * 2**attempt)
        return None

    return wrapper


def hand_written_async(fn: Callable[[], Awaitable[Any]]) -> Callable[[], Awaitable[Any]]:
    async def wrapper() -> Any:
        for attempt in range(3):
            try:
                return await fn()
            except ConnectionError:
                if attempt == 2:
                    raise
                await asyncio.sleep(0.1 * 2**attempt)
        return None

    return wrapper


def bench_retry_sync() -> None:
    import backoff
    import stamina
    import tenacity

    ours = per_call(retry(attempts=3)(_value), CALLS)
    bare = per_call(_value, CALLS)
    peers = [
        ("hand-written loop", per_call(hand_written(_value), CALLS)),
        (
            "backoff.on_exception",
            per_call(backoff.on_exception(backoff.expo, Exception, max_tries=3)(_value), CALLS),
        ),
        (
            "tenacity.retry",
            per_call(
                tenacity.retry(stop=tenacity.stop_after_attempt(3), reraise=True)(_value),
                SLOW_CALLS,
            ),
        ),
        ("stamina.retry", per_call(stamina.retry(on=Exception, attempts=3)(_value), SLOW_CALLS)),
    ]
    table("retry, sync happy path (a call that succeeds)", ("errorkit retry", ours), peers)
    print(f"  {'(bare call, for reference)':<34} {_us(bare):>12}")
    cache_read(ours - bare)


def cache_read(overhead: float) -> None:
    """The acceptance bar: wrapping a cache read costs less than the read itself."""
    try:
        import redis

        client = redis.Redis.from_url("redis://127.0.0.1:6379/0", socket_connect_timeout=1)
        client.set("errorkit:bench:key", "value")
        read = per_call(lambda: client.get("errorkit:bench:key"), 2_000)
        client.delete("errorkit:bench:key")
        client.close()
    except Exception as exc:  # Redis is optional for this line
        print(f"  cache read: Redis not reachable ({type(exc).__name__}); skipped")
        return
    local: dict[str, str] = {"key": "value"}
    dict_read = per_call(lambda: local.get("key"), CALLS)
    print(
        f"  errorkit retry overhead {_us(overhead)} vs a Redis GET on 127.0.0.1 {_us(read)}: "
        f"{overhead / read:.4f} of the read"
    )
    print(f"  (an in-process dict read costs {_us(dict_read)}; no retry is needed around one)")


def bench_retry_async() -> None:
    import backoff
    import stamina
    import tenacity

    ours = per_call_async(retry(attempts=3)(_avalue), CALLS)
    peers = [
        ("hand-written loop", per_call_async(hand_written_async(_avalue), CALLS)),
        (
            "backoff.on_exception",
            per_call_async(
                backoff.on_exception(backoff.expo, Exception, max_tries=3)(_avalue), CALLS
            ),
        ),
        (
            "tenacity.retry",
            per_call_async(
                tenacity.retry(stop=tenacity.stop_after_attempt(3), reraise=True)(_avalue),
                SLOW_CALLS,
            ),
        ),
        (
            "stamina.retry",
            per_call_async(stamina.retry(on=Exception, attempts=3)(_avalue), SLOW_CALLS),
        ),
    ]
    table("retry, async happy path", ("errorkit retry", ours), peers)


# -- breakers --------------------------------------------------------------------------------


def _fail() -> None:
    raise errorkit.ServiceUnavailableError()


async def _afail() -> None:
    raise errorkit.ServiceUnavailableError()


def _trip(call: Callable[[], Any], times: int = 5) -> None:
    for _ in range(times):
        with contextlib.suppress(Exception):
            call()


def bench_breaker_sync() -> None:
    import circuitbreaker
    import pybreaker
    from purgatory import SyncCircuitBreakerFactory

    ours = CircuitBreaker("bench", failure_threshold=5, recovery_timeout=3600)
    py = pybreaker.CircuitBreaker(fail_max=5, reset_timeout=3600)
    cb = circuitbreaker.CircuitBreaker(failure_threshold=5, recovery_timeout=3600, name="cb")
    # circuitbreaker checks the state in its decorator only: its call() runs the function
    # (and closes the breaker) even when open, so the peer is the decorated function.
    cb_value, cb_fail = cb.decorate(_value), cb.decorate(_fail)
    purg = SyncCircuitBreakerFactory(default_threshold=5, default_ttl=3600)

    def purgatory_call(fn: Callable[[], Any]) -> Any:
        with purg.get_breaker("bench"):
            return fn()

    happy = [
        ("pybreaker", per_call(lambda: py.call(_value), CALLS)),
        ("circuitbreaker", per_call(cb_value, CALLS)),
        ("purgatory", per_call(lambda: purgatory_call(_value), SLOW_CALLS)),
    ]
    mine = per_call(lambda: ours.call(_value), CALLS)
    table("breaker, sync happy path (closed)", ("errorkit breaker", mine), happy)

    _trip(lambda: ours.call(_fail))
    _trip(lambda: py.call(_fail))
    _trip(cb_fail)
    _trip(lambda: purgatory_call(_fail))
    rejected = [
        ("pybreaker", per_rejection(lambda: py.call(_value), CALLS)),
        ("circuitbreaker", per_rejection(cb_value, CALLS)),
        ("purgatory", per_rejection(lambda: purgatory_call(_value), SLOW_CALLS)),
    ]
    mine = per_rejection(lambda: ours.call(_value), CALLS)
    table("breaker, rejected call on an open breaker (sync)", ("errorkit breaker", mine), rejected)


def bench_breaker_async() -> None:
    import aiobreaker
    from purgatory import AsyncCircuitBreakerFactory

    ours = CircuitBreaker("bench-async", failure_threshold=5, recovery_timeout=3600)
    aio = aiobreaker.CircuitBreaker(fail_max=5, timeout_duration=timedelta(seconds=3600))
    purg = AsyncCircuitBreakerFactory(default_threshold=5, default_ttl=3600)

    async def purgatory_call(fn: Callable[[], Awaitable[Any]]) -> Any:
        async with await purg.get_breaker("bench"):
            return await fn()

    happy = [
        ("aiobreaker", per_call_async(lambda: aio.call_async(_avalue), CALLS)),
        ("purgatory", per_call_async(lambda: purgatory_call(_avalue), SLOW_CALLS)),
    ]
    mine = per_call_async(lambda: ours.call_async(_avalue), CALLS)
    table("breaker, async happy path (closed)", ("errorkit breaker", mine), happy)

    async def trip_all() -> None:
        for _ in range(5):
            for call in (
                lambda: ours.call_async(_afail),
                lambda: aio.call_async(_afail),
                lambda: purgatory_call(_afail),
            ):
                with contextlib.suppress(Exception):
                    await call()

    asyncio.run(trip_all())
    rejected = [
        ("aiobreaker", per_rejection_async(lambda: aio.call_async(_avalue), CALLS)),
        ("purgatory", per_rejection_async(lambda: purgatory_call(_avalue), SLOW_CALLS)),
    ]
    mine = per_rejection_async(lambda: ours.call_async(_avalue), CALLS)
    table("breaker, rejected call on an open breaker (async)", ("errorkit breaker", mine), rejected)


# -- lock held across the call ---------------------------------------------------------------

THREADS, EACH, SLEEP = 8, 5, 0.05


def wall_time(call: Callable[[Callable[[], None]], Any]) -> float:
    def slow() -> None:
        time.sleep(SLEEP)

    def worker() -> None:
        for _ in range(EACH):
            call(slow)

    threads = [threading.Thread(target=worker) for _ in range(THREADS)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - start


def bench_lock_serialisation() -> None:
    import pybreaker

    ours = CircuitBreaker("lock", failure_threshold=5)
    py = pybreaker.CircuitBreaker(fail_max=5, reset_timeout=60)
    ideal = EACH * SLEEP
    mine = wall_time(ours.call)
    theirs = wall_time(py.call)
    print(
        f"\nlock across the call: {THREADS} threads x {EACH} calls of {SLEEP * 1000:.0f} ms "
        f"(ideal {ideal:.2f} s, fully serialised {THREADS * EACH * SLEEP:.2f} s)"
    )
    print(f"  {'errorkit breaker':<34} {mine:8.2f} s")
    print(f"  {'pybreaker':<34} {theirs:8.2f} s   ours/peer {mine / theirs:.2f}")


# -- half-open admission ---------------------------------------------------------------------


def bench_half_open() -> None:
    """How many of 10 concurrent callers a just-recovered breaker lets through (max 1)."""
    import aiobreaker
    import circuitbreaker
    from purgatory import AsyncCircuitBreakerFactory

    async def run() -> dict[str, int]:
        counts: dict[str, int] = {}
        gate = asyncio.Event()
        inside = {"n": 0}

        async def probe() -> None:
            inside["n"] += 1
            await gate.wait()

        async def measure(name: str, call: Callable[[], Awaitable[Any]]) -> None:
            inside["n"] = 0
            gate.clear()
            tasks = [asyncio.create_task(call()) for _ in range(10)]
            for _ in range(20):
                await asyncio.sleep(0)
            counts[name] = inside["n"]
            gate.set()
            await asyncio.gather(*tasks, return_exceptions=True)

        ours = CircuitBreaker("half", failure_threshold=1, recovery_timeout=0.01)
        aio = aiobreaker.CircuitBreaker(fail_max=1, timeout_duration=timedelta(seconds=0.01))
        purg = AsyncCircuitBreakerFactory(default_threshold=1, default_ttl=0.01)
        cb = circuitbreaker.CircuitBreaker(failure_threshold=1, recovery_timeout=0.01, name="h")

        async def purgatory_call(fn: Callable[[], Awaitable[Any]]) -> Any:
            async with await purg.get_breaker("half"):
                return await fn()

        async def cb_call(fn: Callable[[], Awaitable[Any]]) -> Any:
            return await cb.decorate(fn)()

        candidates: list[tuple[str, Callable[[Callable[[], Awaitable[Any]]], Awaitable[Any]]]] = [
            ("errorkit breaker", ours.call_async),
            ("aiobreaker", aio.call_async),
            ("purgatory", purgatory_call),
            ("circuitbreaker", cb_call),
        ]
        for name, call in candidates:
            with contextlib.suppress(Exception):
                await call(_afail)
            await asyncio.sleep(0.05)
            await measure(name, lambda call=call: call(probe))  # type: ignore[misc]
        return counts

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        counts = asyncio.run(run())
    print("\nhalf-open: of 10 concurrent async callers, how many reached the dependency (max 1)")
    for name, admitted in counts.items():
        print(f"  {name:<34} {admitted:>3}")


def main() -> None:
    started = time.perf_counter()
    logging.getLogger("errorkit").setLevel(logging.ERROR)  # transitions would interleave
    bench_retry_sync()
    bench_retry_async()
    bench_breaker_sync()
    bench_breaker_async()
    bench_lock_serialisation()
    bench_half_open()
    print(f"\n(best of {REPEATS} runs; total {time.perf_counter() - started:.1f} s)")


if __name__ == "__main__":
    main()
