"""Migrations: they build exactly the schema module's tables, once, even in a race."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from tests._services import fresh_postgres_database
from tests.store._support import RecordFactory

import errorkit.store
from errorkit.store import ErrorStore, SchemaTooNew, head_revision, upgrade
from errorkit.store.engine import create_store_engine
from errorkit.store.migrate import VERSION_TABLE
from errorkit.store.schema import metadata

TABLES = {
    "errors",
    "error_groups",
    "error_counts_hourly",
    "applied_deltas",
    "slim_errors",
    "api_tokens",
    "request_counts",
    "alert_events",
    "users",
    "projects",
    "project_keys",
    "ingest_outcomes",
    VERSION_TABLE,
}
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def empty_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """A URL of a database errorkit has never touched."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'new.db'}"
        return
    with fresh_postgres_database() as url:
        yield url


def test_migrated_schema_matches_the_schema_module(empty_url: str) -> None:
    """Autogenerate finds no difference between the migrations and schema.py."""
    assert upgrade(empty_url) == head_revision()
    engine = create_store_engine(empty_url)
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "version_table": VERSION_TABLE}
        )
        differences = compare_metadata(context, metadata)
        tables = set(inspect(conn).get_table_names())
    engine.dispose()
    assert differences == []
    assert tables == TABLES


def test_store_migrates_on_first_use(empty_url: str, make_record: RecordFactory) -> None:
    """A store on an empty database creates its tables the first time it is used."""
    with ErrorStore(empty_url) as store:
        assert store.write_batch([make_record()]).inserted == 1


def test_upgrade_twice_is_a_no_op(empty_url: str, make_record: RecordFactory) -> None:
    """Upgrading a current database changes nothing and keeps its rows."""
    upgrade(empty_url)
    with ErrorStore(empty_url) as store:
        store.write_batch([make_record()])
    assert upgrade(empty_url) == head_revision()
    with ErrorStore(empty_url) as store:
        assert store.count() == 1


def test_two_processes_starting_at_once_migrate_once(empty_url: str) -> None:
    """Two processes upgrading a new database at the same moment both succeed."""
    start_at = time.time() + 2.0
    script = (
        "import sys, time; from errorkit.store import upgrade; "
        "time.sleep(max(0.0, float(sys.argv[2]) - time.time())); print(upgrade(sys.argv[1]))"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", script, empty_url, str(start_at)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(2)
    ]
    outcomes = [process.communicate(timeout=60) for process in processes]
    assert [p.returncode for p in processes] == [0, 0], outcomes
    assert [out.strip() for out, _ in outcomes] == [head_revision()] * 2
    engine = create_store_engine(empty_url)
    with engine.connect() as conn:
        versions = conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).all()
    engine.dispose()
    assert versions == [(head_revision(),)]


def test_downgrade_removes_everything_and_upgrade_restores(empty_url: str) -> None:
    """The initial migration's downgrade drops its tables cleanly."""
    upgrade(empty_url)
    config = Config()
    config.set_main_option(
        "script_location", str(Path(errorkit.store.__file__).parent / "migrations")
    )
    engine = create_store_engine(empty_url)
    with engine.connect() as conn, conn.begin():
        config.attributes["connection"] = conn
        command.downgrade(config, "base")
    with engine.connect() as conn:
        left = set(inspect(conn).get_table_names())
    engine.dispose()
    assert left <= {VERSION_TABLE}
    assert upgrade(empty_url) == head_revision()


def test_database_from_a_newer_errorkit_is_refused(empty_url: str) -> None:
    """A schema revision this errorkit does not know stops it, telling to upgrade."""
    upgrade(empty_url)
    engine = create_store_engine(empty_url)
    with engine.begin() as conn:
        conn.execute(text(f"UPDATE {VERSION_TABLE} SET version_num = '9999'"))
    engine.dispose()
    with ErrorStore(empty_url) as store, pytest.raises(SchemaTooNew, match="upgrade errorkit"):
        store.ping()
