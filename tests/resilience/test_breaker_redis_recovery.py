"""Shared breaker state against a real Redis that loses it: keys deleted while the breaker is
open, or Redis unreachable (through a proxy that is stopped) and back without the state.
The more severe state wins and is written back; every change a process observes is a
transition its listeners, logs and gauge follow, and status() says what calls meet."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from tests._proxy import TCPProxy
from tests._services import breaker_namespace, require_redis

import errorkit
from errorkit.observe.metrics import Metrics
from errorkit.resilience import CircuitBreaker, CircuitState, ManualClock, RedisBackend

pytestmark = pytest.mark.redis


@pytest.fixture
def redis_url() -> str:
    return require_redis()


@pytest.fixture
def namespace(redis_url: str) -> Iterator[str]:
    with breaker_namespace(redis_url, "test") as name:
        yield name


@pytest.fixture
def direct(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def _client(url: str) -> redis.Redis:
    # No retries of redis-py's own under the breaker: a dead server fails at once.
    return redis.Redis.from_url(
        url, retry=Retry(NoBackoff(), 0), socket_connect_timeout=1, socket_timeout=1
    )


@pytest.fixture
def make(redis_url: str, namespace: str, clock: ManualClock) -> Iterator[Any]:
    """Breakers with a client each, like separate processes; ``via=`` another Redis URL."""
    clients: list[redis.Redis] = []

    def build(via: str | None = None, **options: Any) -> CircuitBreaker:
        client = _client(via or redis_url)
        clients.append(client)
        backend = RedisBackend(client=client, namespace=namespace, retry_interval=5)
        options.setdefault("clock", clock)
        options.setdefault("failure_threshold", 3)
        options.setdefault("recovery_timeout", 30)
        return CircuitBreaker("upstream", backend=backend, **options)

    yield build
    for client in clients:
        client.close()


def _boom() -> None:
    raise errorkit.ServiceUnavailableError()


def fail(breaker: CircuitBreaker, times: int = 1) -> None:
    for _ in range(times):
        with pytest.raises(errorkit.ServiceUnavailableError):
            breaker.call(_boom)


def _delete_state(client: redis.Redis, breaker: CircuitBreaker) -> None:
    key = breaker.backend.key(breaker.name)  # type: ignore[attr-defined]
    client.delete(key, key + "|probes", key + "|window")
    assert client.exists(key) == 0


def _refused_for(breaker: CircuitBreaker) -> float:
    with pytest.raises(errorkit.CircuitOpenError) as caught:
        breaker.call(lambda: "should not run")
    return caught.value.retry_after  # type: ignore[return-value]


def test_state_deleted_while_open_is_written_back_not_closed(
    make: Any, direct: redis.Redis, clock: ManualClock
) -> None:
    """Keys gone while open: the next call is still refused, no instant close, and the
    open state with its opened_at is back in Redis for every process."""
    breaker = make()
    fail(breaker, 3)
    opened_at = breaker.status().opened_at
    clock.advance(10)
    _delete_state(direct, breaker)
    assert breaker.status().state is CircuitState.OPEN  # what the call path will meet
    assert _refused_for(breaker) == pytest.approx(20, abs=1e-3)
    newcomer = make()
    status = newcomer.status()
    assert (status.state, status.opened_at) == (CircuitState.OPEN, opened_at)
    assert _refused_for(newcomer) == pytest.approx(20, abs=1e-3)
    clock.advance(20)
    assert newcomer.call(lambda: "probe") == "probe"  # the recovery wait, then a probe
    assert breaker.state is CircuitState.CLOSED


def test_a_reset_elsewhere_is_not_overruled(make: Any) -> None:
    """A shared state that says closed (an operator's reset) is a real close, adopted."""
    breaker, operator = make(), make()
    fail(breaker, 3)
    operator.reset()
    assert breaker.call(lambda: "ok") == "ok"
    assert breaker.state is CircuitState.CLOSED


def test_changes_made_by_another_process_are_transitions_here(
    make: Any, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    """Listeners, the log and the gauge of a process follow what another process did."""
    caplog.set_level(logging.INFO, logger="errorkit.breaker")
    there, here = make(), make()
    heard: list[tuple[str, str]] = []
    here.add_listener(lambda name, old, new: heard.append((str(old), str(new))))
    metrics = Metrics(capture_stats=lambda: None)
    here.add_listener(metrics.record_breaker_transition)

    def gauge(state: str) -> float | None:
        labels = {"breaker": "upstream", "state": state}
        return metrics.registry.get_sample_value("errorkit_circuit_breaker_state", labels)

    fail(there, 3)
    assert here.status().state is CircuitState.OPEN
    assert heard == [("closed", "open")]
    assert (gauge("open"), gauge("closed")) == (1.0, 0.0)
    clock.advance(30)
    assert there.call(lambda: "probe") == "probe"  # closes it, over there
    assert here.call(lambda: "ok") == "ok"
    assert heard == [("closed", "open"), ("open", "closed")]
    assert (gauge("open"), gauge("closed")) == (0.0, 1.0)
    logged = [r.getMessage() for r in caplog.records if r.getMessage().startswith("circuit")]
    assert logged.count("circuit upstream: closed -> open") == 2  # there, and seen here
    assert logged.count("circuit upstream: open -> closed") == 1  # seen here


def test_after_an_outage_the_state_kept_locally_wins_and_is_written_back(
    make: Any, redis_url: str, direct: redis.Redis, clock: ManualClock
) -> None:
    """Redis away: the breaker opens on this process's own state. Redis back with the old
    closed state: calls are still refused (no instant close), status() and the gauge say
    open throughout, and the open state with its opened_at is written back."""
    target = urlsplit(redis_url)
    proxy = TCPProxy(target.hostname or "127.0.0.1", target.port or 6379).start()
    try:
        via = f"redis://127.0.0.1:{proxy.port}/{(target.path or '/0').lstrip('/') or 0}"
        breaker = make(via=via)
        metrics = Metrics(capture_stats=lambda: None)
        breaker.add_listener(metrics.record_breaker_transition)
        fail(breaker, 1)  # shared: closed, one failure
        proxy.stop()
        fail(breaker, 3)  # Redis unreachable: this process's own state opens
        assert breaker.status().backend == "memory"
        opened_at = breaker.status().opened_at
        proxy.start()
        clock.advance(2)  # Redis is back, but not retried before retry_interval (5 s)
        status = breaker.status()
        assert (status.state, status.backend) == (CircuitState.OPEN, "memory")
        assert _refused_for(breaker) == pytest.approx(28, abs=1e-3)
        clock.advance(5)  # now Redis is asked again, and says closed
        assert breaker.status().state is CircuitState.OPEN
        assert _refused_for(breaker) == pytest.approx(23, abs=1e-3)
        shared = make().status()
        assert (shared.state, shared.backend) == (CircuitState.OPEN, "redis")
        assert shared.opened_at is not None and opened_at is not None
        assert abs((shared.opened_at - opened_at).total_seconds()) < 1e-3
        labels = {"breaker": "upstream", "state": "open"}
        assert metrics.registry.get_sample_value("errorkit_circuit_breaker_state", labels) == 1
        _delete_state(direct, breaker)  # and once more, emptied: still open
        assert _refused_for(breaker) == pytest.approx(23, abs=1e-3)
    finally:
        proxy.stop()


async def test_async_calls_write_the_open_state_back_too(
    redis_url: str, namespace: str, direct: redis.Redis, clock: ManualClock
) -> None:
    import redis.asyncio

    client = redis.asyncio.Redis.from_url(redis_url, retry=Retry(NoBackoff(), 0))
    backend = RedisBackend(async_client=client, namespace=namespace)
    breaker = CircuitBreaker("upstream", failure_threshold=1, backend=backend, clock=clock)

    async def down() -> None:
        raise errorkit.ServiceUnavailableError()

    with pytest.raises(errorkit.ServiceUnavailableError):
        await breaker.call_async(down)
    clock.advance(10)
    _delete_state(direct, breaker)
    assert (await breaker.status_async()).state is CircuitState.OPEN
    with pytest.raises(errorkit.CircuitOpenError) as caught:
        await breaker.call_async(down)
    assert caught.value.retry_after == pytest.approx(20, abs=1e-3)
    assert direct.hget(backend.key("upstream"), "state") == b"open"
    await client.aclose()
