"""install() mounts /metrics and the health endpoints by default, configurable or off."""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterator
from typing import Any

import pytest
from _apps import FRAMEWORKS, Client, make_app
from prometheus_client.parser import text_string_to_metric_families

from errorkit.capturing import api as capture_api
from errorkit.config import get_settings
from errorkit.observe import EndpointConfig, HealthRegistry
from errorkit.observe.metrics import Metrics, set_default_metrics


def _bare(framework: str) -> Any:
    if framework == "flask":
        from flask import Flask

        return Flask("endpoints")
    if framework == "fastapi":
        from fastapi import FastAPI

        return FastAPI()
    from starlette.applications import Starlette

    return Starlette()


def _client(framework: str, **install: Any) -> Client:
    app = _bare(framework)
    importlib.import_module(f"errorkit.{framework}").install(app, **install)
    return Client(framework, app)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_endpoints_are_mounted_by_default(framework: str) -> None:
    """/health, /health/ready, /health/detailed and /metrics answer after a plain install()."""
    client = _client(framework)
    for path in ("/health", "/health/ready", "/health/detailed"):
        answer = client.request("GET", path)
        assert answer.status == 200, (path, answer.body)
        assert json.loads(answer.body)["status"] in ("pass", "ok", "healthy")
    metrics = client.request("GET", "/metrics")
    assert metrics.status == 200
    names = {f.name for f in text_string_to_metric_families(metrics.body.decode())}
    assert "errorkit_errors" in names


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_endpoints_none_mounts_nothing(framework: str) -> None:
    """endpoints=None leaves every path to the app (errorkit answers the 404)."""
    client = _client(framework, endpoints=None)
    for path in ("/health", "/metrics"):
        answer = client.request("GET", path)
        assert answer.status == 404
        assert json.loads(answer.body)["error"]["code"] == "NOT_FOUND"


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_paths_move_turn_off_and_take_a_token(framework: str) -> None:
    """EndpointConfig moves a path, turns one off, protects metrics and keeps the details
    of the detailed health for the token."""
    health = HealthRegistry(service="api")

    def database() -> None:
        raise ConnectionRefusedError("db down")

    health.add("database", database, critical=True)
    config = EndpointConfig(metrics_path=None, health_path="/livez", token="s3cret", health=health)
    client = _client(framework, endpoints=config)
    assert client.request("GET", "/livez").status == 200
    assert client.request("GET", "/metrics").status == 404
    stranger = client.request("GET", "/health/detailed")
    assert stranger.status == 503
    assert json.loads(stranger.body)["components"]["database"]["status"] == "unhealthy"
    assert b"db down" not in stranger.body
    detailed = client.request("GET", "/health/detailed", headers={"Authorization": "Bearer s3cret"})
    assert detailed.status == 503
    assert "db down" in detailed.body.decode()


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_a_bad_endpoints_value_says_the_fix_and_changes_nothing(framework: str) -> None:
    """Passing something other than an EndpointConfig names what to pass, before install."""
    app = _bare(framework)
    module = importlib.import_module(f"errorkit.{framework}")
    with pytest.raises(TypeError, match="EndpointConfig"):
        module.install(app, endpoints={"metrics_path": None})
    module.install(app)  # nothing was half-installed


@pytest.fixture
def fresh_metrics() -> Iterator[Metrics]:
    """A new process-wide Metrics for the test, unsubscribed and replaced afterwards."""
    metrics = Metrics(capture_stats=lambda: None)
    previous = set_default_metrics(metrics)
    yield metrics
    metrics.uninstrument()
    set_default_metrics(previous)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_every_answered_error_is_counted_without_a_store(
    framework: str, fresh_metrics: Metrics
) -> None:
    """With no store configured and capture_4xx off, /metrics counts every error the app
    answered, 4xx and 5xx, by code, error type, status and severity, and the handling
    histogram holds one observation per answer."""
    assert not capture_api.is_configured() and not get_settings().capture_4xx
    client = Client(framework, make_app(framework))
    for path in ("/items/7", "/items/8", "/rate", "/boom", "/server-error/db"):
        assert client.get(path).status >= 400
    body = client.get("/metrics").body.decode()
    counted = {
        (s.labels["code"], s.labels["status"], s.labels["error_type"], s.labels["severity"]): (
            s.value
        )
        for f in text_string_to_metric_families(body)
        for s in f.samples
        if s.name == "errorkit_errors_total"
    }
    assert counted == {
        ("NOT_FOUND", "404", "http_error", "warning"): 2.0,
        ("RATE_LIMIT_EXCEEDED", "429", "http_error", "warning"): 1.0,
        ("INTERNAL_ERROR", "500", "unknown_error", "error"): 1.0,
        ("DATABASE_ERROR", "500", "database_error", "error"): 1.0,
    }
    handled = {
        s.labels["error_type"]: s.value
        for f in text_string_to_metric_families(body)
        for s in f.samples
        if s.name == "errorkit_error_handling_duration_seconds_count"
    }
    assert handled == {"http_error": 3.0, "unknown_error": 1.0, "database_error": 1.0}
