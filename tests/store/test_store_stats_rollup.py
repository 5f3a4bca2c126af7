"""The hourly rollup (error_counts_hourly): always exactly the errors table counted per
hour and dimensions, and stats() answered from it identical to counting the rows."""

from __future__ import annotations

import random
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import select
from tests.store._support import T0, DeltaFactory, RecordFactory

import errorkit.store
from errorkit.store import ErrorRecord, ErrorStore, upgrade
from errorkit.store._rollup import DIMENSIONS, dims_key, hour_of
from errorkit.store.repository import StatsFilters, _error_conditions
from errorkit.store.schema import error_counts_hourly, errors

TYPES = ("http_error", "database_error", "validation_error")
SEVERITIES = ("error", "warning", "critical")
CODES = ("HTTP_INTERNAL_ERROR", "DB_QUERY_FAILED", "VALIDATION_FIELD_INVALID", "Ünïcode_B")
ENDPOINTS = ("/api/chat", "/api/users", "/api/Zed", None, "")
SERVICES = ("api", "worker", None)
ENVIRONMENTS = ("prod", "staging", None)
FILTER_VALUES: dict[str, tuple[Any, ...]] = {
    "error_type": TYPES,
    "severity": SEVERITIES,
    "error_code": CODES,
    "service": ("api", "worker"),
    "environment": ("prod", "staging"),
    "resolved": (True, False),
}


def _random_records(
    make_record: RecordFactory, chooser: random.Random, count: int
) -> list[ErrorRecord]:
    """Records over three days: times on the hour exactly, with and without
    microseconds, in UTC, naive and in other time zones; every dimension varies."""
    zones = (UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-7)))
    out = []
    for _ in range(count):
        moment = T0 + timedelta(minutes=chooser.randrange(3 * 24 * 60))
        if chooser.random() < 0.6:
            moment += timedelta(
                seconds=chooser.randrange(60), microseconds=chooser.randrange(10**6)
            )
        kind = chooser.randrange(3)
        when = (
            moment.replace(tzinfo=None) if kind == 0 else moment.astimezone(chooser.choice(zones))
        )
        out.append(
            make_record(
                timestamp=when,
                error_type=chooser.choice(TYPES),
                error_code=chooser.choice(CODES),
                severity=chooser.choice(SEVERITIES),
                endpoint=chooser.choice(ENDPOINTS),
                service=chooser.choice(SERVICES),
                environment=chooser.choice(ENVIRONMENTS),
                fingerprint=f"fp-{chooser.randrange(6)}",
            )
        )
    return out


def _rollup_rows(store: ErrorStore) -> dict[tuple[datetime, str], tuple[Any, ...]]:
    with store.engine.connect() as connection:
        found = connection.execute(select(error_counts_hourly)).all()
    return {
        (row.hour, row.dims): (
            *(getattr(row, name) for name in DIMENSIONS),
            row.total,
            row.resolved,
        )
        for row in found
    }


def _counted_from_errors(store: ErrorStore) -> dict[tuple[datetime, str], tuple[Any, ...]]:
    """What the rollup must hold: the stored rows of errors counted in Python."""
    columns = [errors.c.timestamp, *(errors.c[name] for name in DIMENSIONS), errors.c.resolved]
    with store.engine.connect() as connection:
        found = connection.execute(select(*columns)).all()
    totals: Counter[tuple[datetime, tuple[Any, ...]]] = Counter()
    resolved: Counter[tuple[datetime, tuple[Any, ...]]] = Counter()
    for row in found:
        key = (hour_of(row[0]), tuple(row[1:-1]))
        totals[key] += 1
        resolved[key] += bool(row[-1])
    return {
        (hour, dims_key(values)): (*values, n, resolved[hour, values])
        for (hour, values), n in totals.items()
    }


def _assert_exact(store: ErrorStore) -> None:
    assert _rollup_rows(store) == _counted_from_errors(store)


def _raw(store: ErrorStore, since: datetime | None, until: datetime | None, **filters: Any) -> Any:
    """stats()'s counts taken in errors only, as before the rollup."""
    bucket = filters.pop("bucket", "hour")
    conditions = _error_conditions({**filters, "since": since, "until": until})
    with store._read() as connection:
        return store._count_rows(connection, conditions, bucket)


def _from_stats(
    store: ErrorStore, since: datetime | None, until: datetime | None, **kw: Any
) -> Any:
    stats = store.stats(since, until, **kw)
    by = {
        "error_type": stats.by_type,
        "severity": stats.by_severity,
        "error_code": stats.by_code,
        "endpoint": stats.by_endpoint,
        "service": stats.by_service,
    }
    return stats.total, stats.unresolved, by, stats.buckets


def _random_window(chooser: random.Random) -> tuple[datetime | None, datetime | None]:
    def moment() -> datetime:
        at = T0 + timedelta(minutes=chooser.randrange(-120, 3 * 24 * 60 + 120))
        if chooser.random() < 0.3:
            return hour_of(at)
        return at + timedelta(seconds=chooser.randrange(60), microseconds=chooser.randrange(10**6))

    since = None if chooser.random() < 0.15 else moment()
    until = None if chooser.random() < 0.25 else moment()
    if since is not None and until is not None and until < since:
        since, until = until, since
    return since, until


def _compare_random_queries(store: ErrorStore, chooser: random.Random, rounds: int) -> None:
    """stats() and counting the rows agree on random windows, buckets and filters; the
    rollup answers most of them."""
    answered = 0
    for _ in range(rounds):
        since, until = _random_window(chooser)
        filters: dict[str, Any] = {}
        for name, values in FILTER_VALUES.items():
            if chooser.random() < 0.2:
                filters[name] = chooser.choice(values)
        bucket = chooser.choice(("hour", "day"))
        expected = _raw(store, since, until, bucket=bucket, **filters)
        assert _from_stats(store, since, until, bucket=bucket, **filters) == expected, (
            since,
            until,
            bucket,
            filters,
        )
        ordered = _from_stats(store, since, until, bucket=bucket, **filters)[2]
        assert {k: list(v) for k, v in ordered.items()} == {
            k: list(v) for k, v in expected[2].items()
        }
        answered += store._rollup_parts(since, until, StatsFilters(**filters)) is not None
    assert answered > rounds // 2


def test_rollup_and_stats_match_the_rows_on_random_data(
    store: ErrorStore, make_record: RecordFactory
) -> None:
    """Random batches, replays, resolves and reopenings: the rollup stays the rows
    counted, and stats() from it equals counting the rows."""
    chooser = random.Random(20261203)
    written: list[ErrorRecord] = []
    for _ in range(6):
        batch = _random_records(make_record, chooser, 120)
        replayed = chooser.sample(written, min(len(written), 30))
        result = store.write_batch([*batch, *replayed])
        assert result.inserted == len(batch)
        written.extend(batch)
        _assert_exact(store)
    for record in chooser.sample(written, 40):
        store.resolve(record.error_id, notes="looked at")
    store.resolve(written[0].error_id)
    store.resolve(written[0].error_id)  # resolving twice counts once
    _assert_exact(store)
    store.resolve_group("fp-1")
    store.resolve_group("fp-2")
    store.unresolve_group("fp-2")
    store.ignore_group("fp-3")
    _assert_exact(store)
    _compare_random_queries(store, chooser, 80)


def test_deltas_and_replays_leave_the_rollup_as_the_rows(
    store: ErrorStore, make_record: RecordFactory, make_delta: DeltaFactory
) -> None:
    """Count deltas store no row and a replayed batch stores nothing: neither changes
    the rollup, and stats() still equals counting the rows."""
    chooser = random.Random(7)
    records = _random_records(make_record, chooser, 150)
    store.write_batch(records)
    before = _rollup_rows(store)
    deltas = [
        make_delta(
            fingerprint=f"fp-{n % 6}",
            count=chooser.randrange(1, 50),
            first_seen=T0 + timedelta(hours=n),
            last_seen=T0 + timedelta(hours=n, minutes=30),
        )
        for n in range(10)
    ]
    assert store.write_batch([], deltas).deltas_applied == 10
    assert store.write_batch(records, deltas).inserted == 0
    assert _rollup_rows(store) == before
    _assert_exact(store)
    _compare_random_queries(store, chooser, 30)


def test_cleanup_subtracts_what_it_deletes(store: ErrorStore, make_record: RecordFactory) -> None:
    """Retention takes the deleted rows out of their hours (emptied hours go), in
    batches that cut through hours."""
    chooser = random.Random(11)
    records = _random_records(make_record, chooser, 400)
    store.write_batch(records)
    for record in chooser.sample(records, 80):
        store.resolve(record.error_id)
    cutoff = T0 + timedelta(days=1, minutes=17, seconds=5)
    deleted = store.cleanup(cutoff, batch_size=37)
    assert deleted == sum(1 for r in records if _utc(r.timestamp) < cutoff)
    _assert_exact(store)
    assert all(hour >= hour_of(cutoff) for hour, _ in _rollup_rows(store))
    _compare_random_queries(store, chooser, 30)


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def test_text_the_writer_cleans_is_counted_as_stored(
    store: ErrorStore, make_record: RecordFactory
) -> None:
    """A NUL in a dimension is stored replaced; the rollup counts the stored value."""
    store.write_batch([make_record(endpoint="/a\x00b")])
    _assert_exact(store)
    assert store.stats(T0 - timedelta(hours=1), T0 + timedelta(hours=2)).by_endpoint == {
        "/a\ufffdb": 1
    }


def test_concurrent_writers_and_resolves_count_each_row_once(
    store: ErrorStore, make_record: RecordFactory
) -> None:
    """Threads writing overlapping batches (the same rows replayed by several) while
    groups are resolved and reopened: the rollup ends as the rows counted."""
    chooser = random.Random(3)
    records = _random_records(make_record, chooser, 600)
    batches = [records[start : start + 50] for start in range(0, len(records), 50)]
    failures: list[BaseException] = []

    def writer(order: list[list[ErrorRecord]]) -> None:
        try:
            for batch in order:
                store.write_batch(batch)
        except BaseException as exc:  # a failure in a thread must fail the test
            failures.append(exc)

    def resolver() -> None:
        try:
            for n in range(20):
                fingerprint = f"fp-{n % 6}"
                if store.group(fingerprint) is None:
                    continue
                if n % 2:
                    store.resolve_group(fingerprint)
                else:
                    store.unresolve_group(fingerprint)
        except BaseException as exc:
            failures.append(exc)

    threads = [
        threading.Thread(target=writer, args=(chooser.sample(batches, len(batches)),))
        for _ in range(3)
    ]
    threads.append(threading.Thread(target=resolver))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert store.count() == len(records)
    _assert_exact(store)
    _compare_random_queries(store, chooser, 20)


def test_stats_filters_the_rollup_cannot_answer_count_the_rows(
    store: ErrorStore, make_record: RecordFactory
) -> None:
    """Fingerprint, session, request and text filters, and windows without a whole hour,
    are counted in errors; the answer is the same as before the rollup."""
    store.write_batch(_random_records(make_record, random.Random(5), 100))
    since, until = T0, T0 + timedelta(days=2)
    for filters in (
        {"fingerprint": "fp-1"},
        {"session_id": "session-1"},
        {"request_id": "req-3"},
        {"search": "boom"},
    ):
        assert store._rollup_parts(since, until, StatsFilters(**filters)) is None  # type: ignore[typeddict-item]
        assert _from_stats(store, since, until, **filters) == _raw(store, since, until, **filters)
    inside = (T0 + timedelta(minutes=5), T0 + timedelta(minutes=50))
    assert store._rollup_parts(*inside, {}) is None
    assert _from_stats(store, *inside) == _raw(store, *inside)


def test_migration_backfills_the_rollup_from_stored_errors(
    store: ErrorStore, make_record: RecordFactory, store_url: str
) -> None:
    """Upgrading a store that has errors fills error_counts_hourly from them."""
    chooser = random.Random(9)
    records = _random_records(make_record, chooser, 300)
    store.write_batch(records)
    store.resolve_group("fp-0")
    expected = _counted_from_errors(store)
    config = Config()
    config.set_main_option(
        "script_location", str(Path(errorkit.store.__file__).parent / "migrations")
    )
    with store.engine.connect() as conn, conn.begin():
        config.attributes["connection"] = conn
        command.downgrade(config, "0009")
    store.close()
    upgrade(store_url)
    assert _rollup_rows(store) == expected
    _compare_random_queries(store, chooser, 20)


def test_rollup_keys_name_null_and_empty_apart() -> None:
    """An empty endpoint and no endpoint are different combinations."""
    base = ("http_error", "error", "HTTP_INTERNAL_ERROR", "", "api", "prod")
    assert dims_key(base) != dims_key((*base[:3], None, *base[4:]))
    assert dims_key(base) != dims_key(base[::-1])
    assert len(dims_key(base)) == 32
