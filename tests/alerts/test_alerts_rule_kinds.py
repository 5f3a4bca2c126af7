"""Every rule kind fires, keeps quiet, cools down and resolves, at injected times."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from tests.alerts._support import T0, CountingStore, counts, occurrences, record

from errorkit.alerts import AlertManager, BurnWindow, LogChannel, Rule, Scope
from errorkit.resilience import CircuitState, ManualClock, circuit_breaker, reset_all_breakers


def manager(store: CountingStore, *rules: Rule) -> AlertManager:
    return AlertManager(store, rules, [LogChannel("log")], now=lambda: T0)


def kinds(store: CountingStore, rule: str) -> list[str]:
    return [e.kind for e in reversed(store.alert_events(rule=rule, kinds=("fired", "resolved")))]


def test_repeat_fires_at_the_count_once_per_cooldown_and_resolves(store: CountingStore) -> None:
    rule = Rule("repeats", "repeat", count=10, window=timedelta(minutes=5))
    alerts = manager(store, rule)
    occurrences(store, 9, T0)
    assert alerts.evaluate(T0) == []
    store.write_batch([record(T0 - timedelta(milliseconds=10))])
    fired = alerts.evaluate(T0)
    assert [f.event.kind for f in fired] == ["fired"]
    assert fired[0].notification.numbers["count"] == 10
    assert fired[0].event.scope == "*|group=fp-boom"
    # Still firing a minute later: the cooldown keeps it quiet.
    occurrences(store, 10, T0 + timedelta(minutes=1), error_message="again")
    assert alerts.evaluate(T0 + timedelta(minutes=1)) == []
    # Ten minutes later the window is empty: resolved, once.
    resolved = alerts.evaluate(T0 + timedelta(minutes=10))
    assert [f.event.kind for f in resolved] == ["resolved"]
    assert resolved[0].notification.status == "resolved"
    assert alerts.evaluate(T0 + timedelta(minutes=11)) == []
    assert kinds(store, "repeats") == ["fired", "resolved"]


def test_repeat_fires_again_after_the_cooldown(store: CountingStore) -> None:
    rule = Rule(
        "repeats", "repeat", count=3, window=timedelta(hours=1), cooldown=timedelta(minutes=30)
    )
    alerts = manager(store, rule)
    occurrences(store, 3, T0)
    assert len(alerts.evaluate(T0)) == 1
    assert alerts.evaluate(T0 + timedelta(minutes=29)) == []
    assert len(alerts.evaluate(T0 + timedelta(minutes=31))) == 1
    assert kinds(store, "repeats") == ["fired", "fired"]


def test_repeat_by_endpoint_counts_the_operation_across_groups(store: CountingStore) -> None:
    rule = Rule("op", "repeat", count=4, by="endpoint", scope=Scope(service="api"))
    alerts = manager(store, rule)
    occurrences(store, 2, T0, fingerprint="fp-a", endpoint="/pay")
    occurrences(store, 2, T0, fingerprint="fp-b", endpoint="/pay")
    occurrences(store, 3, T0, fingerprint="fp-c", endpoint="/other")
    occurrences(store, 9, T0, fingerprint="fp-d", endpoint="/pay", service="billing")
    fired = alerts.evaluate(T0)
    assert [f.event.scope for f in fired] == ["service=api|endpoint=/pay"]
    assert fired[0].notification.numbers["count"] == 4


def test_critical_fires_per_group_for_severity_or_code(store: CountingStore) -> None:
    rule = Rule("critical", "critical", codes=("DISK_FULL",), window=timedelta(minutes=10))
    alerts = manager(store, rule)
    occurrences(store, 5, T0, fingerprint="fp-plain")
    assert alerts.evaluate(T0) == []
    occurrences(
        store, 1, T0, fingerprint="fp-crypto", severity="critical", title="Encryption failed"
    )
    occurrences(store, 1, T0, fingerprint="fp-disk", error_code="DISK_FULL", title="Disk full")
    fired = alerts.evaluate(T0)
    assert sorted(f.notification.group for f in fired) == ["fp-crypto", "fp-disk"]
    assert all(f.notification.title.startswith("critical error") for f in fired)
    resolved = alerts.evaluate(T0 + timedelta(minutes=11))
    assert sorted(f.event.kind for f in resolved) == ["resolved", "resolved"]


def test_new_group_fires_once_and_never_resolves(store: CountingStore) -> None:
    rule = Rule("new", "new_group", window=timedelta(minutes=15), scope=Scope(environment="prod"))
    alerts = manager(store, rule)
    occurrences(store, 1, T0, fingerprint="fp-old", environment="staging")
    occurrences(store, 1, T0, fingerprint="fp-new")
    fired = alerts.evaluate(T0)
    assert [f.notification.group for f in fired] == ["fp-new"]
    assert alerts.evaluate(T0 + timedelta(minutes=1)) == []
    assert alerts.evaluate(T0 + timedelta(hours=2)) == []
    assert kinds(store, "new") == ["fired"]


def test_regression_fires_when_a_resolved_group_comes_back(store: CountingStore) -> None:
    rule = Rule("regressed", "regression")
    alerts = manager(store, rule)
    occurrences(store, 1, T0 - timedelta(hours=1))
    store.resolve_group("fp-boom")
    assert alerts.evaluate(T0) == []
    # The store stamps resolved_at with the real time: come back after it.
    store.write_batch([record(datetime.now(UTC) + timedelta(seconds=1))])
    fired = alerts.evaluate(T0)
    assert [f.notification.title for f in fired] == [
        "regression: RuntimeError: boom is back after being resolved"
    ]
    assert alerts.evaluate(T0 + timedelta(hours=1)) == []
    store.resolve_group("fp-boom")
    assert [f.event.kind for f in alerts.evaluate(T0 + timedelta(hours=2))] == ["resolved"]


def test_breaker_rule_fires_when_one_opens_and_resolves_when_it_closes(
    store: CountingStore,
) -> None:
    alerts = manager(store, Rule("breakers", "breaker", breakers=("payments-api",)))
    alerts.on_breaker_transition("other", CircuitState.CLOSED, CircuitState.OPEN)
    alerts.on_breaker_transition("payments-api", CircuitState.CLOSED, CircuitState.OPEN)
    fired = alerts.evaluate(T0)
    assert [f.event.scope for f in fired] == ["payments-api"]
    assert fired[0].notification.numbers["state"] == "open"
    alerts.on_breaker_transition("payments-api", CircuitState.OPEN, CircuitState.HALF_OPEN)
    assert alerts.evaluate(T0 + timedelta(seconds=5)) == []
    alerts.on_breaker_transition("payments-api", CircuitState.HALF_OPEN, CircuitState.CLOSED)
    assert [f.event.kind for f in alerts.evaluate(T0 + timedelta(seconds=20))] == ["resolved"]


def test_error_rate_fires_above_the_threshold_with_enough_requests(store: CountingStore) -> None:
    seen: list[tuple[datetime, datetime, object]] = []
    current = {"counts": counts(1000, 10)}

    def counts_for(since: datetime, until: datetime, scope: object) -> object:
        seen.append((since, until, scope))
        return current["counts"]

    store.counts_for = counts_for  # type: ignore[assignment]
    rule = Rule("rate", "error_rate", threshold=5, min_requests=100, scope=Scope(service="api"))
    alerts = manager(store, rule)
    assert alerts.evaluate(T0) == []  # 1 %
    assert seen[0] == (
        T0 - timedelta(minutes=5),
        T0,
        {"service": "api", "environment": None, "endpoint": None},
    )
    current["counts"] = counts(50, 25)  # 50 % of too few requests
    assert alerts.evaluate(T0) == []
    current["counts"] = counts(2000, 200)  # 10 %
    fired = alerts.evaluate(T0)
    assert len(fired) == 1
    assert fired[0].notification.numbers["error_rate"] == "10.00%"
    assert fired[0].notification.numbers["requests"] == 2000
    current["counts"] = counts(2000, 20)
    assert [f.event.kind for f in alerts.evaluate(T0 + timedelta(minutes=6))] == ["resolved"]


def test_rate_rules_keep_quiet_on_a_store_without_request_counts(store_url: str) -> None:
    from errorkit.store import ErrorStore

    with ErrorStore(store_url) as plain:
        alerts = AlertManager(plain, [Rule("rate", "error_rate")], now=lambda: T0)
        assert alerts.evaluate(T0) == []


BUDGET = Rule(
    "budget",
    "error_budget",
    objective=99.9,
    period=timedelta(days=30),
    min_requests=1,
    burn_windows=(
        BurnWindow(timedelta(hours=1), timedelta(minutes=5), 14.4),
        BurnWindow(timedelta(hours=6), timedelta(minutes=30), 6.0),
    ),
)


@pytest.mark.parametrize(
    ("failing", "fires"),
    [
        pytest.param({"1h": 0.02, "5m": 0.02}, True, id="fast-burn-both-windows"),
        pytest.param({"1h": 0.02, "5m": 0.0}, False, id="fast-burn-long-only"),
        pytest.param({"6h": 0.007, "30m": 0.007}, True, id="slow-burn-both-windows"),
        pytest.param({"6h": 0.005, "30m": 0.005}, False, id="under-6x"),
    ],
)
def test_error_budget_multi_window_burn_rate(
    store: CountingStore, failing: dict[str, float], fires: bool
) -> None:
    spans = {
        timedelta(days=30): "30d",
        timedelta(hours=1): "1h",
        timedelta(minutes=5): "5m",
        timedelta(hours=6): "6h",
        timedelta(minutes=30): "30m",
    }

    def counts_for(since: datetime, until: datetime, scope: object) -> object:
        name = spans[until - since]
        rate = failing.get(name, 0.0005)
        return counts(100_000, round(100_000 * rate))

    store.counts_for = counts_for  # type: ignore[assignment]
    fired = manager(store, BUDGET).evaluate(T0)
    assert bool(fired) is fires
    if fires:
        numbers = fired[0].notification.numbers
        assert numbers["budget_left"] == "50.00%"  # 0.05 % failed of a 0.1 % budget
        assert "budget left" in fired[0].notification.title
        assert "error budget of 99.9% for all requests is burning" in fired[0].notification.title


def test_breaker_rule_hears_a_real_breaker_through_the_registry(store: CountingStore) -> None:
    """watch_breakers() subscribes to errorkit.resilience.add_breaker_listener."""
    alerts = manager(store, Rule("breakers", "breaker"))
    alerts.watch_breakers()
    clock = ManualClock()
    try:
        name = f"dependency-{uuid.uuid4().hex[:8]}"
        breaker = circuit_breaker(name, failure_threshold=1, recovery_timeout=10, clock=clock)

        def fail() -> None:
            raise ConnectionError("down")

        with pytest.raises(ConnectionError):
            breaker.call(fail)
        fired = alerts.evaluate(T0)
        assert [f.event.scope for f in fired] == [name]
        clock.advance(11)
        breaker.call(lambda: None)
        assert [f.event.kind for f in alerts.evaluate(T0 + timedelta(minutes=1))] == ["resolved"]
    finally:
        alerts.stop()
        reset_all_breakers()


def test_a_flapping_condition_fires_once_per_cooldown(store: CountingStore) -> None:
    rule = Rule("repeats", "repeat", count=3, window=timedelta(minutes=1),
                cooldown=timedelta(minutes=30))  # fmt: skip
    alerts = manager(store, rule)
    start = T0.replace(minute=0)
    occurrences(store, 3, start + timedelta(minutes=1))
    assert len(alerts.evaluate(start + timedelta(minutes=1))) == 1
    assert [f.event.kind for f in alerts.evaluate(start + timedelta(minutes=5))] == ["resolved"]
    occurrences(store, 3, start + timedelta(minutes=10), error_message="back")
    assert alerts.evaluate(start + timedelta(minutes=10)) == []  # same cooldown window
    occurrences(store, 3, start + timedelta(minutes=31), error_message="again")
    assert [f.event.kind for f in alerts.evaluate(start + timedelta(minutes=31))] == ["fired"]
