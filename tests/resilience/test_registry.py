"""The breaker registry: one breaker per service name, listed, inspected, reset."""

from __future__ import annotations

import pytest

import errorkit
from errorkit.resilience import (
    BreakerRegistry,
    CircuitState,
    ManualClock,
    breaker_statuses,
    circuit_breaker,
    get_breaker,
    reset_all_breakers,
    reset_breaker,
)


def _open(name: str, clock: ManualClock) -> None:
    breaker = circuit_breaker(name, failure_threshold=1, clock=clock)
    with pytest.raises(errorkit.ServiceUnavailableError):
        breaker.call(lambda: (_ for _ in ()).throw(errorkit.ServiceUnavailableError()))


def test_the_same_name_gives_the_same_breaker() -> None:
    """circuit_breaker(name) makes it once; later calls and get_breaker return it."""
    first = circuit_breaker("upstream", failure_threshold=5, recovery_timeout=30)
    assert circuit_breaker("upstream") is first
    assert circuit_breaker("upstream", failure_threshold=5) is first
    assert get_breaker("upstream") is first


def test_asking_with_other_settings_is_an_error() -> None:
    """Two places disagreeing about one dependency's breaker are told how to fix it."""
    circuit_breaker("upstream", failure_threshold=5)
    with pytest.raises(ValueError, match=r"already exists with other settings \(failure_th"):
        circuit_breaker("upstream", failure_threshold=3)


def test_unknown_settings_and_names_say_what_exists() -> None:
    """A misspelt setting lists the known ones; an unknown name lists the known names."""
    with pytest.raises(TypeError, match="recovery_timeout"):
        circuit_breaker("x", recovery_timout=3)
    circuit_breaker("known")
    with pytest.raises(KeyError, match="known"):
        get_breaker("missing")


def test_statuses_list_every_breaker_by_name(clock: ManualClock) -> None:
    """breaker_statuses() lists each breaker's status, sorted by name."""
    _open("b-service", clock)
    circuit_breaker("a-service")
    statuses = breaker_statuses()
    assert [(s.name, s.state) for s in statuses] == [
        ("a-service", CircuitState.CLOSED),
        ("b-service", CircuitState.OPEN),
    ]


def test_reset_one_and_reset_all(clock: ManualClock) -> None:
    """reset_breaker(name) closes one; reset_all_breakers() closes every one."""
    _open("one", clock)
    _open("two", clock)
    reset_breaker("one")
    assert [s.state for s in breaker_statuses()] == [CircuitState.CLOSED, CircuitState.OPEN]
    reset_all_breakers()
    assert {s.state for s in breaker_statuses()} == {CircuitState.CLOSED}


def test_a_registry_listener_hears_breakers_made_before_and_after(clock: ManualClock) -> None:
    """Registry listeners apply to existing and future breakers."""
    registry = BreakerRegistry(clock=clock)
    before = registry.circuit_breaker("before", failure_threshold=1)
    heard: list[str] = []
    registry.add_listener(lambda name, old, new: heard.append(f"{name}:{new}"))
    after = registry.circuit_breaker("after", failure_threshold=1)
    for breaker in (before, after):
        with pytest.raises(errorkit.NetworkError):
            breaker.call(lambda: (_ for _ in ()).throw(errorkit.NetworkError()))
    assert heard == ["before:open", "after:open"]
