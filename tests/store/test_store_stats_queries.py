"""stats() answers what counting the rows one by one answers, on both backends, and on
SQLite its counts walk the time range of the covering index (migration 0008)."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event
from tests.store._support import T0, RecordFactory

from errorkit.store import ErrorRecord, ErrorStore

TYPES = ("api_error", "network_error", "database_error")
CODES = ("CODE_A", "CODE_B", "CODE_C", "CODE_D")
SEVERITIES = ("warning", "error", "critical")
ENDPOINTS = ("/a", "/b", None)
SERVICES = ("chat", "billing", None)


def _records(make_record: RecordFactory) -> list[ErrorRecord]:
    chooser = random.Random(14)
    out = []
    for n in range(300):
        # Over three days, some times on the hour exactly (no microseconds stored).
        moment = T0 + timedelta(minutes=chooser.randrange(3 * 24 * 60))
        if n % 3:
            moment += timedelta(microseconds=chooser.randrange(1, 10**6))
        out.append(
            make_record(
                timestamp=moment,
                error_type=chooser.choice(TYPES),
                error_code=chooser.choice(CODES),
                severity=chooser.choice(SEVERITIES),
                endpoint=chooser.choice(ENDPOINTS),
                service=chooser.choice(SERVICES),
                fingerprint=f"fp-{n % 7}",
            )
        )
    return out


def _expected(
    rows: list[ErrorRecord],
    resolved: set[str],
    since: datetime | None,
    until: datetime | None,
    bucket: str,
) -> dict[str, Any]:
    kept = [
        r
        for r in rows
        if (since is None or r.timestamp >= since) and (until is None or r.timestamp < until)
    ]

    def by(name: str) -> dict[str, int]:
        counts = Counter(getattr(r, name) for r in kept if getattr(r, name) is not None)
        return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))

    def slot(moment: datetime) -> datetime:
        start = moment.replace(minute=0, second=0, microsecond=0)
        return start.replace(hour=0) if bucket == "day" else start

    return {
        "total": len(kept),
        "unresolved": sum(1 for r in kept if r.error_id not in resolved),
        "by_type": by("error_type"),
        "by_severity": by("severity"),
        "by_code": by("error_code"),
        "by_endpoint": by("endpoint"),
        "by_service": by("service"),
        "buckets": tuple(sorted(Counter(slot(r.timestamp) for r in kept).items())),
    }


@pytest.mark.parametrize("bucket", ["hour", "day"])
@pytest.mark.parametrize(
    ("since", "until"),
    [
        (None, None),
        (T0 + timedelta(hours=30), None),
        (T0 + timedelta(hours=5, minutes=30), T0 + timedelta(hours=50)),
    ],
)
def test_stats_match_counting_the_rows(
    store: ErrorStore,
    make_record: RecordFactory,
    bucket: str,
    since: datetime | None,
    until: datetime | None,
) -> None:
    """Totals, every by-dimension count (ordered by count, then key) and the buckets."""
    rows = _records(make_record)
    store.write_batch(rows)
    resolved = {r.error_id for r in rows[::5]}
    for error_id in resolved:
        store.resolve(error_id)

    stats = store.stats(since, until, bucket=bucket)  # type: ignore[arg-type]

    got = {
        "total": stats.total,
        "unresolved": stats.unresolved,
        "by_type": stats.by_type,
        "by_severity": stats.by_severity,
        "by_code": stats.by_code,
        "by_endpoint": stats.by_endpoint,
        "by_service": stats.by_service,
        "buckets": stats.buckets,
    }
    expected = _expected(rows, resolved, since, until, bucket)
    assert got == expected
    assert [list(d) for d in (stats.by_type, stats.by_code)] == [
        list(expected["by_type"]),
        list(expected["by_code"]),
    ]
    assert all(start.tzinfo is UTC for start, _ in stats.buckets)


def test_stats_counts_on_sqlite_scan_the_window_of_the_covering_index(
    store: ErrorStore, backend: str, make_record: RecordFactory
) -> None:
    """Each by-dimension count stats() runs in errors (here a window without a whole hour,
    which the hourly rollup cannot answer) is a range scan of the covering index, not a
    walk over the whole (type, timestamp) or (severity, timestamp) index."""
    if backend != "sqlite":
        pytest.skip("the query plan checked here is SQLite's")
    store.write_batch(_records(make_record)[:20])
    statements: list[tuple[str, Any]] = []

    def keep(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if "GROUP BY" in statement and "IS NOT NULL" in statement:
            statements.append((statement, parameters))

    event.listen(store.engine, "before_cursor_execute", keep)
    try:
        store.stats(T0 + timedelta(hours=1), T0 + timedelta(hours=1, minutes=30))
    finally:
        event.remove(store.engine, "before_cursor_execute", keep)
    assert len(statements) == 5
    raw = store.engine.raw_connection()
    try:
        for statement, parameters in statements:
            plan = raw.cursor().execute("EXPLAIN QUERY PLAN " + statement, parameters).fetchall()
            detail = " ".join(str(row[-1]) for row in plan)
            assert "COVERING INDEX ix_errors_timestamp_facets (timestamp>? AND timestamp<?)" in (
                detail
            ), detail
    finally:
        raw.close()


def test_stats_top_groups_on_sqlite_scan_the_window_not_every_error(
    store: ErrorStore, backend: str, make_record: RecordFactory
) -> None:
    """The top groups count is an index-only range scan of the window on the (timestamp,
    fingerprint) index, not a walk over the whole (fingerprint, timestamp) index, every
    stored error, nor one table row read per error of the window."""
    if backend != "sqlite":
        pytest.skip("the query plan checked here is SQLite's")
    store.write_batch(_records(make_record)[:20])
    statements: list[tuple[str, Any]] = []

    def keep(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if "errors.fingerprint" in statement.partition("GROUP BY")[2]:
            statements.append((statement, parameters))

    event.listen(store.engine, "before_cursor_execute", keep)
    try:
        store.stats(T0 + timedelta(hours=1))
    finally:
        event.remove(store.engine, "before_cursor_execute", keep)
    assert len(statements) == 1
    statement, parameters = statements[0]
    raw = store.engine.raw_connection()
    try:
        plan = raw.cursor().execute("EXPLAIN QUERY PLAN " + statement, parameters).fetchall()
    finally:
        raw.close()
    detail = " ".join(str(row[-1]) for row in plan)
    assert "COVERING INDEX ix_errors_timestamp_fingerprint (timestamp>?)" in detail, detail
    assert "ix_errors_fingerprint_timestamp" not in detail, detail


def test_stats_from_the_rollup_on_sqlite_read_only_the_window(
    store: ErrorStore, backend: str, make_record: RecordFactory
) -> None:
    """A window with whole hours and partial edge hours: every statement stats() runs
    reads errors on a time range (the edges, the top groups), never by walking a whole
    (type, timestamp), (severity, timestamp) or (fingerprint, timestamp) index, and the
    rollup by its primary key's hour range."""
    if backend != "sqlite":
        pytest.skip("the query plan checked here is SQLite's")
    store.write_batch(_records(make_record)[:40])
    statements: list[tuple[str, Any]] = []

    def keep(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if statement.startswith(("SELECT", "WITH")):
            statements.append((statement, parameters))

    event.listen(store.engine, "before_cursor_execute", keep)
    try:
        store.stats(T0 + timedelta(hours=1, minutes=20), T0 + timedelta(hours=30, minutes=5))
    finally:
        event.remove(store.engine, "before_cursor_execute", keep)
    raw = store.engine.raw_connection()
    searched = []
    try:
        for statement, parameters in statements:
            plan = raw.cursor().execute("EXPLAIN QUERY PLAN " + statement, parameters).fetchall()
            searched += [str(row[-1]) for row in plan if " errors " in f" {row[-1]} "]
            searched += [str(row[-1]) for row in plan if "error_counts_hourly" in str(row[-1])]
    finally:
        raw.close()
    assert any("error_counts_hourly USING PRIMARY KEY (hour>? AND hour<?)" in s for s in searched)
    assert any("COVERING INDEX ix_errors_timestamp_fingerprint" in s for s in searched)
    for detail in searched:
        assert "timestamp>?" in detail or "hour>?" in detail, detail
        assert "SCAN" not in detail, detail
