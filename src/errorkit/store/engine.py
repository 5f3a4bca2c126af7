"""Turning a store URL into a configured SQLAlchemy engine.

SQLite (the embedded default) runs in WAL mode with ``synchronous=NORMAL``, a busy
timeout and foreign keys on. Write transactions start with ``BEGIN IMMEDIATE`` so two
writers queue on the lock instead of failing half-way. PostgreSQL goes through psycopg 3.

Two SQLite settings are there for the batch writer's cost (decision 0015):

* The WAL is checkpointed every 4,000 pages (16 MiB at the default page size) instead of
  SQLite's 1,000. A batch of a few rows changes about 60 pages (the rows, ten indexes,
  groups, counts) and a checkpoint copies a page once however often it changed since the
  last one, so fewer, larger checkpoints copy less.
* A batch write keeps its statement journal in memory (``temp_store = MEMORY`` for that
  transaction only). A multi-row INSERT journals the pages it changes, and past 64 KiB
  SQLite spilled them to a temporary file, created, written and deleted at every batch.
  Other transactions keep temporary storage on disk, so a large sort never has to fit in
  memory.
"""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import ArgumentError

from errorkit.store._clean import json_dumps
from errorkit.store.errors import InvalidStoreURL, StoreUnavailable

__all__ = [
    "ACCEPTED_URLS",
    "DEFAULT_BUSY_TIMEOUT_MS",
    "WRITE",
    "begin_batch",
    "create_store_engine",
    "describe_url",
    "normalize_url",
    "write_queue",
]

DEFAULT_BUSY_TIMEOUT_MS = 5000

ACCEPTED_URLS = (
    "sqlite:///relative/path.db, sqlite:////absolute/path.db, "
    "postgresql+psycopg://user:password@host:5432/dbname "
    "(postgresql:// and postgres:// are read as postgresql+psycopg://)"
)

#: Execution option that makes a SQLite transaction start with ``BEGIN IMMEDIATE``.
WRITE = "errorkit_write"
_WAL_CHECKPOINT_PAGES = 4000
#: Key in a SQLite connection's ``info``: temporary storage is in memory.
_TEMP_IN_MEMORY = "errorkit_temp_in_memory"

_PASSWORD = re.compile(r"(://[^:/@]*:)[^@]*@")
_TRACKER = re.compile(r"^\s*https?://", re.IGNORECASE)
_TRACKER_KEY = re.compile(r"^(\s*https?://)[^@/?#]*@", re.IGNORECASE)
_POSTGRES_DRIVERS = {"postgresql", "postgres", "postgresql+psycopg"}
_SQLITE_DRIVERS = {"sqlite", "sqlite+pysqlite"}


def describe_url(url: str | URL) -> str:
    """The URL as text that is safe to show: the password (a tracker URL's key) is
    replaced by ``***``."""
    if isinstance(url, URL):
        return url.render_as_string(hide_password=True)
    if _TRACKER.match(url):
        return _TRACKER_KEY.sub(r"\1***@", url)
    return _PASSWORD.sub(r"\1***@", url)


def normalize_url(url: str | URL) -> URL:
    """Parse and check a store URL; PostgreSQL URLs are pointed at psycopg 3.

    Raises :class:`InvalidStoreURL` naming the URL (without password) and what is accepted.
    """
    shown = describe_url(url)
    if isinstance(url, str) and _TRACKER.match(url):
        message = (
            f"store URL {shown!r} is an errorkit tracker's address (HTTP), not a database: "
            "capture can report to it (errorkit.configure(store_url=...)), but this needs "
            f"the database itself; give the tracker's database URL ({ACCEPTED_URLS})"
        )
        raise InvalidStoreURL(message)
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as exc:
        message = f"cannot read store URL {shown!r} ({exc}); accepted forms: {ACCEPTED_URLS}"
        raise InvalidStoreURL(message) from None
    driver = parsed.drivername
    if driver in _SQLITE_DRIVERS:
        database = parsed.database or ""
        if database in {"", ":memory:"} or "mode=memory" in str(parsed.query):
            message = (
                f"store URL {shown!r} names an in-memory SQLite database, which every "
                f"connection sees empty; give a file path such as sqlite:///errorkit.db"
            )
            raise InvalidStoreURL(message)
        return parsed.set(drivername="sqlite")
    if driver in _POSTGRES_DRIVERS:
        return parsed.set(drivername="postgresql+psycopg")
    message = (
        f"store URL {shown!r} uses {driver!r}, which errorkit's store does not support; "
        f"accepted forms: {ACCEPTED_URLS}"
    )
    raise InvalidStoreURL(message)


def create_store_engine(
    url: str | URL,
    *,
    busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS,
    pool_size: int = 5,
    echo: bool = False,
) -> Engine:
    """An engine for the store at ``url``, with the per-dialect settings described above."""
    parsed = normalize_url(url)
    if parsed.drivername == "sqlite":
        return _sqlite_engine(parsed, busy_timeout_ms=busy_timeout_ms, echo=echo)
    try:
        import psycopg  # noqa: F401
    except ImportError:
        message = (
            f"store URL {describe_url(parsed)!r} needs psycopg 3; "
            "install it with: pip install 'errorkit[postgres]'"
        )
        raise InvalidStoreURL(message) from None
    return create_engine(
        parsed,
        echo=echo,
        json_serializer=json_dumps,
        pool_size=pool_size,
        pool_pre_ping=True,
        connect_args={"connect_timeout": 10, "application_name": "errorkit"},
    )


def _sqlite_engine(url: URL, *, busy_timeout_ms: int, echo: bool) -> Engine:
    database = url.database or ""
    if not database.startswith("file:"):
        parent = Path(database).expanduser().parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            message = (
                f"cannot create the directory {str(parent)!r} for store {describe_url(url)!r}: "
                f"{exc.strerror}; create it or point ERRORKIT_STORE_URL elsewhere"
            )
            raise StoreUnavailable(message) from exc
    engine = create_engine(
        url,
        echo=echo,
        json_serializer=json_dumps,
        connect_args={"timeout": busy_timeout_ms / 1000},
    )

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection: Any, _record: Any) -> None:
        # The driver must not open transactions on its own: errorkit emits BEGIN itself.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            _use_wal(cursor, busy_timeout_ms / 1000)
            cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.execute(f"PRAGMA wal_autocheckpoint = {_WAL_CHECKPOINT_PAGES}")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        info = conn.connection.info
        if info.get(_TEMP_IN_MEMORY, False):  # left so by a batch (begin_batch)
            conn.exec_driver_sql("PRAGMA temp_store = DEFAULT")
            info[_TEMP_IN_MEMORY] = False
        write = conn.get_execution_options().get(WRITE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


def begin_batch(connection: Connection) -> None:
    """Begin ``write_batch``'s transaction on the driver's connection of ``connection``.

    The batch writer runs all its statements on the driver (``_driver``), so its
    transaction is the driver's too: SQLAlchemy's costs more than a small batch's
    statements. On SQLite: ``BEGIN IMMEDIATE``, after ``temp_store = MEMORY`` (set before
    BEGIN, when SQLite picks the statement journal's place; changed only when it differs,
    so a run of batches pays nothing, and set back by the next other transaction). On
    PostgreSQL psycopg begins at the first statement."""
    if connection.dialect.name != "sqlite":
        return
    driver: Any = connection.connection.driver_connection
    info = connection.connection.info
    if not info.get(_TEMP_IN_MEMORY, False):
        driver.execute("PRAGMA temp_store = MEMORY")
        info[_TEMP_IN_MEMORY] = True
    driver.execute("BEGIN IMMEDIATE")


class _WriteQueue:
    """The order in which this machine's processes take a SQLite file's write lock.

    SQLite's own busy handler, when ``BEGIN IMMEDIATE`` finds another writer, sleeps 1, 2,
    5, 10 ms... before trying again, however soon the lock is free: two busy server
    processes then spend most of their time asleep. An ``flock`` on a file beside the
    database (``<database>-writers``) queues them instead, and one thread per process at a
    time (a ``threading.Lock``): the wait ends within a fraction of a millisecond of the
    other's commit. SQLite's lock stays the one that counts: when this queue cannot be
    joined in ``timeout`` seconds (or the lock file cannot be made: a read-only folder),
    the transaction goes ahead and waits on SQLite's busy timeout as before.
    """

    def __init__(self, path: Path, timeout: float) -> None:
        self.path = path
        self.timeout = timeout
        self._thread_lock = threading.Lock()
        self._fd: int | None = None
        self._pid = 0

    def _file(self) -> int | None:
        if self._fd is not None and self._pid == os.getpid():
            return self._fd
        try:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError:
            return None
        self._pid = os.getpid()  # a forked child opens its own: flock is per open file
        return self._fd

    def _lock(self, deadline: float) -> int | None:
        """The lock file's descriptor, once its flock is ours; None when it cannot be had
        by ``deadline`` (or the file cannot be made)."""
        import fcntl

        fd = self._file()
        pause = 0.0001
        while fd is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    return None
                time.sleep(pause)
                pause = min(pause * 2, 0.001)
            except OSError:
                return None
            else:
                return fd
        return None

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        import fcntl

        deadline = time.monotonic() + self.timeout
        if not self._thread_lock.acquire(timeout=self.timeout):
            yield
            return
        try:
            fd = self._lock(deadline)
            try:
                yield
            finally:
                if fd is not None:
                    fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            self._thread_lock.release()


_queues: dict[str, _WriteQueue] = {}
_queues_lock = threading.Lock()


def write_queue(engine: Engine, timeout: float) -> _WriteQueue | None:
    """The write queue of ``engine``'s SQLite file, waited on at most ``timeout`` seconds
    (None for PostgreSQL, or a SQLite URI such as ``file:...`` whose file is not a plain
    path)."""
    if engine.dialect.name != "sqlite":
        return None
    database = engine.url.database or ""
    if not database or database.startswith("file:") or database == ":memory:":
        return None
    path = Path(database).expanduser().resolve()
    key = str(path)
    with _queues_lock:
        found = _queues.get(key)
        if found is None:
            found = _queues[key] = _WriteQueue(path.with_name(path.name + "-writers"), timeout)
        return found


def _use_wal(cursor: Any, timeout: float) -> None:
    """Switch the file to WAL (it stays so), waiting while another process holds a lock.

    Changing the journal mode answers "database is locked" at once, without the busy
    timeout, when another connection is using the file (say, a second process opening a
    new store at the same moment); so wait here, and skip the switch once it is done.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            if str(cursor.execute("PRAGMA journal_mode").fetchone()[0]).lower() != "wal":
                cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)
