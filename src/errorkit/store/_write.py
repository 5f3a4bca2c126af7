"""The hot path: one batch of records and count deltas, written in one transaction.

Rows are inserted idempotently by ``error_id`` and the store learns exactly which ones
were new; only those, plus deltas whose ``delta_id`` was not applied before, are added to
``error_groups``. Replaying a batch therefore never counts anything twice.

Rows go in with the driver's own bulk path (measured in ``bench/bench_store.py``):

* SQLite: the transaction starts with ``BEGIN IMMEDIATE``, so no other writer can insert
  between reading which ``error_id`` values exist and inserting the rest with one
  ``executemany``.
* PostgreSQL: ``COPY`` straight into ``errors`` inside a savepoint, for the common batch of
  new rows. When an id is already stored the COPY fails whole; the batch is then copied into
  a per-transaction temporary table and moved with one
  ``INSERT ... SELECT ... ON CONFLICT (error_id) DO NOTHING RETURNING``, which reports the
  rows that were new even while other writers insert the same ids.
"""

from __future__ import annotations

import functools
import hashlib
import operator
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from itertools import chain
from typing import Any

from sqlalchemy import and_, bindparam, case, literal, or_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from errorkit.store._clean import clean_text, json_dumps
from errorkit.store._rollup import add_records
from errorkit.store.errors import InvalidRecord, StoreError
from errorkit.store.models import WriteResult
from errorkit.store.records import CountDelta, ErrorRecord
from errorkit.store.schema import applied_deltas, error_groups

__all__ = ["Batch", "apply_batch", "prepare_batch"]

_RECORD_FIELDS = tuple(f.name for f in fields(ErrorRecord))
_COLUMNS = (*_RECORD_FIELDS, "created_at")
_GET = operator.attrgetter(*_RECORD_FIELDS)
_TIMESTAMP = _RECORD_FIELDS.index("timestamp")
_DATA = _RECORD_FIELDS.index("data")
_TEXT = tuple(
    i for i, name in enumerate(_RECORD_FIELDS) if name not in {"timestamp", "status", "data"}
)
_TEXT_OF = operator.itemgetter(*_TEXT)
_REQUIRED = ("error_id", "error_type", "error_code", "severity", "fingerprint")
_REQUIRED_OF = operator.attrgetter(*_REQUIRED)
_MAX_ID = 36
_SQLITE_IN_CHUNK = 900
#: Rows per multi-row INSERT on SQLite (fewer when the build binds fewer variables).
_SQLITE_MAX_ROWS = 512
# Named after the column list, so a connection never reuses a table of another shape.
_INCOMING = (
    "errorkit_incoming_"
    + hashlib.sha1(",".join(_COLUMNS).encode(), usedforsecurity=False).hexdigest()[:10]
)


@dataclass(slots=True)
class _Group:
    """What one batch adds to one group."""

    fingerprint: str
    title: str
    error_type: str
    error_code: str
    severity: str
    service: str | None
    environment: str | None
    count: int
    first_seen: datetime
    last_seen: datetime
    last_error_id: str | None = None
    last_error_at: datetime | None = None

    def add(self, count: int, first: datetime, last: datetime) -> None:
        self.count += count
        self.first_seen = min(self.first_seen, first)
        self.last_seen = max(self.last_seen, last)


@dataclass(frozen=True, slots=True)
class Batch:
    """A checked batch: the first record of each ``error_id`` and delta of each ``delta_id``."""

    records: list[ErrorRecord]
    deltas: list[CountDelta]
    duplicates: int
    delta_duplicates: int

    def __bool__(self) -> bool:
        return bool(self.records or self.deltas)


def prepare_batch(records: Sequence[ErrorRecord], deltas: Sequence[CountDelta]) -> Batch:
    """Check a batch against the contract before any database work; raises InvalidRecord."""
    unique_records, duplicates = _unique_records(records)
    unique_deltas, delta_duplicates = _unique_deltas(deltas)
    return Batch(unique_records, unique_deltas, duplicates, delta_duplicates)


def apply_batch(connection: Connection, batch: Batch) -> WriteResult:
    """Write a prepared batch inside the caller's write transaction."""
    now = datetime.now(UTC)
    postgres = connection.dialect.name == "postgresql"
    if postgres:
        rows = [_row(record, now, postgres) for record in batch.records]
        new_ids = _insert_postgres(connection, rows)
        new_records = [r for r in batch.records if r.error_id in new_ids]
    else:
        new_records = _insert_sqlite(connection, batch.records, _sqlite_time(now))

    applied = _apply_deltas(connection, batch.deltas, now)
    aggregates = _aggregate(new_records, applied)
    new_groups, regressed = _upsert_groups(connection, aggregates, now)
    # The rollup after the groups: resolving or reopening a group locks the group, then
    # its rows, then their rollup counts; a writer taking the rollup first could wait for
    # that group while the group action waits for its rollup rows (a deadlock on
    # PostgreSQL).
    add_records(connection, new_records)
    return WriteResult(
        inserted=len(new_records),
        duplicates=batch.duplicates + len(batch.records) - len(new_records),
        deltas_applied=len(applied),
        deltas_skipped=batch.delta_duplicates + len(batch.deltas) - len(applied),
        occurrences=sum(group.count for group in aggregates),
        new_groups=tuple(new_groups),
        regressed_groups=tuple(regressed),
    )


def _aware(value: Any, what: str, error: type[StoreError] = InvalidRecord) -> datetime:
    """``value`` in UTC (a naive one is taken as UTC); ``error`` when it is no datetime."""
    if not isinstance(value, datetime):
        message = f"{what} must be a datetime, got {type(value).__name__}: {value!r}"
        raise error(message)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _unique_records(records: Sequence[ErrorRecord]) -> tuple[list[ErrorRecord], int]:
    """Records checked against the contract, the first of each ``error_id`` kept."""
    seen: set[str] = set()
    kept: list[ErrorRecord] = []
    for position, record in enumerate(records):
        if not isinstance(record, ErrorRecord):
            message = (
                f"records[{position}] is a {type(record).__name__}; write_batch takes "
                "errorkit.store.ErrorRecord instances"
            )
            raise InvalidRecord(message)
        required = _REQUIRED_OF(record)
        try:
            # One C-level pass: join raises TypeError on a non-string, all() spots "".
            fine = all(required) and bool("".join(required))
        except TypeError:
            fine = False
        if not fine:
            _explain_required(record, position)
        error_id = record.error_id
        if len(error_id) > _MAX_ID:
            message = (
                f"records[{position}].error_id {error_id[:60]!r} is longer than "
                f"{_MAX_ID} characters; use a UUID"
            )
            raise InvalidRecord(message)
        status = record.status
        if status is not None and (
            type(status) is not int or not 0 <= status <= 999  # bool is refused too
        ):
            message = (
                f"records[{position}].status must be an HTTP status 0-999 or None, got {status!r}"
            )
            raise InvalidRecord(message)
        if not isinstance(record.timestamp, datetime):
            _aware(record.timestamp, f"records[{position}].timestamp")
        if error_id in seen:
            continue
        seen.add(error_id)
        kept.append(record)
    return kept, len(records) - len(kept)


def _explain_required(record: ErrorRecord, position: int) -> None:
    for name in _REQUIRED:
        value = getattr(record, name)
        if not isinstance(value, str) or not value:
            message = f"records[{position}].{name} must be a non-empty string, got {value!r}"
            raise InvalidRecord(message)


def _unique_deltas(deltas: Sequence[CountDelta]) -> tuple[list[CountDelta], int]:
    seen: set[str] = set()
    kept: list[CountDelta] = []
    for position, delta in enumerate(deltas):
        if not isinstance(delta, CountDelta):
            message = (
                f"deltas[{position}] is a {type(delta).__name__}; write_batch takes "
                "errorkit.store.CountDelta instances"
            )
            raise InvalidRecord(message)
        for name in ("delta_id", "fingerprint", "error_type", "error_code", "severity"):
            value = getattr(delta, name)
            if not isinstance(value, str) or not value:
                message = f"deltas[{position}].{name} must be a non-empty string, got {value!r}"
                raise InvalidRecord(message)
        if not isinstance(delta.count, int) or isinstance(delta.count, bool) or delta.count < 1:
            message = (
                f"deltas[{position}].count must be a positive integer, got {delta.count!r}; "
                "a delta that counts nothing should not be sent"
            )
            raise InvalidRecord(message)
        first = _aware(delta.first_seen, f"deltas[{position}].first_seen")
        last = _aware(delta.last_seen, f"deltas[{position}].last_seen")
        if first > last:
            message = f"deltas[{position}] has first_seen {first} after last_seen {last}"
            raise InvalidRecord(message)
        if delta.delta_id in seen:
            continue
        seen.add(delta.delta_id)
        kept.append(delta)
    return kept, len(deltas) - len(kept)


def _row(record: ErrorRecord, created: Any, postgres: bool) -> tuple[Any, ...]:
    """The record as column values in ``_COLUMNS`` order, ready for the driver.

    ``created`` is the batch's ``created_at`` already in the driver's form.
    """
    values = list(_GET(record))
    try:
        # One check over all text of the row; the common all-ASCII row costs one join.
        joined = "".join(filter(None, _TEXT_OF(values)))
        clean = joined.isascii() and "\x00" not in joined
    except TypeError:  # a non-text value in a text field
        clean = False
    if not clean:
        for index in _TEXT:
            value = values[index]
            if value is not None:
                values[index] = clean_text(value if isinstance(value, str) else str(value))
    timestamp = values[_TIMESTAMP]
    if timestamp.tzinfo is not UTC:
        timestamp = _aware(timestamp, "timestamp")
    data = values[_DATA]
    values[_DATA] = json_dumps(data) if data else "{}"  # EncodedData: its text, as it is
    if postgres:
        values[_TIMESTAMP] = timestamp
    else:
        values[_TIMESTAMP] = _sqlite_time(timestamp)
    values.append(created)
    return tuple(values)


def _sqlite_time(value: datetime) -> str:
    """The text form SQLAlchemy keeps SQLite DATETIME in: sortable, here always UTC.

    ``value`` is in UTC; cutting the "+00:00" off its ISO form is the cheap way there.
    """
    return value.isoformat(" ", "microseconds")[:26]


def _chunks(items: Sequence[str], size: int) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _insert_sqlite(
    connection: Connection, records: list[ErrorRecord], created: str
) -> list[ErrorRecord]:
    """Insert the records not stored yet; returns them."""
    if not records:
        return []
    # The write lock is held since BEGIN IMMEDIATE: nobody inserts between these two steps.
    ids = [record.error_id for record in records]
    existing: set[str] = set()
    for chunk in _chunks(ids, _SQLITE_IN_CHUNK):
        marks = ",".join("?" * len(chunk))
        result = connection.exec_driver_sql(
            f"SELECT error_id FROM errors WHERE error_id IN ({marks})", tuple(chunk)
        )
        existing.update(value for (value,) in result)
    fresh = [record for record in records if record.error_id not in existing]
    if fresh:
        _insert_rows_sqlite(connection, [_row(record, created, postgres=False) for record in fresh])
    return fresh


def _insert_rows_sqlite(connection: Connection, rows: list[tuple[Any, ...]]) -> None:
    """Insert ``rows`` with a few multi-row INSERTs, not one statement per row.

    ``executemany`` runs one statement per row, and the sqlite3 module lets go of the GIL
    and takes it back around each one; while another thread runs Python, every take-back
    waits for the interpreter's switch interval (5 ms), so 1,000 rows held the write lock for
    seconds. Statements of 2**k rows keep that to a handful per batch and the statement
    cache to a handful of shapes."""
    size = _rows_per_insert(connection)
    start = 0
    total = len(rows)
    while start < total:
        while size > total - start:
            size //= 2
        connection.exec_driver_sql(
            _sqlite_insert(size), tuple(chain.from_iterable(rows[start : start + size]))
        )
        start += size


def _rows_per_insert(connection: Connection) -> int:
    """The most rows (a power of two, at most _SQLITE_MAX_ROWS) one INSERT can bind."""
    driver = connection.connection.driver_connection
    try:
        limit = int(driver.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER))  # type: ignore[union-attr]
    except (AttributeError, sqlite3.Error):
        limit = 999  # SQLite's default before 3.32
    size = _SQLITE_MAX_ROWS
    while size > 1 and size * len(_COLUMNS) > limit:
        size //= 2
    return size


@functools.lru_cache(maxsize=16)
def _sqlite_insert(rows: int) -> str:
    one = "(" + ", ".join("?" * len(_COLUMNS)) + ")"
    return (
        f"INSERT INTO errors ({', '.join(_COLUMNS)}) VALUES {', '.join([one] * rows)} "
        "ON CONFLICT (error_id) DO NOTHING"
    )


def _insert_postgres(connection: Connection, rows: list[tuple[Any, ...]]) -> set[str]:
    if not rows:
        return set()
    from psycopg.errors import UniqueViolation

    # Sorted ids make concurrent writers take index locks in one order: no deadlocks.
    rows.sort(key=operator.itemgetter(0))
    columns = ", ".join(f'"{name}"' for name in _COLUMNS)
    # Fast path, for the common batch of new rows: COPY straight into errors. A replayed
    # id makes the whole COPY fail; the savepoint undoes it and the slow path sorts it out.
    try:
        with connection.begin_nested():
            _copy(connection, "errors", columns, rows)
    except UniqueViolation:
        pass
    else:
        return {row[0] for row in rows}
    connection.exec_driver_sql(
        f"CREATE TEMPORARY TABLE IF NOT EXISTS {_INCOMING} ON COMMIT DELETE ROWS AS "
        f"SELECT {columns} FROM errors WITH NO DATA"
    )
    _copy(connection, _INCOMING, columns, rows)
    result = connection.exec_driver_sql(
        f"INSERT INTO errors ({columns}) SELECT {columns} FROM {_INCOMING} "
        "ORDER BY error_id ON CONFLICT (error_id) DO NOTHING RETURNING error_id"
    )
    new_ids = {value for (value,) in result}
    connection.exec_driver_sql(f"DELETE FROM {_INCOMING}")
    return new_ids


def _copy(connection: Connection, table: str, columns: str, rows: list[tuple[Any, ...]]) -> None:
    driver = connection.connection.driver_connection
    if driver is None:
        message = "the PostgreSQL connection was closed while writing a batch"
        raise RuntimeError(message)
    with (
        driver.cursor() as cursor,
        cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy,
    ):
        for row in rows:
            copy.write_row(row)


@functools.cache
def _delta_insert(dialect_name: str) -> Any:
    dialect = postgresql if dialect_name == "postgresql" else sqlite
    return (
        dialect.insert(applied_deltas)
        .on_conflict_do_nothing(index_elements=["delta_id"])
        .returning(applied_deltas.c.delta_id)
    )


def _apply_deltas(
    connection: Connection, deltas: list[CountDelta], now: datetime
) -> list[CountDelta]:
    """The deltas not applied before, now recorded in ``applied_deltas``."""
    if not deltas:
        return []
    statement = _delta_insert(connection.dialect.name)
    ordered = sorted(deltas, key=operator.attrgetter("delta_id"))
    params = [{"delta_id": delta.delta_id, "applied_at": now} for delta in ordered]
    applied = set(connection.execute(statement, params).scalars())
    return [delta for delta in ordered if delta.delta_id in applied]


def _aggregate(records: list[ErrorRecord], deltas: list[CountDelta]) -> list[_Group]:
    groups: dict[str, _Group] = {}
    for record in records:
        when = _aware(record.timestamp, "timestamp")
        group = _add_to(groups, record, 1, when, when)
        if group.last_error_at is None or when >= group.last_error_at:
            group.last_error_id = record.error_id
            group.last_error_at = when
    for delta in deltas:
        first = _aware(delta.first_seen, "first_seen")
        last = _aware(delta.last_seen, "last_seen")
        _add_to(groups, delta, delta.count, first, last)
    return sorted(groups.values(), key=operator.attrgetter("fingerprint"))


def _add_to(
    groups: dict[str, _Group],
    item: ErrorRecord | CountDelta,
    count: int,
    first: datetime,
    last: datetime,
) -> _Group:
    """Add ``count`` occurrences of ``item``'s group, starting that group on first sight."""
    group = groups.get(item.fingerprint)
    if group is None:
        group = groups[item.fingerprint] = _Group(
            fingerprint=item.fingerprint,
            title=clean_text(str(item.title or item.error_type)),
            error_type=item.error_type,
            error_code=item.error_code,
            severity=item.severity,
            service=item.service,
            environment=item.environment,
            count=count,
            first_seen=first,
            last_seen=last,
        )
    else:
        group.add(count, first, last)
    return group


@functools.cache
def _group_upsert(dialect_name: str) -> Any:
    """The group upsert, built once per dialect (building it costs more than running it for
    a small batch); ``now`` is a parameter of each row."""
    table = error_groups
    dialect = postgresql if dialect_name == "postgresql" else sqlite
    statement = dialect.insert(table)
    new = statement.excluded
    now = bindparam("upsert_now", type_=table.c.regressed_at.type)
    reopen = and_(
        table.c.status == "resolved",
        or_(table.c.resolved_at.is_(None), new.last_seen > table.c.resolved_at),
    )
    return statement.on_conflict_do_update(
        index_elements=[table.c.fingerprint],
        set_={
            "count": table.c.count + new.count,
            "first_seen": case(
                (new.first_seen < table.c.first_seen, new.first_seen), else_=table.c.first_seen
            ),
            "last_seen": case(
                (new.last_seen > table.c.last_seen, new.last_seen), else_=table.c.last_seen
            ),
            "last_error_id": case(
                (
                    and_(new.last_error_id.is_not(None), new.last_seen >= table.c.last_seen),
                    new.last_error_id,
                ),
                else_=table.c.last_error_id,
            ),
            "status": case((reopen, literal("regressed")), else_=table.c.status),
            "regressed_at": case((reopen, now), else_=table.c.regressed_at),
        },
    ).returning(table.c.fingerprint, table.c.count, table.c.status, table.c.regressed_at)


def _upsert_groups(
    connection: Connection, groups: list[_Group], now: datetime
) -> tuple[list[str], list[str]]:
    """Add each group's occurrences; returns (created, reopened) fingerprints."""
    if not groups:
        return [], []
    statement = _group_upsert(connection.dialect.name)
    params = [
        {
            "fingerprint": g.fingerprint,
            "title": g.title,
            "error_type": g.error_type,
            "error_code": g.error_code,
            "severity": g.severity,
            "service": g.service,
            "environment": g.environment,
            "count": g.count,
            "first_seen": g.first_seen,
            "last_seen": g.last_seen,
            "last_error_id": g.last_error_id,
            "status": "unresolved",
            "upsert_now": now,
        }
        for g in groups
    ]
    added = {g.fingerprint: g.count for g in groups}
    created: list[str] = []
    reopened: list[str] = []
    for fingerprint, count, status, regressed_at in connection.execute(statement, params):
        if count == added[fingerprint]:
            created.append(fingerprint)
        elif status == "regressed" and regressed_at == now:
            reopened.append(fingerprint)
    return sorted(created), sorted(reopened)
