"""``error_counts_hourly``: the rows of ``errors`` counted per hour and dimensions.

Every change to ``errors`` changes these counts in the same transaction: the batch writer
adds the rows it inserted (a replayed row is not inserted, so it adds nothing; count
deltas add no row, so they add nothing either), resolving and reopening move rows between
``total - resolved`` and ``resolved``, retention subtracts what it deletes. Stats sums
the whole hours of a window from here and counts only the partial hours at its edges in
``errors`` (see docs/decisions/0014-tracker-queries.md).
"""

from __future__ import annotations

import functools
import hashlib
import json
import operator
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, delete, update
from sqlalchemy.engine import Connection

from errorkit.store._clean import clean_text
from errorkit.store._driver import SHAPES, db_time, run_rows, statement_text, utc, values_list
from errorkit.store.records import ErrorRecord
from errorkit.store.schema import error_counts_hourly

__all__ = [
    "DIMENSIONS",
    "ROLLUP_FILTERS",
    "Change",
    "add_changes",
    "add_records",
    "changes_of",
    "dims_key",
    "hour_of",
]

#: The columns of ``errors`` counted by, in the order of a combination's values.
DIMENSIONS = ("error_type", "severity", "error_code", "endpoint", "service", "environment")

#: The stats filters the rollup can answer (the others are counted in ``errors``).
ROLLUP_FILTERS = frozenset({*DIMENSIONS, "resolved"}) - {"endpoint"}

Combination = tuple[str | None, ...]
#: (hour, combination) -> (rows, resolved rows) to add; negative to take away.
Change = dict[tuple[datetime, Combination], tuple[int, int]]

_GET = operator.attrgetter(*DIMENSIONS)
#: ``json.dumps(value, separators=(",", ":"))``, without making an encoder per call.
_compact_json = json.JSONEncoder(separators=(",", ":")).encode


def hour_of(value: datetime) -> datetime:
    """The start of the hour ``value`` (in UTC) is in."""
    return value.replace(minute=0, second=0, microsecond=0)


def dims_key(values: Combination) -> str:
    """The name of one combination of dimension values, NULLs included."""
    text = _compact_json(values)
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def _stored(value: Any) -> str | None:
    """A dimension as the writer stores it (text cleaned as ``errors`` gets it)."""
    if value is None:
        return None
    return clean_text(value if isinstance(value, str) else str(value))


def add_records(connection: Connection, records: Iterable[ErrorRecord]) -> None:
    """Count newly inserted records (timestamps already in UTC or naive UTC)."""
    counts: dict[tuple[datetime, tuple[Any, ...]], int] = {}
    for record in records:
        when = record.timestamp
        if when.tzinfo is not UTC:
            when = utc(when)
        key = (hour_of(when), _GET(record))
        counts[key] = counts.get(key, 0) + 1
    if not counts:
        return
    change: Change = {}
    for (hour, raw), n in counts.items():
        values = tuple(_stored(value) for value in raw)
        key = (hour, values)
        rows, resolved = change.get(key, (0, 0))
        change[key] = (rows + n, resolved)
    add_changes(connection, change)


_COUNT_COLUMNS = ("hour", "dims", *DIMENSIONS, "total", "resolved")


@functools.lru_cache(maxsize=2 * SHAPES)
def _count_upsert(postgres: bool, rows: int) -> str:
    """The upsert of ``rows`` counts (one combination of an hour each): created, or grown."""
    return statement_text(
        postgres,
        f"INSERT INTO error_counts_hourly ({', '.join(_COUNT_COLUMNS)}) "
        f"VALUES {values_list(len(_COUNT_COLUMNS), rows)} "
        "ON CONFLICT (hour, dims) DO UPDATE SET "
        "total = error_counts_hourly.total + excluded.total, "
        "resolved = error_counts_hourly.resolved + excluded.resolved",
    )


def add_changes(connection: Connection, change: Change) -> None:
    """Add ``change`` to the counts: new combinations are created, counts that reach zero
    rows are deleted. Rows are taken in one order (hour, name) so concurrent writers
    cannot deadlock."""
    entries = sorted(
        ((hour, dims_key(values), values, rows, resolved))
        for (hour, values), (rows, resolved) in change.items()
        if rows or resolved
    )
    if not entries:
        return
    table = error_counts_hourly
    growing = [entry for entry in entries if entry[3] > 0]
    other = [entry for entry in entries if entry[3] <= 0]
    if growing:
        time = db_time(connection.dialect.name == "postgresql")
        run_rows(
            connection,
            _count_upsert,
            [
                (time(hour), key, *values, rows, resolved)
                for hour, key, values, rows, resolved in growing
            ],
        )
    if other:
        statement = (
            update(table)
            .where(table.c.hour == bindparam("b_hour"), table.c.dims == bindparam("b_dims"))
            .values(
                total=table.c.total + bindparam("b_total"),
                resolved=table.c.resolved + bindparam("b_resolved"),
            )
        )
        connection.execute(
            statement,
            [
                {"b_hour": hour, "b_dims": key, "b_total": rows, "b_resolved": resolved}
                for hour, key, _, rows, resolved in other
            ],
        )
        if any(rows < 0 for *_, rows, _ in other):
            connection.execute(
                delete(table).where(
                    table.c.hour == bindparam("b_hour"),
                    table.c.dims == bindparam("b_dims"),
                    table.c.total <= 0,
                ),
                [{"b_hour": hour, "b_dims": key} for hour, key, _, rows, _ in other if rows < 0],
            )


def changes_of(rows: Sequence[Any], rows_sign: int, resolved_of: Any) -> Change:
    """The change of rows returned as (timestamp, *DIMENSIONS, resolved): each row adds
    ``rows_sign`` rows and ``resolved_of(row)`` resolved rows to its hour."""
    change: Change = {}
    for row in rows:
        key = (utc(hour_of(row[0])), tuple(row[1 : 1 + len(DIMENSIONS)]))
        total, resolved = change.get(key, (0, 0))
        change[key] = (total + rows_sign, resolved + resolved_of(row))
    return change
