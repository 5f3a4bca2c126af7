"""The stats answer's groups and rates: top groups in the window, new and regressed
groups, and the error rate once request counts exist."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from sqlalchemy import update
from tests.store._support import T0, RecordFactory

from errorkit.store import ErrorStore, InvalidQuery, RequestCountRow
from errorkit.store.schema import error_groups

HOUR = timedelta(hours=1)
SINCE, UNTIL = T0 + 10 * HOUR, T0 + 20 * HOUR


@pytest.fixture
def history(store: ErrorStore, make_record: RecordFactory) -> ErrorStore:
    """old: 3 before the window, 1 inside; loud: 4 inside (new); quiet: 1 inside (new);
    back: 1 before, resolved, then 2 inside (regressed); later: 1 after the window."""
    at = {
        "old": [1, 2, 3, 11],
        "loud": [12, 13, 14, 15],
        "quiet": [16],
        "back": [2],
        "later": [25],
    }
    store.write_batch(
        [
            make_record(fingerprint=name, title=f"T {name}", timestamp=T0 + h * HOUR)
            for name, hours in at.items()
            for h in hours
        ]
    )
    store.resolve_group("back")
    with store.engine.begin() as connection:  # resolved before the window, not just now
        connection.execute(
            update(error_groups)
            .where(error_groups.c.fingerprint == "back")
            .values(resolved_at=T0 + 3 * HOUR)
        )
    store.write_batch([make_record(fingerprint="back", timestamp=T0 + h * HOUR) for h in (17, 18)])
    return store


def test_top_new_and_regressed_groups_in_the_window(history: ErrorStore) -> None:
    stats = history.stats(SINCE, UNTIL)
    assert [(g.fingerprint, n) for g, n in stats.top_groups] == [
        ("loud", 4),
        ("back", 2),
        ("old", 1),
        ("quiet", 1),
    ]
    assert [g.fingerprint for g in stats.new_groups] == ["quiet", "loud"]
    assert [g.fingerprint for g in stats.regressed_groups] == ["back"]
    assert [g.fingerprint for g, _ in history.stats(SINCE, UNTIL, top=1).top_groups] == ["loud"]
    answer = stats.as_dict()
    assert answer["top_groups"][0]["fingerprint"] == "loud"
    assert answer["top_groups"][0]["occurrences"] == 4
    assert answer["top_groups"][0]["count"] == 4
    assert [g["fingerprint"] for g in answer["regressed_groups"]] == ["back"]
    # a window after the regression holds no regressed group
    assert history.stats(T0 + 21 * HOUR).regressed_groups == ()
    # filters narrow the groups as they narrow the counts
    assert history.stats(SINCE, UNTIL, search="quiet").new_groups[0].fingerprint == "quiet"
    assert history.stats(SINCE, UNTIL, fingerprint="loud").regressed_groups == ()
    with pytest.raises(InvalidQuery, match="top must be"):
        history.stats(top=0)


def test_stats_from_several_threads_and_after_close(history: ErrorStore) -> None:
    """The top groups are read on a second connection: calls from several threads at once,
    and calls after the store was closed (it reconnects), answer as one call alone."""
    expected = history.stats(SINCE, UNTIL)
    with ThreadPoolExecutor(max_workers=4) as pool:
        answers = list(pool.map(lambda _: history.stats(SINCE, UNTIL), range(12)))
    assert answers == [expected] * 12
    history.close()
    assert history.stats(SINCE, UNTIL) == expected
    history.close()


def test_error_rate_once_request_counts_exist(history: ErrorStore) -> None:
    stats = history.stats(SINCE, UNTIL)
    assert stats.requests is None
    assert stats.error_rate is None
    assert stats.as_dict()["requests"] is None
    assert stats.as_dict()["error_rate"] is None
    history.write_request_counts(
        [
            RequestCountRow(SINCE + HOUR, "api", "/api/chat", "2xx", 15, "hour", "test"),
            RequestCountRow(SINCE + HOUR, "api", "/api/chat", "4xx", 1, "hour", "test"),
            RequestCountRow(SINCE + HOUR, "api", "/api/chat", "5xx", 4, "hour", "test"),
            RequestCountRow(T0, "api", "/api/chat", "5xx", 100, "hour", "test"),
        ]
    )
    stats = history.stats(SINCE, UNTIL)
    assert stats.requests is not None
    assert (stats.requests.total, stats.requests.server_errors) == (20, 4)
    assert stats.error_rate == 0.2
    answer = stats.as_dict()
    assert answer["requests"] == {
        "total": 20,
        "client_errors": 1,
        "server_errors": 4,
        "failure_rate": 0.2,
    }
    assert answer["error_rate"] == 0.2
    assert history.stats(SINCE, UNTIL, service="worker").requests is None
