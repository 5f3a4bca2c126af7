"""Prometheus metrics: what /metrics really exposes, parsed with the Prometheus parser."""

from __future__ import annotations

import sys
import types
from typing import Any

import prometheus_client
import pytest
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families

from errorkit import _guard, _reporting
from errorkit.errors import ServiceUnavailableError
from errorkit.observe.metrics import (
    OTHER,
    OTHER_CODE,
    BoundedLabel,
    Metrics,
    default_metrics,
    set_default_metrics,
)


def samples(metrics: Metrics, name: str) -> list[tuple[dict[str, str], float]]:
    """Every sample called ``name`` in the exposition text."""
    body, _ = metrics.render()
    return [
        (dict(s.labels), s.value)
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
        if s.name == name
    ]


def value(metrics: Metrics, name: str, **labels: str) -> float | None:
    for found, v in samples(metrics, name):
        if all(found.get(k) == want for k, want in labels.items()):
            return v
    return None


@pytest.fixture
def metrics() -> Metrics:
    return Metrics(capture_stats=lambda: None)


def test_errors_are_counted_by_type_code_severity_status_and_service(metrics: Metrics) -> None:
    """errorkit_errors_total carries the five labels."""
    metrics.record_errors(
        "database_error", "DATABASE_UNAVAILABLE", "error", "checkout", 3, status=503
    )
    metrics.record_errors("database_error", "DATABASE_UNAVAILABLE", "error", "checkout", status=503)
    assert samples(metrics, "errorkit_errors_total") == [
        (
            {
                "error_type": "database_error",
                "code": "DATABASE_UNAVAILABLE",
                "severity": "error",
                "status": "503",
                "service": "checkout",
            },
            4.0,
        )
    ]


def test_unregistered_codes_collapse_into_one_value(metrics: Metrics) -> None:
    """A code the catalog does not know is counted under OTHER."""
    metrics.record_errors("http_error", "MADE_UP_CODE", "error", "api")
    assert value(metrics, "errorkit_errors_total", code=OTHER_CODE) == 1.0


def test_ten_thousand_unregistered_codes_add_one_series(metrics: Metrics) -> None:
    """Label cardinality is bounded: 10,000 distinct unknown codes make a single series."""
    metrics.record_errors("http_error", "NOT_FOUND", "warning", "api")
    before = len(samples(metrics, "errorkit_errors_total"))
    for i in range(10_000):
        metrics.record_errors("http_error", f"UNKNOWN_CODE_{i}", "warning", "api")
    series = samples(metrics, "errorkit_errors_total")
    assert len(series) == before + 1
    assert value(metrics, "errorkit_errors_total", code=OTHER_CODE) == 10_000


def test_services_past_the_cap_collapse(metrics: Metrics) -> None:
    """Distinct services are capped; the rest share the ``other`` value."""
    capped = Metrics(capture_stats=lambda: None, max_services=5)
    for i in range(1_000):
        capped.record_errors("http_error", "NOT_FOUND", "warning", f"svc-{i}")
    services = {labels["service"] for labels, _ in samples(capped, "errorkit_errors_total")}
    assert len(services) == 6
    assert OTHER in services


@pytest.mark.parametrize(
    ("raw", "shown"), [("error", "error"), ("CRITICAL", OTHER), ("loud", OTHER)]
)
def test_severity_is_one_of_the_known_words(metrics: Metrics, raw: str, shown: str) -> None:
    """Severity labels are errorkit's five words; anything else is ``other``."""
    metrics.record_errors("http_error", "NOT_FOUND", raw, "api")
    assert value(metrics, "errorkit_errors_total", severity=shown) == 1.0


def test_error_handling_latency_histogram(metrics: Metrics) -> None:
    """time_error_handling observes seconds into the histogram (injected clock)."""
    ticks = iter([10.0, 10.003])
    with metrics.time_error_handling("http_error", clock=lambda: next(ticks)):
        pass
    name = "errorkit_error_handling_duration_seconds"
    assert value(metrics, f"{name}_count", error_type="http_error") == 1.0
    assert value(metrics, f"{name}_sum", error_type="http_error") == pytest.approx(0.003)
    assert value(metrics, f"{name}_bucket", error_type="http_error", le="0.005") == 1.0
    assert value(metrics, f"{name}_bucket", error_type="http_error", le="0.0025") == 0.0


def test_retries_and_exhausted_retries(metrics: Metrics) -> None:
    """Retries and give-ups are separate counters by operation."""
    metrics.record_retry("charge_card")
    metrics.record_retry("charge_card")
    metrics.record_retry("charge_card", exhausted=True)
    assert value(metrics, "errorkit_retries_total", operation="charge_card") == 2.0
    assert value(metrics, "errorkit_retries_exhausted_total", operation="charge_card") == 1.0


def test_breaker_state_is_one_for_the_current_state(metrics: Metrics) -> None:
    """The state gauge says 1 for the breaker's state and 0 for the others."""
    metrics.record_breaker_transition("payments", "closed", "open")
    metrics.record_breaker_transition("payments", "open", "HALF-OPEN")
    states = {
        labels["state"]: v
        for labels, v in samples(metrics, "errorkit_circuit_breaker_state")
        if labels["breaker"] == "payments"
    }
    assert states == {"closed": 0.0, "open": 0.0, "half_open": 1.0}
    transitions = samples(metrics, "errorkit_circuit_breaker_transitions_total")
    assert sorted((lab["from_state"], lab["to_state"], v) for lab, v in transitions) == [
        ("closed", "open", 1.0),
        ("open", "half_open", 1.0),
    ]


def test_capture_statistics_are_read_at_scrape_time() -> None:
    """Queue depth and capacity, dropped events, writes, spool size and store state come
    from capture's stats when scraped."""
    stats: dict[str, Any] = {
        "configured": True,
        "queue_depth": 7,
        "queue_size": 10_000,
        "dropped": {"queue_full": 3, "too_large": 1},
        "events_written": 40,
        "spool_bytes": 2048,
        "store_available": False,
    }
    metrics = Metrics(capture_stats=lambda: stats)
    assert value(metrics, "errorkit_capture_queue_depth") == 7.0
    stats["queue_depth"] = 2
    assert value(metrics, "errorkit_capture_queue_depth") == 2.0
    assert value(metrics, "errorkit_capture_queue_capacity") == 10_000.0
    assert value(metrics, "errorkit_capture_events_dropped_total", reason="queue_full") == 3.0
    assert value(metrics, "errorkit_capture_events_dropped_total", reason="too_large") == 1.0
    assert value(metrics, "errorkit_capture_events_written_total") == 40.0
    assert value(metrics, "errorkit_capture_spool_size_bytes") == 2048.0
    assert value(metrics, "errorkit_capture_store_up") == 0.0


def test_capture_statistics_may_be_an_object() -> None:
    """Stats with attributes (capture's CaptureStats) work as well as a mapping."""
    stats = types.SimpleNamespace(configured=True, queue_depth=1, dropped={"flood": 2})
    metrics = Metrics(capture_stats=lambda: stats)
    assert value(metrics, "errorkit_capture_events_dropped_total", reason="flood") == 2.0


def test_unconfigured_capture_exposes_nothing() -> None:
    """Before capture is configured there is no queue to show."""
    metrics = Metrics(capture_stats=lambda: {"configured": False, "queue_depth": 0})
    assert value(metrics, "errorkit_capture_queue_depth") is None


def test_capture_listener_counts_sampled_occurrences_only(metrics: Metrics) -> None:
    """on_capture counts sampled-out occurrences; errors themselves are counted when they
    are reported (on_report), so a stored event is not counted a second time."""
    stored = types.SimpleNamespace(
        error_type="api_error",
        code="UPSTREAM_UNAVAILABLE",
        severity="error",
        service="chat",
        count=1,
        sampled=False,
    )
    sampled = types.SimpleNamespace(**{**vars(stored), "count": 40, "sampled": True})
    metrics.on_capture(stored)
    metrics.on_capture(sampled)
    assert value(metrics, "errorkit_errors_total", code="UPSTREAM_UNAVAILABLE") is None
    assert value(metrics, "errorkit_capture_events_sampled_total", reason="flood") == 40.0


def test_failing_capture_statistics_do_not_break_the_scrape(lenient_guard: None) -> None:
    """A broken stats source costs its own metrics, not the whole exposition."""

    def broken() -> Any:
        raise RuntimeError("stats bug")

    metrics = Metrics(capture_stats=broken)
    metrics.record_errors("http_error", "NOT_FOUND", "warning", "api")
    assert value(metrics, "errorkit_errors_total") == 1.0
    assert value(metrics, "errorkit_capture_queue_depth") is None


def test_internal_errors_are_exposed(metrics: Metrics, lenient_guard: None) -> None:
    """Failures errorkit swallowed are visible as errorkit_internal_errors_total."""
    with _guard.guard("metrics.test_site"):
        raise RuntimeError("swallowed")
    assert value(metrics, "errorkit_internal_errors_total", site="metrics.test_site") == 1.0


def test_recording_never_raises(metrics: Metrics, lenient_guard: None) -> None:
    """Bad input to a recording call is swallowed and counted, never raised."""
    metrics.record_errors("http_error", "NOT_FOUND", "warning", "api", count="many")  # type: ignore[arg-type]
    metrics.observe_error_handling("slow")  # type: ignore[arg-type]
    assert _guard.internal_error_counts()["metrics.record_errors"] >= 1


def test_names_and_types_follow_prometheus_conventions(metrics: Metrics) -> None:
    """Counters end in _total, the histogram and the spool are in base units."""
    metrics.record_errors("http_error", "NOT_FOUND", "warning", "api")
    metrics.record_retry("op")
    metrics.record_retry("op", exhausted=True)
    metrics.record_breaker_transition("b", "closed", "open")
    metrics.observe_error_handling(0.001)
    body, content_type = metrics.render()
    assert content_type.startswith("text/plain; version=0.0.4")
    families = {
        f.name: f.type
        for f in text_string_to_metric_families(body.decode())
        if not f.name.endswith("_created")  # prometheus_client's creation timestamps
    }
    assert families == {
        "errorkit_errors": "counter",
        "errorkit_error_handling_duration_seconds": "histogram",
        "errorkit_retries": "counter",
        "errorkit_retries_exhausted": "counter",
        "errorkit_fallbacks": "counter",
        "errorkit_circuit_breaker_state": "gauge",
        "errorkit_circuit_breaker_transitions": "counter",
        "errorkit_capture_events_sampled": "counter",
        "errorkit_http_requests": "counter",
        "errorkit_internal_errors": "counter",
    }


def test_openmetrics_is_served_when_asked(metrics: Metrics) -> None:
    """An OpenMetrics Accept header gets the OpenMetrics format."""
    metrics.record_errors("http_error", "NOT_FOUND", "warning", "api")
    body, content_type = metrics.render("application/openmetrics-text; version=1.0.0")
    assert content_type.startswith("application/openmetrics-text")
    names = {f.name for f in openmetrics_families(body.decode())}
    assert "errorkit_errors" in names


def test_metrics_use_their_own_registry_by_default(metrics: Metrics) -> None:
    """Nothing is registered in the process-wide registry unless asked."""
    assert metrics.registry is not prometheus_client.REGISTRY
    metrics.record_errors("http_error", "NOT_FOUND", "warning", "api")
    assert prometheus_client.REGISTRY.get_sample_value("errorkit_errors_total") is None


def test_a_given_registry_is_used() -> None:
    """Passing a registry (such as the global one) puts the metrics there."""
    registry = prometheus_client.CollectorRegistry()
    metrics = Metrics(registry, capture_stats=lambda: None)
    metrics.record_errors("http_error", "NOT_FOUND", "warning", "api")
    labels = {
        "error_type": "http_error",
        "code": "NOT_FOUND",
        "severity": "warning",
        "status": "",
        "service": "api",
    }
    assert registry.get_sample_value("errorkit_errors_total", labels) == 1.0


def test_bounded_label_refuses_a_zero_limit() -> None:
    """A label without room for any value is a configuration error."""
    with pytest.raises(ValueError, match="at least one value"):
        BoundedLabel(0)


@pytest.fixture
def fake_pipeline(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[Any]]:
    """Stand-ins for errorkit.capture and errorkit.resilience with their listener APIs."""
    joined: dict[str, list[Any]] = {"capture": [], "breakers": [], "retries": []}
    capture = types.ModuleType("errorkit.capturing")
    capture.add_listener = joined["capture"].append  # type: ignore[attr-defined]
    capture.stats = lambda: {"configured": True, "queue_depth": 5}  # type: ignore[attr-defined]
    resilience = types.ModuleType("errorkit.resilience")
    resilience.add_breaker_listener = joined["breakers"].append  # type: ignore[attr-defined]
    resilience.breaker_statuses = lambda: [  # type: ignore[attr-defined]
        types.SimpleNamespace(name="search", state="half_open")
    ]
    resilience.add_retry_listener = joined["retries"].append  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "errorkit.capturing", capture)
    monkeypatch.setitem(sys.modules, "errorkit.resilience", resilience)
    return joined


def test_instrument_subscribes_to_the_pipeline(fake_pipeline: dict[str, list[Any]]) -> None:
    """instrument() joins the reported errors, capture's listener, breaker transitions
    and retries."""
    metrics = Metrics()
    assert metrics.instrument() == ["errors", "capture", "breakers", "retries"]
    try:
        _reporting.report(ServiceUnavailableError(), status=503)
    finally:
        metrics.uninstrument()
    (on_capture,) = fake_pipeline["capture"]
    on_capture(
        types.SimpleNamespace(
            error_type="api_error",
            code="UPSTREAM_UNAVAILABLE",
            severity="error",
            service="checkout",
            count=2,
            sampled=True,
        )
    )
    (on_transition,) = fake_pipeline["breakers"]
    on_transition("llm", "closed", "open")
    (on_retry,) = fake_pipeline["retries"]
    on_retry(types.SimpleNamespace(operation="llm_call", attempt=2))
    assert value(metrics, "errorkit_errors_total", code="SERVICE_UNAVAILABLE") == 1.0
    assert value(metrics, "errorkit_capture_events_sampled_total", reason="flood") == 2.0
    assert value(metrics, "errorkit_circuit_breaker_state", breaker="llm", state="open") == 1.0
    assert (
        value(metrics, "errorkit_circuit_breaker_state", breaker="search", state="half_open") == 1.0
    )
    assert value(metrics, "errorkit_retries_total", operation="llm_call") == 1.0
    assert value(metrics, "errorkit_capture_queue_depth") == 5.0


def test_instrument_twice_subscribes_once(fake_pipeline: dict[str, list[Any]]) -> None:
    """A second instrument() (two integrations installed) does not double count."""
    metrics = Metrics()
    metrics.instrument()
    metrics.instrument()
    metrics.uninstrument()
    assert [len(v) for v in fake_pipeline.values()] == [1, 1, 1]


def test_real_breakers_and_retries_feed_the_metrics(metrics: Metrics) -> None:
    """A real circuit breaker's transitions and a real retry's hook move the metrics."""
    from errorkit.errors import CircuitOpenError, ServiceUnavailableError
    from errorkit.resilience import CircuitBreaker, ManualClock, retry

    clock = ManualClock()
    breaker = CircuitBreaker(
        "observe-test-upstream",
        failure_threshold=2,
        clock=clock,
        listeners=[metrics.record_breaker_transition],
    )
    policy = retry(
        attempts=3, on_retry=metrics.on_retry, capture=False, clock=clock, name="upstream_call"
    )

    def flaky() -> None:
        raise ServiceUnavailableError()

    with pytest.raises(CircuitOpenError):
        policy.call(breaker.call, flaky)
    assert value(metrics, "errorkit_retries_total", operation="upstream_call") == 2.0
    assert (
        value(
            metrics, "errorkit_circuit_breaker_state", breaker="observe-test-upstream", state="open"
        )
        == 1.0
    )


def test_default_metrics_is_one_instance_until_replaced() -> None:
    """default_metrics() is shared; set_default_metrics swaps it and returns the old one."""
    mine = Metrics(capture_stats=lambda: None)
    previous = set_default_metrics(mine)
    try:
        assert default_metrics() is mine
    finally:
        set_default_metrics(previous)


def test_set_default_metrics_rejects_other_objects() -> None:
    """Only a Metrics instance can become the default."""
    with pytest.raises(TypeError, match="Metrics instance"):
        set_default_metrics(object())  # type: ignore[arg-type]
