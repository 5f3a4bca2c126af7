"""The mounted endpoints on Starlette, FastAPI and Flask apps."""

from __future__ import annotations

from typing import Any
from unittest.mock import ANY

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
    with app_client(framework, health=registry, metrics=Metrics(), token=TOKEN) as get:
        data = get("/health/detailed", headers={"Authorization": f"Bearer {TOKEN}"}).json()
    assert data["components"]["postgres"]["status"] == "healthy"
    assert data["breakers"] == {"payments": {"state": "closed"}}
    assert "errors" in data and "uptime_seconds" in data


def _leaky() -> HealthRegistry:
    registry = HealthRegistry(
        service="shop",
        release="1.4.2",
        error_source=None,
        breaker_source=lambda: {"payments": {"state": "open", "failures": 5}},
        cache_seconds=0,
    )

    def db() -> None:
        raise ConnectionRefusedError("Error 111 connecting to 127.0.0.1:6390")

    registry.add("postgres", db)
    return registry


@pytest.mark.parametrize("token", [None, TOKEN])
@pytest.mark.parametrize("authorization", [None, "Bearer wrong-token", f"Basic {TOKEN}"])
@pytest.mark.parametrize("accept", [None, "application/health+json"])
def test_detailed_without_the_token_shows_statuses_only(
    framework: str, token: str | None, authorization: str | None, accept: str | None
) -> None:
    """Without the configured token (or with no token configured) /health/detailed answers
    each component's and breaker's status, never error texts, details, service or release."""
    headers = {k: v for k, v in (("Authorization", authorization), ("Accept", accept)) if v}
    with app_client(framework, health=_leaky(), metrics=Metrics(), token=token) as get:
        reply = get("/health/detailed", headers=headers)
    assert reply.status == 503
    for leak in (b"111", b"127.0.0.1", b"Connection", b"1.4.2", b"shop", b"failures"):
        assert leak not in reply.body
    data = reply.json()
    if accept is None:
        assert data["components"] == {
            "postgres": {"status": "unhealthy", "critical": True, "latency_ms": ANY}
        }
        assert data["breakers"] == {"payments": {"state": "open"}}
        assert set(data) == {"status", "checked_at", "uptime_seconds", "components", "breakers"}
    else:
        assert data["checks"]["postgres:responseTime"][0]["status"] == "fail"
        assert data["checks"]["payments:circuitBreaker"][0]["observedValue"] == "open"


def test_detailed_with_the_token_shows_details(framework: str) -> None:
    """With the configured token /health/detailed shows the error text and the rest."""
    with app_client(framework, health=_leaky(), metrics=Metrics(), token=TOKEN) as get:
        data = get("/health/detailed", headers={"Authorization": f"Bearer {TOKEN}"}).json()
    assert "Error 111" in data["components"]["postgres"]["error"]
    assert (data["service"], data["release"]) == ("shop", "1.4.2")
    assert data["breakers"] == {"payments": {"state": "open", "failures": 5}}


def test_detailed_left_out_of_protect_shows_details_to_all(framework: str) -> None:
    """protect without "detailed" opens the details by choice."""
    with app_client(framework, health=_leaky(), metrics=Metrics(), protect=("metrics",)) as get:
        data = get("/health/detailed").json()
    assert "Error 111" in data["components"]["postgres"]["error"]


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


@pytest.mark.parametrize("path", ["/metrics"])
@pytest.mark.parametrize(
    "authorization", [None, "Bearer wrong-token", f"Basic {TOKEN}", TOKEN, "Bearer "]
)
def test_protected_endpoints_need_the_token(
    framework: str, metrics: Metrics, path: str, authorization: str | None
) -> None:
    """Without ``Authorization: Bearer <token>`` the metrics answer 401."""
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
