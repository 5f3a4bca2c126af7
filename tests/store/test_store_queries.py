"""Reading errors: lookups, filtered listings, paging, resolution, stats, retention."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from tests.store._support import T0, DeltaFactory, RecordFactory

from errorkit.store import ErrorStore, InvalidQuery, NotFound


@pytest.fixture
def mixed(store: ErrorStore, make_record: RecordFactory) -> ErrorStore:
    """Six errors over two days: two sessions, three types, three severities, two codes."""
    store.write_batch(
        [
            make_record(error_id="e1", session_id="s1", error_type="http_error", severity="error"),
            make_record(
                error_id="e2",
                session_id="s1",
                error_type="stream_error",
                severity="warning",
                error_code="STREAM_ABORTED",
                endpoint="/api/stream",
            ),
            make_record(
                error_id="e3", session_id="s2", error_type="api_error", severity="critical"
            ),
            make_record(
                error_id="e4",
                session_id="s2",
                error_type="http_error",
                severity="error",
                timestamp=T0 + timedelta(days=1),
                error_message="Upstream 100% busy_now",
                fingerprint="fp-busy",
            ),
            make_record(
                error_id="e5",
                session_id="s2",
                error_type="http_error",
                severity="warning",
                timestamp=T0 + timedelta(days=1, hours=1),
                endpoint=None,
                method=None,
            ),
            make_record(
                error_id="e6",
                session_id=None,
                error_type="database_error",
                severity="critical",
                timestamp=T0 + timedelta(days=1, hours=2),
                service="worker",
            ),
        ]
    )
    return store


def ids(items: object) -> list[str]:
    return [item.error_id for item in items]  # type: ignore[attr-defined]


def test_get_unknown_id_is_none(store: ErrorStore) -> None:
    """A lookup of an id never stored answers None."""
    assert store.get("not-there") is None


def test_by_session_type_and_severity_newest_first(mixed: ErrorStore) -> None:
    """The seed repository's lookups answer newest first."""
    assert ids(mixed.by_session("s2")) == ["e5", "e4", "e3"]
    assert ids(mixed.by_type("http_error")) == ["e5", "e4", "e1"]
    assert ids(mixed.by_severity("critical")) == ["e6", "e3"]
    assert ids(mixed.recent(2)) == ["e6", "e5"]


def test_unresolved_leaves_out_resolved(mixed: ErrorStore) -> None:
    """Resolving an error removes it from the unresolved list and keeps its notes."""
    resolved = mixed.resolve("e5", "retried upstream")
    assert (resolved.resolved, resolved.notes) == (True, "retried upstream")
    assert "e5" not in ids(mixed.unresolved())
    assert len(mixed.unresolved()) == 5


def test_resolve_unknown_id_raises_not_found(store: ErrorStore) -> None:
    """Resolving an id that is not stored says so."""
    with pytest.raises(NotFound, match="no stored error has error_id 'nope'"):
        store.resolve("nope")


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"error_type": "http_error"}, ["e5", "e4", "e1"]),
        ({"severity": "warning"}, ["e5", "e2"]),
        ({"error_code": "STREAM_ABORTED"}, ["e2"]),
        ({"fingerprint": "fp-busy"}, ["e4"]),
        ({"session_id": "s1"}, ["e2", "e1"]),
        ({"service": "worker"}, ["e6"]),
        ({"since": T0 + timedelta(days=1)}, ["e6", "e5", "e4"]),
        ({"until": T0 + timedelta(days=1)}, ["e3", "e2", "e1"]),
        ({"search": "100%"}, ["e4"]),
        ({"search": "BUSY_NOW"}, ["e4"]),
        ({"search": "100_"}, []),
        ({"error_type": "http_error", "severity": "error"}, ["e4", "e1"]),
        ({"error_type": None}, ["e6", "e5", "e4", "e3", "e2", "e1"]),
    ],
)
def test_list_filters(mixed: ErrorStore, filters: dict[str, object], expected: list[str]) -> None:
    """Each filter narrows the listing; search is case-insensitive and takes % and _
    literally."""
    page = mixed.list(**filters)  # type: ignore[arg-type]
    assert ids(page) == expected
    assert page.total == len(expected)


def test_list_resolved_filter(mixed: ErrorStore) -> None:
    """resolved=True and resolved=False split the rows."""
    mixed.resolve("e1")
    assert ids(mixed.list(resolved=True)) == ["e1"]
    assert len(mixed.list(resolved=False)) == 5


def test_list_offset_pages(mixed: ErrorStore) -> None:
    """limit/offset pages through the rows with the total of all matches."""
    page = mixed.list(limit=4, offset=4)
    assert ids(page) == ["e2", "e1"]
    assert (page.total, page.limit, page.offset, page.next_cursor) == (6, 4, 4, None)


def test_cursor_walks_every_row_once_while_rows_arrive(
    mixed: ErrorStore, make_record: RecordFactory
) -> None:
    """Following next_cursor visits each row once even when newer rows arrive meanwhile."""
    seen: list[str] = []
    page = mixed.list(limit=2)
    seen += ids(page)
    mixed.write_batch([make_record(error_id="new", timestamp=T0 + timedelta(days=9))])
    while page.next_cursor:
        page = mixed.list(limit=2, cursor=page.next_cursor)
        seen += ids(page)
    assert seen == ["e6", "e5", "e4", "e3", "e2", "e1"]


def test_cursor_handles_equal_timestamps(store: ErrorStore, make_record: RecordFactory) -> None:
    """Rows sharing one timestamp are split across pages without loss."""
    store.write_batch([make_record(timestamp=T0) for _ in range(5)])
    seen: list[str] = []
    cursor = None
    while True:
        page = store.list(limit=2, cursor=cursor)
        seen += ids(page)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 5


@pytest.mark.parametrize(
    ("arguments", "words"),
    [
        ({"limit": 0}, "limit must be between 1 and"),
        ({"offset": -1}, "offset must be 0 or more"),
        ({"cursor": "%%%"}, "is not one this store handed out"),
        ({"colour": "red"}, "unknown filter 'colour'"),
        ({"since": "yesterday"}, "since must be a datetime"),
    ],
)
def test_list_refuses_bad_arguments(
    store: ErrorStore, arguments: dict[str, object], words: str
) -> None:
    """Bad paging or filters raise InvalidQuery naming the problem."""
    with pytest.raises(InvalidQuery, match=words):
        store.list(**arguments)  # type: ignore[arg-type]


def test_stats_counts_by_dimension_and_hour(mixed: ErrorStore) -> None:
    """stats() counts rows per type, severity, code, endpoint and hour."""
    mixed.resolve("e1")
    stats = mixed.stats()
    assert (stats.total, stats.unresolved) == (6, 5)
    assert stats.by_type == {
        "http_error": 3,
        "api_error": 1,
        "database_error": 1,
        "stream_error": 1,
    }
    assert stats.by_severity == {"critical": 2, "error": 2, "warning": 2}
    assert stats.by_code == {"HTTP_INTERNAL_ERROR": 5, "STREAM_ABORTED": 1}
    assert stats.by_endpoint == {"/api/chat": 4, "/api/stream": 1}
    day2 = T0 + timedelta(days=1)
    assert stats.buckets == (
        (T0, 3),
        (day2, 1),
        (day2 + timedelta(hours=1), 1),
        (day2 + timedelta(hours=2), 1),
    )
    assert all(start.tzinfo is UTC for start, _ in stats.buckets)


def test_stats_by_day_since(mixed: ErrorStore) -> None:
    """Day buckets start at midnight UTC; since/until bound the window."""
    stats = mixed.stats(since=T0 + timedelta(hours=1), bucket="day")
    midnight = datetime(2025, 3, 2, tzinfo=UTC)
    assert stats.total == 3
    assert stats.buckets == ((midnight, 3),)
    assert stats.since == T0 + timedelta(hours=1)


def test_stats_of_empty_store(store: ErrorStore) -> None:
    """An empty store has zero everywhere."""
    stats = store.stats()
    assert (stats.total, stats.unresolved, stats.by_type, stats.buckets) == (0, 0, {}, ())


def test_stats_refuses_unknown_bucket(store: ErrorStore) -> None:
    """Only hour and day buckets exist."""
    with pytest.raises(InvalidQuery, match="bucket must be 'hour' or 'day'"):
        store.stats(bucket="week")  # type: ignore[arg-type]


def test_cleanup_deletes_old_rows_and_keeps_group_counts(
    store: ErrorStore, make_record: RecordFactory, make_delta: DeltaFactory
) -> None:
    """Retention removes rows before the cutoff; group counts and seen-times stay."""
    old = [make_record(timestamp=T0 - timedelta(days=40 + i)) for i in range(7)]
    new = [make_record(timestamp=T0 - timedelta(days=i)) for i in range(3)]
    store.write_batch([*old, *new], [make_delta(count=90)])
    before = store.group("fp-boom")
    progress: list[int] = []

    deleted = store.cleanup(T0 - timedelta(days=30), batch_size=3, on_progress=progress.append)

    assert deleted == 7
    assert progress == [3, 3, 1]
    assert store.count() == 3
    assert all(store.get(r.error_id) is None for r in old)
    assert store.group("fp-boom") == before
    assert before is not None
    assert before.count == 100


def test_cleanup_with_nothing_old(store: ErrorStore, make_record: RecordFactory) -> None:
    """A cutoff older than every row deletes nothing."""
    store.write_batch([make_record()])
    assert store.cleanup(T0 - timedelta(days=365)) == 0
    assert store.count() == 1


def test_ping_answers(store: ErrorStore) -> None:
    """ping() succeeds on a reachable store."""
    store.ping()
