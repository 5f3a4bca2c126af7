"""The batch writer's hot statements, run on the driver's own cursor.

For a batch of a few rows SQLAlchemy's ``execute()`` costs more than the statement: it
processes every parameter by type, sets up a result and fires events, and runs a
multi-row upsert with RETURNING one row at a time. The writer's few hot statements are
therefore SQL text, made once per dialect and row count, run on the DBAPI cursor with
values already in the driver's form: on SQLite a DATETIME is the text SQLAlchemy's
``UTCDateTime`` stores (``sqlite_time()``), on PostgreSQL an aware datetime.

Rows go in multi-row ``VALUES`` lists: up to ``EXACT_ROWS`` rows in one statement of that
many, more in statements of 2**k rows. So a batch takes few statements (one for a small
batch), the drivers' statement caches see few shapes, and SQLite few hand-overs of the
interpreter lock (``executemany`` lets go of it and takes it back around every row).
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from itertools import chain
from typing import Any

from sqlalchemy.engine import Connection

__all__ = [
    "EXACT_ROWS",
    "MAX_ROWS",
    "SHAPES",
    "db_time",
    "fetch_rows",
    "rows_per_statement",
    "run_rows",
    "sqlite_time",
    "statement_text",
    "utc",
    "values_list",
]

#: Rows per statement at most (fewer when the build binds fewer variables).
MAX_ROWS = 512
#: Up to this many rows go in one statement of exactly that many rows.
EXACT_ROWS = 16
#: Statement shapes per dialect: 1..EXACT_ROWS rows, then the powers of two up to MAX_ROWS.
SHAPES = EXACT_ROWS + (MAX_ROWS // EXACT_ROWS).bit_length() - 1
_SQLITE_DEFAULT_VARIABLES = 999  # SQLite's limit before 3.32
_POSTGRES_VARIABLES = 65_535  # the protocol's limit on parameters of one statement


@functools.lru_cache(maxsize=4096)
def sqlite_time(value: datetime) -> str:
    """``value`` as SQLAlchemy keeps a ``UTCDateTime`` in SQLite: sortable text in UTC.

    A naive value is taken as UTC. Cutting the "+00:00" off the ISO form of the UTC time
    is the cheap way to SQLAlchemy's ``%Y-%m-%d %H:%M:%S.%f``. Cached: a batch converts
    its rows' times, then the same times again as its groups' first and last seen (equal
    aware datetimes are one instant, so one text)."""
    return utc(value).isoformat(" ", "microseconds")[:26]


def db_time(postgres: bool) -> Callable[[datetime], Any]:
    """The function that turns a datetime into its driver value on this dialect."""
    return utc if postgres else sqlite_time


def utc(value: datetime) -> datetime:
    """``value`` in UTC; a naive one is taken as UTC."""
    if value.tzinfo is UTC:
        return value
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def statement_text(postgres: bool, text: str) -> str:
    """``text``, written with ``?`` placeholders, in the driver's parameter style: on
    PostgreSQL the server's ``$1, $2, ...``, which psycopg's raw cursor sends as they are
    (its ``%s`` form is parsed again at every execution of a statement of more than 4 KiB
    or 50 parameters)."""
    if not postgres:
        return text
    parts = text.split("?")
    return "".join(chain([parts[0]], *((f"${n}", part) for n, part in enumerate(parts[1:], 1))))


def _cursor(connection: Connection) -> Any:
    """A cursor on the driver's connection: psycopg's raw cursor on PostgreSQL."""
    driver: Any = connection.connection.driver_connection
    if connection.dialect.name == "postgresql":
        from psycopg import RawCursor

        return RawCursor(driver)
    return driver.cursor()


def run_rows(
    connection: Connection,
    statement: Callable[[bool, int], str],
    rows: Sequence[Sequence[Any]],
    extra: Sequence[Any] = (),
) -> int:
    """Run ``statement(postgres, n)`` for ``rows`` in chunks of n rows (see above); returns
    how many rows the statements inserted or updated.

    Each chunk's values are bound in order, followed by ``extra`` (the parameters after
    the VALUES list)."""
    return _run(connection, statement, rows, extra, fetch=False)[0]


def fetch_rows(
    connection: Connection,
    statement: Callable[[bool, int], str],
    rows: Sequence[Sequence[Any]],
    extra: Sequence[Any] = (),
) -> list[Any]:
    """:func:`run_rows` for a statement with RETURNING: the rows it returned."""
    return _run(connection, statement, rows, extra, fetch=True)[1]


def _run(
    connection: Connection,
    statement: Callable[[bool, int], str],
    rows: Sequence[Sequence[Any]],
    extra: Sequence[Any],
    *,
    fetch: bool,
) -> tuple[int, list[Any]]:
    if not rows:
        return 0, []
    postgres = connection.dialect.name == "postgresql"
    size = rows_per_statement(connection, len(rows[0]), len(extra))
    changed = 0
    returned: list[Any] = []
    cursor = _cursor(connection)
    try:
        for chunk in _chunks(rows, size):
            params = tuple(chain(chain.from_iterable(chunk), extra))
            cursor.execute(statement(postgres, len(chunk)), params)
            if fetch:
                returned.extend(cursor.fetchall())
            else:
                changed += cursor.rowcount
    finally:
        cursor.close()
    return changed, returned


def _chunks(rows: Sequence[Sequence[Any]], size: int) -> Iterator[Sequence[Sequence[Any]]]:
    """``rows`` in chunks of ``size`` (a power of two) or the next smaller power of two,
    the last up to EXACT_ROWS rows in one chunk."""
    start, total = 0, len(rows)
    while start < total:
        left = total - start
        if left <= EXACT_ROWS and left <= size:
            size = left
        while size > left:
            size //= 2
        yield rows[start : start + size]
        start += size


def rows_per_statement(connection: Connection, width: int, extra: int = 0) -> int:
    """The most rows of ``width`` values (a power of two, at most MAX_ROWS) one statement
    can bind along with ``extra`` more values."""
    if connection.dialect.name == "postgresql":
        limit = _POSTGRES_VARIABLES
    else:
        limit = _sqlite_variables(connection.connection.driver_connection)
    size = MAX_ROWS
    while size > 1 and size * width + extra > limit:
        size //= 2
    return size


def _sqlite_variables(driver: Any) -> int:
    try:
        return int(driver.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER))
    except (AttributeError, sqlite3.Error):
        return _SQLITE_DEFAULT_VARIABLES


def values_list(width: int, rows: int, literals: str = "") -> str:
    """``(?, ..., ?), ...``: ``rows`` rows of ``width`` placeholders, then ``literals``."""
    one = "(" + ", ".join("?" * width) + literals + ")"
    return ", ".join([one] * rows)
