"""Groups sorted by trend: occurrences in a window against the window before it, in SQL,
with cursor paging that keeps the window it started with."""

from __future__ import annotations

from datetime import timedelta

import pytest
from tests.store._support import T0, RecordFactory

from errorkit.store import ErrorStore, InvalidQuery

DAY = timedelta(hours=24)
SINCE, UNTIL = T0 + DAY, T0 + 2 * DAY


@pytest.fixture
def trending(store: ErrorStore, make_record: RecordFactory) -> ErrorStore:
    """Window [SINCE, UNTIL) against [T0, SINCE): rising +3, fresh +1, steady 0
    (and one occurrence after UNTIL, which counts in neither), falling -2."""
    plan = {
        "rising": ([], [1, 2, 3]),
        "falling": ([1, 2, 3], [4]),
        "steady": ([5], [5]),
        "fresh": ([], [6]),
    }
    records = []
    for fingerprint, (before, inside) in plan.items():
        records += [
            make_record(fingerprint=fingerprint, timestamp=T0 + timedelta(hours=h)) for h in before
        ]
        records += [
            make_record(fingerprint=fingerprint, timestamp=SINCE + timedelta(hours=h))
            for h in inside
        ]
    records.append(make_record(fingerprint="steady", timestamp=UNTIL + timedelta(hours=1)))
    store.write_batch(records)
    return store


def fingerprints(page: object) -> list[str]:
    return [g.fingerprint for g in page]  # type: ignore[attr-defined]


def test_trend_orders_by_change_against_the_window_before(trending: ErrorStore) -> None:
    rising_first = trending.groups(sort="trend", since=SINCE, until=UNTIL)
    assert fingerprints(rising_first) == ["rising", "fresh", "steady", "falling"]
    falling_first = trending.groups(sort="trend", since=SINCE, until=UNTIL, descending=False)
    assert fingerprints(falling_first) == ["falling", "steady", "fresh", "rising"]
    # without since, the window is the 24 hours ending at until (or now)
    assert fingerprints(trending.groups(sort="trend", until=UNTIL)) == fingerprints(rising_first)
    # the other filters still apply
    assert fingerprints(trending.groups(sort="trend", until=UNTIL, search="st")) == ["steady"]


@pytest.mark.parametrize("descending", [True, False])
def test_trend_cursor_walks_every_group_once(trending: ErrorStore, descending: bool) -> None:
    everything = fingerprints(
        trending.groups(sort="trend", since=SINCE, until=UNTIL, descending=descending)
    )
    seen: list[str] = []
    cursor = None
    while True:
        page = trending.groups(
            sort="trend", since=SINCE, until=UNTIL, descending=descending, limit=1, cursor=cursor
        )
        seen += fingerprints(page)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == everything
    assert len(seen) == 4


def test_trend_cursor_keeps_its_window(trending: ErrorStore) -> None:
    """A cursor carries the window it was made for: the next page is counted over the same
    window even when the caller's relative window moved on."""
    first = trending.groups(sort="trend", until=UNTIL, limit=2)
    assert first.next_cursor is not None
    later = trending.groups(sort="trend", until=UNTIL + DAY, limit=2, cursor=first.next_cursor)
    assert fingerprints(first) + fingerprints(later) == ["rising", "fresh", "steady", "falling"]


def test_trend_cursor_is_refused_by_another_sort(trending: ErrorStore) -> None:
    cursor = trending.groups(sort="trend", until=UNTIL, limit=1).next_cursor
    assert cursor is not None
    with pytest.raises(InvalidQuery, match="sorted by trend"):
        trending.groups(sort="count", cursor=cursor)
    count_cursor = trending.groups(sort="count", limit=1).next_cursor
    assert count_cursor is not None
    with pytest.raises(InvalidQuery, match="sorted by count"):
        trending.groups(sort="trend", cursor=count_cursor)
    with pytest.raises(InvalidQuery, match="since before until"):
        trending.groups(sort="trend", since=UNTIL, until=SINCE)
