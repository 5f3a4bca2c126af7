"""transaction(): roll back and raise a typed database error naming the operation, against
real SQLite and real PostgreSQL (sync, and async through psycopg)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine
from sqlalchemy.orm import Session
from tests._services import fresh_postgres_database

import errorkit
from errorkit.resilience import DatabaseConflictError, transaction, transaction_async

SCHEMA = "create table accounts (id integer primary key, owner text unique not null)"


def _prepare(engine: sa.Engine) -> sa.Engine:
    with engine.begin() as conn:
        conn.execute(sa.text("drop table if exists accounts"))
        conn.execute(sa.text(SCHEMA))
        conn.execute(sa.text("insert into accounts values (1, 'ada')"))
    return engine


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    with fresh_postgres_database() as url:
        yield url


@pytest.fixture(
    params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)],
)
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sa.Engine]:
    """An engine on a real database with one account, on each backend."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'tx.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    built = _prepare(sa.create_engine(url))
    yield built
    built.dispose()


def owners(engine: sa.Engine) -> list[str]:
    with engine.connect() as conn:
        return [r[0] for r in conn.execute(sa.text("select owner from accounts order by id"))]


def insert(target: Session | sa.Connection, key: int, owner: str) -> None:
    target.execute(sa.text("insert into accounts values (:i, :o)"), {"i": key, "o": owner})


def test_the_block_commits_when_it_succeeds(engine: sa.Engine) -> None:
    """Work in the block is committed at its end."""
    with Session(engine) as session, transaction(session, "open account") as tx:
        insert(tx, 2, "grace")
    assert owners(engine) == ["ada", "grace"]


def test_a_constraint_violation_rolls_back_and_raises_a_conflict(engine: sa.Engine) -> None:
    """A duplicate rolls everything back: DatabaseConflictError (409) from the driver error."""

    def open_two() -> None:
        with Session(engine) as session, transaction(session, "open two accounts") as tx:
            insert(tx, 2, "grace")
            insert(tx, 3, "ada")

    with pytest.raises(DatabaseConflictError) as caught:
        open_two()
    error = caught.value
    assert isinstance(error, errorkit.DatabaseError)
    assert (error.status, error.code) == (409, "DATABASE_CONFLICT")
    assert error.details["operation"] == "open two accounts"
    assert "open two accounts" in error.message
    assert isinstance(error.__cause__, sa.exc.IntegrityError)
    assert owners(engine) == ["ada"]


def test_other_database_errors_become_database_error(engine: sa.Engine) -> None:
    """A failing statement becomes DatabaseError naming the operation, cause chained."""

    def report() -> None:
        with engine.connect() as conn, transaction(conn, "monthly report"):
            insert(conn, 2, "grace")
            conn.execute(sa.text("select * from no_such_table"))

    with pytest.raises(errorkit.DatabaseError) as caught:
        report()
    assert caught.value.message == "monthly report failed and was rolled back."
    assert isinstance(caught.value.__cause__, sa.exc.DBAPIError)
    assert owners(engine) == ["ada"]


def test_application_errors_roll_back_and_propagate_unchanged(engine: sa.Engine) -> None:
    """Your own errors (here a 404) undo the block and reach the caller as they are."""
    missing = errorkit.NotFoundError()

    def transfer() -> None:
        with Session(engine) as session, transaction(session, "transfer"):
            insert(session, 2, "grace")
            raise missing

    with pytest.raises(errorkit.NotFoundError) as caught:
        transfer()
    assert caught.value is missing
    assert owners(engine) == ["ada"]


def test_inside_an_open_transaction_only_the_block_is_undone(engine: sa.Engine) -> None:
    """Nested in a transaction, the block is a savepoint: the outer work survives."""
    with Session(engine) as session:
        with session.begin():
            insert(session, 2, "grace")
            with pytest.raises(DatabaseConflictError), transaction(session, "add duplicate"):
                insert(session, 3, "ada")
        assert owners(engine) == ["ada", "grace"]


def test_an_engine_gives_a_committed_connection(engine: sa.Engine) -> None:
    """transaction(engine, ...) yields a connection whose work is committed."""
    with transaction(engine, "seed") as conn:
        insert(conn, 2, "grace")
    assert owners(engine) == ["ada", "grace"]


@pytest.mark.postgres
def test_a_statement_timeout_becomes_database_unavailable(postgres_url: str) -> None:
    """A cancelled statement (57014) says the database is unavailable: retriable, 503."""
    engine = sa.create_engine(postgres_url)

    def slow_report() -> None:
        with engine.connect() as conn, transaction(conn, "slow report"):
            conn.execute(sa.text("set local statement_timeout = 1"))
            conn.execute(sa.text("select pg_sleep(5)"))

    try:
        with pytest.raises(errorkit.DatabaseUnavailableError) as caught:
            slow_report()
        assert caught.value.retriable
        assert caught.value.status == 503
        assert caught.value.details["operation"] == "slow report"
    finally:
        engine.dispose()


@pytest.fixture
async def async_engine(postgres_url: str) -> AsyncIterator[AsyncEngine]:
    """An async engine on PostgreSQL through psycopg's async driver."""
    _prepare(sa.create_engine(postgres_url)).dispose()
    built = create_async_engine(postgres_url)
    yield built
    await built.dispose()


@pytest.mark.postgres
async def test_async_sessions_roll_back_and_raise_the_typed_error(
    async_engine: AsyncEngine,
) -> None:
    """transaction_async on an AsyncSession: committed on success, rolled back on error."""
    async with AsyncSession(async_engine) as session, transaction_async(session, "open account"):
        await session.execute(sa.text("insert into accounts values (2, 'grace')"))

    async def duplicate() -> None:
        async with AsyncSession(async_engine) as session, transaction_async(session, "dup"):
            await session.execute(sa.text("insert into accounts values (3, 'eve')"))
            await session.execute(sa.text("insert into accounts values (4, 'ada')"))

    with pytest.raises(DatabaseConflictError) as caught:
        await duplicate()
    assert isinstance(caught.value.__cause__, sa.exc.IntegrityError)
    async with async_engine.connect() as conn:
        rows = await conn.execute(sa.text("select owner from accounts order by id"))
        assert [r[0] for r in rows] == ["ada", "grace"]


@pytest.mark.postgres
async def test_async_engines_and_connections(async_engine: AsyncEngine) -> None:
    """transaction_async also takes an AsyncEngine or an AsyncConnection."""
    async with transaction_async(async_engine, "seed") as conn:
        await conn.execute(sa.text("insert into accounts values (2, 'grace')"))
    with pytest.raises(errorkit.DatabaseError):
        async with async_engine.connect() as conn, transaction_async(conn, "broken"):
            await conn.execute(sa.text("select * from missing_table"))


def test_the_wrong_kind_of_target_says_what_to_pass(tmp_path: Path) -> None:
    """A non-SQLAlchemy target, or a missing operation name, is refused with the fix."""
    with (
        pytest.raises(TypeError, match="Session, Connection or Engine"),
        transaction("sqlite:///x.db", "op"),  # type: ignore[arg-type]
    ):
        pass
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with pytest.raises(ValueError, match="name the operation"), transaction(engine, " "):
        pass


async def test_async_refuses_sync_targets(tmp_path: Path) -> None:
    """transaction_async with a sync Session points to transaction()."""
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with pytest.raises(TypeError, match="with transaction"):
        async with transaction_async(Session(engine), "op"):  # type: ignore[arg-type]
            pass
