"""Applying the store's Alembic migrations, safely when several processes start at once.

The migrations ship inside the package and are configured from code. An upgrade runs in
one transaction that first takes a lock (``BEGIN IMMEDIATE`` on SQLite, an advisory
transaction lock on PostgreSQL) and then re-reads the revision, so a second process that
started at the same moment waits, finds the schema current and does nothing.
"""

from __future__ import annotations

import time
from functools import cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, text
from sqlalchemy.engine import URL, Connection
from sqlalchemy.exc import DBAPIError

from errorkit.store.engine import WRITE, create_store_engine, describe_url
from errorkit.store.errors import SchemaTooNew, StoreError, StoreUnavailable

__all__ = ["VERSION_TABLE", "current_revision", "ensure_schema", "head_revision", "upgrade"]

#: errorkit's own version table, so it never collides with the host app's Alembic.
VERSION_TABLE = "errorkit_alembic_version"

_MIGRATIONS = Path(__file__).parent / "migrations"
# Arbitrary constant naming errorkit's migration lock among PostgreSQL advisory locks.
_PG_LOCK_KEY = 0x6572726F726B6974 & 0x7FFFFFFFFFFFFFFF
_ATTEMPTS = 5


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS).replace("%", "%%"))
    return config


@cache
def _script() -> ScriptDirectory:
    return ScriptDirectory.from_config(_config())


def head_revision() -> str:
    """The revision this errorkit's schema is at."""
    head = _script().get_current_head()
    if head is None:
        message = f"no migrations found in {_MIGRATIONS.name}/; the package is incomplete"
        raise StoreError(message)
    return head


def current_revision(connection: Connection) -> str | None:
    """The revision the database is at, or None when errorkit never migrated it."""
    context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
    return context.get_current_revision()


def upgrade(url: str | URL | Engine) -> str:
    """Bring the store at ``url`` to the newest schema; returns the revision it is at."""
    if isinstance(url, Engine):
        ensure_schema(url)
        return head_revision()
    engine = create_store_engine(url)
    try:
        ensure_schema(engine)
    finally:
        engine.dispose()
    return head_revision()


def ensure_schema(engine: Engine) -> None:
    """Migrate ``engine``'s database to head unless it is there already."""
    head = head_revision()
    for attempt in range(_ATTEMPTS):
        try:
            with _connect(engine) as connection:
                current = current_revision(connection)
                connection.rollback()
            if current == head:
                return
            _check_known(current, engine)
            _upgrade_locked(engine, head)
            return
        except DBAPIError as exc:
            # Another process may be migrating at this very moment: wait, then re-check.
            if attempt == _ATTEMPTS - 1:
                message = (
                    f"cannot migrate the store at {describe_url(engine.url)}: "
                    f"{type(exc.orig).__name__}: {exc.orig}"
                )
                raise StoreError(message) from exc
            time.sleep(0.05 * 2**attempt)


def _connect(engine: Engine, *, write: bool = False) -> Connection:
    """A connection, or StoreUnavailable naming the URL: reconnecting will not help."""
    try:
        connection = engine.connect()
    except DBAPIError as exc:
        message = (
            f"cannot reach the store at {describe_url(engine.url)}: "
            f"{type(exc.orig).__name__}: {str(exc.orig).strip()}"
        )
        raise StoreUnavailable(message) from exc
    return connection.execution_options(**{WRITE: True}) if write else connection


def _check_known(revision: str | None, engine: Engine) -> None:
    if revision is None:
        return
    known = {script.revision for script in _script().walk_revisions()}
    if revision not in known:
        message = (
            f"the store at {describe_url(engine.url)} is at schema revision {revision!r}, "
            f"written by a newer errorkit (this one knows up to {head_revision()!r}); "
            "upgrade errorkit"
        )
        raise SchemaTooNew(message)


def _upgrade_locked(engine: Engine, head: str) -> None:
    with _connect(engine, write=True) as connection, connection.begin():
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
        current = current_revision(connection)
        if current == head:
            return
        _check_known(current, engine)
        config = _config()
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
