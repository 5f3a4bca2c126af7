"""Breaker state shared through a real Redis: several breakers (as separate processes would
be, each with its own client) share one state under a namespace."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import redis.asyncio
from tests._services import breaker_namespace, require_redis

import errorkit
from errorkit import _guard
from errorkit.resilience import (
    CircuitBreaker,
    CircuitState,
    ManualClock,
    RedisBackend,
)

pytestmark = pytest.mark.redis


@pytest.fixture
def redis_url() -> str:
    return require_redis()


@pytest.fixture
def namespace(redis_url: str) -> Iterator[str]:
    """A namespace of its own per test; its keys are deleted afterwards."""
    with breaker_namespace(redis_url, "test") as name:
        yield name


@pytest.fixture
def make(redis_url: str, namespace: str, clock: ManualClock) -> Iterator[Any]:
    """Build breakers that each have their own Redis client, like separate processes."""
    backends: list[RedisBackend] = []

    def build(name: str = "upstream", **options: Any) -> CircuitBreaker:
        backend = RedisBackend(redis_url, namespace=options.pop("namespace", namespace))
        backends.append(backend)
        options.setdefault("clock", clock)
        options.setdefault("failure_threshold", 3)
        options.setdefault("recovery_timeout", 30)
        return CircuitBreaker(name, backend=backend, **options)

    yield build
    for backend in backends:
        backend.close()


def fail(breaker: CircuitBreaker, times: int = 1) -> None:
    for _ in range(times):
        with pytest.raises(errorkit.ServiceUnavailableError):
            breaker.call(_boom)


def _boom() -> None:
    raise errorkit.ServiceUnavailableError("upstream said: token=abc123secret")


def test_failures_in_one_process_open_the_breaker_for_all(make: Any) -> None:
    """Failures through two clients add up; once open, a third is refused too."""
    first, second, third = make(), make(), make()
    fail(first, 2)
    fail(second, 1)
    assert third.state is CircuitState.OPEN
    with pytest.raises(errorkit.CircuitOpenError) as caught:
        third.call(lambda: None)
    assert caught.value.retry_after == pytest.approx(30, abs=1e-3)


def test_a_process_joining_keeps_counters_and_the_open_timestamp(
    make: Any, clock: ManualClock
) -> None:
    """A new breaker for the same name resets nothing: counts and opened_at survive."""
    first = make()
    fail(first, 2)
    joined = make()
    assert joined.status().failures == 2
    fail(joined, 1)
    opened_at = first.status().opened_at
    clock.advance(10)
    late = make()
    assert late.status().opened_at == opened_at
    with pytest.raises(errorkit.CircuitOpenError) as caught:
        late.call(lambda: None)
    assert caught.value.retry_after == pytest.approx(20, abs=1e-3)


def test_half_open_probes_are_limited_across_processes(make: Any, clock: ManualClock) -> None:
    """With half_open_max_calls=2, only two of five clients get a probe."""
    breakers = [make(half_open_max_calls=2, success_threshold=2) for _ in range(5)]
    fail(breakers[0], 3)
    clock.advance(30)
    admitted, refused = [], 0
    for breaker in breakers:
        try:
            admitted.append(breaker.acquire())
        except errorkit.CircuitOpenError:
            refused += 1
    assert (len(admitted), refused) == (2, 3)
    assert breakers[4].status().probes_in_flight == 2
    for permit in admitted:
        permit.release()
    assert breakers[3].state is CircuitState.CLOSED


def test_a_crashed_prober_does_not_wedge_half_open(make: Any, clock: ManualClock) -> None:
    """A probe lease that is never released expires after probe_timeout."""
    crashed, other = make(probe_timeout=5), make(probe_timeout=5)
    fail(crashed, 3)
    clock.advance(30)
    crashed.acquire()  # the process dies holding its probe
    with pytest.raises(errorkit.CircuitOpenError) as caught:
        other.call(lambda: None)
    assert caught.value.retry_after == pytest.approx(5, abs=1e-3)
    clock.advance(5)
    assert other.call(lambda: "probe") == "probe"
    assert other.state is CircuitState.CLOSED


def test_a_failed_probe_reopens_for_everyone(make: Any, clock: ManualClock) -> None:
    """A probe failing in one process reopens the breaker for all with a new timestamp."""
    first, second = make(), make()
    fail(first, 3)
    clock.advance(30)
    fail(second, 1)
    with pytest.raises(errorkit.CircuitOpenError) as caught:
        first.call(lambda: None)
    assert caught.value.retry_after == pytest.approx(30, abs=1e-3)


def test_a_neutral_probe_frees_its_shared_slot_and_keeps_it_half_open(
    make: Any, clock: ManualClock
) -> None:
    """With failure_on, a probe crashing on another error leaves the shared state half-open
    with its probe slot free, and a neutral call keeps the shared failure count."""
    first = make(failure_on=errorkit.ServiceUnavailableError)
    second = make(failure_on=errorkit.ServiceUnavailableError)
    fail(first, 2)
    with pytest.raises(KeyError):
        second.call(_raise, KeyError("bug"))
    assert first.status().failures == 2
    fail(second, 1)
    clock.advance(30)
    with pytest.raises(KeyError):
        first.call(_raise, KeyError("bug"))
    status = second.status()
    assert (status.state, status.probes_in_flight) == (CircuitState.HALF_OPEN, 0)
    assert second.call(lambda: "probe") == "probe"
    assert first.state is CircuitState.CLOSED


def _raise(exc: BaseException) -> None:
    raise exc


def test_reset_from_one_process_closes_it_for_all(make: Any) -> None:
    """reset() anywhere closes the shared breaker and clears its counts."""
    first, second = make(), make()
    fail(first, 3)
    second.reset()
    status = first.status()
    assert (status.state, status.failures, status.last_failure) == (CircuitState.CLOSED, 0, None)
    assert first.call(lambda: 1) == 1


def test_an_outcome_admitted_before_a_reset_elsewhere_is_ignored(make: Any) -> None:
    """A failure of a call admitted before another process's reset does not count."""
    first, second = make(failure_threshold=1), make(failure_threshold=1)
    permit = first.acquire()
    second.reset()
    permit.release(errorkit.ServiceUnavailableError())
    assert second.state is CircuitState.CLOSED


def test_the_failure_rate_is_shared(make: Any) -> None:
    """The failure-rate window is kept in Redis and sums every process's calls."""
    options = {"failure_threshold": None, "failure_rate_threshold": 0.5, "minimum_calls": 4}
    first, second = make(**options), make(**options)
    first.call(lambda: None)
    second.call(lambda: None)
    fail(first, 1)
    assert first.state is CircuitState.CLOSED
    fail(second, 1)
    status = first.status()
    assert (status.state, status.window_calls, status.window_failures) == (
        CircuitState.OPEN,
        4,
        2,
    )


def test_namespaces_keep_apps_apart(make: Any) -> None:
    """The same breaker name in another namespace is another breaker."""
    mine = make()
    theirs = make(namespace=f"other-{uuid.uuid4().hex[:8]}")
    fail(mine, 3)
    assert theirs.state is CircuitState.CLOSED
    theirs.reset()


def test_state_lives_under_the_documented_key_and_expires(
    make: Any, redis_url: str, namespace: str
) -> None:
    """errorkit:breaker:{namespace}:{name} holds the state with a TTL; messages are
    scrubbed before they are written."""
    breaker = make("payments-api")
    fail(breaker, 3)
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    key = f"errorkit:breaker:{namespace}:payments-api"
    stored = client.hgetall(key)
    assert stored["state"] == "open"
    assert "abc123secret" not in str(stored)
    assert 0 < client.ttl(key) <= 86_400
    client.close()
    last = breaker.status().last_failure
    assert last is not None and last.type == "errorkit.errors.ServiceUnavailableError"


def test_listeners_hear_transitions_this_process_makes(make: Any) -> None:
    """Transitions made through Redis call this process's listeners."""
    breaker = make()
    heard: list[tuple[str, str]] = []
    breaker.add_listener(lambda name, old, new: heard.append((old, new)))
    fail(breaker, 3)
    breaker.reset()
    assert heard == [("closed", "open"), ("open", "closed")]


async def test_async_breakers_use_the_async_client(make: Any, clock: ManualClock) -> None:
    """call_async and `async with` go through redis.asyncio and share the same state."""
    sync_side, async_side = make(), make()
    fail(sync_side, 2)

    async def boom() -> None:
        raise errorkit.NetworkError()

    with pytest.raises(errorkit.NetworkError):
        await async_side.call_async(boom)
    with pytest.raises(errorkit.CircuitOpenError):
        async with async_side:
            pass
    assert (await async_side.status_async()).state is CircuitState.OPEN
    await async_side.reset_async()
    assert sync_side.state is CircuitState.CLOSED
    await async_side.backend.aclose()  # type: ignore[attr-defined]


async def test_an_async_call_with_only_a_sync_client_says_what_to_pass(
    redis_url: str, namespace: str
) -> None:
    """A backend built from a sync client refuses async calls, naming async_client=."""
    client = redis.Redis.from_url(redis_url)
    breaker = CircuitBreaker("x", backend=RedisBackend(client=client, namespace=namespace))

    async def work() -> None:
        return None

    with pytest.raises(TypeError, match="async_client="):
        await breaker.call_async(work)
    client.close()


def test_an_unreachable_redis_never_breaks_the_call(clock: ManualClock) -> None:
    """With Redis down the breaker protects with local state and raises no Redis error."""
    before = _guard.internal_error_counts().get("breaker.redis", 0)
    backend = RedisBackend("redis://127.0.0.1:1/0", namespace="down", retry_interval=60)
    breaker = CircuitBreaker("x", failure_threshold=2, backend=backend, clock=clock)
    assert breaker.call(lambda: "still works") == "still works"
    fail(breaker, 2)
    with pytest.raises(errorkit.CircuitOpenError):
        breaker.call(lambda: None)
    assert breaker.status().backend == "memory"
    assert _guard.internal_error_counts()["breaker.redis"] > before


@pytest.mark.parametrize(
    ("options", "fix"),
    [
        ({}, "url="),
        ({"url": "redis://x", "namespace": "has space"}, "namespace"),
        ({"url": "redis://x", "key_ttl": -1}, ">= 0"),
    ],
)
def test_bad_backend_settings_say_the_fix(options: dict[str, Any], fix: str) -> None:
    """RedisBackend refuses missing connections and bad namespaces when built."""
    with pytest.raises(ValueError, match=fix):
        RedisBackend(**options)


def test_async_client_only_backend_is_accepted(redis_url: str) -> None:
    """A backend may be given only an async client (for async-only apps)."""
    backend = RedisBackend(async_client=redis.asyncio.Redis.from_url(redis_url))
    assert backend.key("x") == "errorkit:breaker:default:x"


def test_clients_made_from_a_url_do_not_retry_on_their_own(redis_url: str) -> None:
    """redis-py's default retries would stack under the breaker: one try per command."""
    backend = RedisBackend(redis_url, socket_timeout=0.25)
    sync_kwargs = backend.client().connection_pool.connection_kwargs
    async_kwargs = backend.async_client().connection_pool.connection_kwargs
    for kwargs in (sync_kwargs, async_kwargs):
        assert kwargs["retry"].get_retries() == 0
        assert (kwargs["socket_timeout"], kwargs["socket_connect_timeout"]) == (0.25, 0.25)
    backend.close()
