"""retry(): what is retried, how long it waits, what happens when it gives up."""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.resilience._support import Reports

import errorkit
from errorkit import _guard
from errorkit.resilience import ManualClock, RetryEvent, no_waits, retry, set_testing


def failing(times: int, error: Callable[[], BaseException], value: Any = "ok") -> Callable[[], Any]:
    """A function that raises ``error()`` ``times`` times, then returns ``value``."""
    calls = {"n": 0}

    def fn() -> Any:
        calls["n"] += 1
        if calls["n"] <= times:
            raise error()
        return value

    fn.calls = calls  # type: ignore[attr-defined]
    return fn


def http_error(status: int, headers: dict[str, str] | None = None) -> httpx.HTTPStatusError:
    request = httpx.Request("GET", "https://api.example.com/rates")
    response = httpx.Response(status, headers=headers, request=request)
    return httpx.HTTPStatusError(f"{status}", request=request, response=response)


def test_success_on_first_call_never_waits(clock: ManualClock) -> None:
    """A call that succeeds returns its value and sleeps not at all."""
    fn = failing(0, ConnectionError)
    assert retry(clock=clock)(fn)() == "ok"
    assert clock.sleeps == []


def test_transient_errors_are_retried_with_exponential_backoff(clock: ManualClock) -> None:
    """Retriable errors are retried; waits grow by the multiplier up to the cap."""
    fn = failing(4, ConnectionError)
    policy = retry(attempts=5, wait_initial=1, wait_multiplier=3, wait_max=10, jitter="none")
    assert (
        retry(
            attempts=5, wait_initial=1, wait_multiplier=3, wait_max=10, jitter="none", clock=clock
        )(fn)()
        == "ok"
    )
    assert clock.sleeps == [1, 3, 9, 10]
    assert [policy.backoff(n) for n in (1, 2, 3, 4)] == [1, 3, 9, 10]


@pytest.mark.parametrize(
    "error",
    [
        lambda: errorkit.ValidationError(field="email", reason="not an email"),
        lambda: errorkit.NotFoundError(),
        lambda: errorkit.AuthenticationError(),
        lambda: errorkit.AuthorizationError(),
        lambda: errorkit.ConflictError(),
        lambda: errorkit.PayloadTooLargeError(),
        lambda: http_error(400),
        lambda: http_error(401),
        lambda: http_error(404),
        lambda: http_error(422),
    ],
    ids=["422", "404", "401", "403", "409", "413", "http-400", "http-401", "http-404", "http-422"],
)
def test_client_errors_are_never_retried_by_default(
    clock: ManualClock, reports: Reports, error: Callable[[], BaseException]
) -> None:
    """A 4xx-class error propagates after one call, without waiting or being reported."""
    fn = failing(1, error)
    with pytest.raises(Exception) as caught:
        retry(attempts=5, clock=clock)(fn)()
    assert not errorkit.classify(caught.value).retriable
    assert fn.calls["n"] == 1  # type: ignore[attr-defined]
    assert clock.sleeps == []
    assert reports == []


def test_errors_classification_does_not_call_retriable_are_not_retried(
    clock: ManualClock,
) -> None:
    """An unknown error (a bug) is not retried by default: retrying a bug repeats it."""
    fn = failing(1, lambda: ValueError("bad state"))
    with pytest.raises(ValueError, match="bad state"):
        retry(attempts=5, clock=clock)(fn)()
    assert fn.calls["n"] == 1  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("error", "retry_after"),
    [
        (lambda: errorkit.RateLimitError(retry_after=7), 7),
        (lambda: errorkit.ServiceUnavailableError(retry_after=3), 3),
        (lambda: http_error(429, {"Retry-After": "12"}), 12),
        (lambda: http_error(503, {"Retry-After": "4"}), 4),
        (lambda: errorkit.UpstreamRateLimitedError(retry_after=2.5), 2.5),
    ],
    ids=["429", "503", "http-429", "http-503", "upstream-429"],
)
def test_waits_at_least_retry_after(
    clock: ManualClock, error: Callable[[], BaseException], retry_after: float
) -> None:
    """429 and 503 are retried, never sooner than the Retry-After they carry."""
    fn = failing(2, error)
    assert retry(attempts=3, wait_initial=0.1, clock=clock)(fn)() == "ok"
    assert len(clock.sleeps) == 2
    assert all(wait >= retry_after for wait in clock.sleeps)


def test_a_retry_after_beyond_the_maximum_ends_the_retries(
    clock: ManualClock, reports: Reports
) -> None:
    """A Retry-After longer than retry_after_max propagates the error instead of waiting."""
    fn = failing(1, lambda: errorkit.RateLimitError(retry_after=3600))
    with pytest.raises(errorkit.RateLimitError):
        retry(attempts=3, retry_after_max=60, clock=clock)(fn)()
    assert clock.sleeps == []
    assert [ctx["extra"]["attempts"] for _, ctx in reports] == [1]


def test_when_attempts_run_out_the_last_error_propagates_unchanged(
    clock: ManualClock, reports: Reports
) -> None:
    """The caller gets the very last error object, with its cause chain, not a wrapper."""
    raised: list[BaseException] = []

    def fetch() -> None:
        try:
            raise ConnectionResetError("peer reset")
        except ConnectionResetError as low:
            exc = errorkit.NetworkError(f"attempt {len(raised) + 1}")
            raised.append(exc)
            raise exc from low

    with pytest.raises(errorkit.NetworkError) as caught:
        retry(attempts=3, clock=clock)(fetch)()
    assert caught.value is raised[-1]
    assert isinstance(caught.value.__cause__, ConnectionResetError)
    assert caught.value.__traceback__ is not None
    assert any(frame.name == "fetch" for frame in _frames(caught.value))


def _frames(exc: BaseException) -> list[Any]:
    import traceback

    return list(traceback.extract_tb(exc.__traceback__))


def test_giving_up_reports_the_error_once_with_the_attempts(
    clock: ManualClock, reports: Reports
) -> None:
    """The final error reaches capture once, with attempts, operation and error type."""
    fn = failing(5, lambda: errorkit.DatabaseUnavailableError())
    with pytest.raises(errorkit.DatabaseUnavailableError) as caught:
        retry(attempts=3, name="orders.load", clock=clock)(fn)()
    assert len(reports) == 1
    exc, ctx = reports[0]
    assert exc is caught.value
    assert ctx["extra"] == {"attempts": 3, "operation": "orders.load"}
    assert ctx["error_type"] == "database_error"
    assert ctx["error_id"] == caught.value.error_id


def test_capture_false_reports_nothing(clock: ManualClock, reports: Reports) -> None:
    """capture=False leaves reporting to the caller."""
    fn = failing(5, ConnectionError)
    with pytest.raises(ConnectionError):
        retry(attempts=2, capture=False, clock=clock)(fn)()
    assert reports == []


def test_on_types_replace_the_default_decision(clock: ManualClock) -> None:
    """on=(types,) retries those types (even if not retriable) and nothing else."""
    fn = failing(2, lambda: KeyError("warming up"))
    assert retry(on=KeyError, attempts=3, clock=clock)(fn)() == "ok"
    other = failing(1, ConnectionError)
    with pytest.raises(ConnectionError):
        retry(on=(KeyError, LookupError), attempts=3, clock=clock)(other)()
    assert other.calls["n"] == 1  # type: ignore[attr-defined]


def test_on_predicate_decides_and_may_choose_the_wait(clock: ManualClock) -> None:
    """on=callable returns True/False, or the seconds to wait before the next attempt."""
    fn = failing(2, lambda: RuntimeError("busy"))
    verdicts: list[BaseException] = []

    def decide(exc: BaseException) -> float:
        verdicts.append(exc)
        return 1.5

    assert retry(on=decide, attempts=3, clock=clock)(fn)() == "ok"
    assert clock.sleeps == [1.5, 1.5]
    no = failing(1, lambda: RuntimeError("fatal"))
    with pytest.raises(RuntimeError, match="fatal"):
        retry(on=lambda exc: "busy" in str(exc), clock=clock)(no)()


def test_deadline_stops_before_a_wait_that_would_pass_it(
    clock: ManualClock, reports: Reports
) -> None:
    """With a total deadline, a wait that would end past it ends the retries instead."""
    fn = failing(10, ConnectionError)
    with pytest.raises(ConnectionError):
        retry(
            attempts=None,
            deadline=5,
            wait_initial=1,
            wait_multiplier=2,
            jitter="none",
            clock=clock,
        )(fn)()
    assert clock.sleeps == [1, 2]  # the next wait (4s) would end at 7s > 5s
    assert reports[0][1]["extra"]["attempts"] == 3


@given(attempt=st.integers(1, 40), initial=st.floats(0, 10), cap=st.floats(0, 100))
def test_full_jitter_stays_between_zero_and_the_backoff(
    attempt: int, initial: float, cap: float
) -> None:
    """Full jitter waits anywhere in [0, backoff]; equal jitter in [backoff/2, backoff]."""
    base = min(cap, initial * 2.0 ** (attempt - 1))
    full = retry(wait_initial=initial, wait_max=cap, jitter="full", rng=random.Random(attempt))
    equal = retry(wait_initial=initial, wait_max=cap, jitter="equal", rng=random.Random(attempt))
    assert 0 <= full.backoff(attempt) <= base
    assert base / 2 <= equal.backoff(attempt) <= base


def test_each_retry_calls_the_hook_and_logs_one_line(
    clock: ManualClock, retry_logs: pytest.LogCaptureFixture
) -> None:
    """on_retry gets a RetryEvent per retry, and errorkit.retry logs one structured line."""
    events: list[RetryEvent] = []
    fn = failing(2, lambda: errorkit.NetworkError("password=hunter2 leaked"))
    retry(attempts=3, jitter="none", on_retry=events.append, name="rates", clock=clock)(fn)()
    assert [(e.operation, e.attempt, e.wait, e.code) for e in events] == [
        ("rates", 1, 0.1, "NETWORK_ERROR"),
        ("rates", 2, 0.2, "NETWORK_ERROR"),
    ]
    lines = [r for r in retry_logs.records if r.name == "errorkit.retry"]
    assert len(lines) == 2
    record: Any = lines[0]
    assert (record.operation, record.attempt, record.max_attempts, record.wait) == (
        "rates",
        1,
        3,
        0.1,
    )
    assert record.error_code == "NETWORK_ERROR"
    assert "hunter2" not in record.error_message
    assert "hunter2" not in record.getMessage()


def test_a_failing_hook_never_breaks_the_call(clock: ManualClock) -> None:
    """A hook that raises is counted as an internal error; the call still retries."""

    def broken(event: RetryEvent) -> None:
        raise RuntimeError("hook bug")

    _guard.set_strict(False)
    before = _guard.internal_error_counts().get("retry.on_retry", 0)
    assert retry(on_retry=broken, clock=clock)(failing(1, ConnectionError))() == "ok"
    assert _guard.internal_error_counts()["retry.on_retry"] == before + 1


def test_testing_mode_turns_waits_off_and_can_cap_attempts(clock: ManualClock) -> None:
    """set_testing(True) skips every wait; attempts=1 also skips every retry."""
    set_testing(True)
    assert retry(attempts=3, clock=clock)(failing(2, ConnectionError))() == "ok"
    assert clock.sleeps == []
    with no_waits(attempts=1):
        fn = failing(1, ConnectionError)
        with pytest.raises(ConnectionError):
            retry(attempts=3, clock=clock)(fn)()
        assert fn.calls["n"] == 1  # type: ignore[attr-defined]


def test_testing_mode_log_lines_say_the_wait_was_skipped(
    clock: ManualClock, retry_logs: pytest.LogCaptureFixture
) -> None:
    """Under no_waits() nothing sleeps, so the retry line must not claim "retrying in 0.1s"."""
    with no_waits():
        retry(attempts=2, jitter="none", name="rates", clock=clock)(failing(1, ConnectionError))()
    (record,) = [r for r in retry_logs.records if r.name == "errorkit.retry"]
    message = record.getMessage()
    assert "retrying rates now" in message
    assert "skipped" in message
    assert " in 0.100s" not in message
    assert record.wait_skipped is True  # type: ignore[attr-defined]
    assert clock.sleeps == []
    retry_logs.clear()
    retry(attempts=2, jitter="none", name="rates", clock=clock)(failing(1, ConnectionError))()
    (record,) = [r for r in retry_logs.records if r.name == "errorkit.retry"]
    assert "retrying rates in 0.100s" in record.getMessage()
    assert record.wait_skipped is False  # type: ignore[attr-defined]


async def test_async_functions_are_retried(clock: ManualClock) -> None:
    """@retry on an async def awaits each attempt and sleeps on the clock between."""
    calls = 0

    @retry(attempts=3, jitter="none", clock=clock)
    async def fetch() -> str:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise TimeoutError
        return "ok"

    assert await fetch() == "ok"
    assert clock.sleeps == [0.1, 0.2]


async def test_concurrent_async_calls_keep_their_own_attempts(clock: ManualClock) -> None:
    """Two interleaved calls of one decorated function count attempts separately."""
    events: list[RetryEvent] = []
    plans = {"a": 2, "b": 1}
    seen = {"a": 0, "b": 0}

    @retry(attempts=3, on_retry=events.append, clock=clock)
    async def work(key: str) -> str:
        seen[key] += 1
        await asyncio.sleep(0)
        if seen[key] <= plans[key]:
            raise ConnectionError(key)
        return key

    assert await asyncio.gather(work("a"), work("b")) == ["a", "b"]
    by_call = {key: [e.attempt for e in events if str(e.error) == key] for key in plans}
    assert by_call == {"a": [1, 2], "b": [1]}


def test_concurrent_threads_keep_their_own_attempts(clock: ManualClock) -> None:
    """Threads calling one decorated function never share an attempt counter."""
    barrier = threading.Barrier(4)
    results: list[int] = []
    lock = threading.Lock()

    @retry(attempts=3, clock=clock)
    def work(state: dict[str, int]) -> int:
        state["n"] += 1
        if state["n"] == 1:
            barrier.wait(timeout=10)  # all four fail their first attempt together
            raise ConnectionError
        return state["n"]

    def run() -> None:
        value = work({"n": 0})
        with lock:
            results.append(value)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert results == [2, 2, 2, 2]


async def test_cancellation_is_never_retried(clock: ManualClock) -> None:
    """CancelledError (a BaseException) propagates at once."""
    calls = 0

    @retry(attempts=5, clock=clock)
    async def work() -> None:
        nonlocal calls
        calls += 1
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await work()
    assert calls == 1


def test_call_form_runs_one_call_with_arguments(clock: ManualClock) -> None:
    """retry(...).call(fn, *args, **kwargs) retries that one call."""
    fn = failing(1, ConnectionError, value="x")
    assert retry(clock=clock).call(lambda a, b=0: (fn(), a, b), 1, b=2) == ("x", 1, 2)


async def test_call_async_form(clock: ManualClock) -> None:
    """await retry(...).call_async(fn, *args) retries one async call."""
    seen: list[int] = []

    async def fetch(n: int) -> int:
        seen.append(n)
        if len(seen) < 2:
            raise TimeoutError
        return n

    assert await retry(clock=clock).call_async(fetch, 7) == 7
    assert seen == [7, 7]


def test_attempt_blocks_retry_the_block(clock: ManualClock) -> None:
    """for attempt in retry(...): with attempt: ... reruns the block until it succeeds."""
    fn = failing(2, ConnectionError)
    numbers = []
    for attempt in retry(attempts=3, clock=clock):
        with attempt:
            numbers.append(attempt.number)
            fn()
    assert numbers == [1, 2, 3]
    assert len(clock.sleeps) == 2


def test_attempt_blocks_propagate_the_last_error(clock: ManualClock) -> None:
    """When the block's attempts run out its last error leaves the loop."""
    fn = failing(5, ConnectionError)

    def block() -> None:
        for attempt in retry(attempts=2, clock=clock):
            with attempt:
                fn()

    with pytest.raises(ConnectionError):
        block()
    assert fn.calls["n"] == 2  # type: ignore[attr-defined]


async def test_async_attempt_blocks(clock: ManualClock) -> None:
    """async for attempt in retry(...) waits on the clock between attempts."""
    fn = failing(1, TimeoutError)
    async for attempt in retry(attempts=3, jitter="none", clock=clock):
        with attempt:
            fn()
    assert clock.sleeps == [0.1]


def test_an_attempt_used_without_with_says_how(clock: ManualClock) -> None:
    """Iterating without `with attempt:` fails with a message showing the right form."""
    with pytest.raises(RuntimeError, match="with attempt"):
        for _attempt in retry(clock=clock):
            pass


@pytest.mark.parametrize(
    ("options", "error", "fix"),
    [
        ({"attempts": 0}, ValueError, "whole number >= 1"),
        ({"attempts": None}, ValueError, "deadline="),
        ({"jitter": "random"}, ValueError, "'none', 'full' or 'equal'"),
        ({"wait_multiplier": 0.5}, ValueError, ">= 1"),
        ({"wait_initial": -1}, ValueError, ">= 0"),
        ({"deadline": "5s"}, TypeError, "number or a timedelta"),
        ({"on": "ConnectionError"}, TypeError, "exception class"),
        ({"on_retry": 3}, TypeError, "callable"),
    ],
)
def test_bad_options_say_the_fix(options: dict[str, Any], error: type[Exception], fix: str) -> None:
    """Each invalid option is refused when the policy is built, naming what to pass."""
    with pytest.raises(error, match=fix.replace("(", r"\(").replace(")", r"\)")):
        retry(**options)


def test_generator_functions_are_refused() -> None:
    """A generator's body runs while iterated, so retrying its call would retry nothing."""

    def rows() -> Any:
        yield 1

    with pytest.raises(TypeError, match="generator function"):
        retry(rows)


class _Declined(errorkit.PaymentRequiredError):
    code = "PAYMENT_DECLINED_FOR_RETRY_TEST"
    retriable = True  # advice for the client, not for the server


@pytest.mark.parametrize("status", [400, 401, 402, 403, 404, 409, 422])
def test_a_client_error_is_not_retried_even_when_marked_retriable(
    clock: ManualClock, status: int
) -> None:
    fn = failing(1, lambda: errorkit.AppError("no", status=status, retriable=True))
    with pytest.raises(errorkit.AppError):
        retry(attempts=4, clock=clock)(fn)()
    assert fn.calls["n"] == 1  # type: ignore[attr-defined]


@pytest.mark.parametrize("status", [408, 429])
def test_timeout_and_rate_limit_client_errors_are_retried(clock: ManualClock, status: int) -> None:
    fn = failing(1, lambda: http_error(status))
    assert retry(attempts=3, clock=clock)(fn)() == "ok"
    assert fn.calls["n"] == 2  # type: ignore[attr-defined]


def test_a_client_error_class_named_in_on_is_retried(clock: ManualClock) -> None:
    fn = failing(2, _Declined)
    assert retry(attempts=3, on=_Declined, clock=clock)(fn)() == "ok"
    with pytest.raises(_Declined):
        retry(attempts=3, clock=clock)(failing(2, _Declined))()


def test_idempotent_false_retries_only_failures_before_sending(clock: ManualClock) -> None:
    request = httpx.Request("POST", "https://api.example.com/charges")
    connect = failing(1, lambda: httpx.ConnectError("refused", request=request))
    assert retry(idempotent=False, clock=clock)(connect)() == "ok"
    read = failing(1, lambda: httpx.ReadTimeout("slow", request=request))
    with pytest.raises(httpx.ReadTimeout):
        retry(idempotent=False, clock=clock)(read)()
    assert read.calls["n"] == 1  # type: ignore[attr-defined]
    # Even a class named in on= is not repeated once the request may have been sent.
    with pytest.raises(httpx.ReadTimeout):
        retry(idempotent=False, on=httpx.ReadTimeout, clock=clock)(
            failing(1, lambda: httpx.ReadTimeout("slow", request=request))
        )()

    def wrapped() -> BaseException:  # errorkit's own error raised from the connect failure
        try:
            raise httpx.ConnectError("refused", request=request)
        except httpx.ConnectError as cause:
            try:
                raise errorkit.NetworkError() from cause
            except errorkit.NetworkError as exc:
                return exc

    assert retry(idempotent=False, clock=clock)(failing(1, wrapped))() == "ok"
    with pytest.raises(TypeError, match="idempotent"):
        retry(idempotent="no")  # type: ignore[call-overload]
