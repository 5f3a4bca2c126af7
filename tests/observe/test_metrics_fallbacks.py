"""errorkit_fallbacks_total{operation}: each call a fallback answered, wherever it was."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import errorkit
from errorkit.observe.metrics import Metrics
from errorkit.resilience import (
    CircuitBreaker,
    FallbackEvent,
    ManualClock,
    add_fallback_listener,
    fallback_chain,
    remove_fallback_listener,
    step,
    with_error_recovery,
)


@pytest.fixture
def metrics() -> Iterator[Metrics]:
    m = Metrics(capture_stats=lambda: None)
    assert "fallbacks" in m.instrument()
    yield m
    m.uninstrument()


def count(metrics: Metrics, operation: str) -> float | None:
    return metrics.registry.get_sample_value("errorkit_fallbacks_total", {"operation": operation})


def down(*args: object) -> str:
    raise errorkit.ServiceUnavailableError()


def test_a_fallback_chain_counts_when_a_later_step_answers(metrics: Metrics) -> None:
    chain = fallback_chain(
        step("primary", down), step("cache", lambda: "cached"), operation="profile"
    )
    ok = fallback_chain(
        step("primary", lambda: "fresh"), step("cache", lambda: "cached"), operation="profile"
    )
    assert ok.call() == "fresh"
    assert count(metrics, "profile") is None
    assert chain.call() == "cached"
    assert chain.call() == "cached"
    assert count(metrics, "profile") == 2


async def test_an_async_chain_counts_too(metrics: Metrics) -> None:
    async def cached() -> str:
        return "cached"

    chain = fallback_chain(down, cached, operation="rates")
    assert await chain.call_async() == "cached"
    assert count(metrics, "rates") == 1


def test_a_breakers_fallback_counts_under_its_name(metrics: Metrics) -> None:
    breaker = CircuitBreaker(
        "llm", failure_threshold=1, fallback=lambda: "canned", clock=ManualClock()
    )
    assert breaker.call(down) == "canned"  # a counted failure: opens it
    assert breaker.call(down) == "canned"  # open: refused, the fallback answers
    assert count(metrics, "llm") == 2


def test_with_error_recovery_counts_its_fallback(metrics: Metrics) -> None:
    clock = ManualClock()
    guard = CircuitBreaker("gcs", failure_threshold=1, clock=clock)

    @with_error_recovery(
        "gcs",
        "upload",
        max_retries=0,
        fallback=lambda: "local",
        breaker=guard,
        capture=False,
        clock=clock,
    )
    def upload() -> str:
        return down()

    assert upload() == "local"  # failed: the fallback answers
    assert upload() == "local"  # open: the fallback answers
    assert count(metrics, "gcs.upload") == 2


def test_listeners_hear_the_operation_source_and_error() -> None:
    heard: list[FallbackEvent] = []
    add_fallback_listener(heard.append)
    try:
        fallback_chain(step("db", down), step("default", {}), operation="prefs").call()
    finally:
        remove_fallback_listener(heard.append)
    (event,) = heard
    assert (event.operation, event.source) == ("prefs", "default")
    assert isinstance(event.error, errorkit.ServiceUnavailableError)
