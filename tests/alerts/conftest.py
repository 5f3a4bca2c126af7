"""Fixtures for the alert tests: each store test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from tests._services import fresh_postgres_database
from tests.alerts._support import CountingStore, Receiver

from errorkit.resilience import no_waits
from errorkit.store import upgrade

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]
TABLES = "errors, error_groups, error_counts_hourly, applied_deltas, slim_errors, alert_events"


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    with fresh_postgres_database() as url:
        upgrade(url)
        yield url


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'errorkit.db'}"
    url = str(request.getfixturevalue("postgres_database"))
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE"))
    engine.dispose()
    return url


@pytest.fixture
def store(store_url: str) -> Iterator[CountingStore]:
    opened = CountingStore(store_url)
    opened.ping()
    yield opened
    opened.close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


@pytest.fixture(autouse=True)
def _no_retry_waits() -> Iterator[None]:
    """Retries still happen, but nothing sleeps between them."""
    with no_waits():
        yield
