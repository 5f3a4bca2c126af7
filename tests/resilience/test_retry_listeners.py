"""Process-wide retry listeners: every retry of every policy, and each give-up, once."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from errorkit import _guard
from errorkit.errors import ValidationError
from errorkit.resilience import (
    ManualClock,
    RetryEvent,
    add_retry_listener,
    remove_retry_listener,
    retry,
)


def failing(times: int, error: Callable[[], BaseException] = ConnectionError) -> Callable[[], str]:
    """A function that raises ``error()`` ``times`` times, then returns "ok"."""
    calls = {"n": 0}

    def fn() -> str:
        calls["n"] += 1
        if calls["n"] <= times:
            raise error()
        return "ok"

    return fn


@pytest.fixture
def heard() -> Iterator[list[RetryEvent]]:
    """Events a subscribed listener received; unsubscribed after the test."""
    events: list[RetryEvent] = []
    add_retry_listener(events.append)
    yield events
    remove_retry_listener(events.append)


def _summary(events: list[RetryEvent]) -> list[tuple[str, int, float, bool]]:
    return [(e.operation, e.attempt, e.wait, e.exhausted) for e in events]


def test_each_retry_is_heard_with_its_wait(clock: ManualClock, heard: list[RetryEvent]) -> None:
    """A call that succeeds on its third attempt sends two retry events, no give-up."""
    policy = retry(attempts=3, jitter="none", wait_initial=1, name="rates", clock=clock)
    assert policy.call(failing(2)) == "ok"
    assert _summary(heard) == [("rates", 1, 1.0, False), ("rates", 2, 2.0, False)]
    assert {e.code for e in heard} == {"NETWORK_ERROR"}


def test_giving_up_is_heard_once(clock: ManualClock, heard: list[RetryEvent]) -> None:
    """When attempts run out, one event says so, with the last error and attempt number."""
    policy = retry(attempts=2, jitter="none", wait_initial=1, name="rates", clock=clock)
    with pytest.raises(ConnectionError) as raised:
        policy.call(failing(5))
    assert _summary(heard) == [("rates", 1, 1.0, False), ("rates", 2, 0.0, True)]
    assert heard[-1].error is raised.value
    assert heard[-1].reason == "attempts exhausted"


def _unavailable(retry_after: str) -> httpx.HTTPStatusError:
    request = httpx.Request("GET", "https://api.example.com/rates")
    response = httpx.Response(503, headers={"Retry-After": retry_after}, request=request)
    return httpx.HTTPStatusError("503", request=request, response=response)


@pytest.mark.parametrize(
    ("options", "error", "reason"),
    [
        ({"deadline": 1.5, "wait_initial": 1}, ConnectionError, "deadline exceeded"),
        ({"retry_after_max": 10}, lambda: _unavailable("120"), "longer than retry_after_max"),
    ],
    ids=["deadline", "retry-after"],
)
def test_every_way_of_giving_up_is_heard(
    clock: ManualClock,
    heard: list[RetryEvent],
    options: dict[str, Any],
    error: Callable[[], BaseException],
    reason: str,
) -> None:
    """A deadline or a too-long Retry-After ends the retries with an exhausted event."""
    policy = retry(attempts=10, jitter="none", name="rates", clock=clock, **options)
    with pytest.raises(Exception):  # noqa: B017 - which one depends on the case
        policy.call(failing(50, error))
    assert heard[-1].exhausted is True
    assert reason in str(heard[-1].reason)
    assert [e.exhausted for e in heard].count(True) == 1


def test_client_errors_are_not_heard(clock: ManualClock, heard: list[RetryEvent]) -> None:
    """An error that is never retried is neither a retry nor a give-up."""
    with pytest.raises(ValidationError):
        retry(clock=clock).call(failing(1, lambda: ValidationError("bad email")))
    assert heard == []


def _decorated(clock: ManualClock) -> str:
    return retry(clock=clock, name="form")(failing(1))()


def _called(clock: ManualClock) -> str:
    return retry(clock=clock, name="form").call(failing(1))


def _block(clock: ManualClock) -> str:
    fn = failing(1)
    for attempt in retry(clock=clock, name="form"):
        with attempt:
            return fn()
    return "unreachable"


def _async_decorated(clock: ManualClock) -> str:
    fn = failing(1)

    async def call() -> str:
        return fn()

    return asyncio.run(retry(clock=clock, name="form")(call)())


def _async_block(clock: ManualClock) -> str:
    fn = failing(1)

    async def run() -> str:
        async for attempt in retry(clock=clock, name="form"):
            with attempt:
                return fn()
        return "unreachable"

    return asyncio.run(run())


@pytest.mark.parametrize(
    "form",
    [_decorated, _called, _block, _async_decorated, _async_block],
    ids=["decorator", "call", "block", "async-decorator", "async-block"],
)
def test_every_form_of_retry_is_heard(
    clock: ManualClock, heard: list[RetryEvent], form: Callable[[ManualClock], str]
) -> None:
    """Decorator, call and block forms, sync and async, all reach the listeners."""
    assert form(clock) == "ok"
    assert _summary(heard) == [("form", 1, heard[0].wait, False)]


def test_a_hook_that_is_also_a_listener_is_called_once(
    clock: ManualClock, heard: list[RetryEvent]
) -> None:
    """Passing a subscribed listener as on_retry too does not double its events."""
    retry(clock=clock, on_retry=heard.append, name="once").call(failing(1))
    assert len(heard) == 1


def test_subscribing_twice_subscribes_once(clock: ManualClock) -> None:
    """The same callable added twice hears each event once; removed, it hears nothing."""
    events: list[RetryEvent] = []
    add_retry_listener(events.append)
    add_retry_listener(events.append)
    try:
        retry(clock=clock).call(failing(1))
        assert len(events) == 1
    finally:
        remove_retry_listener(events.append)
    retry(clock=clock).call(failing(1))
    assert len(events) == 1


def test_removing_an_unknown_listener_is_harmless() -> None:
    """remove_retry_listener of something never added does nothing."""
    remove_retry_listener(print)


def test_a_listener_must_be_callable() -> None:
    """A non-callable listener is refused with what to pass instead."""
    with pytest.raises(TypeError, match=r"callable\(RetryEvent\)"):
        add_retry_listener("metrics")  # type: ignore[arg-type]


def test_a_failing_listener_never_breaks_the_retry(clock: ManualClock) -> None:
    """A listener that raises is counted; the call still retries and returns."""

    def broken(event: RetryEvent) -> None:
        raise RuntimeError("listener bug")

    _guard.set_strict(False)
    add_retry_listener(broken)
    try:
        before = _guard.internal_error_counts().get("retry.listener", 0)
        assert retry(clock=clock).call(failing(1)) == "ok"
        assert _guard.internal_error_counts()["retry.listener"] == before + 1
    finally:
        remove_retry_listener(broken)


@pytest.mark.parametrize("spelling", ["operation", "name"])
def test_one_operation_name_in_events_logs_metrics_and_reports(
    clock: ManualClock,
    heard: list[RetryEvent],
    caplog: pytest.LogCaptureFixture,
    reports: Any,
    spelling: str,
) -> None:
    """operation= (or its older spelling name=) is the one name everywhere."""
    from errorkit.observe.metrics import Metrics

    metrics = Metrics(capture_stats=lambda: None)
    caplog.set_level(logging.WARNING, logger="errorkit.retry")
    policy = retry(
        attempts=2,
        jitter="none",
        clock=clock,
        on_retry=metrics.on_retry,
        **{spelling: "rates.fetch"},
    )
    assert policy.operation == "rates.fetch"
    with pytest.raises(ConnectionError):
        policy.call(failing(5))
    assert {e.operation for e in heard} == {"rates.fetch"}
    assert {getattr(r, "operation", None) for r in caplog.records} == {"rates.fetch"}
    assert [ctx["extra"]["operation"] for _, ctx in reports] == ["rates.fetch"]
    sample = metrics.registry.get_sample_value
    assert sample("errorkit_retries_total", {"operation": "rates.fetch"}) == 1


def test_operation_and_name_given_differently_is_refused() -> None:
    with pytest.raises(TypeError, match="pass only operation="):
        retry(operation="rates", name="other")
    assert retry(operation="rates", name="rates").operation == "rates"
    with pytest.raises(TypeError, match="non-empty string"):
        retry(operation="")


def test_with_error_recovery_names_its_retries_service_dot_operation(
    clock: ManualClock, heard: list[RetryEvent]
) -> None:
    from errorkit.resilience import with_error_recovery

    @with_error_recovery("gcs", "upload", max_retries=1, capture=False, clock=clock)
    def upload() -> None:
        raise ConnectionError

    with pytest.raises(ConnectionError):
        upload()
    assert {e.operation for e in heard} == {"gcs.upload"}
