"""Fixtures for the capture pipeline: stores on SQLite and PostgreSQL, and a clean slate."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tests._services import fresh_postgres_database

import errorkit
from errorkit.capturing import api as capture
from errorkit.store import ErrorStore


@pytest.fixture(autouse=True)
def _no_pipeline_left_behind() -> Iterator[None]:
    """Each test starts unconfigured and ends with its pipeline stopped and every default
    back (settings, scrubber, listeners, breakers, health)."""
    capture.shutdown(timeout=5)
    yield
    errorkit.reset(timeout=5)


@pytest.fixture(scope="session")
def postgres_base_url() -> Iterator[str]:
    """One fresh PostgreSQL database for the session (fails under CI when PG is missing)."""
    with fresh_postgres_database() as url:
        yield url


def _sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'errors.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A store URL of each backend, with an empty schema of its own."""
    if request.param == "sqlite":
        yield _sqlite_url(tmp_path)
        return
    with fresh_postgres_database() as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return _sqlite_url(tmp_path)


@pytest.fixture
def open_store() -> Iterator[Callable[[str], ErrorStore]]:
    """Open stores for reading in a test; all closed afterwards."""
    opened: list[ErrorStore] = []

    def opener(url: str) -> ErrorStore:
        store = ErrorStore(url)
        opened.append(store)
        return store

    yield opener
    for store in opened:
        store.close()


def total_count(store: ErrorStore) -> int:
    """Every occurrence the store's groups count."""
    return sum(group.count for group in store.groups(limit=10_000).items)


def stored_ids(store: ErrorStore) -> list[str]:
    """The error ids of every stored row."""
    ids: list[str] = []
    cursor: str | None = None
    while True:
        page = store.list(limit=10_000, cursor=cursor)
        ids.extend(item.error_id for item in page.items)
        if page.next_cursor is None:
            return ids
        cursor = page.next_cursor
