"""write_batch: idempotent rows, exact group counts, deltas applied once, regressions."""

from __future__ import annotations

import sqlite3
import threading
import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.store._support import T0, DeltaFactory, RecordFactory

from errorkit.store import (
    ErrorRecord,
    ErrorStore,
    InvalidRecord,
    StoreUnavailable,
    open_store,
    repository,
)


def group_count(store: ErrorStore, fingerprint: str) -> int:
    group = store.group(fingerprint)
    assert group is not None, f"no group {fingerprint}"
    return group.count


def test_rows_round_trip(store: ErrorStore, make_record: RecordFactory) -> None:
    """Every field written comes back unchanged, with the timestamp in UTC."""
    record = make_record(
        response_payload='{"partial": true}',
        user_id="u-7",
        trace_id="t" * 32,
        error_message='tab\there, "quotes", back\\slash\nnext line',
        data={"path": "C:\\temp\\x", "quote": 'say "hi"\n', "nested": [1, 2.5, None, True]},
    )
    result = store.write_batch([record])
    stored = store.get(record.error_id)
    assert result.inserted == 1
    assert stored is not None
    for name in ErrorRecord.__dataclass_fields__:
        assert getattr(stored, name) == getattr(record, name), name
    assert stored.timestamp.tzinfo is UTC
    assert stored.resolved is False
    assert stored.notes is None
    assert stored.created_at.tzinfo is UTC


def test_replaying_a_batch_counts_nothing_twice(
    store: ErrorStore, make_record: RecordFactory
) -> None:
    """The same batch written again inserts nothing and leaves the count exact."""
    batch = [make_record() for _ in range(25)]
    first = store.write_batch(batch)
    again = store.write_batch(batch)
    assert (first.inserted, first.duplicates) == (25, 0)
    assert (again.inserted, again.duplicates, again.occurrences) == (0, 25, 0)
    assert group_count(store, "fp-boom") == 25
    assert store.count() == 25


def test_partly_replayed_batch_counts_only_new_rows(
    store: ErrorStore, make_record: RecordFactory
) -> None:
    """A batch mixing stored and new ids adds only the new ones to the group."""
    old = [make_record() for _ in range(5)]
    store.write_batch(old)
    result = store.write_batch([*old[:3], make_record(), make_record()])
    assert (result.inserted, result.duplicates) == (2, 3)
    assert group_count(store, "fp-boom") == 7


def test_same_id_twice_in_one_batch_is_stored_once(
    store: ErrorStore, make_record: RecordFactory
) -> None:
    """Within a batch the first record of an error_id wins."""
    record = make_record()
    twin = make_record(error_id=record.error_id, error_message="second copy")
    result = store.write_batch([record, twin])
    stored = store.get(record.error_id)
    assert (result.inserted, result.duplicates) == (1, 1)
    assert stored is not None
    assert stored.error_message == record.error_message
    assert group_count(store, "fp-boom") == 1


def test_group_tracks_first_last_seen_and_last_error(
    store: ErrorStore, make_record: RecordFactory
) -> None:
    """first_seen/last_seen span every occurrence; last_error_id is the newest row."""
    late = make_record(timestamp=T0 + timedelta(hours=2))
    early = make_record(timestamp=T0 - timedelta(hours=1))
    store.write_batch([late, early])
    store.write_batch([make_record(timestamp=T0)])
    group = store.group("fp-boom")
    assert group is not None
    assert group.first_seen == T0 - timedelta(hours=1)
    assert group.last_seen == T0 + timedelta(hours=2)
    assert group.last_error_id == late.error_id
    assert (group.title, group.status, group.count) == ("RuntimeError: boom", "unresolved", 3)


def test_result_names_new_groups(store: ErrorStore, make_record: RecordFactory) -> None:
    """WriteResult.new_groups lists fingerprints this batch created, once."""
    first = store.write_batch([make_record(fingerprint="a"), make_record(fingerprint="b")])
    second = store.write_batch([make_record(fingerprint="a"), make_record(fingerprint="c")])
    assert first.new_groups == ("a", "b")
    assert second.new_groups == ("c",)


def test_deltas_add_exact_counts_once(
    store: ErrorStore, make_record: RecordFactory, make_delta: DeltaFactory
) -> None:
    """A delta's occurrences count once; replaying it is skipped."""
    delta = make_delta(count=40)
    first = store.write_batch([make_record()], [delta])
    again = store.write_batch([], [delta])
    assert (first.deltas_applied, first.occurrences) == (1, 41)
    assert (again.deltas_applied, again.deltas_skipped) == (0, 1)
    assert group_count(store, "fp-boom") == 41


def test_delta_alone_creates_its_group(store: ErrorStore, make_delta: DeltaFactory) -> None:
    """A group seen only through sampled-out occurrences still exists with its count."""
    delta = make_delta(fingerprint="only-counted", count=7, title="Flood: 7 dropped")
    result = store.write_batch([], [delta])
    group = store.group("only-counted")
    assert result.new_groups == ("only-counted",)
    assert group is not None
    assert (group.count, group.title, group.last_error_id) == (7, "Flood: 7 dropped", None)
    assert (group.first_seen, group.last_seen) == (delta.first_seen, delta.last_seen)
    assert store.count() == 0


def test_same_delta_twice_in_one_batch_counts_once(
    store: ErrorStore, make_delta: DeltaFactory
) -> None:
    """A duplicated delta_id within a batch is applied once."""
    delta = make_delta(count=3)
    result = store.write_batch([], [delta, delta])
    assert (result.deltas_applied, result.deltas_skipped) == (1, 1)
    assert group_count(store, "fp-boom") == 3


def test_resolved_group_that_occurs_again_regresses(
    store: ErrorStore, make_record: RecordFactory
) -> None:
    """A new occurrence after resolution marks the group regressed, once."""
    store.write_batch([make_record(timestamp=T0)])
    store.resolve_group("fp-boom", "fixed in 1.0.1")
    later = datetime.now(UTC) + timedelta(seconds=5)
    result = store.write_batch([make_record(timestamp=later)])
    again = store.write_batch([make_record(timestamp=later + timedelta(seconds=1))])
    group = store.group("fp-boom")
    assert result.regressed_groups == ("fp-boom",)
    assert again.regressed_groups == ()
    assert group is not None
    assert group.status == "regressed"
    assert group.regressed_at is not None
    assert group.count == 3


def test_late_arrival_from_before_resolution_does_not_regress(
    store: ErrorStore, make_record: RecordFactory
) -> None:
    """An occurrence that happened before the group was resolved (a spool replay) is
    counted but does not reopen the group."""
    store.write_batch([make_record(timestamp=T0)])
    store.resolve_group("fp-boom")
    result = store.write_batch([make_record(timestamp=T0 + timedelta(seconds=1))])
    group = store.group("fp-boom")
    assert result.regressed_groups == ()
    assert group is not None
    assert (group.status, group.count) == ("resolved", 2)


def test_ignored_group_stays_ignored(store: ErrorStore, make_record: RecordFactory) -> None:
    """New occurrences of an ignored group are counted; it stays ignored."""
    store.write_batch([make_record()])
    store.ignore_group("fp-boom", "known noise")
    store.write_batch([make_record(timestamp=datetime.now(UTC) + timedelta(seconds=5))])
    group = store.group("fp-boom")
    assert group is not None
    assert (group.status, group.count, group.notes) == ("ignored", 2, "known noise")


def test_timestamps_in_other_offsets_are_stored_in_utc(
    store: ErrorStore, make_record: RecordFactory
) -> None:
    """A +02:00 timestamp and a naive one (taken as UTC) both come back in UTC."""
    plus_two = timezone(timedelta(hours=2))
    aware = make_record(timestamp=datetime(2025, 3, 1, 14, 0, tzinfo=plus_two))
    naive = make_record(timestamp=datetime(2025, 3, 1, 12, 30))
    store.write_batch([aware, naive])
    got_aware, got_naive = store.get(aware.error_id), store.get(naive.error_id)
    assert got_aware is not None
    assert got_naive is not None
    assert got_aware.timestamp == datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    assert got_naive.timestamp == datetime(2025, 3, 1, 12, 30, tzinfo=UTC)
    assert [e.error_id for e in store.recent()] == [naive.error_id, aware.error_id]


def test_text_a_database_refuses_is_replaced_not_lost(
    store: ErrorStore, make_record: RecordFactory
) -> None:
    """NUL, lone surrogates, NaN and odd objects never fail the batch."""
    record = make_record(
        error_message="nul\x00here",
        stack_trace="bad \udc80 surrogate",
        data={"ratio": float("nan"), "when": datetime(2025, 1, 1), "nul": "a\x00b"},
    )
    result = store.write_batch([record])
    stored = store.get(record.error_id)
    assert result.inserted == 1
    assert stored is not None
    assert stored.error_message == "nul\ufffdhere"
    assert stored.stack_trace == "bad \ufffd surrogate"
    assert stored.data == {"ratio": "nan", "when": "2025-01-01 00:00:00", "nul": "a\ufffdb"}


def test_nul_in_what_a_group_carries_is_replaced_as_in_its_rows(
    store: ErrorStore, make_record: RecordFactory
) -> None:
    """A record whose fingerprint, type, code, severity, service and environment hold NUL
    (PostgreSQL refuses it in text) is stored, its group carries the same cleaned text as
    its rows, and a second such record counts in that group."""
    fields = {
        "fingerprint": "fp\x00nul",
        "error_type": "api\x00error",
        "error_code": "CODE\x00",
        "severity": "error",
        "service": "chk\x00out",
        "environment": "pr\x00od",
        "endpoint": "/pay\x00",
    }
    first, second = make_record(**fields), make_record(**fields)
    assert store.write_batch([first]).inserted == 1
    assert store.write_batch([second]).inserted == 1
    stored = store.get(first.error_id)
    assert stored is not None
    [group] = store.groups(limit=10).items
    assert group.fingerprint == stored.fingerprint == "fp\ufffdnul"
    assert (group.error_type, group.error_code) == ("api\ufffderror", "CODE\ufffd")
    assert (group.service, group.environment) == ("chk\ufffdout", "pr\ufffdod")
    assert group.count == 2
    stats = store.stats(since=stored.timestamp - timedelta(hours=2))
    assert stats.by_service == {"chk\ufffdout": 2}
    assert [(g.fingerprint, n) for g, n in stats.top_groups] == [("fp\ufffdnul", 2)]


def test_non_ascii_text_is_kept(store: ErrorStore, make_record: RecordFactory) -> None:
    """Accents, CJK and emoji are stored as they are."""
    record = make_record(error_message="échec: 失败 💥", data={"user": "Zoë"})
    store.write_batch([record])
    stored = store.get(record.error_id)
    assert stored is not None
    assert (stored.error_message, stored.data) == ("échec: 失败 💥", {"user": "Zoë"})


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        ({"error_id": "x" * 37}, "longer than 36"),
        ({"error_id": ""}, "error_id must be a non-empty string"),
        ({"fingerprint": None}, "fingerprint must be a non-empty string"),
        ({"timestamp": "2025-03-01"}, "timestamp must be a datetime"),
        ({"status": 1000}, "status must be an HTTP status"),
    ],
)
def test_bad_record_is_refused_before_writing(
    store: ErrorStore, make_record: RecordFactory, overrides: dict[str, object], words: str
) -> None:
    """A record breaking the contract fails the call and writes none of the batch."""
    good = make_record()
    with pytest.raises(InvalidRecord, match=words):
        store.write_batch([good, make_record(**overrides)])
    assert store.get(good.error_id) is None
    assert store.group("fp-boom") is None


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        ({"count": 0}, "count must be a positive integer"),
        ({"delta_id": ""}, "delta_id must be a non-empty string"),
        ({"first_seen": T0 + timedelta(days=1)}, "after last_seen"),
    ],
)
def test_bad_delta_is_refused(
    store: ErrorStore, make_delta: DeltaFactory, overrides: dict[str, object], words: str
) -> None:
    """A delta breaking the contract fails the call with the reason."""
    with pytest.raises(InvalidRecord, match=words):
        store.write_batch([], [make_delta(**overrides)])


def test_empty_batch_writes_nothing(store: ErrorStore) -> None:
    """An empty call is a no-op."""
    assert store.write_batch([]).inserted == 0
    assert store.groups().total == 0


def test_two_threads_writing_overlapping_batches(
    store: ErrorStore, make_record: RecordFactory, make_delta: DeltaFactory
) -> None:
    """Two writers replaying each other's rows and deltas store each once, counts exact."""
    records = [make_record(fingerprint=f"fp-{i % 4}") for i in range(400)]
    deltas = [make_delta(fingerprint=f"fp-{i % 4}", count=i + 1) for i in range(8)]
    failures: list[BaseException] = []

    def writer(order: int) -> None:
        mine = records if order == 0 else list(reversed(records))
        try:
            for start in range(0, len(mine), 50):
                store.write_batch(mine[start : start + 50], deltas[start // 50 :][:1])
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert failures == []
    assert store.count() == 400
    expected_delta = {f"fp-{i % 4}": 0 for i in range(4)}
    for i, delta in enumerate(deltas):
        expected_delta[delta.fingerprint] += i + 1
    for n in range(4):
        assert group_count(store, f"fp-{n}") == 100 + expected_delta[f"fp-{n}"]


@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    idents=st.lists(st.integers(0, 29), min_size=1, max_size=60),
    replays=st.lists(st.lists(st.integers(0, 59), max_size=20), max_size=5),
)
def test_counts_equal_distinct_ids_under_any_replay(
    store: ErrorStore, idents: list[int], replays: list[list[int]]
) -> None:
    """Whatever is written and replayed, each group counts its distinct error_ids."""
    run = uuid.uuid4().hex[:8]  # keeps this example's groups apart from earlier ones
    records = [
        ErrorRecord(
            error_id=f"{run}-{ident}",
            timestamp=T0 + timedelta(seconds=ident),
            error_type="http_error",
            error_code="E",
            error_message="m",
            severity="error",
            fingerprint=f"{run}-fp{ident % 4}",
            title="t",
        )
        for ident in idents
    ]
    store.write_batch(records)
    for replay in replays:
        store.write_batch([records[i % len(records)] for i in replay])

    distinct: dict[str, set[str]] = {}
    for record in records:
        distinct.setdefault(record.fingerprint, set()).add(record.error_id)
    for fingerprint, ids in distinct.items():
        assert group_count(store, fingerprint) == len(ids)
    assert store.count(search=f"{run}-") == len(set(idents))


def test_sqlite_writer_retries_when_the_lock_stays_busy(
    tmp_path: Path, make_record: RecordFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write that finds the file locked past the busy timeout is retried, not lost."""
    path = tmp_path / "locked.db"
    store = open_store(f"sqlite:///{path}", busy_timeout_ms=50)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    pauses: list[float] = []

    def release_before_the_retry(seconds: float) -> None:
        pauses.append(seconds)
        if holder.in_transaction:
            holder.execute("COMMIT")

    # The writer sleeps only between attempts: the first found the file locked.
    monkeypatch.setattr(repository.time, "sleep", release_before_the_retry)
    result = store.write_batch([make_record()])
    monkeypatch.undo()
    holder.close()
    store.close()
    assert result.inserted == 1
    assert pauses == [0.05]


def test_sqlite_writer_gives_up_on_a_lock_that_is_never_released(
    tmp_path: Path, make_record: RecordFactory
) -> None:
    """After its retries the write raises StoreUnavailable and has written nothing."""
    path = tmp_path / "locked.db"
    store = open_store(f"sqlite:///{path}", busy_timeout_ms=20)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    with pytest.raises(StoreUnavailable, match="database is locked"):
        store.write_batch([make_record()])
    holder.execute("ROLLBACK")
    holder.close()
    assert store.count() == 0
    store.close()
