"""The pipeline's parts: the worker (queue, thread), the counts, and delivery (store, spool,
backoff)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from errorkit.capturing import counts as counts_module
from errorkit.capturing.counts import Counts, FloodLimiter
from errorkit.capturing.delivery import STORE_BACKOFF
from errorkit.capturing.pipeline import Pipeline
from errorkit.capturing.worker import Worker
from errorkit.resilience.retrying import RetryPolicy
from errorkit.scrubbing import default_scrubber
from errorkit.store.errors import StoreUnavailable
from errorkit.store.records import CountDelta, ErrorRecord
from errorkit.testing import MemoryStore

T0 = datetime(2026, 1, 1, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


class DownStore(MemoryStore):
    """A store that fails every write while ``down``, and counts the attempts."""

    def __init__(self) -> None:
        super().__init__()
        self.down = True
        self.attempts = 0

    def write_batch(self, records: Sequence[ErrorRecord], deltas: Sequence[CountDelta] = ()) -> Any:
        self.attempts += 1
        if self.down:
            raise ConnectionError("store down")
        return super().write_batch(records, deltas)


def _unspooled(store: MemoryStore, clock: Clock) -> Pipeline:
    """A pipeline on ``store`` without spool or writer thread, on ``clock``'s time."""
    return Pipeline(
        store,
        service="svc",
        scrubber=default_scrubber(),
        spool=None,
        start_writer=False,
        clock=clock,
        monotonic=clock,
    )


def delta(fingerprint: str, count: int, minutes: int) -> CountDelta:
    at = T0 + timedelta(minutes=minutes)
    return CountDelta(
        f"d-{fingerprint}-{minutes}", fingerprint, "title", "internal", "E1", "error", count, at, at
    )


def new_counts() -> Counts:
    return Counts(
        FloodLimiter(10), slim_per_minute=10, service="svc", environment="prod", monotonic=Clock()
    )


def test_the_store_backoff_is_errorkits_retry_policy() -> None:
    """The waits between store attempts are a RetryPolicy's backoff: 0.5 s doubling to 30 s."""
    assert isinstance(STORE_BACKOFF, RetryPolicy)
    assert [STORE_BACKOFF.backoff(n) for n in range(1, 9)] == [
        0.5,
        1.0,
        2.0,
        4.0,
        8.0,
        16.0,
        30.0,
        30.0,
    ]


def test_a_failing_store_is_tried_again_only_after_each_wait() -> None:
    """While the wait runs, cycles spool without touching the store; then it is tried once."""
    clock = Clock()
    store = DownStore()
    pipeline = _unspooled(store, clock)
    pipeline.submit("id-1", RuntimeError("boom"), {})
    pipeline.run_once()
    assert store.attempts == 1  # the first failure
    for failure in range(1, 7):
        clock.now += STORE_BACKOFF.backoff(failure) - 0.01
        pipeline.run_once()
        assert store.attempts == failure  # still waiting: not tried
        clock.now += 0.01
        pipeline.run_once()
        assert store.attempts == failure + 1  # the wait is over: tried once more
    store.down = False
    assert pipeline.flush(timeout=5)
    assert list(store.counts.values()) == [1]  # no spool: the sample is lost, its count kept
    assert store.records == []
    pipeline.shutdown(timeout=5)


class BusyTracker(DownStore):
    """A tracker answering 503 with ``Retry-After``, as :class:`HttpStore` raises it."""

    def __init__(self, retry_after: float) -> None:
        super().__init__()
        self.retry_after = retry_after

    def write_batch(self, records: Sequence[ErrorRecord], deltas: Sequence[CountDelta] = ()) -> Any:
        if self.down:
            self.attempts += 1
            message = f"the tracker answered 503, retry after {self.retry_after}s"
            raise StoreUnavailable(message, retry_after=self.retry_after)
        return super().write_batch(records, deltas)


def test_a_tracker_asking_for_time_is_left_alone_that_long() -> None:
    """A Retry-After longer than the backoff's wait is the wait; a shorter one changes
    nothing (the backoff still grows)."""
    clock = Clock()
    store = BusyTracker(retry_after=120)
    pipeline = _unspooled(store, clock)
    pipeline.submit("id-1", RuntimeError("boom"), {})
    pipeline.run_once()
    assert store.attempts == 1
    clock.now += 119.9  # far past the first backoff (0.5 s), short of what it asked
    pipeline.run_once()
    assert store.attempts == 1
    store.retry_after = 0.1  # next time, shorter than the backoff's second wait (1 s)
    clock.now += 0.2
    pipeline.run_once()
    assert store.attempts == 2
    clock.now += 0.5
    pipeline.run_once()
    assert store.attempts == 2  # the backoff's 1 s, not the 0.1 s asked
    clock.now += 0.5
    pipeline.run_once()
    assert store.attempts == 3
    store.down = False
    assert pipeline.flush(timeout=5)
    pipeline.shutdown(timeout=5)


def test_held_deltas_are_merged_per_fingerprint_past_the_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Past MAX_FINGERPRINTS held deltas, they become one per fingerprint, counts summed and
    first/last seen widened."""
    monkeypatch.setattr(counts_module, "MAX_FINGERPRINTS", 2)
    counts = new_counts()
    counts.hold([delta("a", 2, 5), delta("b", 1, 0)], [])
    assert len(counts.take_deltas(lambda _: None)) == 2  # at the limit: kept as they are
    counts.hold([delta("a", 2, 5), delta("b", 1, 0), delta("a", 3, 1), delta("a", 1, 9)], [])
    merged = {d.fingerprint: d for d in counts.take_deltas(lambda _: None)}
    assert sorted(merged) == ["a", "b"]
    a = merged["a"]
    assert a.count == 6
    assert (a.first_seen, a.last_seen) == (T0 + timedelta(minutes=1), T0 + timedelta(minutes=9))
    assert (a.service, a.environment) == ("svc", "prod")
    assert merged["b"].count == 1


def test_counted_occurrences_become_one_announced_delta_per_fingerprint() -> None:
    """Pending counts are taken as one delta per fingerprint, each announced once; held
    deltas are passed on without being announced again."""
    from errorkit.capturing.fingerprint import group_message

    counts = new_counts()
    grouping = group_message("disk full", "svc", None)
    for at in (30.0, 10.0, 20.0):
        counts.count(grouping, None, {}, "error", 1_700_000_000 + at, "sampled")
    counts.hold([delta("held", 4, 0)], [])
    heard: list[CountDelta] = []
    deltas = counts.take_deltas(heard.append)
    assert [d.fingerprint for d in heard] == [grouping.fingerprint]
    (fresh,) = heard
    assert fresh.count == 3
    assert fresh.first_seen == datetime.fromtimestamp(1_700_000_010, UTC)
    assert fresh.last_seen == datetime.fromtimestamp(1_700_000_030, UTC)
    assert sorted(d.count for d in deltas) == [3, 4]
    assert counts.is_empty()
    assert counts.status() == ({"sampled": 3}, 0)


def test_the_worker_runs_a_forced_cycle_when_it_has_no_thread() -> None:
    """Without a thread, flush runs the cycle on the caller's thread, forced."""
    ran: list[bool] = []
    worker = Worker(ran.append, flush_interval=30.0, start_thread=False)
    assert worker.flush(timeout=1)
    assert ran == [True]
    assert not worker.alive


def test_an_event_taken_by_the_writer_is_no_longer_amended() -> None:
    """amend() fills a queued event's empty fields until the writer takes it."""
    from errorkit.capturing.event import ErrorEvent
    from errorkit.context import current_context

    worker = Worker(lambda _: None, flush_interval=30.0, start_thread=False)
    event = ErrorEvent("e1", None, "m", "error", 0.0, current_context(), {"method": None}, "f", "t")
    assert worker.put(event) == 1
    assert worker.amend("e1", {"method": "GET"})
    assert event.fields["method"] == "GET"
    assert worker.take(5) == [event]
    assert not worker.amend("e1", {"user_agent": "ua/1"})
    assert worker.take(5) == []
