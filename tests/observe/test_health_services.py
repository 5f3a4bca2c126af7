"""Health against the real PostgreSQL, Redis and an HTTP server: take one away through a
proxy, the detailed endpoint turns 503 naming it; bring it back, 200."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url
from tests._proxy import TCPProxy
from tests._services import require_postgres, require_redis

from errorkit.observe.checks import http_check, redis_check, sqlalchemy_check
from errorkit.observe.health import HealthRegistry, HealthStatus
from errorkit.observe.metrics import Metrics

from ._apps import FRAMEWORKS, app_client


@pytest.fixture
def postgres_url() -> str:
    return require_postgres()


@pytest.fixture
def redis_url() -> str:
    return require_redis()


def _proxied(url: str, proxy: TCPProxy, *, redis: bool = False) -> str:
    parsed = make_url(url) if not redis else None
    if parsed is not None:
        return parsed.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"127.0.0.1:{proxy.port}"))


def _target(url: str) -> tuple[str, int]:
    from urllib.parse import urlsplit

    parts = urlsplit(url.replace("postgresql+psycopg://", "postgresql://"))
    return parts.hostname or "127.0.0.1", parts.port or 0


@pytest.fixture
def services(postgres_url: str, redis_url: str) -> Iterator[dict[str, Any]]:
    """A registry with real PostgreSQL and Redis checks, each through its own proxy."""
    pg_host, pg_port = _target(postgres_url)
    redis_host, redis_port = _target(redis_url)
    pg_proxy = TCPProxy(pg_host, pg_port or 5432).start()
    redis_proxy = TCPProxy(redis_host, redis_port or 6379).start()
    engine = create_engine(_proxied(postgres_url, pg_proxy), pool_pre_ping=False)
    registry = HealthRegistry(error_source=None, breaker_source=None, cache_seconds=0)
    registry.add("postgres", sqlalchemy_check(engine), component_type="datastore")
    registry.add("redis", redis_check(_proxied(redis_url, redis_proxy, redis=True), timeout=1))
    try:
        yield {"registry": registry, "postgres": pg_proxy, "redis": redis_proxy}
    finally:
        engine.dispose()
        pg_proxy.stop()
        redis_proxy.stop()


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("component", ["postgres", "redis"])
def test_detailed_health_follows_a_real_dependency(
    services: dict[str, Any], framework: str, component: str
) -> None:
    """Both up: 200. One taken away: 503 naming it. Back: 200."""
    registry: HealthRegistry = services["registry"]
    proxy: TCPProxy = services[component]
    other = "redis" if component == "postgres" else "postgres"
    token = {"Authorization": "Bearer health-token"}
    with app_client(framework, health=registry, metrics=Metrics(), token="health-token") as get:
        up = get("/health/detailed", headers=token)
        assert up.status == 200, up.json()
        assert up.json()["status"] == "healthy"

        proxy.stop()
        down = get("/health/detailed", headers=token)
        assert down.status == 503
        data = down.json()
        assert data["components"][component]["status"] == "unhealthy"
        assert data["components"][component]["error"]
        assert data["components"][other]["status"] == "healthy"
        stranger = get("/health/detailed")
        assert stranger.status == 503
        assert stranger.json()["components"][component] == {
            "status": "unhealthy",
            "critical": True,
            "latency_ms": stranger.json()["components"][component]["latency_ms"],
        }
        assert b"127.0.0.1" not in stranger.body

        proxy.start()
        back = get("/health/detailed", headers=token)
        assert back.status == 200, back.json()


class _Handler(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(type(self).status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def http_server() -> Iterator[tuple[str, type[_Handler]]]:
    handler = type("Handler", (_Handler,), {"status": 200})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/healthz", handler
    finally:
        server.shutdown()
        server.server_close()


async def test_http_check_follows_the_answer_status(
    http_server: tuple[str, type[_Handler]],
) -> None:
    """A real HTTP dependency: 200 is healthy, 500 unhealthy with the status named."""
    url, handler = http_server
    registry = HealthRegistry(error_source=None, breaker_source=None, cache_seconds=0)
    registry.add("billing", http_check(url, timeout=2))
    assert (await registry.readiness()).status is HealthStatus.HEALTHY
    handler.status = 500
    report = await registry.readiness()
    component = report.component("billing")
    assert component is not None and component.status is HealthStatus.UNHEALTHY
    assert component.error is not None and "answered HTTP 500" in component.error


async def test_http_check_with_nothing_listening_is_unhealthy() -> None:
    """A port nothing listens on is unhealthy, not a crash."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    registry = HealthRegistry(error_source=None, breaker_source=None, cache_seconds=0)
    registry.add("billing", http_check(f"http://127.0.0.1:{port}/", timeout=2), critical=False)
    report = await registry.readiness()
    assert report.status is HealthStatus.DEGRADED
    component = report.component("billing")
    assert component is not None and "ConnectError" in (component.error or "")


@pytest.mark.redis
async def test_async_redis_client_is_checked(redis_url: str) -> None:
    """A redis.asyncio client is awaited, not run in a thread."""
    import redis.asyncio

    client = redis.asyncio.Redis.from_url(redis_url)
    registry = HealthRegistry(error_source=None, breaker_source=None, cache_seconds=0)
    registry.add("redis", redis_check(client))
    try:
        assert (await registry.readiness()).status is HealthStatus.HEALTHY
    finally:
        await client.aclose()


@pytest.mark.postgres
async def test_async_engine_is_checked(postgres_url: str) -> None:
    """A SQLAlchemy AsyncEngine is awaited."""
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(postgres_url)
    registry = HealthRegistry(error_source=None, breaker_source=None, cache_seconds=0)
    registry.add("postgres", sqlalchemy_check(engine))
    try:
        assert (await registry.readiness()).status is HealthStatus.HEALTHY
    finally:
        await engine.dispose()


@pytest.mark.parametrize(
    ("factory", "message"),
    [
        (lambda: sqlalchemy_check("postgres://x"), "needs a sqlalchemy Engine"),
        (lambda: redis_check(42), "needs a redis URL"),
        (lambda: http_check("ftp://x"), "http:// or https://"),
    ],
)
def test_ready_made_checks_refuse_the_wrong_thing(factory: Any, message: str) -> None:
    """Each ready-made check says what it needs."""
    with pytest.raises((TypeError, ValueError), match=message):
        factory()
