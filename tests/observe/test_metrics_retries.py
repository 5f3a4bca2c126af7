"""Retries counted through the process-wide listener, read back from the served /metrics."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from errorkit.observe.metrics import OTHER, Metrics
from errorkit.resilience import ManualClock, retry

from ._apps import FRAMEWORKS, app_client

TOKEN = "retry-metrics-token"


def flaky(times: int) -> Callable[[], str]:
    """A callable that fails with a connection error ``times`` times, then answers."""
    calls = {"n": 0}

    def fn() -> str:
        calls["n"] += 1
        if calls["n"] <= times:
            raise ConnectionError("upstream reset the connection")
        return "ok"

    return fn


@pytest.fixture
def metrics() -> Iterator[Metrics]:
    """Metrics instrumented into the running process; undone after the test."""
    m = Metrics(capture_stats=lambda: None, max_operations=5)
    m.instrument()
    yield m
    m.uninstrument()


def scraped(framework: str, metrics: Metrics) -> dict[tuple[str, str], float]:
    """``(sample name, operation) -> value`` for the retry samples of the served /metrics."""
    with app_client(framework, metrics=metrics, token=TOKEN) as get:
        reply = get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert reply.status == 200
    return {
        (s.name, s.labels["operation"]): s.value
        for family in text_string_to_metric_families(reply.body.decode())
        for s in family.samples
        if s.name in ("errorkit_retries_total", "errorkit_retries_exhausted_total")
    }


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_served_metrics_count_every_policys_retries(framework: str, metrics: Metrics) -> None:
    """Retries and give-ups of policies that never mention metrics show on /metrics."""
    clock = ManualClock()
    assert retry(attempts=3, name="fetch_rates", clock=clock, capture=False)(flaky(2))() == "ok"
    with pytest.raises(ConnectionError):
        retry(attempts=2, name="charge_card", clock=clock, capture=False).call(flaky(9))
    assert scraped(framework, metrics) == {
        ("errorkit_retries_total", "fetch_rates"): 2.0,
        ("errorkit_retries_total", "charge_card"): 1.0,
        ("errorkit_retries_exhausted_total", "charge_card"): 1.0,
    }


def test_a_policy_hook_and_the_listener_count_once(metrics: Metrics) -> None:
    """``on_retry=metrics.on_retry`` on an instrumented process does not double count."""
    clock = ManualClock()
    retry(name="search", on_retry=metrics.on_retry, clock=clock, capture=False).call(flaky(1))
    assert scraped("starlette", metrics) == {("errorkit_retries_total", "search"): 1.0}


def test_operation_label_stays_bounded(metrics: Metrics) -> None:
    """Hundreds of distinct operation names add at most max_operations + 1 series."""
    clock = ManualClock()
    for i in range(300):
        retry(name=f"job-{i}", clock=clock, capture=False).call(flaky(1))
    series = scraped("starlette", metrics)
    assert len(series) == 5 + 1
    assert series[("errorkit_retries_total", OTHER)] == 300.0 - 5


def test_uninstrument_stops_counting(metrics: Metrics) -> None:
    """After uninstrument() a retry no longer moves the counters."""
    clock = ManualClock()
    metrics.uninstrument()
    retry(name="quiet", clock=clock, capture=False).call(flaky(1))
    assert scraped("starlette", metrics) == {}
