"""The store goes away and comes back: nothing is lost, nothing is counted twice.

SQLite is made unavailable the way it fails in production: another process holds an
exclusive lock. PostgreSQL goes down for real: the test talks to it through a TCP proxy
that it stops (open connections are reset, new ones refused) and starts again.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url
from tests._proxy import TCPProxy
from tests._services import fresh_postgres_database
from tests.capture.conftest import stored_ids, total_count

from errorkit.capturing import api as capture
from errorkit.store import ErrorStore


@dataclass
class Outage:
    """A store the pipeline writes to, a way to take it down and up, and a reader."""

    store: ErrorStore
    reader: ErrorStore
    down: Callable[[], None]
    up: Callable[[], None]


@pytest.fixture
def sqlite_outage(sqlite_url: str) -> Iterator[Outage]:
    # A short busy timeout: a locked database fails in 50 ms instead of 5 s.
    store = ErrorStore(sqlite_url, busy_timeout_ms=50)
    store.ping()
    reader = ErrorStore(sqlite_url)
    holder: list[sqlite3.Connection] = []

    def down() -> None:
        connection = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"))
        connection.execute("BEGIN EXCLUSIVE")
        holder.append(connection)

    def up() -> None:
        connection = holder.pop()
        connection.rollback()
        connection.close()

    yield Outage(store, reader, down, up)
    while holder:
        up()
    store.close()
    reader.close()


@pytest.fixture
def postgres_outage() -> Iterator[Outage]:
    with fresh_postgres_database() as direct:
        url = make_url(direct)
        with TCPProxy(url.host or "127.0.0.1", url.port or 5432) as proxy:
            proxied = url.set(host="127.0.0.1", port=proxy.port)
            store = ErrorStore(proxied.render_as_string(hide_password=False))
            store.ping()
            reader = ErrorStore(direct)
            yield Outage(store, reader, proxy.stop, proxy.start)
            store.close()
            reader.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def outage(request: pytest.FixtureRequest) -> Outage:
    name = "sqlite_outage" if request.param == "sqlite" else "postgres_outage"
    result: Outage = request.getfixturevalue(name)
    return result


def _fail(kind: int, n: int) -> None:
    raise RuntimeError(f"job {kind}-{n} failed")  # kind changes the place below


def _one(n: int) -> None:
    _fail(1, n)


def _two(n: int) -> None:
    _fail(2, n)


def _three(n: int) -> None:
    _fail(3, n)


def capture_many(start: int, count: int) -> list[str]:
    """Capture ``count`` errors from three different places; return their ids."""
    ids = []
    for n in range(start, start + count):
        try:
            (_one, _two, _three)[n % 3](n)
        except RuntimeError as exc:
            ids.append(capture.capture(exc))
    return ids


@pytest.mark.parametrize("flood_per_minute", [1_000_000, 5], ids=["every-sample", "flood"])
def test_outage_loses_nothing_and_counts_exactly(
    outage: Outage, tmp_path: Path, flood_per_minute: int
) -> None:
    """Capture before, during and after an outage, flush: exactly N occurrences are
    counted, and every stored event is there once."""
    capture.configure(
        store=outage.store,
        spool_dir=tmp_path / "spool",
        flood_per_minute=flood_per_minute,
        flush_interval=0.05,
        batch_size=40,
    )
    ids = capture_many(0, 90)
    assert capture.flush(timeout=30)

    outage.down()
    ids += capture_many(90, 150)
    assert capture.flush(timeout=30) is False  # the store is down: it all waits in the spool
    during = capture.stats()
    assert during.store_available is False
    assert during.spool_bytes > 0

    outage.up()
    ids += capture_many(240, 60)
    assert capture.flush(timeout=30)

    assert total_count(outage.reader) == 300
    stored = stored_ids(outage.reader)
    assert len(stored) == len(set(stored))
    assert set(stored) <= set(ids)
    if flood_per_minute > 300:
        assert sorted(stored) == sorted(ids)
    after = capture.stats()
    assert (after.spool_bytes, after.queue_depth, after.pending_counts) == (0, 0, 0)
    assert after.store_available is True


def test_spool_full_keeps_the_counts(sqlite_outage: Outage, tmp_path: Path) -> None:
    """When the spool has no room left, samples are dropped (counted by reason) but every
    occurrence still reaches the group counts once the store is back."""
    capture.configure(
        store=sqlite_outage.store,
        spool_dir=tmp_path / "spool",
        spool_max_bytes=4096,
        flood_per_minute=1_000_000,
        flush_interval=0.05,
        batch_size=20,
    )
    sqlite_outage.down()
    capture_many(0, 100)
    assert capture.flush(timeout=30) is False
    assert capture.stats().dropped.get("spool_full", 0) > 0
    sqlite_outage.up()
    assert capture.flush(timeout=30)
    assert total_count(sqlite_outage.reader) == 100


def test_an_app_starts_while_its_store_is_down(tmp_path: Path) -> None:
    """configure() does not connect: an unreachable store fills the spool, and stats()
    says which store failed and why."""
    capture.configure(
        store_url="postgresql://nobody@127.0.0.1:9/none",
        spool_dir=tmp_path / "spool",
        flush_interval=0.05,
    )
    capture_many(0, 3)
    assert capture.flush(timeout=30) is False
    status = capture.stats()
    assert status.store_available is False
    assert status.last_store_error is not None
    assert "127.0.0.1:9" in status.last_store_error
    assert status.spool_files >= 1


def test_a_store_passed_in_spools_beside_itself(sqlite_outage: Outage, sqlite_url: str) -> None:
    """configure(store=...) without spool_dir spools beside that store's file."""
    capture.configure(store=sqlite_outage.store, flush_interval=0.05)
    sqlite_outage.down()
    capture_many(0, 3)
    assert capture.flush(timeout=30) is False
    spool = Path(sqlite_url.removeprefix("sqlite:///") + "-spool")
    assert any(spool.iterdir())
    sqlite_outage.up()
    assert capture.flush(timeout=30)
    assert total_count(sqlite_outage.reader) == 3
