"""The hot path: one batch of records and count deltas, written in one transaction.

Rows are inserted idempotently by ``error_id`` and the store learns exactly which ones
were new; only those, plus deltas whose ``delta_id`` was not applied before, are added to
``error_groups``. Replaying a batch therefore never counts anything twice.

The hot statements are SQL text run on the driver's cursor (``_driver``): the errors
insert, one upsert of the batch's groups, one of its hourly counts (``_rollup``), each a
multi-row ``VALUES`` list. Rows go in with the driver's own bulk path (measured in
``bench/bench_store.py`` and decision 0015):

* SQLite: ``INSERT ... ON CONFLICT (error_id) DO NOTHING``, whose count of inserted rows
  tells the common batch of new rows apart; only when it is short does a SELECT find the
  rows it inserted (the newest ones: see ``_newest_ids``). Cheaper than a SELECT of the
  stored ids first, and than ``INSERT ... RETURNING`` there.
* PostgreSQL, a batch under ``_COPY_ROWS`` rows (the ingest server's usual): one
  ``INSERT ... ON CONFLICT (error_id) DO NOTHING RETURNING error_id``, which reports the
  rows that were new even while other writers insert the same ids.
* PostgreSQL, a larger batch: ``COPY`` straight into ``errors`` inside a savepoint, for the
  common batch of new rows. When an id is already stored the COPY fails whole; the batch is
  then copied into a per-transaction temporary table and moved with one
  ``INSERT ... SELECT ... ON CONFLICT (error_id) DO NOTHING RETURNING``.
"""

from __future__ import annotations

import functools
import hashlib
import operator
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import Connection

from errorkit.store._clean import clean_text, json_dumps
from errorkit.store._driver import (
    SHAPES,
    db_time,
    fetch_rows,
    run_rows,
    sqlite_time,
    statement_text,
    values_list,
)
from errorkit.store._rollup import add_records
from errorkit.store.errors import InvalidRecord, StoreError
from errorkit.store.models import WriteResult
from errorkit.store.records import CountDelta, ErrorRecord

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
_QUOTED_COLUMNS = ", ".join(f'"{name}"' for name in _COLUMNS)
#: From this many rows a batch goes into PostgreSQL by COPY (below, one INSERT is cheaper).
_COPY_ROWS = 64
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
    new_records = _insert(connection, batch.records, now)
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
        values[_TIMESTAMP] = sqlite_time(timestamp)
    values.append(created)
    return tuple(values)


def _insert(connection: Connection, records: list[ErrorRecord], now: datetime) -> list[ErrorRecord]:
    """Insert the records not stored yet; returns them."""
    if not records:
        return []
    if connection.dialect.name != "postgresql":
        created = sqlite_time(now)
        rows = [_row(record, created, False) for record in records]
        inserted = run_rows(connection, _errors_insert, rows)
        if inserted == len(records):  # the common batch: every row new
            return records
        new_ids = _newest_ids(connection, [record.error_id for record in records], inserted)
        return [record for record in records if record.error_id in new_ids]
    rows = [_row(record, now, True) for record in records]
    # Sorted ids make concurrent writers take index locks in one order: no deadlocks.
    rows.sort(key=operator.itemgetter(0))
    if len(rows) >= _COPY_ROWS:
        new_ids = _copy_postgres(connection, rows)
    else:
        # A concurrent insert of the same id waits for the other transaction, then skips.
        returned = fetch_rows(connection, _errors_insert, rows)
        new_ids = {error_id for (error_id,) in returned}
    return [record for record in records if record.error_id in new_ids]


def _newest_ids(connection: Connection, ids: list[str], inserted: int) -> set[str]:
    """Which of ``ids`` the batch just inserted, knowing it inserted ``inserted`` of them
    (SQLite, when some were stored already).

    They are the ``inserted`` newest of those rows: ``errors.id`` is AUTOINCREMENT (above
    every id the table ever held), and the write lock is held since BEGIN IMMEDIATE, so no
    other writer inserted in between."""
    found: list[tuple[int, str]] = []
    cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        for start in range(0, len(ids), _SQLITE_IN_CHUNK):
            chunk = ids[start : start + _SQLITE_IN_CHUNK]
            marks = ",".join("?" * len(chunk))
            cursor.execute(f"SELECT id, error_id FROM errors WHERE error_id IN ({marks})", chunk)
            found.extend(cursor)
    finally:
        cursor.close()
    found.sort(reverse=True)
    return {error_id for _, error_id in found[:inserted]}


@functools.lru_cache(maxsize=2 * SHAPES)
def _errors_insert(postgres: bool, rows: int) -> str:
    """The INSERT of ``rows`` rows into ``errors``; on PostgreSQL it reports the ids it
    inserted."""
    return statement_text(
        postgres,
        f"INSERT INTO errors ({_QUOTED_COLUMNS}) VALUES {values_list(len(_COLUMNS), rows)} "
        "ON CONFLICT (error_id) DO NOTHING" + (" RETURNING error_id" if postgres else ""),
    )


def _copy_postgres(connection: Connection, rows: list[tuple[Any, ...]]) -> set[str]:
    """Large batches on PostgreSQL: ``COPY``, cheaper per row than an INSERT's VALUES."""
    from psycopg.errors import UniqueViolation

    columns = _QUOTED_COLUMNS
    driver: Any = connection.connection.driver_connection
    with driver.cursor() as cursor:
        # Fast path, for the common batch of new rows: COPY straight into errors. A
        # replayed id makes the whole COPY fail; the savepoint undoes it and the slow path
        # sorts it out.
        cursor.execute("SAVEPOINT errorkit_copy")
        try:
            _copy(connection, "errors", columns, rows)
        except UniqueViolation:
            cursor.execute("ROLLBACK TO SAVEPOINT errorkit_copy")
        else:
            cursor.execute("RELEASE SAVEPOINT errorkit_copy")
            return {row[0] for row in rows}
        cursor.execute(
            f"CREATE TEMPORARY TABLE IF NOT EXISTS {_INCOMING} ON COMMIT DELETE ROWS AS "
            f"SELECT {columns} FROM errors WITH NO DATA"
        )
        _copy(connection, _INCOMING, columns, rows)
        cursor.execute(
            f"INSERT INTO errors ({columns}) SELECT {columns} FROM {_INCOMING} "
            "ORDER BY error_id ON CONFLICT (error_id) DO NOTHING RETURNING error_id"
        )
        new_ids = {value for (value,) in cursor.fetchall()}
        cursor.execute(f"DELETE FROM {_INCOMING}")
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


@functools.lru_cache(maxsize=2 * SHAPES)
def _delta_insert(postgres: bool, rows: int) -> str:
    """The INSERT of ``rows`` deltas' ids into ``applied_deltas`` that reports the new ones."""
    return statement_text(
        postgres,
        f"INSERT INTO applied_deltas (delta_id, applied_at) VALUES {values_list(2, rows)} "
        "ON CONFLICT (delta_id) DO NOTHING RETURNING delta_id",
    )


def _apply_deltas(
    connection: Connection, deltas: list[CountDelta], now: datetime
) -> list[CountDelta]:
    """The deltas not applied before, now recorded in ``applied_deltas``."""
    if not deltas:
        return []
    ordered = sorted(deltas, key=operator.attrgetter("delta_id"))
    applied_at = db_time(connection.dialect.name == "postgresql")(now)
    rows = [(delta.delta_id, applied_at) for delta in ordered]
    applied = {delta_id for (delta_id,) in fetch_rows(connection, _delta_insert, rows)}
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
    """Add ``count`` occurrences of ``item``'s group, starting that group on first sight.
    Its text is cleaned as the rows' is (NUL and lone surrogates replaced): PostgreSQL
    refuses NUL in text, and the group must carry the fingerprint its rows carry."""
    fingerprint = clean_text(item.fingerprint)
    group = groups.get(fingerprint)
    if group is None:
        group = groups[fingerprint] = _Group(
            fingerprint=fingerprint,
            title=clean_text(str(item.title or item.error_type)),
            error_type=clean_text(item.error_type),
            error_code=clean_text(item.error_code),
            severity=clean_text(item.severity),
            service=_clean_or_none(item.service),
            environment=_clean_or_none(item.environment),
            count=count,
            first_seen=first,
            last_seen=last,
        )
    else:
        group.add(count, first, last)
    return group


def _clean_or_none(value: str | None) -> str | None:
    return None if value is None else clean_text(value)


@functools.lru_cache(maxsize=2 * SHAPES)
def _group_upsert(postgres: bool, rows: int) -> str:
    """The upsert of ``rows`` groups: each grows by its count and time span, a resolved one
    seen again after its resolution is reopened as regressed at the last parameter."""
    reopen = (
        "error_groups.status = 'resolved' AND (error_groups.resolved_at IS NULL"
        " OR excluded.last_seen > error_groups.resolved_at)"
    )
    values = values_list(len(_GROUP_COLUMNS), rows, ", 'unresolved'")
    return statement_text(
        postgres,
        f"INSERT INTO error_groups ({', '.join(_GROUP_COLUMNS)}, status) VALUES {values} "
        "ON CONFLICT (fingerprint) DO UPDATE SET "
        "count = error_groups.count + excluded.count, "
        "first_seen = CASE WHEN excluded.first_seen < error_groups.first_seen"
        " THEN excluded.first_seen ELSE error_groups.first_seen END, "
        "last_seen = CASE WHEN excluded.last_seen > error_groups.last_seen"
        " THEN excluded.last_seen ELSE error_groups.last_seen END, "
        "last_error_id = CASE WHEN excluded.last_error_id IS NOT NULL"
        " AND excluded.last_seen >= error_groups.last_seen"
        " THEN excluded.last_error_id ELSE error_groups.last_error_id END, "
        f"status = CASE WHEN {reopen} THEN 'regressed' ELSE error_groups.status END, "
        f"regressed_at = CASE WHEN {reopen} THEN ? ELSE error_groups.regressed_at END "
        "RETURNING fingerprint, count, status, regressed_at",
    )


_GROUP_COLUMNS = (
    "fingerprint",
    "title",
    "error_type",
    "error_code",
    "severity",
    "service",
    "environment",
    "count",
    "first_seen",
    "last_seen",
    "last_error_id",
)


def _upsert_groups(
    connection: Connection, groups: list[_Group], now: datetime
) -> tuple[list[str], list[str]]:
    """Add each group's occurrences; returns (created, reopened) fingerprints."""
    if not groups:
        return [], []
    time = db_time(connection.dialect.name == "postgresql")
    rows = [
        (
            g.fingerprint,
            g.title,
            g.error_type,
            g.error_code,
            g.severity,
            g.service,
            g.environment,
            g.count,
            time(g.first_seen),
            time(g.last_seen),
            g.last_error_id,
        )
        for g in groups
    ]
    stored_now = time(now)
    added = {g.fingerprint: g.count for g in groups}
    created: list[str] = []
    reopened: list[str] = []
    returned = fetch_rows(connection, _group_upsert, rows, (stored_now,))
    for fingerprint, count, status, regressed_at in returned:
        if count == added[fingerprint]:
            created.append(fingerprint)
        elif status == "regressed" and regressed_at == stored_now:
            reopened.append(fingerprint)
    return sorted(created), sorted(reopened)
