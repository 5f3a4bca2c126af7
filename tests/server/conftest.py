"""Fixtures for the tracker: a store of each backend filled through errorkit's capture
pipeline, tokens of every kind, a breaker registry with one open breaker, and a client."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from tests._services import fresh_postgres_database

from errorkit import _reporting
from errorkit.capturing import api as capture
from errorkit.config import update_settings
from errorkit.observe.health import HealthRegistry
from errorkit.resilience.registry import BreakerRegistry
from errorkit.store import ErrorStore, open_store
from errorkit.store.tokens import TokenStore


@pytest.fixture(autouse=True)
def _no_pipeline_left_behind() -> Iterator[None]:
    """Each test starts unconfigured and ends with its pipeline stopped and the settings
    it changed back to their defaults."""
    capture.shutdown(timeout=5)
    yield
    capture.shutdown(timeout=5)
    _reporting.set_reporter(None)
    update_settings(capture_enabled=True, spool_dir=None, service="app")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A store URL of each backend, with an empty database of its own."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'errors.db'}"
        return
    with fresh_postgres_database() as url:
        yield url


class Boom(RuntimeError):
    """What the seeded app raises."""


class DbDown(ConnectionError):
    """The other kind of failure the seeded app raises."""


def _raise(exc: BaseException) -> BaseException:
    try:
        raise exc
    except BaseException as caught:
        return caught


@dataclass
class Seeded:
    """What the seeded store holds."""

    url: str
    boom_ids: list[str]
    db_ids: list[str]
    worker_id: str


def seed(url: str, spool: Path) -> Seeded:
    """Errors written the way an app writes them: through capture, flushed to the store."""
    capture.configure(
        store_url=url, service="api", environment="prod", release="1.0.0", spool_dir=spool
    )
    boom_ids = [
        capture.capture(
            _raise(Boom(f"boom {n}")),
            endpoint="/api/chat",
            method="POST",
            status=500,
            request_id=f"req-boom-{n}",
            session_id="session-1",
        )
        for n in range(3)
    ]
    db_ids = [
        capture.capture(
            _raise(DbDown("database is down: <script>alert(1)</script>")),
            endpoint="/api/orders",
            method="GET",
            status=503,
            severity="critical",
            request_id=f"req-db-{n}",
        )
        for n in range(2)
    ]
    assert capture.flush(timeout=30)
    capture.configure(
        store_url=url, service="worker", environment="prod", release="2.0.0", spool_dir=spool
    )
    worker_id = capture.capture(_raise(KeyError("missing job")), endpoint="jobs.run")
    assert capture.flush(timeout=30)
    capture.shutdown(timeout=5)
    return Seeded(url, boom_ids, db_ids, worker_id)


@dataclass
class Tokens:
    admin: str
    read: str
    expired: str
    revoked: str
    expired_admin: str


def make_tokens(store: ErrorStore) -> Tokens:
    tokens = TokenStore(store)
    past = datetime.now(UTC) - timedelta(seconds=1)
    revoked = tokens.create(role="admin", name="gone")
    tokens.revoke(revoked.token.id)
    return Tokens(
        admin=tokens.create(role="admin", name="ops").secret,
        read=tokens.create(role="read", name="viewer").secret,
        expired=tokens.create(role="read", expires_at=past).secret,
        revoked=revoked.secret,
        expired_admin=tokens.create(role="admin", expires_at=past).secret,
    )


def failing() -> None:
    raise ConnectionError("payments gateway down")


def breakers() -> BreakerRegistry:
    """A registry with ``payments`` open (one failure trips it) and ``search`` closed."""
    registry = BreakerRegistry()
    payments = registry.circuit_breaker("payments", failure_threshold=1, recovery_timeout=600)
    registry.circuit_breaker("search", failure_threshold=5)
    with pytest.raises(ConnectionError):
        payments.call(failing)
    return registry


#: The alert configuration the tracker fixture serves (rewritten by the alert routes).
ALERTS_TOML = """\
[[channels]]
name = "ops-log"
type = "log"

[[rules]]
name = "api-repeats"
kind = "repeat"
count = 3
window = "10m"
scope = { service = "api" }
"""


@dataclass
class Tracker:
    client: Any
    store: ErrorStore
    seeded: Seeded
    tokens: Tokens
    breakers: BreakerRegistry

    def headers(self, token: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token or self.tokens.admin}"}

    def get(self, path: str, token: str | None = None, **kwargs: Any) -> Any:
        return self.client.get(f"/admin/api{path}", headers=self.headers(token), **kwargs)

    def post(self, path: str, token: str | None = None, **kwargs: Any) -> Any:
        return self.client.post(f"/admin/api{path}", headers=self.headers(token), **kwargs)


@pytest.fixture
def tracker(store_url: str, tmp_path: Path) -> Iterator[Tracker]:
    """The tracker app on a seeded store of each backend, with a client."""
    from starlette.testclient import TestClient

    from errorkit.server import create_app

    seeded = seed(store_url, tmp_path / "spool")
    store = open_store(store_url)
    tokens = make_tokens(store)
    registry = breakers()
    health = HealthRegistry(breaker_source=registry.statuses, error_source=None)
    alerts = tmp_path / "alerts.toml"
    alerts.write_text(ALERTS_TOML, encoding="utf-8")
    app = create_app(store=store, breakers=registry, health=health, alerts_config=alerts)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Tracker(client, store, seeded, tokens, registry)
    store.close()
