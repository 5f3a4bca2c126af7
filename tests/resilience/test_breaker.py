"""CircuitBreaker: when it opens, how it recovers, what it tells, on a manual clock."""

from __future__ import annotations

import asyncio
import logging
import pickle
import threading
from typing import Any

import pytest

import errorkit
from errorkit import _guard
from errorkit.resilience import (
    CircuitBreaker,
    CircuitState,
    ManualClock,
    circuit_breaker,
    default_registry,
)


def boom(exc: BaseException | None = None) -> Any:
    raise exc if exc is not None else errorkit.ServiceUnavailableError()


def trip(breaker: CircuitBreaker, times: int, exc: BaseException | None = None) -> None:
    for _ in range(times):
        with pytest.raises(Exception):  # noqa: B017 - the kind varies by caller
            breaker.call(boom, exc)


@pytest.fixture
def breaker(clock: ManualClock) -> CircuitBreaker:
    return CircuitBreaker("upstream", failure_threshold=3, recovery_timeout=30, clock=clock)


def test_consecutive_failures_open_the_breaker(breaker: CircuitBreaker) -> None:
    """failure_threshold counted failures in a row open it; calls are then refused."""
    trip(breaker, 2)
    assert breaker.state is CircuitState.CLOSED
    trip(breaker, 1)
    assert breaker.state is CircuitState.OPEN
    ran = []
    with pytest.raises(errorkit.CircuitOpenError):
        breaker.call(ran.append, 1)
    assert ran == []


def test_a_rejection_is_a_503_with_retry_after_set_to_the_time_left(
    breaker: CircuitBreaker, clock: ManualClock
) -> None:
    """CircuitOpenError answers 503 and Retry-After = seconds until the next probe."""
    trip(breaker, 3)
    clock.advance(12)
    with pytest.raises(errorkit.CircuitOpenError) as caught:
        breaker.call(lambda: None)
    error = caught.value
    assert (error.status, error.code, error.retry_after) == (503, "CIRCUIT_OPEN", 18)
    assert error.response_headers()["Retry-After"] == "18"
    assert error.details == {"service": "upstream"}
    assert errorkit.classify(error).retriable


def test_a_success_resets_the_consecutive_count(breaker: CircuitBreaker) -> None:
    """Failures must be consecutive: a success in between starts the count again."""
    trip(breaker, 2)
    breaker.call(lambda: None)
    trip(breaker, 2)
    assert breaker.state is CircuitState.CLOSED
    assert breaker.status().failures == 2


@pytest.mark.parametrize(
    "error",
    [errorkit.NotFoundError(), errorkit.ValidationError(field="x"), errorkit.ConflictError()],
    ids=["404", "422", "409"],
)
def test_client_errors_do_not_count(breaker: CircuitBreaker, error: Exception) -> None:
    """A 4xx means the dependency answered: it never opens the breaker."""
    trip(breaker, 10, error)
    assert breaker.state is CircuitState.CLOSED
    assert breaker.status().failures == 0


def test_failure_on_replaces_what_counts(clock: ManualClock) -> None:
    """failure_on=(types,) counts exactly those exceptions."""
    breaker = CircuitBreaker("x", failure_threshold=2, failure_on=KeyError, clock=clock)
    trip(breaker, 5)  # ServiceUnavailableError: not a KeyError
    assert breaker.state is CircuitState.CLOSED
    trip(breaker, 2, KeyError("k"))
    assert breaker.state is CircuitState.OPEN


class LLMAPIError(Exception):
    """The error a client library raises when the dependency itself failed."""


def test_with_failure_on_other_errors_do_not_reset_the_count(clock: ManualClock) -> None:
    """A local bug between two dependency failures is neutral: the count goes on."""
    breaker = CircuitBreaker("llm", failure_threshold=3, failure_on=LLMAPIError, clock=clock)
    trip(breaker, 2, LLMAPIError())
    trip(breaker, 1, KeyError("local bug"))
    assert breaker.status().failures == 2
    assert breaker.status().last_failure is not None
    assert breaker.status().last_failure.type.endswith("LLMAPIError")  # type: ignore[union-attr]
    trip(breaker, 1, LLMAPIError())
    assert breaker.state is CircuitState.OPEN


@pytest.mark.parametrize("how", ["call", "with", "permit"])
def test_a_probe_crashing_on_an_unrelated_error_keeps_it_half_open(
    clock: ManualClock, how: str
) -> None:
    """Neutral probe: the breaker stays half-open and the probe slot is free again."""
    breaker = CircuitBreaker("llm", failure_threshold=1, failure_on=LLMAPIError, clock=clock)
    trip(breaker, 1, LLMAPIError())
    clock.advance(30)

    def crash() -> None:
        if how == "call":
            breaker.call(boom, KeyError("bug"))
        elif how == "with":
            with breaker:
                boom(KeyError("bug"))
        else:
            permit = breaker.acquire()
            try:
                boom(KeyError("bug"))
            except KeyError as exc:
                permit.release(exc)
                raise

    with pytest.raises(KeyError):
        crash()
    status = breaker.status()
    assert (status.state, status.probes_in_flight) == (CircuitState.HALF_OPEN, 0)
    assert breaker.call(lambda: "next probe") == "next probe"  # the slot was given back
    assert breaker.state is CircuitState.CLOSED


async def test_a_neutral_async_probe_keeps_it_half_open(clock: ManualClock) -> None:
    breaker = CircuitBreaker("llm", failure_threshold=1, failure_on=LLMAPIError, clock=clock)
    trip(breaker, 1, LLMAPIError())
    clock.advance(30)

    async def bug() -> None:
        raise KeyError("bug")

    with pytest.raises(KeyError):
        await breaker.call_async(bug)
    with pytest.raises(KeyError):
        async with breaker:
            await bug()
    assert breaker.state is CircuitState.HALF_OPEN
    assert breaker.status().probes_in_flight == 0


@pytest.mark.parametrize(
    "ignore_on",
    [RuntimeError, (RuntimeError, LookupError), lambda exc: "local" in str(exc)],
    ids=["class", "tuple", "predicate"],
)
def test_ignore_on_makes_errors_neutral(clock: ManualClock, ignore_on: Any) -> None:
    """ignore_on wins over the default rule (a RuntimeError would count as a 500)."""
    breaker = CircuitBreaker("x", failure_threshold=2, ignore_on=ignore_on, clock=clock)
    trip(breaker, 1)
    trip(breaker, 3, RuntimeError("local"))
    assert (breaker.state, breaker.status().failures) == (CircuitState.CLOSED, 1)
    trip(breaker, 1)
    assert breaker.state is CircuitState.OPEN
    clock.advance(30)
    trip(breaker, 1, RuntimeError("local"))
    assert breaker.state is CircuitState.HALF_OPEN


def test_ignore_on_wins_over_failure_on_and_skips_the_fallback(clock: ManualClock) -> None:
    """An ignored error is raised as it is: no count, and no fallback answers for it."""
    breaker = CircuitBreaker(
        "x",
        failure_threshold=1,
        failure_on=Exception,
        ignore_on=ValueError,
        fallback=lambda *_: "cached",
        clock=clock,
    )
    with pytest.raises(ValueError, match="bad"):
        breaker.call(boom, ValueError("bad"))
    assert breaker.state is CircuitState.CLOSED
    assert breaker.call(boom, KeyError("k")) == "cached"
    assert breaker.state is CircuitState.OPEN


class LLMServiceUnavailableError(errorkit.ServiceUnavailableError):
    code = "TEST_LLM_UNAVAILABLE"


class PlainUnavailable(Exception):
    pass


def test_open_error_class_is_raised_when_open_with_retry_after(clock: ManualClock) -> None:
    """An errorkit class is made with retry_after; its cause is the CircuitOpenError."""
    breaker = CircuitBreaker(
        "llm", failure_threshold=1, open_error=LLMServiceUnavailableError, clock=clock
    )
    trip(breaker, 1)
    clock.advance(10)
    ran: list[int] = []
    with pytest.raises(LLMServiceUnavailableError) as caught:
        breaker.call(ran.append, 1)
    assert ran == []
    error = caught.value
    assert (error.status, error.code, error.retry_after) == (503, "TEST_LLM_UNAVAILABLE", 20)
    assert error.response_headers()["Retry-After"] == "20"
    assert isinstance(error.__cause__, errorkit.CircuitOpenError)
    assert error.__cause__.details == {"service": "llm"}
    with pytest.raises(LLMServiceUnavailableError):
        breaker.acquire()
    with pytest.raises(LLMServiceUnavailableError), breaker:
        pass


async def test_open_error_factory_gets_the_circuit_open_error(clock: ManualClock) -> None:
    """A factory is called with the CircuitOpenError; what it returns is raised (async too)."""
    seen: list[errorkit.CircuitOpenError] = []

    def make(rejection: errorkit.CircuitOpenError) -> Exception:
        seen.append(rejection)
        return PlainUnavailable(f"try again in {rejection.retry_after:g}s")

    breaker = CircuitBreaker("llm", failure_threshold=1, open_error=make, clock=clock)
    trip(breaker, 1)

    async def never() -> None:  # pragma: no cover - refused before it runs
        raise AssertionError

    with pytest.raises(PlainUnavailable, match="try again in 30s"):
        await breaker.call_async(never)
    assert seen[0].retry_after == 30
    with pytest.raises(PlainUnavailable):
        async with breaker:
            pass


def test_open_error_plain_class_gets_the_message(clock: ManualClock) -> None:
    breaker = CircuitBreaker("llm", failure_threshold=1, open_error=PlainUnavailable, clock=clock)
    trip(breaker, 1)
    with pytest.raises(PlainUnavailable, match=r"llm is unavailable \(circuit open\)"):
        breaker.call(lambda: None)


def test_open_error_that_returns_no_exception_says_so(clock: ManualClock) -> None:
    breaker = CircuitBreaker("llm", failure_threshold=1, open_error=lambda e: "nope", clock=clock)
    trip(breaker, 1)
    with pytest.raises(TypeError, match="must return the exception to raise"):
        breaker.call(lambda: None)


def test_after_the_recovery_timeout_a_probe_success_closes_it(
    breaker: CircuitBreaker, clock: ManualClock
) -> None:
    """Open -> half-open once recovery_timeout passed; a successful probe closes it."""
    trip(breaker, 3)
    clock.advance(30)
    assert breaker.call(lambda: "probe") == "probe"
    assert breaker.state is CircuitState.CLOSED


def test_success_threshold_needs_that_many_probes(clock: ManualClock) -> None:
    """With success_threshold=2 one good probe keeps it half-open, the second closes it."""
    breaker = CircuitBreaker("x", failure_threshold=1, success_threshold=2, clock=clock)
    trip(breaker, 1)
    clock.advance(30)
    breaker.call(lambda: None)
    assert breaker.state is CircuitState.HALF_OPEN
    breaker.call(lambda: None)
    assert breaker.state is CircuitState.CLOSED


def test_a_failed_probe_reopens_with_a_new_timeout(
    breaker: CircuitBreaker, clock: ManualClock
) -> None:
    """A failing probe opens the breaker again for a full recovery_timeout."""
    trip(breaker, 3)
    clock.advance(31)
    trip(breaker, 1)
    assert breaker.state is CircuitState.OPEN
    with pytest.raises(errorkit.CircuitOpenError) as caught:
        breaker.call(lambda: None)
    assert caught.value.retry_after == 30


def test_client_error_from_a_probe_counts_as_an_answer(
    breaker: CircuitBreaker, clock: ManualClock
) -> None:
    """A probe that gets a 404 proves the dependency answers: the breaker closes."""
    trip(breaker, 3)
    clock.advance(30)
    trip(breaker, 1, errorkit.NotFoundError())
    assert breaker.state is CircuitState.CLOSED


def test_failure_rate_opens_once_enough_calls_were_seen(clock: ManualClock) -> None:
    """failure_rate_threshold opens at that share of failures, after minimum_calls."""
    breaker = CircuitBreaker(
        "x",
        failure_threshold=None,
        failure_rate_threshold=0.5,
        minimum_calls=6,
        window=60,
        clock=clock,
    )
    for _ in range(2):
        breaker.call(lambda: None)
        trip(breaker, 1)
    assert breaker.state is CircuitState.CLOSED  # 2 of 4 failed, below minimum_calls
    breaker.call(lambda: None)
    trip(breaker, 1)
    assert breaker.state is CircuitState.OPEN  # 3 of 6
    status = breaker.status()
    assert status.state is CircuitState.OPEN


def test_the_failure_rate_forgets_calls_older_than_the_window(clock: ManualClock) -> None:
    """Failures older than ``window`` seconds no longer count towards the rate."""
    breaker = CircuitBreaker(
        "x", failure_threshold=None, failure_rate_threshold=0.5, minimum_calls=4, clock=clock
    )
    trip(breaker, 3)
    clock.advance(61)
    assert breaker.status().window_calls == 0
    for _ in range(3):
        breaker.call(lambda: None)
    trip(breaker, 1)
    assert breaker.state is CircuitState.CLOSED  # 1 of 4 in the window
    assert (breaker.status().window_calls, breaker.status().window_failures) == (4, 1)


def test_fallback_answers_when_open_and_on_counted_failures(clock: ManualClock) -> None:
    """With a fallback the caller gets its value instead of an error; 4xx still raise."""
    breaker = CircuitBreaker(
        "rates", failure_threshold=1, fallback=lambda key: f"cached {key}", clock=clock
    )

    def fetch(key: str) -> str:
        raise errorkit.ExternalServiceError()

    assert breaker.call(fetch, "eur") == "cached eur"  # counted failure: opens
    assert breaker.call(fetch, "usd") == "cached usd"  # open: not even called
    clock.advance(30)

    def missing(key: str) -> str:
        raise errorkit.NotFoundError()

    with pytest.raises(errorkit.NotFoundError):
        breaker.call(missing, "gbp")


async def test_async_calls_decorator_and_context_manager(clock: ManualClock) -> None:
    """call_async, @breaker on async def and `async with breaker` all count the same."""
    breaker = CircuitBreaker("x", failure_threshold=3, clock=clock)

    @breaker
    async def fetch() -> str:
        raise errorkit.UpstreamTimeoutError()

    with pytest.raises(errorkit.UpstreamTimeoutError):
        await fetch()
    with pytest.raises(errorkit.UpstreamTimeoutError):
        await breaker.call_async(fetch.__wrapped__)  # type: ignore[attr-defined]
    with pytest.raises(errorkit.UpstreamTimeoutError):
        async with breaker:
            raise errorkit.UpstreamTimeoutError()
    assert breaker.state is CircuitState.OPEN
    with pytest.raises(errorkit.CircuitOpenError):
        async with breaker:
            pass


def test_sync_context_manager_and_decorator(clock: ManualClock) -> None:
    """`with breaker:` and @breaker on a def record outcomes like call()."""
    breaker = CircuitBreaker("x", failure_threshold=2, clock=clock)

    @breaker
    def ok() -> int:
        return 1

    assert ok() == 1
    for _ in range(2):
        with pytest.raises(errorkit.NetworkError), breaker:
            raise errorkit.NetworkError()
    assert breaker.state is CircuitState.OPEN


async def test_a_cancelled_probe_frees_its_slot(clock: ManualClock) -> None:
    """A probe whose task is cancelled gives its half-open slot back."""
    breaker = CircuitBreaker("x", failure_threshold=1, clock=clock)
    trip(breaker, 1)
    clock.advance(30)
    started = asyncio.Event()

    async def hang() -> None:
        started.set()
        await asyncio.Event().wait()

    task = asyncio.create_task(breaker.call_async(hang))
    await started.wait()
    assert breaker.status().probes_in_flight == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert breaker.status().probes_in_flight == 0
    assert await breaker.call_async(asyncio.sleep, 0, "back") == "back"


def test_a_probe_that_never_reports_back_frees_its_slot_after_probe_timeout(
    clock: ManualClock,
) -> None:
    """A lost probe (never released) stops blocking others after probe_timeout."""
    breaker = CircuitBreaker("x", failure_threshold=1, probe_timeout=10, clock=clock)
    trip(breaker, 1)
    clock.advance(30)
    breaker.acquire()  # a probe that is never released
    with pytest.raises(errorkit.CircuitOpenError):
        breaker.call(lambda: None)
    clock.advance(10)
    assert breaker.call(lambda: "probe") == "probe"


def test_an_outcome_from_before_a_reset_is_ignored(clock: ManualClock) -> None:
    """A call admitted before a reset cannot count against the state after it."""
    breaker = CircuitBreaker("x", failure_threshold=1, clock=clock)
    permit = breaker.acquire()
    breaker.reset()
    permit.release(errorkit.ServiceUnavailableError())
    assert breaker.state is CircuitState.CLOSED


def test_status_tells_state_counts_and_the_scrubbed_last_failure(
    breaker: CircuitBreaker, clock: ManualClock
) -> None:
    """status(): state, counts, last failure (type + scrubbed message), opened, next probe."""
    trip(breaker, 3, ConnectionError("connect failed: password=hunter2"))
    with pytest.raises(errorkit.CircuitOpenError):
        breaker.call(lambda: None)
    status = breaker.status()
    assert (status.state, status.failures, status.rejected) == (CircuitState.OPEN, 3, 1)
    assert status.last_failure is not None
    assert status.last_failure.type == "ConnectionError"
    assert "hunter2" not in status.last_failure.message
    assert status.opened_at is not None and status.next_probe_at is not None
    assert (status.next_probe_at - status.opened_at).total_seconds() == 30
    data = status.as_dict()
    assert data["state"] == "open" and "hunter2" not in str(data)


def test_reset_closes_and_clears(breaker: CircuitBreaker) -> None:
    """reset() closes an open breaker and forgets its counts."""
    trip(breaker, 3)
    breaker.reset()
    status = breaker.status()
    assert (status.state, status.failures, status.last_failure) == (CircuitState.CLOSED, 0, None)
    assert breaker.call(lambda: 1) == 1


def test_transitions_are_logged_and_heard_by_listeners(
    clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    """Each transition logs on errorkit.breaker and calls breaker and registry listeners."""
    caplog.set_level(logging.INFO, logger="errorkit.breaker")
    heard: list[tuple[str, str, str]] = []
    everywhere: list[tuple[str, str, str]] = []
    default_registry().add_listener(lambda n, o, s: everywhere.append((n, o, s)))
    breaker = circuit_breaker("payments", failure_threshold=1, clock=clock)
    breaker.add_listener(lambda n, o, s: heard.append((n, o, s)))
    trip(breaker, 1)
    clock.advance(30)
    breaker.call(lambda: None)
    expected = [
        ("payments", "closed", "open"),
        ("payments", "open", "half_open"),
        ("payments", "half_open", "closed"),
    ]
    assert heard == expected
    assert everywhere == expected
    lines = [r for r in caplog.records if r.name == "errorkit.breaker"]
    assert [(r.old_state, r.new_state) for r in lines] == [e[1:] for e in expected]  # type: ignore[attr-defined]
    assert lines[0].levelno == logging.WARNING


def test_a_failing_listener_never_breaks_the_call(clock: ManualClock) -> None:
    """A listener that raises is counted as an internal error; the call goes on."""
    _guard.set_strict(False)
    breaker = CircuitBreaker("x", failure_threshold=1, clock=clock)
    breaker.add_listener(lambda *a: 1 / 0)
    trip(breaker, 1)
    assert breaker.state is CircuitState.OPEN
    assert _guard.internal_error_counts()["breaker.listener"] >= 1


def test_rejections_are_fresh_complete_circuit_open_errors(breaker: CircuitBreaker) -> None:
    """Each rejection is a new CircuitOpenError with every field a normal one has."""
    trip(breaker, 3)
    errors = []
    for _ in range(2):
        with pytest.raises(errorkit.CircuitOpenError) as caught:
            breaker.call(lambda: None)
        errors.append(caught.value)
    first, second = errors
    assert first is not second
    reference = errorkit.CircuitOpenError(service="upstream")
    for name in vars(reference):  # some fields are made on first read
        getattr(first, name)
    assert set(vars(reference)) <= set(vars(first))
    assert first.error_id == first.error_id != second.error_id
    assert first.to_dict()["message"] == "upstream is unavailable (circuit open)."
    copy = pickle.loads(pickle.dumps(first))
    assert copy.error_id == first.error_id


@pytest.mark.parametrize(
    ("options", "fix"),
    [
        ({"failure_threshold": 0}, "whole number >= 1"),
        ({"failure_threshold": None}, "would never open"),
        ({"recovery_timeout": -1}, ">= 0"),
        ({"half_open_max_calls": 0}, "whole number >= 1"),
        ({"failure_rate_threshold": 1.5}, "fraction in"),
        ({"window": 0}, "> 0"),
        ({"fallback": "cached"}, "callable"),
        ({"failure_on": "Exception"}, "exception class"),
        ({"ignore_on": "KeyError"}, "ignore_on='KeyError'"),
        ({"open_error": "Unavailable"}, "open_error='Unavailable'"),
    ],
)
def test_bad_settings_say_the_fix(options: dict[str, Any], fix: str) -> None:
    """Each invalid setting is refused when the breaker is built, naming what to pass."""
    with pytest.raises((ValueError, TypeError), match=fix.replace("(", r"\(")):
        CircuitBreaker("x", **options)


@pytest.mark.parametrize("name", ["", "has space", "x" * 201, "semi;colon"])
def test_bad_names_are_refused(name: str) -> None:
    """Breaker names are short and safe to use as Redis key parts."""
    with pytest.raises(ValueError, match="not valid"):
        CircuitBreaker(name)


class _RefusingState:
    """A backend's state that refuses every call with a whole number of seconds, which
    ``BreakerState.acquire() -> Ticket | float`` allows."""

    backend = "refusing"
    sync_only = True

    def acquire(self) -> Any:
        return 7

    async def acquire_async(self) -> Any:
        return 7

    def record(self, ticket: Any, outcome: Any, failure: Any) -> None:
        raise AssertionError("a refused call has no outcome to record")

    async def record_async(self, ticket: Any, outcome: Any, failure: Any) -> None:
        raise AssertionError("a refused call has no outcome to record")

    def status(self, name: str) -> Any:
        raise NotImplementedError

    async def status_async(self, name: str) -> Any:
        raise NotImplementedError

    def reset(self) -> None: ...

    async def reset_async(self) -> None: ...


class _RefusingBackend:
    def state_for(self, name: str, config: Any, clock: Any, notify: Any) -> _RefusingState:
        return _RefusingState()


def test_whatever_is_not_a_ticket_is_a_refusal() -> None:
    """A backend refusing with an int (not a float) still refuses: the call never runs, by
    every way in, and the CircuitOpenError carries those seconds."""
    breaker = CircuitBreaker("refusing", backend=_RefusingBackend())
    ran: list[str] = []

    async def acall() -> None:
        ran.append("async")

    def enter() -> None:
        with breaker:
            ran.append("with")

    ways = [
        lambda: breaker.call(ran.append, "call"),
        lambda: asyncio.run(breaker.call_async(acall)),
        enter,
        breaker.acquire,
        lambda: asyncio.run(breaker.acquire_async()),
    ]
    for way in ways:
        with pytest.raises(errorkit.CircuitOpenError) as caught:
            way()
        assert caught.value.retry_after == 7
        assert caught.value.response_headers() == {"Retry-After": "7"}
    assert ran == []


def test_breaker_code_needs_no_type_ignores() -> None:
    """acquire()'s result narrows to a Ticket or a refusal for the type checker as written."""
    from pathlib import Path

    import errorkit.resilience.breaker as module

    source = Path(module.__file__).read_text(encoding="utf-8")
    assert "type: ignore" not in source


class _CountingLock:
    """Stands in for a state's lock and counts how often it is taken."""

    def __init__(self) -> None:
        self.taken = 0
        self._lock = threading.Lock()

    def __enter__(self) -> None:
        self.taken += 1
        self._lock.acquire()

    def __exit__(self, *exc: object) -> None:
        self._lock.release()


def test_an_open_breaker_refuses_without_taking_its_lock(
    breaker: CircuitBreaker, clock: ManualClock
) -> None:
    """A flood of refusals never queues on the state's lock, and each is still counted;
    once the timeout is over the next call takes the lock to turn half-open."""
    trip(breaker, 3)
    lock = _CountingLock()
    breaker._state._lock = lock  # type: ignore[attr-defined]
    for _ in range(3):
        with pytest.raises(errorkit.CircuitOpenError) as caught:
            breaker.call(lambda: None)
        assert caught.value.retry_after == 30
    assert lock.taken == 0
    assert breaker.status().rejected == 3
    clock.advance(30)
    assert breaker.call(lambda: "probe") == "probe"
    assert breaker.state is CircuitState.CLOSED
    assert lock.taken >= 2
