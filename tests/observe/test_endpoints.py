"""The mounted endpoints on Starlette, FastAPI and Flask apps."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from errorkit.observe.endpoints import EndpointConfig, mount_asgi, mount_flask
from errorkit.observe.health import HealthRegistry
from errorkit.observe.metrics import Metrics

from ._apps import FRAMEWORKS, app_client

TOKEN = "s3cr3t-metrics-token"
pytestmark = pytest.mark.parametrize("framework", FRAMEWORKS)


def health(*, failing: bool = False, critical: bool = True) -> HealthRegistry:
    registry = HealthRegistry(error_source=None, breaker_source=None, cache_seconds=0)

    def db() -> bool:
        return not failing

    registry.add("postgres", db, critical=critical)
    return registry


@pytest.fixture
def metrics() -> Metrics:
    m = Metrics(capture_stats=lambda: {"queue_depth": 4})
    m.record_errors("http_error", "NOT_FOUND", "warning", "shop")
    return m


def test_liveness_is_200(framework: str) -> None:
    """/health answers 200 healthy without asking dependencies."""
    with app_client(framework, health=health(failing=True), metrics=Metrics()) as get:
        reply = get("/health")
    assert reply.status == 200
    assert reply.json()["status"] == "healthy"
    assert reply.headers["cache-control"] == "no-store"


@pytest.mark.parametrize(
    ("failing", "critical", "status", "word"),
    [
        (False, True, 200, "healthy"),
        (True, False, 200, "degraded"),
        (True, True, 503, "unhealthy"),
    ],
)
def test_readiness_follows_critical_components(
    framework: str, failing: bool, critical: bool, status: int, word: str
) -> None:
    """/health/ready is 503 only when a critical component is down."""
    registry = health(failing=failing, critical=critical)
    with app_client(framework, health=registry, metrics=Metrics()) as get:
        reply = get("/health/ready")
    assert (reply.status, reply.json()["status"]) == (status, word)
    assert reply.json()["components"]["postgres"]["critical"] is critical


def test_detailed_has_components_errors_and_breakers(framework: str) -> None:
    """/health/detailed shows each section."""
    registry = HealthRegistry(
        error_source=None, breaker_source=lambda: {"payments": "closed"}, cache_seconds=0
    )
    registry.add("postgres", lambda: True)
    with app_client(framework, health=registry, metrics=Metrics()) as get:
        data = get("/health/detailed").json()
    assert data["components"]["postgres"]["status"] == "healthy"
    assert data["breakers"] == {"payments": {"state": "closed"}}
    assert "errors" in data and "uptime_seconds" in data


def test_health_json_is_served_when_asked(framework: str) -> None:
    """Accept: application/health+json gets that media type and shape."""
    with app_client(framework, health=health(failing=True), metrics=Metrics()) as get:
        reply = get("/health/detailed", headers={"Accept": "application/health+json"})
    assert reply.status == 503
    assert reply.headers["content-type"].startswith("application/health+json")
    assert reply.json()["status"] == "fail"


def test_metrics_parse_with_the_prometheus_parser(framework: str, metrics: Metrics) -> None:
    """/metrics serves the registry in the text format."""
    with app_client(framework, health=health(), metrics=metrics) as get:
        reply = get("/metrics")
    assert reply.status == 200
    assert reply.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples = {
        s.name: s.value
        for f in text_string_to_metric_families(reply.body.decode())
        for s in f.samples
    }
    assert samples["errorkit_errors_total"] == 1.0
    assert samples["errorkit_capture_queue_depth"] == 4.0


@pytest.mark.parametrize("path", ["/metrics", "/health/detailed"])
@pytest.mark.parametrize(
    "authorization", [None, "Bearer wrong-token", f"Basic {TOKEN}", TOKEN, "Bearer "]
)
def test_protected_endpoints_need_the_token(
    framework: str, metrics: Metrics, path: str, authorization: str | None
) -> None:
    """Without ``Authorization: Bearer <token>`` metrics and detailed health answer 401."""
    headers = {} if authorization is None else {"Authorization": authorization}
    with app_client(framework, health=health(), metrics=metrics, token=TOKEN) as get:
        reply = get(path, headers=headers)
    assert reply.status == 401
    assert reply.headers["www-authenticate"].startswith("Bearer")
    body = reply.json()
    error = body.get("error") or {}
    assert error.get("code") == "AUTH_REQUIRED" or body.get("status") == 401
    assert TOKEN.encode() not in reply.body


@pytest.mark.parametrize("path", ["/metrics", "/health/detailed"])
def test_the_right_token_opens_protected_endpoints(
    framework: str, metrics: Metrics, path: str
) -> None:
    """The bearer token lets the request through."""
    with app_client(framework, health=health(), metrics=metrics, token=TOKEN) as get:
        reply = get(path, headers={"Authorization": f"Bearer {TOKEN}"})
    assert reply.status == 200


@pytest.mark.parametrize("path", ["/health", "/health/ready"])
def test_liveness_and_readiness_stay_open_with_a_token(
    framework: str, metrics: Metrics, path: str
) -> None:
    """Load balancers need no token."""
    with app_client(framework, health=health(), metrics=metrics, token=TOKEN) as get:
        assert get(path).status == 200


def test_paths_can_be_moved_or_turned_off(framework: str, metrics: Metrics) -> None:
    """Each path is configurable; None leaves an endpoint out."""
    with app_client(
        framework,
        health=health(),
        metrics=metrics,
        metrics_path="/internal/metrics",
        health_path="/livez",
        ready_path="/readyz",
        detailed_path=None,
    ) as get:
        assert get("/internal/metrics").status == 200
        assert get("/livez").status == 200
        assert get("/readyz").status == 200
        assert get("/metrics").status == 404
        assert get("/health/detailed").status == 404


def test_mount_returns_the_mounted_paths(framework: str) -> None:
    """The mount functions say which paths they added."""
    mounted: list[str] = []

    def mount(app: Any, **kwargs: Any) -> list[str]:
        fn = mount_flask if framework == "flask" else mount_asgi
        mounted.extend(fn(app, **kwargs))
        return mounted

    with app_client(framework, mount, health=health(), metrics=Metrics(), detailed_path=None):
        pass
    assert mounted == ["/metrics", "/health", "/health/ready"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"health_path": "health"}, "starting with '/'"),
        ({"ready_path": "/health"}, "share a path"),
        ({"token": ""}, "non-empty string"),
        ({"protect": ["everything"]}, "protect="),
    ],
)
def test_bad_configuration_says_what_to_fix(
    framework: str, kwargs: dict[str, Any], message: str
) -> None:
    """Bad paths, tokens or protect values are refused before anything is mounted."""
    with pytest.raises(ValueError, match=message), app_client(framework, **kwargs):
        pass


def test_mounting_on_something_else_is_refused(framework: str) -> None:
    """A non-app object gets a TypeError naming what is needed."""
    fn = mount_flask if framework == "flask" else mount_asgi
    with pytest.raises(TypeError, match="needs a"):
        fn(object())


def test_endpoint_config_defaults(framework: str) -> None:
    """The defaults are the documented paths, metrics and detailed protected."""
    config = EndpointConfig()
    assert config.routes() == [
        ("/metrics", "metrics"),
        ("/health", "liveness"),
        ("/health/ready", "readiness"),
        ("/health/detailed", "detailed"),
    ]
    assert tuple(config.protect) == ("metrics", "detailed")
