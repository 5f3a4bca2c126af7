"""Reading and resetting shared breaker state without the app's configuration."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests._services import breaker_namespace, require_redis

import errorkit
from errorkit.resilience import CircuitBreaker, CircuitState, RedisBackend

pytestmark = pytest.mark.redis


@pytest.fixture
def backend() -> Iterator[RedisBackend]:
    """A backend on a namespace of its own; its keys are deleted afterwards."""
    url = require_redis()
    with breaker_namespace(url, "admin") as namespace:
        backend = RedisBackend(url, namespace=namespace)
        yield backend
        backend.close()


def _open(backend: RedisBackend, name: str) -> CircuitBreaker:
    breaker = CircuitBreaker(name, backend=backend, failure_threshold=1, recovery_timeout=45)

    def boom() -> None:
        raise errorkit.ServiceUnavailableError()

    with pytest.raises(errorkit.ServiceUnavailableError):
        breaker.call(boom)
    return breaker


def test_names_come_from_every_key_of_a_breaker(backend: RedisBackend) -> None:
    """Each breaker is listed once, whichever of its keys exist; foreign keys are ignored."""
    _open(backend, "db.replica:5432")
    client = backend.client()
    client.zadd(backend.key("probing") + "|probes", {"1": 1e12})
    client.set(f"errorkit:breaker:{backend.namespace}:not a breaker!", "x")
    assert backend.breaker_names() == ["db.replica:5432", "probing"]


def test_an_opened_breaker_stores_what_tools_need(backend: RedisBackend) -> None:
    """Opening writes the recovery timeout and probe limit beside opened_at."""
    _open(backend, "payments")
    state = backend.read_breaker("payments")
    assert state is not None
    assert (state.state, state.recovery_timeout, state.half_open_max_calls) == (
        CircuitState.OPEN,
        45.0,
        1,
    )
    assert state.opened_at is not None and state.next_probe_at is not None
    assert (state.next_probe_at - state.opened_at).total_seconds() == pytest.approx(45, abs=1e-3)


def test_unknown_breakers_are_neither_read_nor_created(backend: RedisBackend) -> None:
    """read_breaker and reset_breaker answer None for a name without state, writing nothing."""
    assert backend.read_breaker("missing") is None
    assert backend.reset_breaker("missing") is None
    assert backend.breaker_names() == []


def test_reset_breaker_reports_the_previous_state(backend: RedisBackend) -> None:
    """reset_breaker closes an open breaker for its users and says it was open."""
    breaker = _open(backend, "search")
    assert backend.reset_breaker("search") is CircuitState.OPEN
    assert breaker.state is CircuitState.CLOSED
