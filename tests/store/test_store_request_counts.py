"""Request counts in the store: upserted buckets, the query the alerts engine uses, and the
roll-up of minute buckets into hours."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from errorkit.store import ErrorStore, InvalidQuery, InvalidRecord, RequestCountRow
from errorkit.store.models import RequestCounts
from errorkit.store.schema import request_counts

T = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


def row(
    start: datetime,
    status_class: str = "2xx",
    count: int = 1,
    *,
    endpoint: str = "/items/{id}",
    service: str = "billing",
    environment: str | None = "production",
    granularity: str = "minute",
) -> RequestCountRow:
    return RequestCountRow(start, service, endpoint, status_class, count, granularity, environment)


def buckets(store: ErrorStore) -> list[tuple[datetime, str, str, int]]:
    column = request_counts.c
    with store.engine.connect() as connection:
        rows = connection.execute(
            select(column.bucket_start, column.granularity, column.endpoint, column.count)
            .where(column.status_class == "2xx")
            .order_by(column.bucket_start, column.granularity, column.endpoint)
        ).all()
    return [(r[0], r[1], r[2], r[3]) for r in rows]


def test_counts_add_up_in_their_bucket_and_the_query_splits_them(store: ErrorStore) -> None:
    assert store.write_request_counts([row(T, "2xx", 90), row(T, "5xx", 4)]) == 94
    assert store.write_request_counts([row(T, "2xx", 5), row(T, "4xx", 1), row(T, "2xx", 0)]) == 6

    counts = store.request_counts(T, T + MINUTE)
    assert counts == RequestCounts(total=100, client_errors=1, server_errors=4)
    assert counts.failure_rate == pytest.approx(0.04)
    assert buckets(store) == [(T, "minute", "/items/{id}", 95)]


def test_the_query_window_and_filters(store: ErrorStore) -> None:
    store.write_request_counts(
        [
            row(T - MINUTE, "2xx", 1000),  # before the window
            row(T, "2xx", 10),
            row(T + 4 * MINUTE, "5xx", 2),
            row(T + 5 * MINUTE, "5xx", 1000),  # at its end: not in it
            row(T, "5xx", 3, endpoint="/other"),
            row(T, "4xx", 7, service="search"),
            row(T, "2xx", 20, environment="staging"),
            row(T, "2xx", 30, environment=None),
        ]
    )
    since, until = T, T + 5 * MINUTE

    assert store.request_counts(since, until) == RequestCounts(72, 7, 5)
    assert store.request_counts(since, until, service="billing") == RequestCounts(65, 0, 5)
    assert store.request_counts(since, until, endpoint="/other") == RequestCounts(3, 0, 3)
    assert store.request_counts(
        since, until, service="billing", environment="production", endpoint="/items/{id}"
    ) == RequestCounts(12, 0, 2)
    assert store.request_counts(since, until, environment="staging").total == 20
    assert store.request_counts(since, until, environment="").total == 30
    assert store.request_counts(since, until, service="nobody") == RequestCounts(0, 0, 0)
    assert RequestCounts().failure_rate == 0.0


def test_the_query_refuses_a_window_that_ends_before_it_starts(store: ErrorStore) -> None:
    with pytest.raises(InvalidQuery, match="before since"):
        store.request_counts(T, T - MINUTE)
    with pytest.raises(InvalidQuery, match="since"):
        store.request_counts("yesterday", T)  # type: ignore[arg-type]


def test_a_batch_applied_before_changes_nothing(store: ErrorStore) -> None:
    batch = [row(T, "2xx", 10), row(T, "5xx", 1)]
    assert store.write_request_counts(batch, batch_id="b1") == 11
    assert store.write_request_counts(batch, batch_id="b1") == 0
    assert store.write_request_counts(batch, batch_id="b2") == 11
    assert store.request_counts(T, T + MINUTE) == RequestCounts(22, 0, 2)


def test_bad_rows_are_refused_before_anything_is_written(store: ErrorStore) -> None:
    for bad, match in (
        (row(T, count=-1), "count"),
        (row(T, granularity="day"), "granularity"),
        (row(T, endpoint=""), "endpoint"),
        (row("10:00"), "bucket_start"),  # type: ignore[arg-type]
        ("2xx", "RequestCountRow"),
    ):
        with pytest.raises(InvalidRecord, match=match):
            store.write_request_counts([row(T, "2xx", 5), bad])  # type: ignore[list-item]
    assert store.request_counts(T, T + MINUTE).total == 0


def test_cleanup_rolls_minutes_older_than_a_day_into_hours(store: ErrorStore) -> None:
    now = datetime.now(UTC)
    old_hour = (now - timedelta(days=3)).replace(minute=0, second=0, microsecond=0)
    recent = (now - timedelta(hours=2)).replace(second=0, microsecond=0)
    expired = (now - timedelta(days=40)).replace(second=0, microsecond=0)
    store.write_request_counts(
        [
            row(old_hour, "2xx", 10),
            row(old_hour + 59 * MINUTE, "2xx", 5),
            row(old_hour + 59 * MINUTE, "5xx", 2),
            row(old_hour + 60 * MINUTE, "2xx", 1),  # the next hour
            row(old_hour + 7 * MINUTE, "2xx", 3, endpoint="/a"),
            row(recent, "2xx", 4),
            row(expired, "2xx", 100),
            row(expired, "2xx", 100, granularity="hour"),
        ]
    )
    window = (now - timedelta(days=30), now + MINUTE)
    before = store.request_counts(*window)

    store.cleanup(now - timedelta(days=30))

    assert buckets(store) == [
        (old_hour, "hour", "/a", 3),
        (old_hour, "hour", "/items/{id}", 15),
        (old_hour + 60 * MINUTE, "hour", "/items/{id}", 1),
        (recent, "minute", "/items/{id}", 4),
    ]
    assert store.request_counts(*window) == before == RequestCounts(25, 0, 2)
    assert store.request_counts(old_hour, old_hour + 60 * MINUTE, endpoint="/a").total == 3

    # A late minute of a rolled-up hour (a retry after an outage) joins its hour next time.
    store.write_request_counts([row(old_hour + 30 * MINUTE, "2xx", 6)])
    store.cleanup(now - timedelta(days=30))
    assert (old_hour, "hour", "/items/{id}", 21) in buckets(store)
