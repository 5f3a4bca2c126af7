"""Fixtures for the store: every test runs against SQLite and against PostgreSQL."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from tests._services import fresh_postgres_database
from tests.store._support import T0, DeltaFactory, RecordFactory

from errorkit.store import CountDelta, ErrorRecord, ErrorStore, open_store, upgrade

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """One migrated PostgreSQL database for the session; tests empty it before use."""
    with fresh_postgres_database() as url:
        upgrade(url)
        yield url


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A URL of an empty, migrated store on the backend under test."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'errorkit.db'}"
    url = str(request.getfixturevalue("postgres_database"))
    engine = create_engine(url)
    with engine.begin() as conn:
        tables = (
            "errors, error_groups, error_counts_hourly, applied_deltas, slim_errors, api_tokens, "
            "request_counts, alert_events, users, projects, project_keys, ingest_outcomes"
        )
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()
    return url


@pytest.fixture
def store(store_url: str) -> Iterator[ErrorStore]:
    """The store at ``store_url``, opened (and migrated) before the test starts."""
    with open_store(store_url) as opened:
        yield opened


@pytest.fixture
def make_record() -> RecordFactory:
    """Build records: unique ids, timestamps a second apart from T0, overridable fields."""
    counter = itertools.count()

    def build(**overrides: Any) -> ErrorRecord:
        n = next(counter)
        values: dict[str, Any] = {
            "error_id": str(uuid.uuid4()),
            "timestamp": T0 + timedelta(seconds=n),
            "error_type": "http_error",
            "error_code": "HTTP_INTERNAL_ERROR",
            "error_message": f"boom {n}",
            "severity": "error",
            "fingerprint": "fp-boom",
            "title": "RuntimeError: boom",
            "stack_trace": 'Traceback (most recent call last):\n  File "app.py", line 3\n',
            "exception_type": "RuntimeError",
            "status": 500,
            "session_id": "session-1",
            "request_id": f"req-{n}",
            "endpoint": "/api/chat",
            "method": "POST",
            "user_agent": "curl/8.5",
            "request_payload": '{"prompt": "hi"}',
            "service": "api",
            "environment": "test",
            "release": "1.0.0",
            "data": {"tags": {"region": "eu"}, "n": n},
        }
        values.update(overrides)
        return ErrorRecord(**values)

    return build


@pytest.fixture
def make_delta() -> DeltaFactory:
    def build(**overrides: Any) -> CountDelta:
        values: dict[str, Any] = {
            "delta_id": str(uuid.uuid4()),
            "fingerprint": "fp-boom",
            "title": "RuntimeError: boom",
            "error_type": "http_error",
            "error_code": "HTTP_INTERNAL_ERROR",
            "severity": "error",
            "count": 5,
            "first_seen": T0,
            "last_seen": T0 + timedelta(minutes=1),
            "service": "api",
            "environment": "test",
        }
        values.update(overrides)
        return CountDelta(**values)

    return build
