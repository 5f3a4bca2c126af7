"""Health checks: statuses, timeouts, criticality, error stats, breakers and both shapes."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from errorkit.observe.health import (
    ErrorSummary,
    HealthCheckError,
    HealthRegistry,
    HealthStatus,
    store_error_summary,
)

SECRET = "hunter2-very-secret"


def registry(**kwargs: Any) -> HealthRegistry:
    """A registry without store or breakers (unless given) and without caching."""
    kwargs.setdefault("error_source", None)
    kwargs.setdefault("breaker_source", None)
    kwargs.setdefault("cache_seconds", 0)
    return HealthRegistry(**kwargs)


def ok_sync() -> None:
    return None


async def ok_async() -> None:
    await asyncio.sleep(0)


def fail_sync() -> None:
    raise ConnectionRefusedError("connection refused by 10.0.0.5:5432")


async def fail_async() -> None:
    raise ConnectionRefusedError("connection refused by 10.0.0.5:5432")


@pytest.mark.parametrize("check", [ok_sync, ok_async], ids=["sync", "async"])
async def test_all_checks_pass_means_healthy(check: Callable[[], Any]) -> None:
    """Passing checks: healthy, 200, each component with its latency."""
    health = registry()
    health.add("db", check)
    report = await health.readiness()
    assert (report.status, report.http_status) == (HealthStatus.HEALTHY, 200)
    component = report.component("db")
    assert component is not None and component.status is HealthStatus.HEALTHY
    assert component.latency_ms >= 0


@pytest.mark.parametrize("check", [fail_sync, fail_async], ids=["sync", "async"])
async def test_critical_failure_means_unhealthy_503(check: Callable[[], Any]) -> None:
    """A failing critical check makes the service unhealthy and names the component."""
    health = registry()
    health.add("postgres", check)
    health.add("cache", ok_sync, critical=False)
    report = await health.readiness()
    assert (report.status, report.http_status) == (HealthStatus.UNHEALTHY, 503)
    failed = report.component("postgres")
    assert failed is not None and failed.status is HealthStatus.UNHEALTHY
    assert failed.error == "ConnectionRefusedError: connection refused by 10.0.0.5:5432"


async def test_non_critical_failure_means_degraded_but_serving() -> None:
    """A failing non-critical check: degraded, still 200."""
    health = registry()
    health.add("postgres", ok_sync)
    health.add("recommendations", fail_sync, critical=False)
    report = await health.readiness()
    assert (report.status, report.http_status) == (HealthStatus.DEGRADED, 200)
    component = report.component("recommendations")
    assert component is not None and component.status is HealthStatus.DEGRADED


async def test_async_check_that_hangs_times_out() -> None:
    """An async check past its timeout is unhealthy with the reason."""
    never = asyncio.Event()

    async def hangs() -> None:
        await never.wait()

    health = registry()
    health.add("upstream", hangs, timeout=0.05)
    report = await health.readiness()
    component = report.component("upstream")
    assert component is not None and component.status is HealthStatus.UNHEALTHY
    assert component.error == "timed out after 0.05s"


async def test_hung_checks_hold_a_bounded_number_of_daemon_threads() -> None:
    """With every worker stuck, a check fails at once instead of piling up threads; the
    threads are daemons, so a hung dependency never blocks the process's exit."""
    release = threading.Event()
    health = registry(max_workers=2)
    health.add("legacy", lambda: release.wait(), timeout=0.05)
    before = set(threading.enumerate())
    try:
        for _ in range(2):
            await health.readiness()
        stuck = [t for t in set(threading.enumerate()) - before if t.name == "errorkit-health"]
        component = (await health.readiness()).component("legacy")
    finally:
        release.set()
    assert len(stuck) == 2 and all(t.daemon for t in stuck)
    assert component is not None and component.error is not None
    assert "no free health-check thread" in component.error
    for thread in stuck:
        thread.join(timeout=5)
    assert (await health.readiness()).status is HealthStatus.HEALTHY


async def test_sync_check_that_hangs_times_out_without_blocking() -> None:
    """A blocked sync check times out; the answer does not wait for the thread."""
    release = threading.Event()
    health = registry()
    health.add("legacy", lambda: release.wait(), timeout=0.05)
    try:
        report = await health.readiness()
    finally:
        release.set()
    component = report.component("legacy")
    assert component is not None and component.error == "timed out after 0.05s"


@pytest.mark.parametrize(
    ("result", "status"),
    [
        (None, HealthStatus.HEALTHY),
        (True, HealthStatus.HEALTHY),
        (False, HealthStatus.UNHEALTHY),
        (HealthStatus.DEGRADED, HealthStatus.DEGRADED),
        ("degraded", HealthStatus.DEGRADED),
        ({"status": "unhealthy", "lag": 3}, HealthStatus.UNHEALTHY),
        ({"connections": 3}, HealthStatus.HEALTHY),
    ],
)
async def test_what_a_check_returns_sets_its_status(result: Any, status: HealthStatus) -> None:
    """None/True, False, a status or a dict of details are all understood."""
    health = registry()
    health.add("x", lambda: result)
    component = (await health.readiness()).component("x")
    assert component is not None and component.status is status


async def test_check_details_are_scrubbed() -> None:
    """Details a check returns pass through the scrubber."""
    health = registry()
    health.add("x", lambda: {"dsn": f"postgres://app:{SECRET}@db/x", "pool": 5})
    component = (await health.detailed()).component("x")
    assert component is not None
    assert component.details == {"dsn": "[Filtered]", "pool": 5}


async def test_error_text_is_scrubbed() -> None:
    """A failing check's message passes through the scrubber."""

    def leaks() -> None:
        raise RuntimeError(f"login failed password={SECRET}")

    health = registry()
    health.add("x", leaks)
    component = (await health.detailed()).component("x")
    assert component is not None and component.error is not None
    assert SECRET not in component.error


async def test_unsupported_result_says_what_to_return() -> None:
    """A check returning something odd is unhealthy with a message naming the fix."""
    health = registry()
    health.add("x", lambda: 42)
    component = (await health.readiness()).component("x")
    assert component is not None and component.error is not None
    assert "return None/True" in component.error


async def test_failing_check_is_reported_as_health_check_error(
    reported: list[tuple[BaseException, dict[str, Any]]],
) -> None:
    """Each failure goes through errorkit's pipeline as a health_check_error."""
    health = registry()
    health.add("postgres", fail_sync)
    health.add("search", lambda: False, critical=False)
    await health.readiness()
    by_check = {ctx["extra"]["check"]: (exc, ctx) for exc, ctx in reported}
    exc, ctx = by_check["postgres"]
    assert isinstance(exc, ConnectionRefusedError)
    assert (ctx["error_type"], ctx["severity"], ctx["endpoint"]) == (
        "health_check_error",
        "error",
        "health:postgres",
    )
    exc, ctx = by_check["search"]
    assert isinstance(exc, HealthCheckError) and exc.code == "HEALTH_CHECK_FAILED"
    assert (ctx["error_type"], ctx["severity"]) == ("health_check_error", "warning")


async def test_timeouts_are_reported_too(
    reported: list[tuple[BaseException, dict[str, Any]]],
) -> None:
    """A timed-out check is reported as a HealthCheckError naming the timeout."""
    never = asyncio.Event()

    async def hangs() -> None:
        await never.wait()

    health = registry()
    health.add("upstream", hangs, timeout=0.05)
    await health.readiness()
    ((exc, ctx),) = reported
    assert isinstance(exc, HealthCheckError)
    assert exc.details == {"check": "upstream", "timeout": 0.05}
    assert ctx["error_type"] == "health_check_error"


async def test_passing_checks_report_nothing(
    reported: list[tuple[BaseException, dict[str, Any]]],
) -> None:
    """Healthy components leave the error pipeline alone."""
    health = registry()
    health.add("db", ok_sync)
    await health.readiness()
    assert reported == []


async def test_results_are_reused_for_cache_seconds() -> None:
    """Within cache_seconds the checks are not run again (injected clock)."""
    now = [100.0]
    calls: list[int] = []
    health = registry(cache_seconds=5, clock=lambda: now[0])
    health.add("db", lambda: calls.append(1))
    await health.readiness()
    now[0] += 4.9
    await health.readiness()
    assert len(calls) == 1
    now[0] += 0.2
    await health.readiness()
    assert len(calls) == 2


def test_liveness_asks_no_dependency() -> None:
    """Liveness is healthy even when every check would fail."""
    health = registry()
    health.add("db", fail_sync)
    report = health.liveness()
    assert (report.http_status, report.as_dict()["status"]) == (200, "healthy")
    assert "components" not in report.as_dict()


async def test_detailed_shows_error_counts_and_the_last_error() -> None:
    """The detailed answer carries the store's summary."""
    summary = ErrorSummary(
        recent_count=3,
        unresolved_count=2,
        window_seconds=3600,
        last_error={"error_id": "e-1", "error_code": "DATABASE_UNAVAILABLE"},
    )
    seen: list[float] = []

    def source(window: float) -> ErrorSummary:
        seen.append(window)
        return summary

    health = registry(error_source=source, error_window=timedelta(minutes=10))
    data = (await health.detailed()).as_dict()
    assert seen == [600.0]
    assert data["errors"]["recent_count"] == 3
    assert data["errors"]["unresolved_count"] == 2
    assert data["errors"]["last_error"]["error_id"] == "e-1"


async def test_store_down_is_shown_without_changing_health(lenient_guard: None) -> None:
    """An unreachable store marks the error section unavailable; health stays 200."""

    def broken(window: float) -> ErrorSummary:
        raise ConnectionError(f"store at postgres://app:{SECRET}@db unreachable")

    health = registry(error_source=broken)
    health.add("db", ok_sync)
    report = await health.detailed()
    assert report.http_status == 200
    errors = report.as_dict()["errors"]
    assert errors["available"] is False
    assert "ConnectionError" in errors["error"] and SECRET not in errors["error"]


@pytest.mark.parametrize(
    "source",
    [
        lambda: {"payments": "open", "email": "closed"},
        lambda: {"payments": {"state": "OPEN", "failures": 5}, "email": {"state": "closed"}},
        lambda: [
            type("B", (), {"name": "payments", "state": "open"})(),
            type("B", (), {"name": "email", "state": "closed"})(),
        ],
    ],
    ids=["mapping-of-states", "mapping-of-status", "objects"],
)
async def test_open_breaker_means_degraded(source: Callable[[], Any]) -> None:
    """Every breaker is listed; one that is not closed makes the service degraded."""
    health = registry(breaker_source=source)
    health.add("db", ok_sync)
    report = await health.detailed()
    assert (report.status, report.http_status) == (HealthStatus.DEGRADED, 200)
    assert {b.name: b.state for b in report.breakers} == {"email": "closed", "payments": "open"}


async def test_health_json_shape() -> None:
    """application/health+json: pass/warn/fail and checks keyed component:measurement."""
    health = registry(
        service="checkout",
        release="1.4.2",
        error_source=lambda w: ErrorSummary(1, 1, w),
        breaker_source=lambda: {"payments": "open"},
    )
    health.add("postgres", fail_sync, component_type="datastore")
    data = (await health.detailed()).as_health_json()
    assert data["status"] == "fail"
    assert (data["serviceId"], data["releaseId"]) == ("checkout", "1.4.2")
    (pg,) = data["checks"]["postgres:responseTime"]
    assert (pg["status"], pg["componentType"], pg["observedUnit"]) == ("fail", "datastore", "ms")
    assert "ConnectionRefusedError" in pg["output"]
    assert data["checks"]["errors:unresolved"][0]["observedValue"] == 1
    assert data["checks"]["payments:circuitBreaker"][0]["status"] == "warn"


async def test_readiness_hides_error_text() -> None:
    """The open readiness answer names components and statuses but no error text."""
    health = registry()
    health.add("postgres", fail_sync)
    data = (await health.readiness()).as_dict()
    assert data["components"]["postgres"] == {
        "status": "unhealthy",
        "critical": True,
        "latency_ms": data["components"]["postgres"]["latency_ms"],
    }
    assert "errors" not in data


async def test_sync_answers_work_inside_a_running_loop() -> None:
    """readiness_sync() called from async code runs on a helper thread."""
    health = registry()
    health.add("db", ok_async)
    assert health.readiness_sync().status is HealthStatus.HEALTHY


def test_sync_answers_work_without_a_loop() -> None:
    """detailed_sync() in plain sync code (WSGI) runs async checks too."""
    health = registry()
    health.add("db", ok_async)
    health.add("cache", ok_sync)
    assert health.detailed_sync().http_status == 200


@pytest.mark.parametrize(
    ("name", "check", "kwargs", "message"),
    [
        ("", ok_sync, {}, "non-empty name"),
        ("db", "not callable", {}, "not callable"),
        ("db", ok_sync, {"timeout": 0}, "timeout=0"),
        ("db", ok_sync, {"timeout": float("nan")}, "seconds > 0"),
    ],
)
def test_bad_registrations_say_what_to_fix(
    name: str, check: Any, kwargs: dict[str, Any], message: str
) -> None:
    """Bad names, functions and timeouts are refused with a clear message."""
    with pytest.raises((ValueError, TypeError), match=message):
        registry().add(name, check, **kwargs)


def test_duplicate_names_are_refused() -> None:
    """Two checks cannot share a name."""
    health = registry()
    health.add("db", ok_sync)
    with pytest.raises(ValueError, match="already registered"):
        health.add("db", ok_sync)


def test_removing_an_unknown_check_names_the_known_ones() -> None:
    """remove() of a missing name lists what is registered."""
    health = registry()
    health.add("db", ok_sync)
    with pytest.raises(KeyError, match="'db'"):
        health.remove("cache")


def test_decorator_registers_the_check() -> None:
    """@registry.check(name) is the same as add()."""
    health = registry()

    @health.check("queue", timeout=1, critical=False)
    def queue_ok() -> bool:
        return True

    (check,) = health.checks
    assert (check.name, check.timeout, check.critical) == ("queue", 1.0, False)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Any]:
    from errorkit.store import open_store

    s = open_store(f"sqlite:///{tmp_path / 'errors.db'}")
    yield s
    s.close()


def _record(error_id: str, when: datetime, message: str) -> Any:
    from errorkit.store import ErrorRecord

    return ErrorRecord(
        error_id=error_id,
        timestamp=when,
        error_type="database_error",
        error_code="DATABASE_UNAVAILABLE",
        error_message=message,
        severity="error",
        fingerprint="fp-1",
        title="DatabaseUnavailable",
        endpoint="/orders",
    )


def test_store_summary_counts_recent_and_unresolved(store: Any) -> None:
    """store_error_summary reads a real store: window count, unresolved count, newest error."""
    now = datetime.now(UTC)
    store.write_batch(
        [
            _record("00000000-0000-4000-8000-000000000001", now - timedelta(hours=3), "old"),
            _record("00000000-0000-4000-8000-000000000002", now - timedelta(minutes=5), "new"),
        ]
    )
    store.resolve("00000000-0000-4000-8000-000000000001")
    summary = store_error_summary(store, 3600)
    assert (summary.recent_count, summary.unresolved_count) == (1, 1)
    assert summary.last_error is not None
    assert summary.last_error["error_id"] == "00000000-0000-4000-8000-000000000002"
    assert summary.last_error["message"] == "new"


async def test_checks_run_concurrently() -> None:
    """Checks wait for each other's completion, not one after another."""
    both_started = asyncio.Barrier(2)

    async def one() -> None:
        await asyncio.wait_for(both_started.wait(), 5)

    health = registry()
    health.add("a", one)
    health.add("b", one)
    report = await health.readiness()
    assert report.status is HealthStatus.HEALTHY


async def test_real_breakers_are_listed_with_their_state() -> None:
    """Breakers of errorkit.resilience show state, failures and when they opened."""
    from errorkit.resilience import BreakerRegistry, ManualClock

    breakers = BreakerRegistry(clock=ManualClock())
    payments = breakers.circuit_breaker("payments", failure_threshold=1)
    breakers.circuit_breaker("email")

    def fail() -> None:
        raise ConnectionError("refused")

    with pytest.raises(ConnectionError):
        payments.call(fail)
    health = registry(breaker_source=breakers.statuses)
    data = (await health.detailed()).as_dict()
    assert data["status"] == "degraded"
    assert data["breakers"]["email"]["state"] == "closed"
    opened = data["breakers"]["payments"]
    assert opened["state"] == "open"
    assert opened["opened_at"] is not None


async def test_failed_check_groups_are_titled_with_the_check() -> None:
    """A failing check's group is its own, and its title names the check instead of showing
    the template ``Health check {check} failed.``; a timeout keeps its own words."""
    from errorkit.testing import capture_events

    never = asyncio.Event()

    async def hangs() -> None:
        await never.wait()

    health = registry()
    health.add("search", lambda: False)
    health.add("queue", lambda: False)
    health.add("upstream", hangs, timeout=0.05)
    with capture_events() as events:
        await health.readiness()
    titles = {e.endpoint: e.title for e in events}
    assert titles == {
        "health:search": "HealthCheckError: Health check search failed.",
        "health:queue": "HealthCheckError: Health check queue failed.",
        "health:upstream": "HealthCheckError: Health check upstream timed out after <num>.",
    }
    assert len({e.fingerprint for e in events}) == 3
    assert all("{" not in e.title for e in events)
