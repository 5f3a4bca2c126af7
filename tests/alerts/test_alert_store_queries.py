"""The store's queries for alerts, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta

from tests.alerts._support import T0, CountingStore, occurrences, record

from errorkit.store import SlimRecord
from errorkit.store.alerting import AlertClaim, AlertEvent


def test_window_counts_include_sampled_out_occurrences(store: CountingStore) -> None:
    occurrences(store, 3, T0)
    store.write_slim(
        [
            SlimRecord(str(uuid.uuid4()), T0 - timedelta(seconds=30), "fp-boom", endpoint="/x")
            for _ in range(4)
        ]
    )
    store.write_slim([SlimRecord(str(uuid.uuid4()), T0 - timedelta(hours=1), "fp-boom")])
    (item,) = store.window_counts(T0 - timedelta(minutes=5), T0)
    assert (item.key, item.count, item.title) == ("fp-boom", 7, "RuntimeError: boom")
    assert store.window_counts(T0 - timedelta(minutes=5), T0, min_count=8) == []
    by_endpoint = store.window_counts(T0 - timedelta(minutes=5), T0, by="endpoint")
    assert {(i.key, i.count) for i in by_endpoint} == {("/api/chat", 3), ("/x", 4)}


def test_window_counts_scope_and_any_of(store: CountingStore) -> None:
    occurrences(store, 2, T0, fingerprint="fp-a", severity="critical")
    occurrences(store, 2, T0, fingerprint="fp-b", error_code="SYSTEM_DISK_FULL")
    occurrences(store, 2, T0, fingerprint="fp-c", service="billing", severity="critical")
    occurrences(store, 2, T0, fingerprint="fp-d")
    since = T0 - timedelta(minutes=5)
    found = store.window_counts(
        since,
        T0,
        scope={"service": "api"},
        any_of={"severity": ["critical"], "error_code": ["SYSTEM_DISK_FULL"]},
    )
    assert sorted(i.key for i in found) == ["fp-a", "fp-b"]
    assert [i.key for i in store.window_counts(since, T0, scope={"fingerprint": "fp-d"})] == [
        "fp-d"
    ]


def test_new_and_regressed_groups(store: CountingStore) -> None:
    occurrences(store, 1, T0 - timedelta(hours=2), fingerprint="fp-old")
    occurrences(store, 1, T0, fingerprint="fp-new", environment="staging")
    assert [g.fingerprint for g in store.new_groups(T0 - timedelta(minutes=10), T0)] == ["fp-new"]
    assert store.new_groups(T0 - timedelta(minutes=10), T0, scope={"environment": "prod"}) == []
    assert store.regressed_groups() == []


def test_claim_alert_records_a_claim_once(store: CountingStore) -> None:
    seen: list[AlertEvent | None] = []

    def decide(last: AlertEvent | None) -> AlertClaim | None:
        seen.append(last)
        return AlertClaim(kind="fired", at=T0, claim="r|*|fired|0", summary="s", data={"n": 1})

    first = store.claim_alert("r", "*", decide)
    assert first is not None
    assert (first.kind, first.summary, first.data) == ("fired", "s", {"n": 1})
    assert store.claim_alert("r", "*", decide) is None  # the claim is taken
    assert seen[0] is None
    assert seen[1] is not None and seen[1].id == first.id


def test_concurrent_claims_record_one(store: CountingStore) -> None:
    results: list[AlertEvent | None] = []
    barrier = threading.Barrier(4)

    def claim() -> None:
        barrier.wait()
        results.append(
            store.claim_alert(
                "r",
                "*",
                lambda last: (
                    None
                    if last is not None
                    else AlertClaim(kind="fired", at=T0, claim="r|*|fired|T0")
                ),
            )
        )

    threads = [threading.Thread(target=claim) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(result is not None for result in results) == 1
    assert len(store.alert_events()) == 1


def test_alert_events_filters_and_cleanup(store: CountingStore) -> None:
    store.write_batch([record(T0)])
    for minute, kind in enumerate(["delivery", "test", "delivery"]):
        store.add_alert_event(
            rule="a" if minute < 2 else "b",
            scope="*",
            kind=kind,  # type: ignore[arg-type]
            status="sent",
            at=T0 + timedelta(minutes=minute),
            channel="hook",
            attempt=1,
        )
    assert [e.rule for e in store.alert_events()] == ["b", "a", "a"]
    assert [e.kind for e in store.alert_events(rule="a")] == ["test", "delivery"]
    assert len(store.alert_events(kinds=("delivery",))) == 2
    assert len(store.alert_events(since=T0 + timedelta(minutes=1))) == 2
    assert store.delete_alert_events(T0 + timedelta(minutes=2)) == 2
    assert [e.rule for e in store.alert_events()] == ["b"]


def test_open_alerts_are_the_scopes_whose_last_transition_fired(store: CountingStore) -> None:
    def fire(scope: str, kind: str, claim: str) -> None:
        event = store.claim_alert(
            "r",
            scope,
            lambda last: AlertClaim(kind=kind, at=T0, claim=claim),  # type: ignore[arg-type]
        )
        assert event is not None

    fire("a", "fired", "1")
    fire("b", "fired", "2")
    fire("a", "resolved", "3")
    fire("c", "fired", "4")
    fire("c", "resolved", "5")
    fire("c", "fired", "6")
    assert [e.scope for e in store.open_alerts("r")] == ["b", "c"]
    assert store.open_alerts("other") == []
