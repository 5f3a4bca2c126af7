"""Metrics and health fed by the real capture pipeline and store: they agree."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from errorkit.capturing import api as capture
from errorkit.errors import DatabaseUnavailableError
from errorkit.observe.health import HealthRegistry
from errorkit.observe.metrics import Metrics


@pytest.fixture
def pipeline(tmp_path: Path) -> Iterator[Metrics]:
    """Capture into a SQLite store, with metrics subscribed to it."""
    capture.configure(f"sqlite:///{tmp_path / 'errors.db'}", service="shop", flush_interval=0.05)
    metrics = Metrics()
    metrics.instrument()
    try:
        yield metrics
    finally:
        metrics.uninstrument()
        capture.shutdown()


def _samples(metrics: Metrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    body, _ = metrics.render()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for f in text_string_to_metric_families(body.decode())
        for s in f.samples
    }


async def test_store_metrics_and_health_agree(pipeline: Metrics) -> None:
    """Two captured errors: the counter says 2, the store has 2, health shows the last."""
    ids = [capture.capture(DatabaseUnavailableError()) for _ in range(2)]
    assert capture.flush(timeout=10)
    samples = _samples(pipeline)
    key = (
        "errorkit_errors_total",
        frozenset(
            {
                ("error_type", "database_error"),
                ("code", "DATABASE_UNAVAILABLE"),
                ("severity", "error"),
                ("status", "503"),
                ("service", "shop"),
            }
        ),
    )
    assert samples[key] == 2.0
    assert samples[("errorkit_capture_events_written_total", frozenset())] == 2.0
    assert samples[("errorkit_capture_queue_depth", frozenset())] == 0.0

    health = HealthRegistry(breaker_source=None, cache_seconds=0)
    errors = (await health.detailed()).as_dict()["errors"]
    assert (errors["recent_count"], errors["unresolved_count"]) == (2, 2)
    assert errors["last_error"]["error_id"] in ids
    assert errors["last_error"]["error_code"] == "DATABASE_UNAVAILABLE"
