"""Group listing filters the tracker's API needs: severity, code, release, endpoint, time
window, and cursor paging that stays stable for every sort."""

from __future__ import annotations

from datetime import timedelta

import pytest
from tests.store._support import T0, RecordFactory

from errorkit.store import ErrorStore, InvalidQuery


@pytest.fixture
def mixed(store: ErrorStore, make_record: RecordFactory) -> ErrorStore:
    """a: error, 1.0.0, /api/chat, hours 0-1; b: warning, 2.0.0, /api/stream, hour 5;
    c: critical, DB_LOCKED, 1.0.0, /api/chat, hour 10 (service worker)."""
    store.write_batch(
        [
            make_record(fingerprint="a", timestamp=T0),
            make_record(fingerprint="a", timestamp=T0 + timedelta(hours=1)),
            make_record(
                fingerprint="b",
                severity="warning",
                release="2.0.0",
                endpoint="/api/stream",
                timestamp=T0 + timedelta(hours=5),
            ),
            make_record(
                fingerprint="c",
                severity="critical",
                error_code="DB_LOCKED",
                service="worker",
                timestamp=T0 + timedelta(hours=10),
            ),
        ]
    )
    return store


def names(page: object) -> list[str]:
    return sorted(g.fingerprint for g in page)  # type: ignore[attr-defined]


def test_groups_filter_by_severity_code_release_endpoint(mixed: ErrorStore) -> None:
    assert names(mixed.groups(severity="warning")) == ["b"]
    assert names(mixed.groups(error_code="DB_LOCKED")) == ["c"]
    assert names(mixed.groups(release="1.0.0")) == ["a", "c"]
    assert names(mixed.groups(release="2.0.0")) == ["b"]
    assert names(mixed.groups(endpoint="/api/stream")) == ["b"]
    assert names(mixed.groups(endpoint="/api/chat", severity="critical")) == ["c"]
    assert mixed.groups(release="9.9").total == 0


def test_groups_filter_by_time_window(mixed: ErrorStore) -> None:
    """since keeps groups last seen from then on; until keeps groups first seen before."""
    assert names(mixed.groups(since=T0 + timedelta(hours=2))) == ["b", "c"]
    assert names(mixed.groups(until=T0 + timedelta(hours=5))) == ["a"]
    window = mixed.groups(since=T0 + timedelta(hours=1), until=T0 + timedelta(hours=6))
    assert names(window) == ["a", "b"]


@pytest.mark.parametrize("sort", ["last_seen", "first_seen", "count"])
@pytest.mark.parametrize("descending", [True, False])
def test_group_cursor_walks_every_group_once(
    store: ErrorStore, make_record: RecordFactory, sort: str, descending: bool
) -> None:
    """Paging by cursor returns the same order as one big page, with ties broken by id."""
    records = []
    for n in range(7):
        # equal counts and equal times for some groups, so ties need the id
        for k in range(1 + n % 2):
            records.append(
                make_record(fingerprint=f"g{n}", timestamp=T0 + timedelta(hours=n // 2, seconds=k))
            )
    store.write_batch(records)
    everything = [
        g.id
        for g in store.groups(sort=sort, descending=descending, limit=100)  # type: ignore[arg-type]
    ]
    seen: list[int] = []
    cursor = None
    while True:
        page = store.groups(sort=sort, descending=descending, limit=3, cursor=cursor)  # type: ignore[arg-type]
        seen.extend(g.id for g in page)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == everything
    assert len(seen) == 7


def test_group_cursor_of_another_sort_is_refused(mixed: ErrorStore) -> None:
    cursor = mixed.groups(sort="count", limit=1).next_cursor
    assert cursor is not None
    with pytest.raises(InvalidQuery, match="sorted by count"):
        mixed.groups(sort="last_seen", cursor=cursor)
    with pytest.raises(InvalidQuery, match="not one this store handed out"):
        mixed.groups(cursor="garbage!")
    with pytest.raises(InvalidQuery, match="either cursor or offset"):
        mixed.groups(sort="count", cursor=cursor, offset=1)


def test_stats_count_by_service(mixed: ErrorStore) -> None:
    stats = mixed.stats()
    assert stats.by_service == {"api": 3, "worker": 1}
    assert stats.as_dict()["by_service"] == {"api": 3, "worker": 1}


def test_stats_narrowed_by_filters(mixed: ErrorStore) -> None:
    """stats() takes list()'s filters: one group's time series, one service's counts."""
    one_group = mixed.stats(fingerprint="a", bucket="hour")
    assert one_group.total == 2
    assert [n for _, n in one_group.buckets] == [1, 1]
    worker = mixed.stats(service="worker")
    assert worker.by_severity == {"critical": 1}
    assert mixed.stats(T0 + timedelta(hours=2), severity="warning").total == 1
    with pytest.raises(InvalidQuery, match="unknown filter"):
        mixed.stats(colour="red")  # type: ignore[call-arg]
