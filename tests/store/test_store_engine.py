"""Store URLs, SQLite settings, and failures when the database is not there."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import event, text
from tests.store._support import T0, RecordFactory

from errorkit.store import (
    ErrorStore,
    InvalidStoreURL,
    StoreUnavailable,
    describe_url,
    normalize_url,
    open_store,
)
from errorkit.store.engine import create_store_engine

UNREACHABLE = "postgresql://errorkit:hunter2@127.0.0.1:1/errors"


def test_sqlite_runs_in_wal_with_the_documented_settings(tmp_path: Path) -> None:
    """WAL, synchronous=NORMAL, a 5 s busy timeout, foreign keys on, a checkpoint every
    4,000 pages, temporary storage on disk."""
    engine = create_store_engine(f"sqlite:///{tmp_path / 'a.db'}")
    with engine.connect() as conn:
        settings = {
            name: conn.execute(text(f"PRAGMA {name}")).scalar()
            for name in (
                "journal_mode",
                "synchronous",
                "busy_timeout",
                "foreign_keys",
                "wal_autocheckpoint",
                "temp_store",
            )
        }
    engine.dispose()
    assert settings == {
        "journal_mode": "wal",
        "synchronous": 1,
        "busy_timeout": 5000,
        "foreign_keys": 1,
        "wal_autocheckpoint": 4000,
        "temp_store": 0,
    }


def test_only_a_batch_write_keeps_temporary_storage_in_memory(
    tmp_path: Path, make_record: RecordFactory
) -> None:
    """write_batch's transaction starts after ``temp_store = MEMORY`` (its statement journal
    then never spills to a file); the next other transaction on that connection has it back
    on disk, so a large sort does not have to fit in memory."""
    statements: list[str] = []

    def trace(driver: sqlite3.Connection, record: object) -> None:
        driver.set_trace_callback(statements.append)

    with open_store(f"sqlite:///{tmp_path / 'a.db'}") as store:
        event.listen(store.engine, "connect", trace)
        store.engine.dispose()  # the one pooled connection from here on is traced
        store.write_batch([make_record()])
        store.write_batch([make_record()])
        assert store.count() == 2
        with store.engine.connect() as conn:
            temp_store = conn.execute(text("PRAGMA temp_store")).scalar()
    switches = [s for s in statements if s.startswith(("PRAGMA temp_store =", "BEGIN"))]
    assert switches == [
        "PRAGMA temp_store = MEMORY",
        "BEGIN IMMEDIATE",
        "BEGIN IMMEDIATE",  # unchanged between batches: nothing to switch
        "PRAGMA temp_store = DEFAULT",
        "BEGIN",
        "BEGIN",
    ]
    assert temp_store == 0


def test_sqlite_parent_directory_is_created(tmp_path: Path, make_record: RecordFactory) -> None:
    """A store file in a directory that does not exist yet just works."""
    path = tmp_path / "deep" / "er" / "errors.db"
    with ErrorStore(f"sqlite:///{path}") as store:
        store.write_batch([make_record()])
    assert path.exists()


def test_sqlite_directory_that_cannot_be_made(tmp_path: Path) -> None:
    """A path under a regular file fails with the directory and the URL named."""
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(StoreUnavailable, match="cannot create the directory"):
        ErrorStore(f"sqlite:///{blocker / 'errors.db'}")


@pytest.mark.parametrize(
    ("url", "driver"),
    [
        ("postgres://u@127.0.0.1/db", "postgresql+psycopg"),
        ("postgresql://u@127.0.0.1/db", "postgresql+psycopg"),
        ("postgresql+psycopg://u@127.0.0.1/db", "postgresql+psycopg"),
        ("sqlite:///errors.db", "sqlite"),
        ("sqlite+pysqlite:///errors.db", "sqlite"),
    ],
)
def test_accepted_urls(url: str, driver: str) -> None:
    """PostgreSQL URLs are pointed at psycopg 3; SQLite file URLs are kept."""
    assert normalize_url(url).drivername == driver


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("mysql://root:s3cret@127.0.0.1/db", "uses 'mysql'"),
        ("postgresql+psycopg2://root:s3cret@127.0.0.1/db", "uses 'postgresql+psycopg2'"),
        ("not a url", "cannot read store URL"),
        ("sqlite://", "in-memory SQLite"),
        ("sqlite:///:memory:", "in-memory SQLite"),
    ],
)
def test_refused_urls_say_what_is_accepted(url: str, words: str) -> None:
    """A bad URL names itself without the password and lists the accepted forms."""
    with pytest.raises(InvalidStoreURL, match=re.escape(words)) as caught:
        ErrorStore(url)
    assert "s3cret" not in str(caught.value)
    assert "sqlite:///" in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_describe_url_hides_the_password() -> None:
    """Both text and parsed URLs are shown with *** for the password."""
    assert describe_url(UNREACHABLE) == "postgresql://errorkit:***@127.0.0.1:1/errors"
    assert "hunter2" not in describe_url(normalize_url(UNREACHABLE))


def test_store_is_lazy_until_used() -> None:
    """Creating a store for a database that is down succeeds; using it then fails clearly."""
    store = ErrorStore(UNREACHABLE)
    with pytest.raises(StoreUnavailable) as caught:
        store.ping()
    message = str(caught.value)
    assert "127.0.0.1:1" in message
    assert "hunter2" not in message
    store.close()


def test_write_to_a_store_that_is_down_raises_unavailable(make_record: RecordFactory) -> None:
    """The pipeline learns of an outage through StoreUnavailable (and spools)."""
    with ErrorStore(UNREACHABLE) as store, pytest.raises(StoreUnavailable):
        store.write_batch([make_record()])


def test_open_store_connects_at_once() -> None:
    """open_store() fails right away when the database is down."""
    with pytest.raises(StoreUnavailable, match="cannot reach the store"):
        open_store(UNREACHABLE)


@pytest.mark.postgres
def test_postgres_scheme_alias_reaches_the_server(postgres_database: str) -> None:
    """A postgres:// URL (as hosting providers hand out) works as is."""
    alias = postgres_database.replace("postgresql+psycopg://", "postgres://")
    with ErrorStore(alias) as store:
        store.ping()
        assert store.dialect == "postgresql"


def _write_from_another_process(url: str, count: int, tag: str) -> None:
    from errorkit.store import ErrorRecord

    with ErrorStore(url) as store:
        for n in range(count):
            record = ErrorRecord(
                error_id=f"{tag}-{n}",
                timestamp=T0,
                error_type="http_error",
                error_code="HTTP_INTERNAL_ERROR",
                error_message=f"boom {n}",
                severity="error",
                fingerprint=f"fp-{tag}",
                title="RuntimeError: boom",
            )
            store.write_batch([record])


def test_sqlite_writers_of_two_processes_queue_and_lose_nothing(tmp_path: Path) -> None:
    """Two processes writing small batches at once into one SQLite file take turns on the
    write queue (a lock file beside the database): every row is stored, none fails."""
    import multiprocessing

    url = f"sqlite:///{tmp_path / 'shared.db'}"
    ErrorStore(url).ping()  # migrated once, before the race
    context = multiprocessing.get_context("spawn")
    writers = [
        context.Process(target=_write_from_another_process, args=(url, 150, f"p{n}"))
        for n in range(2)
    ]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(timeout=120)
    assert [writer.exitcode for writer in writers] == [0, 0]
    assert (tmp_path / "shared.db-writers").exists()
    with ErrorStore(url) as store:
        assert store.count() == 300


def test_sqlite_write_queue_held_elsewhere_only_delays(
    tmp_path: Path, make_record: RecordFactory
) -> None:
    """A queue lock another process keeps (stuck, or a lock file on a filesystem that
    never frees it) costs a write its busy timeout, then the write goes ahead on SQLite's
    own lock: the queue orders writers, it is never what decides whether one may write."""
    import fcntl
    import os
    import time

    path = tmp_path / "held.db"
    with ErrorStore(f"sqlite:///{path}", busy_timeout_ms=300) as store:
        store.ping()
        holder = os.open(f"{path}-writers", os.O_RDWR | os.O_CREAT)
        # flock is per open file: this descriptor stands for another process.
        fcntl.flock(holder, fcntl.LOCK_EX)
        try:
            started = time.monotonic()
            store.write_batch([make_record()])
            waited = time.monotonic() - started
        finally:
            os.close(holder)
        assert store.count() == 1
        assert waited >= 0.25  # it did wait for the queue first
