"""with_error_recovery(): retry + breaker + fallback + capture, as the Flask plan uses it."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from tests.resilience._support import Reports

import errorkit
from errorkit.resilience import (
    CircuitBreaker,
    CircuitState,
    ManualClock,
    get_breaker,
    with_error_recovery,
)


class Upstream:
    """A dependency that fails ``failures`` times with ``error``, then answers."""

    def __init__(self, failures: int, error: type[Exception] = errorkit.ExternalServiceError):
        self.failures = failures
        self.error = error
        self.calls = 0

    def __call__(self, *args: Any) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error()
        return f"ok {args}"


@pytest.fixture
def breaker(clock: ManualClock) -> CircuitBreaker:
    return CircuitBreaker("stripe", failure_threshold=5, recovery_timeout=60, clock=clock)


def test_transient_failures_are_retried_and_counted_by_the_breaker(
    breaker: CircuitBreaker, clock: ManualClock, reports: Reports
) -> None:
    """Two failures then success: the caller gets the value; nothing is reported."""
    upstream = Upstream(2)
    create = with_error_recovery(
        "stripe", "create_session", max_retries=3, breaker=breaker, clock=clock
    )(upstream)
    assert create(100, "eur") == "ok (100, 'eur')"
    assert upstream.calls == 3
    assert len(clock.sleeps) == 2
    assert reports == []
    assert breaker.status().failures == 0  # the success reset the count


def test_when_retries_run_out_the_error_propagates_and_is_reported_once(
    breaker: CircuitBreaker, clock: ManualClock, reports: Reports
) -> None:
    """No fallback: the last error reaches the caller and capture, with the attempts."""
    upstream = Upstream(10)
    create = with_error_recovery(
        "stripe", "create_session", max_retries=2, breaker=breaker, clock=clock
    )(upstream)
    with pytest.raises(errorkit.ExternalServiceError) as caught:
        create()
    assert upstream.calls == 3
    assert len(reports) == 1
    exc, ctx = reports[0]
    assert exc is caught.value
    assert ctx["extra"] == {
        "service": "stripe",
        "operation": "create_session",
        "attempts": 3,
        "fallback": None,
    }
    assert breaker.status().failures == 3


def test_the_fallback_answers_with_the_same_arguments(
    breaker: CircuitBreaker, clock: ManualClock, reports: Reports
) -> None:
    """After the retries the fallback is called like the function; the failure is still
    reported, naming the fallback."""

    def local_storage_fallback(path: str, content: bytes) -> str:
        return f"local:{path}:{len(content)}"

    @with_error_recovery(
        "gcs",
        "upload",
        max_retries=2,
        fallback=local_storage_fallback,
        breaker=breaker,
        clock=clock,
    )
    def upload_video(path: str, content: bytes) -> str:
        raise errorkit.StorageError(retriable=True)

    assert upload_video("a.mp4", b"1234") == "local:a.mp4:4"
    assert len(reports) == 1
    assert reports[0][1]["extra"]["fallback"].endswith("<locals>.local_storage_fallback")


def test_an_open_breaker_skips_the_call_and_is_not_reported_again(
    breaker: CircuitBreaker, clock: ManualClock, reports: Reports
) -> None:
    """Once open: no call, no retry, no new report; the fallback answers or 503 is raised."""
    upstream = Upstream(100)
    call = with_error_recovery("stripe", max_retries=0, breaker=breaker, clock=clock)(upstream)
    for _ in range(5):
        with pytest.raises(errorkit.ExternalServiceError):
            call()
    assert breaker.state is CircuitState.OPEN
    reports.clear()
    with pytest.raises(errorkit.CircuitOpenError):
        call()
    guarded = with_error_recovery(
        "stripe", max_retries=3, breaker=breaker, fallback=lambda: "cached", clock=clock
    )(upstream)
    assert guarded() == "cached"
    assert upstream.calls == 5
    assert reports == []
    assert clock.sleeps == []


def test_client_errors_pass_straight_through(
    breaker: CircuitBreaker, clock: ManualClock, reports: Reports
) -> None:
    """A 4xx is not retried, not handed to the fallback, not counted, not reported."""
    upstream = Upstream(1, errorkit.PaymentRequiredError)
    call = with_error_recovery(
        "stripe", max_retries=3, breaker=breaker, fallback=lambda: "cached", clock=clock
    )(upstream)
    with pytest.raises(errorkit.PaymentRequiredError):
        call()
    assert (upstream.calls, reports, breaker.status().failures) == (1, [], 0)


def test_a_breaker_opening_mid_retries_stops_them_and_reports_the_real_cause(
    clock: ManualClock, reports: Reports
) -> None:
    """When the attempts open the breaker, retrying stops; capture gets the upstream error,
    not the CircuitOpenError, and the fallback answers."""
    breaker = CircuitBreaker("llm", failure_threshold=2, clock=clock)
    upstream = Upstream(10, errorkit.LLMAPIError)
    call = with_error_recovery(
        "llm", max_retries=5, breaker=breaker, fallback=lambda: "canned", clock=clock
    )(upstream)
    assert call() == "canned"
    assert upstream.calls == 2
    assert [type(exc).__name__ for exc, _ in reports] == ["LLMAPIError"]
    assert reports[0][1]["extra"]["attempts"] == 2


async def test_async_functions_get_the_same_recovery(
    breaker: CircuitBreaker, clock: ManualClock, reports: Reports
) -> None:
    """On async def: retries await the clock, the breaker counts, the fallback may be async."""
    calls = 0

    async def cached(user: str) -> str:
        return f"cached {user}"

    @with_error_recovery("profiles", max_retries=1, fallback=cached, breaker=breaker, clock=clock)
    async def profile(user: str) -> str:
        nonlocal calls
        calls += 1
        raise errorkit.UpstreamTimeoutError()

    assert await profile("ada") == "cached ada"
    assert calls == 2
    assert len(reports) == 1
    assert breaker.status().failures == 2


async def test_a_timeout_limits_each_attempt(clock: ManualClock, reports: Reports) -> None:
    """timeout= turns a hanging attempt into OperationTimeoutError, which is retried."""
    breaker = CircuitBreaker("slow", clock=clock)

    @with_error_recovery(
        "slow",
        "fetch",
        max_retries=1,
        timeout=0.05,
        breaker=breaker,
        clock=clock,
        fallback=lambda: "late",
    )
    async def fetch() -> str:
        await asyncio.Event().wait()
        return "never"

    assert await fetch() == "late"
    assert isinstance(reports[0][0], errorkit.OperationTimeoutError)
    assert reports[0][0].details["operation"] == "slow.fetch"


def test_the_default_breaker_is_the_services_in_the_registry(clock: ManualClock) -> None:
    """Without breaker=, every operation of a service shares circuit_breaker(service)."""
    first = with_error_recovery("mailer", "send", clock=clock)(lambda: "sent")
    second = with_error_recovery("mailer", "bounce", clock=clock)(lambda: "ok")
    assert (first(), second()) == ("sent", "ok")
    assert get_breaker("mailer").status().state is CircuitState.CLOSED


def test_concurrent_calls_keep_their_own_attempts(clock: ManualClock) -> None:
    """Threads through one decorated function each get their own retries."""
    breaker = CircuitBreaker("x", failure_threshold=100, clock=clock)
    gate = threading.Barrier(3)
    seen: dict[int, int] = {}
    lock = threading.Lock()

    @with_error_recovery("x", max_retries=2, breaker=breaker, clock=clock)
    def work(key: int) -> int:
        with lock:
            seen[key] = seen.get(key, 0) + 1
            first = seen[key] == 1
        if first:
            gate.wait(timeout=30)
            raise errorkit.NetworkError()
        return seen[key]

    results: list[int] = []
    threads = [threading.Thread(target=lambda k=k: results.append(work(k))) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(results) == [2, 2, 2]


@pytest.mark.parametrize(
    ("options", "error", "fix"),
    [
        ({"max_retries": -1}, ValueError, ">= 0"),
        ({"fallback": "cached"}, TypeError, "callable"),
        ({"retry_on": "errors"}, TypeError, "exception class"),
    ],
)
def test_bad_arguments_say_the_fix(
    options: dict[str, Any], error: type[Exception], fix: str
) -> None:
    """Invalid arguments are refused when the decorator is built."""
    with pytest.raises(error, match=fix):
        with_error_recovery("svc", **options)


class PaymentsDownError(errorkit.ServiceUnavailableError):
    code = "TEST_PAYMENTS_DOWN"


def test_an_open_breakers_open_error_is_raised_and_not_retried(
    clock: ManualClock, reports: Reports
) -> None:
    """with_error_recovery treats the refusal as an open circuit (not retried, not reported
    again), then raises the breaker's open_error instead of CircuitOpenError."""
    guard = CircuitBreaker(
        "payments", failure_threshold=1, open_error=PaymentsDownError, clock=clock
    )
    upstream = Upstream(failures=99)
    protected = with_error_recovery(
        "payments", "charge", max_retries=3, breaker=guard, clock=clock
    )(upstream)
    with pytest.raises(PaymentsDownError):
        protected()  # attempt 1 fails and opens the breaker; attempt 2 is refused
    assert (upstream.calls, len(clock.sleeps), len(reports)) == (1, 1, 1)
    with pytest.raises(PaymentsDownError) as caught:
        protected()  # refused at once: no call, no wait, nothing new reported
    assert isinstance(caught.value.__cause__, errorkit.CircuitOpenError)
    assert (upstream.calls, len(clock.sleeps), len(reports)) == (1, 1, 1)


# --- the client may act is not the server may repeat ------------------------------------------


class CardDeclined(errorkit.PaymentRequiredError):
    """The 004 plan's declined card: the *client* can recover (try another card)."""

    code = "PAYMENT_CARD_DECLINED"
    message = "The card was declined."
    retriable = True  # "the client may try again", as the plan's recoverable=True


def test_a_declined_payment_is_sent_once_not_counted_and_never_replaced_by_the_fallback(
    breaker: CircuitBreaker, clock: ManualClock, reports: Reports
) -> None:
    """A 402 that says the client may retry is still an answer: one call to the provider,
    no breaker failure, no offline fallback, and the 402 reaches the caller."""
    upstream = Upstream(10, CardDeclined)
    offline: list[Any] = []
    create = with_error_recovery(
        "stripe",
        "create_session",
        max_retries=3,
        breaker=breaker,
        fallback=lambda *args: offline.append(args),
        clock=clock,
    )(upstream)
    with pytest.raises(CardDeclined):
        create(100, "eur")
    assert upstream.calls == 1
    assert clock.sleeps == []
    assert offline == []
    assert breaker.status().failures == 0


def test_a_client_error_named_in_retry_on_is_retried(
    breaker: CircuitBreaker, clock: ManualClock
) -> None:
    upstream = Upstream(1, CardDeclined)
    create = with_error_recovery(
        "stripe", "create_session", retry_on=CardDeclined, breaker=breaker, clock=clock
    )(upstream)
    assert create() == "ok ()"
    assert upstream.calls == 2


def test_a_non_idempotent_operation_retries_only_what_was_never_sent(
    breaker: CircuitBreaker, clock: ManualClock
) -> None:
    """idempotent=False: a refused connection is retried; a read timeout (the charge may have
    gone through) is not, although both are retriable for an idempotent call."""
    refused = Upstream(1, ConnectionRefusedError)
    charge = with_error_recovery(
        "stripe", "charge", idempotent=False, breaker=breaker, clock=clock
    )(refused)
    assert charge() == "ok ()"
    assert refused.calls == 2

    timed_out = Upstream(1, errorkit.UpstreamTimeoutError)
    charge = with_error_recovery(
        "stripe", "charge", idempotent=False, breaker=breaker, clock=clock
    )(timed_out)
    with pytest.raises(errorkit.UpstreamTimeoutError):
        charge()
    assert timed_out.calls == 1
