"""The error store: write batches from the capture pipeline, read for people and tools.

Lookups (:meth:`ErrorStore.get`, :meth:`ErrorStore.group`) return None for an unknown id;
actions on an unknown id (:meth:`ErrorStore.resolve`, :meth:`ErrorStore.resolve_group`, ...)
raise :class:`NotFound`. Every database failure surfaces as :class:`StoreError`
(:class:`StoreUnavailable` when the database cannot be reached), naming the store's URL
without its password.
"""

from __future__ import annotations

import base64
import binascii
import csv
import json
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent import futures
from contextlib import contextmanager, nullcontext
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, NamedTuple, Protocol, Self, TypedDict, Unpack, cast

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    case,
    delete,
    false,
    func,
    literal,
    literal_column,
    or_,
    select,
    text,
    tuple_,
    union_all,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, Connection, Engine, Row
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.sql import Subquery, operators
from sqlalchemy.sql.elements import UnaryExpression

from errorkit.store import _rollup, alerting
from errorkit.store._write import _aware, apply_batch, prepare_batch
from errorkit.store.engine import (
    DEFAULT_BUSY_TIMEOUT_MS,
    WRITE,
    begin_batch,
    create_store_engine,
    describe_url,
    write_queue,
)
from errorkit.store.errors import (
    InvalidQuery,
    InvalidRecord,
    NotFound,
    StoreError,
    StoreUnavailable,
)
from errorkit.store.migrate import ensure_schema
from errorkit.store.models import (
    ERROR_FIELDS,
    GROUP_FIELDS,
    Bucket,
    ErrorGroup,
    GroupStatus,
    Page,
    RequestCounts,
    SlimError,
    Stats,
    StoredError,
    WriteResult,
)
from errorkit.store.records import CountDelta, ErrorRecord, RequestCountRow, SlimRecord
from errorkit.store.schema import (
    GROUP_STATUSES,
    UTCDateTime,
    alert_events,
    applied_deltas,
    error_counts_hourly,
    error_groups,
    errors,
    request_counts,
    slim_errors,
)

__all__ = [
    "MAX_LIMIT",
    "MINUTE_BUCKETS_KEPT",
    "TREND_WINDOW",
    "ErrorFilters",
    "ErrorStore",
    "ExportFormat",
    "GroupSort",
    "StatsFilters",
    "TextSink",
    "open_store",
]

#: The largest page any listing returns.
MAX_LIMIT = 10_000

#: How long request counts stay in minute buckets; :meth:`ErrorStore.cleanup` rolls older
#: ones into hour buckets, kept for the retention period.
MINUTE_BUCKETS_KEPT = timedelta(days=1)

ExportFormat = Literal["jsonl", "csv"]
GroupSort = Literal["last_seen", "count", "first_seen", "trend"]

#: The window ``sort="trend"`` compares with the one before it when no ``since`` is given.
TREND_WINDOW = timedelta(hours=24)

_WRITE_ATTEMPTS = 3
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_GROUP_SORTS = ("last_seen", "count", "first_seen", "trend")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_BY = ("error_type", "severity", "error_code", "endpoint", "service")
#: Threads for reads made beside a call's own connection (see ErrorStore.stats).
_BESIDE_THREADS = 4
#: What a change to rows of ``errors`` returns for the rollup: timestamp, then dimensions.
_ROLLUP_COLUMNS = (errors.c.timestamp, *(errors.c[name] for name in _rollup.DIMENSIONS))


def _one(row: object) -> int:
    return 1


def _MINUS_one(row: object) -> int:
    return -1


def _minus_resolved(row: Row[Any]) -> int:
    return -1 if row[-1] else 0


class TextSink(Protocol):
    """Where :meth:`ErrorStore.export` writes: an open text file, ``sys.stdout``, ..."""

    def write(self, text: str, /) -> object: ...


class StatsFilters(TypedDict, total=False):
    """What narrows :meth:`ErrorStore.stats` besides its time window: the filters of
    :class:`ErrorFilters` but ``since`` and ``until``."""

    error_type: str | None
    severity: str | None
    error_code: str | None
    resolved: bool | None
    fingerprint: str | None
    session_id: str | None
    request_id: str | None
    service: str | None
    environment: str | None
    search: str | None


class ErrorFilters(StatsFilters, total=False):
    """Filters shared by :meth:`ErrorStore.list`, ``count`` and ``export``; None means any."""

    since: datetime | None
    until: datetime | None


_FILTER_NAMES = frozenset(ErrorFilters.__annotations__)
_EXACT_FILTERS = (
    "error_type",
    "severity",
    "error_code",
    "fingerprint",
    "session_id",
    "request_id",
    "service",
    "environment",
)


def open_store(
    url: str | URL,
    *,
    migrate: bool = True,
    busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS,
    pool_size: int = 5,
    echo: bool = False,
) -> ErrorStore:
    """Open the store at ``url`` now: connects and migrates, raising if it cannot."""
    store = ErrorStore(
        url, migrate=migrate, busy_timeout_ms=busy_timeout_ms, pool_size=pool_size, echo=echo
    )
    try:
        store.ping()
    except BaseException:
        store.close()
        raise
    return store


class ErrorStore:
    """Errors and groups in SQLite or PostgreSQL; safe to share between threads.

    Creating one only checks the URL. The schema is migrated on first use, so an app can
    start while its database is down; :func:`open_store` connects at once instead.
    """

    def __init__(
        self,
        url: str | URL,
        *,
        migrate: bool = True,
        busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS,
        pool_size: int = 5,
        echo: bool = False,
    ) -> None:
        self._engine = create_store_engine(
            url, busy_timeout_ms=busy_timeout_ms, pool_size=pool_size, echo=echo
        )
        self._url = describe_url(self._engine.url)
        self._queue = write_queue(self._engine, busy_timeout_ms / 1000)
        self._migrate = migrate
        self._ready = False
        self._ready_lock = threading.Lock()
        self._beside_reads: futures.ThreadPoolExecutor | None = None
        self._beside_pid = 0

    # -- plumbing -------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The store's URL with the password hidden."""
        return self._url

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self._engine.dialect.name

    @property
    def engine(self) -> Engine:
        return self._engine

    def __repr__(self) -> str:
        return f"ErrorStore({self._url!r})"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close every pooled connection; the store reconnects if used again."""
        with self._ready_lock:
            beside, self._beside_reads = self._beside_reads, None
        if beside is not None and self._beside_pid == os.getpid():
            beside.shutdown(wait=True)
        self._engine.dispose()

    def _beside(self) -> futures.ThreadPoolExecutor:
        """Threads for the reads a call makes beside its own (each on its own pooled
        connection), started on first use, and again in a forked child (threads do not
        survive a fork)."""
        beside = self._beside_reads
        if beside is None or self._beside_pid != os.getpid():
            with self._ready_lock:
                beside = self._beside_reads
                if beside is None or self._beside_pid != os.getpid():
                    beside = self._beside_reads = futures.ThreadPoolExecutor(
                        max_workers=_BESIDE_THREADS, thread_name_prefix="errorkit-store"
                    )
                    self._beside_pid = os.getpid()
        return beside

    def ping(self) -> None:
        """Check the database answers (and is migrated); raises StoreUnavailable if not."""
        with self._read() as connection:
            connection.execute(text("SELECT 1"))

    def _ensure_ready(self) -> None:
        if self._ready:
            return
        with self._ready_lock:
            if self._ready:
                return
            if self._migrate:
                ensure_schema(self._engine)
            self._ready = True

    @contextmanager
    def _translate(self) -> Iterator[None]:
        """Database failures as StoreError; the raw driver's too (the bulk paths use it)."""
        driver = self._engine.dialect.loaded_dbapi
        try:
            yield
        except (
            OperationalError,
            InterfaceError,
            driver.OperationalError,
            driver.InterfaceError,
        ) as exc:
            message = f"the store at {self._url} is unavailable: {_reason(exc)}"
            raise StoreUnavailable(message) from exc
        except (DBAPIError, driver.Error) as exc:
            message = f"the store at {self._url} refused the operation: {_reason(exc)}"
            raise StoreError(message) from exc

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        self._ensure_ready()
        with self._translate(), self._engine.connect() as connection:
            yield connection

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        self._ensure_ready()
        with (
            self._queue.held() if self._queue is not None else nullcontext(),
            self._translate(),
            self._engine.connect().execution_options(**{WRITE: True}) as connection,
            connection.begin(),
        ):
            yield connection

    @contextmanager
    def _batch_write(self) -> Iterator[Connection]:
        """write_batch's transaction, begun and ended on the driver's connection (see
        ``begin_batch``); nothing in it may go through SQLAlchemy's execution."""
        self._ensure_ready()
        with (
            self._queue.held() if self._queue is not None else nullcontext(),
            self._translate(),
            self._engine.connect() as connection,
        ):
            driver: Any = connection.connection.driver_connection
            begin_batch(connection)
            try:
                yield connection
                driver.commit()
            except BaseException:
                try:
                    driver.rollback()
                except Exception:  # noqa: BLE001 - the connection is broken: drop it
                    connection.invalidate()
                raise

    # -- writing --------------------------------------------------------------------

    def write_batch(
        self, records: Sequence[ErrorRecord], deltas: Sequence[CountDelta] = ()
    ) -> WriteResult:
        """Store ``records`` and apply ``deltas`` in one transaction, idempotently.

        A record whose ``error_id`` is already stored, or a delta whose ``delta_id`` was
        already applied, changes nothing: replaying a batch never counts twice. Raises
        InvalidRecord (before touching the database) for a record breaking the contract,
        StoreError/StoreUnavailable when the database fails; then nothing was written.
        """
        batch = prepare_batch(records, deltas)
        if not batch:
            return WriteResult(duplicates=batch.duplicates, deltas_skipped=batch.delta_duplicates)
        attempt = 1
        while True:
            try:
                with self._batch_write() as connection:
                    return apply_batch(connection, batch)
            except StoreError as exc:
                if attempt == _WRITE_ATTEMPTS or not _transient(exc.__cause__):
                    raise
            time.sleep(0.05 * 2 ** (attempt - 1))
            attempt += 1

    def write_slim(self, rows: Sequence[SlimRecord]) -> int:
        """Store slim rows (answered occurrences the flood limiter sampled out); a row whose
        ``error_id`` is stored already changes nothing. Returns how many were new."""
        values = [_slim_values(row, position) for position, row in enumerate(rows)]
        if not values:
            return 0
        with self._write() as connection:
            dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
            statement = (
                dialect.insert(slim_errors)
                .on_conflict_do_nothing(index_elements=["error_id"])
                .returning(slim_errors.c.error_id)
            )
            return len(connection.execute(statement, values).scalars().all())

    def write_request_counts(
        self, rows: Sequence[RequestCountRow], *, batch_id: str | None = None
    ) -> int:
        """Add request counts to their buckets (a bucket stored already grows by the count).

        With ``batch_id``, a batch applied before changes nothing (the capture writer
        retries a batch under its id). Returns how many requests were added."""
        merged = _merge_request_counts(rows)
        if not merged:
            return 0
        with self._write() as connection:
            if batch_id is not None:
                dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
                new = connection.execute(
                    dialect.insert(applied_deltas)
                    .on_conflict_do_nothing(index_elements=["delta_id"])
                    .returning(applied_deltas.c.delta_id),
                    {"delta_id": _REQUESTS_BATCH + batch_id, "applied_at": datetime.now(UTC)},
                ).scalar()
                if new is None:
                    return 0
            _add_request_counts(connection, merged)
        return sum(merged.values())

    def request_counts(
        self,
        since: datetime,
        until: datetime,
        *,
        service: str | None = None,
        environment: str | None = None,
        endpoint: str | None = None,
    ) -> RequestCounts:
        """HTTP requests answered from ``since`` up to ``until`` (buckets starting in that
        window: minutes for the last day, hours before), all of them and those answered
        4xx and 5xx; None matches any service, environment or endpoint."""
        start, end = _when(since, "since"), _when(until, "until")
        if end < start:
            message = f"until ({end.isoformat()}) is before since ({start.isoformat()})"
            raise InvalidQuery(message)
        with self._read() as connection:
            return _count_requests(
                connection, start, end, service=service, environment=environment, endpoint=endpoint
            )

    def resolve(self, error_id: str, notes: str | None = None) -> StoredError:
        """Mark one stored error resolved (with optional notes); NotFound if unknown."""
        with self._write() as connection:
            values: dict[str, Any] = {"resolved": True}
            if notes is not None:
                values["notes"] = notes
            # Only the update that flips the row counts it resolved (a concurrent resolve
            # of the same row waits for this one, then finds it resolved already).
            flipped = connection.execute(
                update(errors)
                .where(errors.c.error_id == error_id, errors.c.resolved == false())
                .values(**values)
                .returning(*_ROLLUP_COLUMNS)
            ).all()
            if flipped:
                _rollup.add_changes(connection, _rollup.changes_of(flipped, 0, _one))
            else:
                result = connection.execute(
                    update(errors).where(errors.c.error_id == error_id).values(**values)
                )
                if result.rowcount == 0:
                    raise NotFound.error(error_id, self._url)
            row = connection.execute(_select_errors().where(errors.c.error_id == error_id)).one()
        return _stored(row)

    def cleanup(
        self,
        older_than: datetime,
        *,
        batch_size: int = 5000,
        on_progress: Callable[[int], None] | None = None,
    ) -> int:
        """Delete rows stored before ``older_than``; group counts stay exact.

        Deletes in transactions of ``batch_size`` rows so writers are never blocked long;
        ``on_progress`` receives the number deleted after each one. Returns the total of
        errors deleted. Request counts before ``older_than`` are deleted too, and minute
        buckets older than :data:`MINUTE_BUCKETS_KEPT` are rolled up into hour buckets.
        """
        cutoff = _when(older_than, "older_than")
        if batch_size < 1:
            message = f"batch_size must be at least 1, got {batch_size}"
            raise InvalidQuery(message)
        oldest = (
            select(errors.c.id)
            .where(errors.c.timestamp < cutoff)
            .order_by(errors.c.id)
            .limit(batch_size)
        )
        with self._write() as connection:  # slim rows carry no group count: one delete
            connection.execute(delete(slim_errors).where(slim_errors.c.timestamp < cutoff))
            connection.execute(delete(request_counts).where(request_counts.c.bucket_start < cutoff))
        self._roll_up_request_counts(datetime.now(UTC) - MINUTE_BUCKETS_KEPT)
        deleted = 0
        while True:
            with self._write() as connection:
                ids = connection.execute(oldest).scalars().all()
                if ids:
                    gone = connection.execute(
                        delete(errors)
                        .where(errors.c.id.in_(ids))
                        .returning(*_ROLLUP_COLUMNS, errors.c.resolved)
                    ).all()
                    _rollup.add_changes(connection, _rollup.changes_of(gone, -1, _minus_resolved))
            deleted += len(ids)
            if ids and on_progress is not None:
                on_progress(len(ids))
            if len(ids) < batch_size:
                return deleted

    def _roll_up_request_counts(self, before: datetime) -> None:
        """Minute buckets of the hours that ended before ``before`` become hour buckets,
        one hour per transaction (what is deleted is exactly what is added up)."""
        end_of_last = before.replace(minute=0, second=0, microsecond=0)
        column = request_counts.c
        minutes = (column.granularity == "minute", column.bucket_start < end_of_last)
        while True:
            with self._read() as connection:
                oldest = connection.execute(
                    select(func.min(column.bucket_start)).where(*minutes)
                ).scalar()
            if oldest is None:
                break
            hour = _bucket_time(oldest).replace(minute=0, second=0, microsecond=0)
            with self._write() as connection:
                rolled = connection.execute(
                    delete(request_counts)
                    .where(
                        *minutes,
                        column.bucket_start >= hour,
                        column.bucket_start < hour + timedelta(hours=1),
                    )
                    .returning(
                        column.service,
                        column.environment,
                        column.endpoint,
                        column.status_class,
                        column.count,
                    )
                ).all()
                merged: dict[tuple[datetime, str, str, str, str, str], int] = {}
                for service, environment, endpoint, cls, n in rolled:
                    key = (hour, "hour", service, environment, endpoint, cls)
                    merged[key] = merged.get(key, 0) + int(n)
                _add_request_counts(connection, merged)
        with self._write() as connection:  # batch ids of request counts: no retry is that late
            connection.execute(
                delete(applied_deltas).where(
                    applied_deltas.c.delta_id.startswith(_REQUESTS_BATCH, autoescape=True),
                    applied_deltas.c.applied_at < before,
                )
            )

    # -- reading errors -------------------------------------------------------------

    def get(self, error_id: str) -> StoredError | None:
        """The stored error with this ``error_id``, or None."""
        with self._read() as connection:
            row = connection.execute(
                _select_errors().where(errors.c.error_id == error_id)
            ).one_or_none()
        return None if row is None else _stored(row)

    def get_slim(self, error_id: str) -> SlimError | None:
        """The slim row of an answered occurrence whose full sample was not kept (with its
        group when stored), or None."""
        with self._read() as connection:
            row = connection.execute(
                select(slim_errors).where(slim_errors.c.error_id == error_id)
            ).one_or_none()
            if row is None:
                return None
            found = connection.execute(
                select(*[error_groups.c[name] for name in GROUP_FIELDS]).where(
                    error_groups.c.fingerprint == row.fingerprint
                )
            ).one_or_none()
        group = None if found is None else _group(found)
        return SlimError(
            row.error_id,
            row.timestamp,
            row.fingerprint,
            row.request_id,
            row.session_id,
            row.endpoint,
            row.status,
            group,
        )

    def by_session(self, session_id: str, *, limit: int = 100) -> Sequence[StoredError]:
        """Errors of one session, newest first."""
        return self.list(session_id=session_id, limit=limit, with_total=False).items

    def by_type(self, error_type: str, *, limit: int = 100) -> Sequence[StoredError]:
        """Errors of one type, newest first."""
        return self.list(error_type=error_type, limit=limit, with_total=False).items

    def by_severity(self, severity: str, *, limit: int = 100) -> Sequence[StoredError]:
        """Errors of one severity, newest first."""
        return self.list(severity=severity, limit=limit, with_total=False).items

    def recent(self, limit: int = 50) -> Sequence[StoredError]:
        """The newest errors."""
        return self.list(limit=limit, with_total=False).items

    def unresolved(self, limit: int = 50) -> Sequence[StoredError]:
        """The newest errors not resolved yet."""
        return self.list(resolved=False, limit=limit, with_total=False).items

    def list(
        self,
        *,
        limit: int = 50,
        offset: int = 0,
        cursor: str | None = None,
        with_total: bool = True,
        **filters: Unpack[ErrorFilters],
    ) -> Page[StoredError]:
        """Errors matching ``filters``, newest first.

        Page with ``offset`` or, for stable paging through a growing table, pass the
        previous page's ``next_cursor`` as ``cursor``.
        """
        _check_page(limit, offset)
        conditions = _error_conditions(filters)
        query = _select_errors().where(*conditions)
        if cursor is not None:
            if offset:
                message = "pass either cursor or offset, not both"
                raise InvalidQuery(message)
            after_time, after_id = _decode_cursor(cursor)
            query = query.where(
                or_(
                    errors.c.timestamp < after_time,
                    and_(errors.c.timestamp == after_time, errors.c.id < after_id),
                )
            )
        query = query.order_by(errors.c.timestamp.desc(), errors.c.id.desc())
        query = query.limit(limit + 1).offset(offset)
        with self._read() as connection:
            rows = connection.execute(query).all()
            total = None
            if with_total:
                count_query = select(func.count()).select_from(errors).where(*conditions)
                total = connection.execute(count_query).scalar_one()
        items = tuple(_stored(row) for row in rows[:limit])
        next_cursor = _encode_cursor(items[-1]) if len(rows) > limit else None
        return Page(items=items, total=total, limit=limit, offset=offset, next_cursor=next_cursor)

    def count(self, **filters: Unpack[ErrorFilters]) -> int:
        """How many stored errors match ``filters``."""
        query = select(func.count()).select_from(errors).where(*_error_conditions(filters))
        with self._read() as connection:
            return int(connection.execute(query).scalar_one())

    def stats(
        self,
        since: datetime | None = None,
        until: datetime | None = None,
        *,
        bucket: Bucket = "hour",
        top: int = 10,
        **filters: Unpack[StatsFilters],
    ) -> Stats:
        """Counts of stored errors by type, severity, code, endpoint, service and time
        bucket; ``filters`` (as for :meth:`list`) narrow what is counted.

        Also the ``top`` groups by stored occurrences in the window, up to ``top`` groups
        first seen in it (new) and marked regressed and last seen in it (both narrowed by
        the filters a group carries: type, severity, code, service, environment,
        fingerprint, text), and the window's request counts with the error rate (5xx
        share) when the store holds request counts for it (narrowed by service and
        environment only).
        """
        if bucket not in ("hour", "day"):
            message = f"bucket must be 'hour' or 'day', got {bucket!r}"
            raise InvalidQuery(message)
        if not 1 <= top <= MAX_LIMIT:
            message = f"top must be between 1 and {MAX_LIMIT}, got {top}"
            raise InvalidQuery(message)
        window: ErrorFilters = {**filters, "since": since, "until": until}
        conditions = _error_conditions(window)
        start = _EPOCH if since is None else _when(since, "since")
        end = datetime.now(UTC) if until is None else _when(until, "until")
        # The top groups read every error of the window (the other counts come mostly from
        # the rollup): they are counted on a second connection meanwhile (the drivers let
        # go of the GIL while the database works).
        pending = self._beside().submit(self._read_top_groups, conditions, top)
        try:
            with self._read() as connection:
                parts = self._rollup_parts(since, until, filters)
                if parts is None:
                    total, unresolved, by, buckets = self._count_rows(
                        connection, conditions, bucket
                    )
                else:
                    total, unresolved, by, buckets = self._sum_facts(connection, parts, bucket)
                new, regressed = self._new_and_regressed(connection, since, until, filters, top)
                requests = None
                if start < end:
                    counted = _count_requests(
                        connection,
                        start,
                        end,
                        service=filters.get("service"),
                        environment=filters.get("environment"),
                    )
                    requests = counted if counted.total else None
        except BaseException:
            futures.wait([pending])
            raise
        top_groups = pending.result()
        return Stats(
            total=int(total),
            unresolved=int(unresolved),
            by_type=by["error_type"],
            by_severity=by["severity"],
            by_code=by["error_code"],
            by_endpoint=by["endpoint"],
            by_service=by["service"],
            buckets=buckets,
            bucket=bucket,
            since=None if since is None else _when(since, "since"),
            until=None if until is None else _when(until, "until"),
            top_groups=top_groups,
            new_groups=new,
            regressed_groups=regressed,
            requests=requests,
        )

    def _count_rows(
        self, connection: Connection, conditions: Sequence[ColumnElement[bool]], bucket: Bucket
    ) -> tuple[int, int, dict[str, dict[str, int]], tuple[tuple[datetime, int], ...]]:
        """The window's totals, counts by dimension and buckets, counted in ``errors``."""
        totals = select(
            func.count(), func.coalesce(func.sum(case((errors.c.resolved, 0), else_=1)), 0)
        ).where(*conditions)
        total, unresolved = connection.execute(totals).one()
        by: dict[str, dict[str, int]] = {}
        for name in _BY:
            column = errors.c[name]
            # On SQLite, grouping by the bare column lets the planner walk the whole
            # (column, timestamp) index to skip a sort; grouping by an expression of
            # it keeps it on the time range (the covering timestamp_facets index).
            key = _unindexed(column) if self.dialect == "sqlite" else column
            query = (
                select(column, func.count())
                .where(column.is_not(None), *conditions)
                .group_by(key)
                .order_by(func.count().desc(), column)
            )
            by[name] = {key: int(n) for key, n in connection.execute(query)}
        slot = self._bucket(bucket, errors.c.timestamp).label("slot")
        query = select(slot, func.count()).where(*conditions).group_by(slot).order_by(slot)
        buckets = tuple((_bucket_time(key), int(n)) for key, n in connection.execute(query))
        return int(total), int(unresolved), by, buckets

    def _sum_facts(
        self, connection: Connection, parts: _RollupParts, bucket: Bucket
    ) -> tuple[int, int, dict[str, dict[str, int]], tuple[tuple[datetime, int], ...]]:
        """The same as :meth:`_count_rows` (the same order too), summed from the rollup
        and the edge hours: in one statement on PostgreSQL, two on SQLite."""
        if self.dialect == "postgresql":
            return self._sum_facts_postgres(connection, parts, bucket)
        # SQLite has no grouping sets, and an aggregate over the union of the parts makes
        # it copy the union first: each part is summed on its own, per combination (the
        # rollup by its dims key: 120 rows here) and per hour (the rollup in its primary
        # key's order, no sort), and those few rows are added up here. Python orders str
        # as SQLite's BINARY collation does (code points, i.e. UTF-8 bytes), so each count
        # keeps the order ORDER BY count DESC, value gives.
        hourly = error_counts_hourly.c
        columns = [errors.c[name] for name in _BY]
        opened = func.sum(case((errors.c.resolved, 0), else_=1))
        per_combination = union_all(
            select(*(hourly[name] for name in _BY), func.sum(parts.n), func.sum(parts.open))
            .where(*parts.inside)
            .group_by(hourly.dims),
            *(
                select(*columns, func.count(), opened)
                .where(*conditions)
                # Bare columns could let the planner walk a whole (column, timestamp)
                # index to skip the sort (see _unindexed).
                .group_by(*(_unindexed(c) for c in columns))
                for _, conditions in parts.edges
            ),
        )
        by: dict[str, dict[str, int]] = {name: {} for name in _BY}
        total = unresolved = 0
        for row in connection.execute(per_combination):
            count = int(row[-2])
            total += count
            unresolved += int(row[-1])
            for name, value in zip(_BY, row, strict=False):
                if value is not None:
                    counts = by[name]
                    counts[value] = counts.get(value, 0) + count
        for name in _BY:
            by[name] = dict(sorted(by[name].items(), key=_by_count_then_value))
        per_hour = union_all(
            select(hourly.hour, func.sum(parts.n)).where(*parts.inside).group_by(hourly.hour),
            *(
                select(literal(edge_start, UTCDateTime()), func.count()).where(*conditions)
                for edge_start, conditions in parts.edges
            ),
        )
        per_bucket: dict[datetime, int] = {}
        for at, count in connection.execute(per_hour):
            if not count:
                continue  # an edge without rows
            key = _bucket_time(at).replace(minute=0, second=0, microsecond=0)
            if bucket == "day":
                key = key.replace(hour=0)
            per_bucket[key] = per_bucket.get(key, 0) + int(count)
        return total, unresolved, by, tuple(sorted(per_bucket.items()))

    def _sum_facts_postgres(
        self, connection: Connection, parts: _RollupParts, bucket: Bucket
    ) -> tuple[int, int, dict[str, dict[str, int]], tuple[tuple[datetime, int], ...]]:
        # One aggregate with a grouping set per count (PostgreSQL hashes them all in one
        # pass); GROUPING() tells which set a row belongs to, bit i (from the left) set
        # when the i-th key is not grouped by that row's set.
        facts = _facts_union(parts)
        n, open_ = facts.c.n, facts.c.open
        keys = [*(facts.c[name] for name in _BY), self._bucket(bucket, facts.c.at)]
        grouped = func.grouping(*keys).label("g")
        query = (
            select(
                grouped,
                *keys,
                func.coalesce(func.sum(n), 0),
                func.coalesce(func.sum(open_), 0),
            )
            .group_by(func.grouping_sets(*(tuple_(key) for key in keys), tuple_()))
            .order_by(grouped, func.sum(n).desc(), *keys)
        )
        width = len(keys)
        sets = {((1 << width) - 1) ^ (1 << (width - 1 - i)): i for i in range(width)}
        by: dict[str, dict[str, int]] = {name: {} for name in _BY}
        buckets: list[tuple[datetime, int]] = []
        total = unresolved = 0
        for row in connection.execute(query):
            index = sets.get(row[0])
            if index is None:
                total, unresolved = int(row[-2]), int(row[-1])
            elif index == len(_BY):
                buckets.append((_bucket_time(row[1 + index]), int(row[-2])))
            elif row[1 + index] is not None:
                by[_BY[index]][row[1 + index]] = int(row[-2])
        return total, unresolved, by, tuple(sorted(buckets))

    @staticmethod
    def _rollup_parts(
        since: datetime | None, until: datetime | None, filters: StatsFilters
    ) -> _RollupParts | None:
        """What the window counts: the whole hours from ``error_counts_hourly``, the partial
        hours at the edges from ``errors``. None when the rollup cannot answer: a filter it
        does not keep (fingerprint, session, request, text) or a window without a whole
        hour."""
        for name, value in filters.items():
            if value is not None and value != "" and name not in _rollup.ROLLUP_FILTERS:
                return None
        start = None if since is None else _when(since, "since")
        end = None if until is None else _when(until, "until")
        low = None
        if start is not None:
            low = _rollup.hour_of(start)
            if low < start:
                low += timedelta(hours=1)
        high = None if end is None else _rollup.hour_of(end)
        if low is not None and high is not None and low >= high:
            return None
        hourly = error_counts_hourly.c
        resolved = filters.get("resolved")
        if resolved is None:
            n: ColumnElement[Any] = hourly.total
            open_: ColumnElement[Any] = hourly.total - hourly.resolved
        elif resolved:
            n, open_ = hourly.resolved, literal_column("0")
        else:
            n = open_ = hourly.total - hourly.resolved
        inside = [n > 0]
        if low is not None:
            inside.append(hourly.hour >= low)
        if high is not None:
            inside.append(hourly.hour < high)
        for name in _rollup.ROLLUP_FILTERS - {"resolved"}:
            value = filters.get(name)
            if value is not None:
                inside.append(hourly[name] == value)
        edges = []
        if start is not None and low is not None and start < low:
            edges.append((start, low))
        if end is not None and high is not None and high < end:
            edges.append((high, end))
        return _RollupParts(
            inside,
            n,
            open_,
            [
                (edge_start, _error_conditions({**filters, "since": edge_start, "until": edge_end}))
                for edge_start, edge_end in edges
            ],
        )

    def _read_top_groups(
        self, conditions: Sequence[ColumnElement[bool]], top: int
    ) -> tuple[tuple[ErrorGroup, int], ...]:
        with self._read() as connection:
            return self._top_groups(connection, conditions, top, self.dialect)

    @staticmethod
    def _top_groups(
        connection: Connection,
        conditions: Sequence[ColumnElement[bool]],
        top: int,
        dialect: str,
    ) -> tuple[tuple[ErrorGroup, int], ...]:
        occurrences = func.count().label("occurrences")
        fingerprint = errors.c.fingerprint
        # As for the by-dimension counts: on SQLite, grouping by the bare fingerprint makes
        # the planner walk the whole (fingerprint, timestamp) index, every stored error;
        # an expression of it keeps the scan on the window of the covering (timestamp,
        # fingerprint) index, read without touching the table.
        key = _unindexed(fingerprint) if dialect == "sqlite" else fingerprint
        counted = (
            select(fingerprint, occurrences)
            .where(*conditions)
            .group_by(key)
            .order_by(occurrences.desc(), errors.c.fingerprint)
            .limit(top)
            .subquery()
        )
        columns: list[ColumnElement[Any]] = [error_groups.c[name] for name in GROUP_FIELDS]
        columns.append(counted.c.occurrences)
        query = (
            select(*columns)
            .join(counted, counted.c.fingerprint == error_groups.c.fingerprint)
            .order_by(counted.c.occurrences.desc(), error_groups.c.fingerprint)
        )
        return tuple((_group(row), int(row.occurrences)) for row in connection.execute(query))

    @staticmethod
    def _new_and_regressed(
        connection: Connection,
        since: datetime | None,
        until: datetime | None,
        filters: StatsFilters,
        top: int,
    ) -> tuple[tuple[ErrorGroup, ...], tuple[ErrorGroup, ...]]:
        narrowing = _group_conditions(
            status=None,
            exact={
                name: cast("str | None", filters.get(name))
                for name in (
                    "error_type",
                    "severity",
                    "error_code",
                    "service",
                    "environment",
                    "fingerprint",
                )
            },
            occurrence={},
            search=filters.get("search"),
            since=None,
            until=None,
        )
        columns = [error_groups.c[name] for name in GROUP_FIELDS]
        found: list[tuple[ErrorGroup, ...]] = []
        for column, extra in (
            (error_groups.c.first_seen, []),
            (error_groups.c.last_seen, [error_groups.c.status == "regressed"]),
        ):
            inside = list(extra)
            if since is not None:
                inside.append(column >= _when(since, "since"))
            if until is not None:
                inside.append(column < _when(until, "until"))
            query = (
                select(*columns)
                .where(*narrowing, *inside)
                .order_by(column.desc(), error_groups.c.id.desc())
                .limit(top)
            )
            found.append(tuple(_group(row) for row in connection.execute(query)))
        return found[0], found[1]

    def _bucket(
        self, bucket: Bucket, timestamp: ColumnElement[Any] = errors.c.timestamp
    ) -> ColumnElement[Any]:
        # The unit is one of two fixed words, rendered literally so that PostgreSQL
        # recognises the same expression in SELECT and GROUP BY.
        if self.dialect == "postgresql":
            return func.date_trunc(
                literal_column(f"'{bucket}'"),
                func.timezone(literal_column("'UTC'"), timestamp),
            )
        # SQLite keeps times as fixed-width text, 'YYYY-MM-DD HH:MM:SS.ffffff': cutting it
        # gives the bucket, several times faster than strftime over many rows.
        width, rest = (13, ":00:00") if bucket == "hour" else (10, " 00:00:00")
        cut = func.substr(timestamp, literal_column("1"), literal_column(str(width)))
        return cut.concat(literal_column(f"'{rest}'"))

    def export(
        self,
        out: TextSink,
        *,
        fmt: ExportFormat = "jsonl",
        chunk_size: int = 1000,
        on_progress: Callable[[int], None] | None = None,
        neutralize_formulas: bool = True,
        **filters: Unpack[ErrorFilters],
    ) -> int:
        """Write matching errors to ``out`` oldest first, as JSON lines or CSV.

        Rows stream from the database ``chunk_size`` at a time (a server-side cursor on
        PostgreSQL), so memory stays flat however many there are. In CSV, text starting
        with ``= + - @`` gets a leading ``'`` so spreadsheets do not run it as a formula
        (``neutralize_formulas=False`` keeps it verbatim). Returns the number written.
        """
        if fmt not in ("jsonl", "csv"):
            message = f"export format must be 'jsonl' or 'csv', got {fmt!r}"
            raise InvalidQuery(message)
        if chunk_size < 1:
            message = f"chunk_size must be at least 1, got {chunk_size}"
            raise InvalidQuery(message)
        query = (
            _select_errors()
            .where(*_error_conditions(filters))
            .order_by(errors.c.timestamp, errors.c.id)
        )
        writer = None
        if fmt == "csv":
            writer = csv.writer(out)
            writer.writerow(ERROR_FIELDS)
        written = 0
        with self._read() as connection:
            result = connection.execution_options(
                stream_results=True, yield_per=chunk_size
            ).execute(query)
            for chunk in result.partitions():
                for row in chunk:
                    if writer is None:
                        out.write(json.dumps(_stored(row).as_dict(), ensure_ascii=False))
                        out.write("\n")
                    else:
                        writer.writerow(_csv_row(row, neutralize_formulas))
                written += len(chunk)
                if on_progress is not None:
                    on_progress(len(chunk))
        return written

    # -- groups ---------------------------------------------------------------------

    def groups(
        self,
        *,
        status: GroupStatus | Sequence[GroupStatus] | None = None,
        error_type: str | None = None,
        search: str | None = None,
        service: str | None = None,
        environment: str | None = None,
        severity: str | None = None,
        error_code: str | None = None,
        release: str | None = None,
        endpoint: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        sort: GroupSort = "last_seen",
        descending: bool = True,
        limit: int = 50,
        offset: int = 0,
        cursor: str | None = None,
        with_total: bool = True,
    ) -> Page[ErrorGroup]:
        """Groups (issues) matching the filters, with the total number of matches.

        ``since``/``until`` keep groups seen in that window (last seen at or after
        ``since``, first seen before ``until``); ``release`` and ``endpoint`` keep groups
        with a stored occurrence of that release or endpoint. Page with ``offset`` or pass
        the previous page's ``next_cursor`` as ``cursor`` (same filters and sort).

        ``sort="trend"`` orders by the stored occurrences in the window ``[since, until)``
        minus those in the window of the same length just before it (without ``since``:
        the :data:`TREND_WINDOW` ending at ``until``, or now). A cursor keeps the window
        of the page it came from, so paging never skips or repeats a group.
        """
        _check_page(limit, offset)
        if sort not in _GROUP_SORTS:
            message = f"sort must be one of {', '.join(_GROUP_SORTS)}; got {sort!r}"
            raise InvalidQuery(message)
        conditions = _group_conditions(
            status=status,
            exact={
                "error_type": error_type,
                "service": service,
                "environment": environment,
                "severity": severity,
                "error_code": error_code,
            },
            occurrence={"release": release, "endpoint": endpoint},
            search=search,
            since=since,
            until=until,
        )
        if cursor is not None and offset:
            message = "pass either cursor or offset, not both"
            raise InvalidQuery(message)
        decoded = None if cursor is None else _decode_group_cursor(cursor, sort)
        columns: list[ColumnElement[Any]] = [error_groups.c[name] for name in GROUP_FIELDS]
        window: tuple[datetime, datetime] | None = None
        column: ColumnElement[Any]
        if sort == "trend":
            window = decoded[2] if decoded is not None else None
            if window is None:
                end = datetime.now(UTC) if until is None else _when(until, "until")
                window = (end - TREND_WINDOW if since is None else _when(since, "since"), end)
            start, anchor = window
            if start >= anchor:
                message = "sort=trend needs since before until"
                raise InvalidQuery(message)
            column = _trend(start, anchor)
            columns.append(column.label("trend"))
        else:
            column = error_groups.c[sort]
        order = (
            (column.desc(), error_groups.c.id.desc()) if descending else (column, error_groups.c.id)
        )
        query = select(*columns).where(*conditions)
        if decoded is not None:
            after_value, after_id, _ = decoded
            if descending:
                after = or_(
                    column < after_value,
                    and_(column == after_value, error_groups.c.id < after_id),
                )
            else:
                after = or_(
                    column > after_value,
                    and_(column == after_value, error_groups.c.id > after_id),
                )
            query = query.where(after)
        query = query.order_by(*order).limit(limit + 1).offset(offset)
        with self._read() as connection:
            rows = connection.execute(query).all()
            total = None
            if with_total:
                total = int(
                    connection.execute(
                        select(func.count()).select_from(error_groups).where(*conditions)
                    ).scalar_one()
                )
        items = tuple(_group(row) for row in rows[:limit])
        next_cursor = None
        if len(rows) > limit:
            last = rows[limit - 1]
            value = last.trend if sort == "trend" else getattr(items[-1], sort)
            next_cursor = _encode_group_cursor(sort, value, items[-1].id, window)
        return Page(items=items, total=total, limit=limit, offset=offset, next_cursor=next_cursor)

    def group(self, key: str | int) -> ErrorGroup | None:
        """The group with this fingerprint (or numeric id), or None."""
        with self._read() as connection:
            return _find_group(connection, key)

    def resolve_group(self, key: str | int, notes: str | None = None) -> ErrorGroup:
        """Mark a group and all its stored errors resolved; NotFound if unknown.

        If the group occurs again later it is marked ``regressed``.
        """
        now = datetime.now(UTC)
        values: dict[str, Any] = {"status": "resolved", "resolved_at": now}
        if notes is not None:
            values["notes"] = notes
        return self._set_group(key, values, rows_resolved=True)

    def unresolve_group(self, key: str | int) -> ErrorGroup:
        """Reopen a group and its stored errors; NotFound if unknown."""
        values: dict[str, Any] = {"status": "unresolved", "resolved_at": None}
        return self._set_group(key, values, rows_resolved=False)

    def ignore_group(self, key: str | int, notes: str | None = None) -> ErrorGroup:
        """Mark a group ignored: still counted, left out of the unresolved list."""
        values: dict[str, Any] = {"status": "ignored"}
        if notes is not None:
            values["notes"] = notes
        return self._set_group(key, values, rows_resolved=None)

    def _set_group(
        self, key: str | int, values: dict[str, Any], *, rows_resolved: bool | None
    ) -> ErrorGroup:
        with self._write() as connection:
            found = _find_group(connection, key)
            if found is None:
                raise NotFound.group(key, self._url)
            connection.execute(
                update(error_groups).where(error_groups.c.id == found.id).values(**values)
            )
            if rows_resolved is not None:
                changed_rows = connection.execute(
                    update(errors)
                    .where(
                        errors.c.fingerprint == found.fingerprint,
                        errors.c.resolved == (not rows_resolved),
                    )
                    .values(resolved=rows_resolved)
                    .returning(*_ROLLUP_COLUMNS)
                ).all()
                _rollup.add_changes(
                    connection,
                    _rollup.changes_of(changed_rows, 0, _one if rows_resolved else _MINUS_one),
                )
            changed = _find_group(connection, found.id)
        if changed is None:
            message = f"group {key!r} vanished while being updated"
            raise NotFound(message)
        return changed

    # -- alerts ---------------------------------------------------------------------

    def window_counts(
        self,
        since: datetime,
        until: datetime,
        *,
        by: Literal["group", "endpoint"] = "group",
        scope: Mapping[str, str | None] | None = None,
        any_of: Mapping[str, Sequence[str]] | None = None,
        min_count: int = 1,
    ) -> Sequence[alerting.WindowCount]:
        """Occurrences in ``[since, until)`` per group (or per endpoint), most first,
        keeping those seen at least ``min_count`` times.

        ``scope`` holds exact matches (service, environment, endpoint, error_code,
        error_type, severity, fingerprint); ``any_of`` maps severity / error_code /
        error_type to lists, any of which matches. Sampled-out occurrences count too.
        """
        if by not in ("group", "endpoint"):
            message = f"by must be 'group' or 'endpoint', got {by!r}"
            raise InvalidQuery(message)
        start, end = _when(since, "since"), _when(until, "until")
        with self._read() as connection:
            return alerting.window_counts(
                connection,
                start,
                end,
                by=by,
                scope=scope or {},
                any_of=any_of,
                min_count=min_count,
            )

    def new_groups(
        self,
        since: datetime,
        until: datetime,
        *,
        scope: Mapping[str, str | None] | None = None,
        limit: int = 100,
    ) -> Sequence[ErrorGroup]:
        """Groups first seen in ``[since, until)``, oldest first."""
        _check_page(limit, 0)
        query = (
            select(*(error_groups.c[name] for name in GROUP_FIELDS))
            .where(
                error_groups.c.first_seen >= _when(since, "since"),
                error_groups.c.first_seen < _when(until, "until"),
                *alerting.group_conditions(scope or {}, None),
            )
            .order_by(error_groups.c.first_seen, error_groups.c.id)
            .limit(limit)
        )
        with self._read() as connection:
            return [_group(row) for row in connection.execute(query)]

    def regressed_groups(
        self, *, scope: Mapping[str, str | None] | None = None, limit: int = 100
    ) -> Sequence[ErrorGroup]:
        """Groups that were resolved and occurred again (status ``regressed``)."""
        _check_page(limit, 0)
        query = (
            select(*(error_groups.c[name] for name in GROUP_FIELDS))
            .where(
                error_groups.c.status == "regressed",
                *alerting.group_conditions(scope or {}, None),
            )
            .order_by(error_groups.c.regressed_at, error_groups.c.id)
            .limit(limit)
        )
        with self._read() as connection:
            return [_group(row) for row in connection.execute(query)]

    def claim_alert(
        self,
        rule: str,
        scope: str,
        decide: Callable[[alerting.AlertEvent | None], alerting.AlertClaim | None],
    ) -> alerting.AlertEvent | None:
        """Record a firing or resolution of ``rule`` for ``scope`` at most once.

        In one transaction holding a lock on (rule, scope) (PostgreSQL advisory lock;
        SQLite's write lock), ``decide`` gets the last firing or resolution (or None) and
        returns what to record, or None. The claim key is unique, so of several processes
        deciding the same thing only one records it; that one gets the event, the others
        None.
        """
        with self._write() as connection:
            return alerting.claim(connection, rule, scope, decide)

    def add_alert_event(
        self,
        *,
        rule: str,
        scope: str,
        kind: alerting.AlertEventKind,
        status: str,
        at: datetime,
        firing_id: int | None = None,
        channel: str | None = None,
        attempt: int | None = None,
        summary: str | None = None,
        detail: str | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> int:
        """Record a delivery attempt or a test notification; returns its id."""
        values = {
            "at": _when(at, "at"),
            "rule": rule,
            "scope": scope,
            "kind": kind,
            "status": status,
            "firing_id": firing_id,
            "channel": channel,
            "attempt": attempt,
            "summary": summary,
            "detail": detail,
            "data": dict(data or {}),
        }
        with self._write() as connection:
            inserted = alerting.insert_event(connection, values)
        if inserted is None:  # pragma: no cover - no claim, so no conflict
            message = "the alert event was not recorded"
            raise StoreError(message)
        return inserted

    def alert_events(
        self,
        *,
        rule: str | None = None,
        kinds: Sequence[alerting.AlertEventKind] | None = None,
        since: datetime | None = None,
        limit: int = 50,
        before: tuple[datetime, int] | None = None,
    ) -> Sequence[alerting.AlertEvent]:
        """Alert firings, resolutions and delivery attempts, newest first; with
        ``before`` (an event's ``at`` and ``id``), only those after it in that order."""
        _check_page(limit, 0)
        query = alerting.events_query(
            rule=rule,
            kinds=kinds,
            since=None if since is None else _when(since, "since"),
            limit=limit,
            before=None if before is None else (_when(before[0], "before"), int(before[1])),
        )
        with self._read() as connection:
            return [alerting.alert_event(row) for row in connection.execute(query)]

    def open_alerts(self, rule: str) -> Sequence[alerting.AlertEvent]:
        """The firings of ``rule`` whose condition has not been resolved yet, per scope."""
        with self._read() as connection:
            return alerting.open_alerts(connection, rule)

    def delete_alert_events(self, older_than: datetime) -> int:
        """Forget alert events recorded before ``older_than``; returns how many."""
        with self._write() as connection:
            result = connection.execute(
                delete(alert_events).where(alert_events.c.at < _when(older_than, "older_than"))
            )
        return int(result.rowcount or 0)


# -- helpers --------------------------------------------------------------------------


def _slim_values(row: SlimRecord, position: int) -> dict[str, Any]:
    if not isinstance(row, SlimRecord):
        message = (
            f"rows[{position}] is a {type(row).__name__}; write_slim takes "
            "errorkit.store.SlimRecord instances"
        )
        raise InvalidRecord(message)
    for name in ("error_id", "fingerprint"):
        value = getattr(row, name)
        if not isinstance(value, str) or not value:
            message = f"rows[{position}].{name} must be a non-empty string, got {value!r}"
            raise InvalidRecord(message)
    return {
        "error_id": row.error_id,
        "timestamp": _aware(row.timestamp, f"rows[{position}].timestamp"),
        "fingerprint": row.fingerprint,
        "request_id": row.request_id,
        "session_id": row.session_id,
        "endpoint": row.endpoint,
        "status": row.status,
    }


_REQUESTS_BATCH = "requests:"  # the applied_deltas id of a batch of request counts
_GRANULARITIES = ("minute", "hour")
RequestKey = tuple[datetime, str, str, str, str, str]


def _merge_request_counts(rows: Sequence[RequestCountRow]) -> dict[RequestKey, int]:
    """The rows by bucket (its start truncated to its granularity), counts added up;
    InvalidRecord for a row breaking the contract."""
    merged: dict[RequestKey, int] = {}
    for position, row in enumerate(rows):
        if not isinstance(row, RequestCountRow):
            message = (
                f"rows[{position}] is a {type(row).__name__}; write_request_counts takes "
                "errorkit.store.RequestCountRow instances"
            )
            raise InvalidRecord(message)
        if row.granularity not in _GRANULARITIES:
            message = (
                f"rows[{position}].granularity must be 'minute' or 'hour', got {row.granularity!r}"
            )
            raise InvalidRecord(message)
        if isinstance(row.count, bool) or not isinstance(row.count, int) or row.count < 0:
            message = f"rows[{position}].count must be a whole number >= 0, got {row.count!r}"
            raise InvalidRecord(message)
        for name in ("service", "endpoint", "status_class"):
            value = getattr(row, name)
            if not isinstance(value, str) or not value:
                message = f"rows[{position}].{name} must be a non-empty string, got {value!r}"
                raise InvalidRecord(message)
        start = _aware(row.bucket_start, f"rows[{position}].bucket_start")
        start = start.replace(second=0, microsecond=0)
        if row.granularity == "hour":
            start = start.replace(minute=0)
        key = (
            start,
            row.granularity,
            row.service,
            row.environment or "",
            row.endpoint,
            row.status_class,
        )
        merged[key] = merged.get(key, 0) + row.count
    return merged


def _add_request_counts(connection: Connection, merged: dict[RequestKey, int]) -> None:
    """Upsert: each bucket grows by its count (created when new). Sorted, so that two
    writers lock the rows they share in the same order."""
    if not merged:
        return
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(request_counts)
    statement = statement.on_conflict_do_update(
        index_elements=[
            "bucket_start",
            "granularity",
            "service",
            "environment",
            "endpoint",
            "status_class",
        ],
        set_={"count": request_counts.c.count + statement.excluded.count},
    )
    values = [
        {
            "bucket_start": key[0],
            "granularity": key[1],
            "service": key[2],
            "environment": key[3],
            "endpoint": key[4],
            "status_class": key[5],
            "count": n,
        }
        for key, n in sorted(merged.items())
    ]
    connection.execute(statement, values)


def _driver_error(exc: BaseException) -> BaseException:
    """The driver's own exception behind SQLAlchemy's wrapper, if any."""
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        return exc.orig
    return exc


def _reason(exc: BaseException) -> str:
    """The driver's error, on one line."""
    original = _driver_error(exc)
    lines = str(original).strip().splitlines()
    return f"{type(original).__name__}: {lines[0] if lines else 'no detail'}"


def _transient(cause: BaseException | None) -> bool:
    """A deadlock, serialization failure or busy database: worth retrying at once."""
    if cause is None:
        return False
    original = _driver_error(cause)
    if getattr(original, "sqlstate", None) in {"40P01", "40001"}:
        return True
    text_ = str(original).lower()
    return "database is locked" in text_ or "database is busy" in text_


def _when(value: datetime, name: str) -> datetime:
    return _aware(value, name, InvalidQuery)


def _check_page(limit: int, offset: int) -> None:
    if not 1 <= limit <= MAX_LIMIT:
        message = f"limit must be between 1 and {MAX_LIMIT}, got {limit}"
        raise InvalidQuery(message)
    if offset < 0:
        message = f"offset must be 0 or more, got {offset}"
        raise InvalidQuery(message)


def _error_conditions(filters: ErrorFilters) -> list[ColumnElement[bool]]:
    unknown = sorted(set(filters) - _FILTER_NAMES)
    if unknown:
        message = f"unknown filter {unknown[0]!r}; accepted: {', '.join(sorted(_FILTER_NAMES))}"
        raise InvalidQuery(message)
    conditions: list[ColumnElement[bool]] = []
    for name in _EXACT_FILTERS:
        value = filters.get(name)
        if value is not None:
            conditions.append(errors.c[name] == value)
    resolved = filters.get("resolved")
    if resolved is not None:
        conditions.append(errors.c.resolved == bool(resolved))
    since = filters.get("since")
    if since is not None:
        conditions.append(errors.c.timestamp >= _when(since, "since"))
    until = filters.get("until")
    if until is not None:
        conditions.append(errors.c.timestamp < _when(until, "until"))
    search = filters.get("search")
    if search:
        conditions.append(
            or_(
                *(
                    errors.c[name].icontains(search, autoescape=True)
                    for name in (
                        "error_message",
                        "title",
                        "error_code",
                        "exception_type",
                        "endpoint",
                        "error_id",
                    )
                )
            )
        )
    return conditions


def _select_errors() -> Select[Any]:
    return select(*(errors.c[name] for name in ERROR_FIELDS))


def _stored(row: Row[Any]) -> StoredError:
    values = row._asdict()
    if values["data"] is None:
        values["data"] = {}
    values["resolved"] = bool(values["resolved"])
    return StoredError(**values)


def _trend(start: datetime, end: datetime) -> ColumnElement[Any]:
    """Occurrences stored in ``[start, end)`` minus those in the window as long just
    before it, for the group of the enclosing query."""
    before = start - (end - start)
    timestamp = errors.c.timestamp
    return (
        select(func.coalesce(func.sum(case((timestamp >= start, 1), else_=-1)), 0))
        .where(
            errors.c.fingerprint == error_groups.c.fingerprint,
            timestamp >= before,
            timestamp < end,
        )
        .scalar_subquery()
    )


def _group(row: Row[Any]) -> ErrorGroup:
    values = {name: value for name, value in row._asdict().items() if name in GROUP_FIELDS}
    values["count"] = int(values["count"])
    return ErrorGroup(**values)


def _find_group(connection: Connection, key: str | int) -> ErrorGroup | None:
    columns = [error_groups.c[name] for name in GROUP_FIELDS]
    if isinstance(key, str):
        row = connection.execute(
            select(*columns).where(error_groups.c.fingerprint == key)
        ).one_or_none()
        if row is not None or not key.isdigit():
            return None if row is None else _group(row)
        key = int(key)
    row = connection.execute(select(*columns).where(error_groups.c.id == key)).one_or_none()
    return None if row is None else _group(row)


def _group_conditions(
    *,
    status: GroupStatus | Sequence[GroupStatus] | None,
    exact: dict[str, str | None],
    occurrence: dict[str, str | None],
    search: str | None,
    since: datetime | None,
    until: datetime | None,
) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if status is not None:
        statuses = [status] if isinstance(status, str) else list(status)
        unknown = [s for s in statuses if s not in GROUP_STATUSES]
        if unknown:
            message = f"unknown group status {unknown[0]!r}; use one of {', '.join(GROUP_STATUSES)}"
            raise InvalidQuery(message)
        conditions.append(error_groups.c.status.in_(statuses))
    for name, value in exact.items():
        if value is not None:
            conditions.append(error_groups.c[name] == value)
    for name, value in occurrence.items():
        if value is not None:
            conditions.append(
                select(errors.c.id)
                .where(errors.c.fingerprint == error_groups.c.fingerprint, errors.c[name] == value)
                .exists()
            )
    if search:
        conditions.append(
            or_(
                *(
                    error_groups.c[name].icontains(search, autoescape=True)
                    for name in ("title", "fingerprint", "error_code", "error_type")
                )
            )
        )
    if since is not None:
        conditions.append(error_groups.c.last_seen >= _when(since, "since"))
    if until is not None:
        conditions.append(error_groups.c.first_seen < _when(until, "until"))
    return conditions


def _encode_group_cursor(
    sort: str, value: datetime | int, ident: int, window: tuple[datetime, datetime] | None
) -> str:
    shown = value.isoformat() if isinstance(value, datetime) else str(int(value))
    parts = [sort, shown, str(ident)]
    if window is not None:
        parts.extend(moment.isoformat() for moment in window)
    raw = "|".join(parts).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_group_cursor(
    cursor: str, sort: str
) -> tuple[datetime | int, int, tuple[datetime, datetime] | None]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        made_for, value, ident, *rest = raw.split("|")
        after: datetime | int = (
            int(value)
            if made_for in ("count", "trend")
            else _when(datetime.fromisoformat(value), "cursor")
        )
        after_id = int(ident)
        window = None
        if made_for == "trend":
            start, end = rest
            window = (
                _when(datetime.fromisoformat(start), "cursor"),
                _when(datetime.fromisoformat(end), "cursor"),
            )
        elif rest:
            raise ValueError(raw)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        message = f"cursor {cursor[:40]!r} is not one this store handed out; start without one"
        raise InvalidQuery(message) from None
    if made_for != sort:
        message = (
            f"this cursor continues a listing sorted by {made_for}, not {sort}; "
            "keep the sort or start without a cursor"
        )
        raise InvalidQuery(message)
    return after, after_id, window


def _encode_cursor(item: StoredError) -> str:
    raw = f"{item.timestamp.isoformat()}|{item.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        when, _, ident = raw.partition("|")
        return _when(datetime.fromisoformat(when), "cursor"), int(ident)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        message = f"cursor {cursor[:40]!r} is not one this store handed out; start without one"
        raise InvalidQuery(message) from None


class _RollupParts(NamedTuple):
    """A window the rollup answers: the conditions on ``error_counts_hourly`` of its whole
    hours with what a rollup row counts (``n`` rows, ``open`` of them unresolved), and its
    partial edge hours, each as (its start, the conditions on ``errors``)."""

    inside: list[ColumnElement[bool]]
    n: ColumnElement[Any]
    open: ColumnElement[Any]
    edges: list[tuple[datetime, Sequence[ColumnElement[bool]]]]


def _facts_union(parts: _RollupParts) -> Subquery:
    """The window's facts as rows (dimensions, ``at``, ``n``, ``open``): the rollup rows
    of the whole hours, then each edge hour counted per combination and dated at its start
    (an edge lies within one hour, so within one hour or day bucket)."""
    hourly = error_counts_hourly.c
    selects: list[Select[Any]] = [
        select(
            *(hourly[name] for name in _BY),
            hourly.hour.label("at"),
            parts.n.label("n"),
            parts.open.label("open"),
        ).where(*parts.inside)
    ]
    columns = [errors.c[name] for name in _BY]
    for edge_start, conditions in parts.edges:
        selects.append(
            select(
                *columns,
                literal(edge_start, UTCDateTime()).label("at"),
                func.count().label("n"),
                func.sum(case((errors.c.resolved, 0), else_=1)).label("open"),
            )
            .where(*conditions)
            .group_by(*columns)
        )
    return union_all(*selects).subquery("facts")


def _by_count_then_value(item: tuple[str, int]) -> tuple[int, str]:
    return -item[1], item[0]


def _unindexed(column: ColumnElement[Any]) -> ColumnElement[Any]:
    """``+column``: the same value (SQLite's unary plus changes nothing, NULL included),
    but not a bare column, so SQLite's planner cannot answer a GROUP BY of it by walking a
    whole index on that column (which saves a sort but reads every row, not the window's).
    Cheaper than ``column || ''``, which builds a new string per row."""
    return UnaryExpression(column, operator=operators.custom_op("+"), type_=column.type)


def _count_requests(
    connection: Connection,
    start: datetime,
    end: datetime,
    *,
    service: str | None = None,
    environment: str | None = None,
    endpoint: str | None = None,
) -> RequestCounts:
    """:meth:`ErrorStore.request_counts` on ``connection``, for a window in UTC."""
    column = request_counts.c
    conditions = [column.bucket_start >= start, column.bucket_start < end]
    for name, value in (
        ("service", service),
        ("environment", environment),
        ("endpoint", endpoint),
    ):
        if value is not None:
            conditions.append(column[name] == value)
    query = (
        select(column.status_class, func.sum(column.count))
        .where(*conditions)
        .group_by(column.status_class)
    )
    by_class = {cls: int(n) for cls, n in connection.execute(query)}
    return RequestCounts(
        total=sum(by_class.values()),
        client_errors=by_class.get("4xx", 0),
        server_errors=by_class.get("5xx", 0),
    )


def _bucket_time(value: Any) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):
        message = f"unexpected time bucket {value!r} from the database"
        raise StoreError(message)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _csv_row(row: Row[Any], neutralize: bool) -> list[str]:
    cells: list[str] = []
    for value in _stored(row).as_dict().values():
        if value is None:
            cell = ""
        elif isinstance(value, bool):
            cell = "true" if value else "false"
        elif isinstance(value, dict):
            cell = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        else:
            cell = str(value)
            if neutralize and isinstance(value, str) and cell.startswith(_FORMULA_START):
                cell = "'" + cell
        cells.append(cell)
    return cells
