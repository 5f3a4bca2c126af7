"""Chaos: failures and latency injected only when switched on, repeatably with a seed."""

from __future__ import annotations

from typing import Any

import pytest

import errorkit
from errorkit.config import ConfigError
from errorkit.resilience import (
    Chaos,
    ManualClock,
    chaos_enabled,
    disable_chaos,
    enable_chaos,
    retry,
    set_chaos,
)


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ERRORKIT_CHAOS", raising=False)
    set_chaos(None)


def outcomes(chaos: Chaos, calls: int = 40) -> list[bool]:
    """Which of ``calls`` calls got a failure injected."""
    seen = []
    for _ in range(calls):
        try:
            chaos.inject("op")
            seen.append(False)
        except errorkit.ServiceUnavailableError:
            seen.append(True)
    return seen


def test_nothing_is_injected_unless_switched_on() -> None:
    """Without ERRORKIT_CHAOS or an explicit switch, even probability=1 injects nothing."""
    assert not chaos_enabled()
    assert outcomes(Chaos(probability=1.0)) == [False] * 40


def test_the_environment_switches_it_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """ERRORKIT_CHAOS=1 turns chaos on for the process."""
    monkeypatch.setenv("ERRORKIT_CHAOS", "1")
    set_chaos(None)
    assert chaos_enabled()
    assert all(outcomes(Chaos(probability=1.0), 3))


def test_a_bad_environment_value_says_what_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    """ERRORKIT_CHAOS=maybe is refused naming the accepted values."""
    monkeypatch.setenv("ERRORKIT_CHAOS", "maybe")
    set_chaos(None)
    with pytest.raises(ConfigError, match="1/true/yes/on"):
        chaos_enabled()


def test_explicit_switches_override_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """enable_chaos()/disable_chaos() and Chaos(enabled=...) win over the environment."""
    monkeypatch.setenv("ERRORKIT_CHAOS", "1")
    disable_chaos()
    assert outcomes(Chaos(probability=1.0), 3) == [False] * 3
    assert all(outcomes(Chaos(probability=1.0, enabled=True), 3))
    enable_chaos()
    assert outcomes(Chaos(probability=1.0, enabled=False), 3) == [False] * 3


def test_a_seed_makes_the_failures_repeatable() -> None:
    """Two instances with the same seed inject on exactly the same calls."""
    first = outcomes(Chaos(probability=0.3, seed=11, enabled=True))
    second = outcomes(Chaos(probability=0.3, seed=11, enabled=True))
    assert first == second
    assert 0 < sum(first) < len(first)


@pytest.mark.parametrize(
    ("status", "kind", "code"),
    [
        (503, errorkit.ServiceUnavailableError, "SERVICE_UNAVAILABLE"),
        (429, errorkit.UpstreamRateLimitedError, "UPSTREAM_RATE_LIMITED"),
        (504, errorkit.UpstreamTimeoutError, "UPSTREAM_TIMEOUT"),
        (502, errorkit.ExternalServiceError, "EXTERNAL_SERVICE_ERROR"),
        (500, errorkit.InternalError, "INTERNAL_ERROR"),
        (404, errorkit.ClientError, "NOT_FOUND"),
    ],
)
def test_an_http_status_becomes_the_matching_error(
    status: int, kind: type[errorkit.AppError], code: str
) -> None:
    """error=<status> raises the errorkit error that status means, marked as chaos."""
    chaos = Chaos(probability=1.0, error=status, retry_after=2, enabled=True)
    with pytest.raises(kind) as caught:
        chaos.inject("rates")
    error = caught.value
    assert (error.status, error.code, error.retry_after) == (status, code, 2)
    assert error.details == {"chaos": True, "operation": "rates"}


def test_an_exception_instance_is_copied_for_each_injection() -> None:
    """A given instance is never re-raised itself (its traceback would grow each time)."""
    template = ConnectionResetError("reset by chaos")
    chaos = Chaos(probability=1.0, error=template, enabled=True)
    raised = []
    for _ in range(2):
        with pytest.raises(ConnectionResetError) as caught:
            chaos.inject()
        raised.append(caught.value)
    assert raised[0] is not raised[1] and template not in raised
    assert str(raised[0]) == "reset by chaos"


def test_latency_sleeps_on_the_clock(clock: ManualClock) -> None:
    """latency=(low, high) adds a wait in that range to each call."""
    chaos = Chaos(error=None, latency=(0.1, 0.5), seed=3, enabled=True, clock=clock)

    @chaos
    def read() -> str:
        return "value"

    assert [read() for _ in range(5)] == ["value"] * 5
    assert len(clock.sleeps) == 5
    assert all(0.1 <= s <= 0.5 for s in clock.sleeps)
    assert chaos.injected_delays == 5


async def test_async_functions_and_dependencies(clock: ManualClock) -> None:
    """wrap() injects into the chosen methods of a dependency, sync or async."""

    class Cache:
        def get(self, key: str) -> str:
            return f"v:{key}"

        async def aget(self, key: str) -> str:
            return f"a:{key}"

        def size(self) -> int:
            return 1

    chaos = Chaos(probability=1.0, error=503, latency=0.2, enabled=True, clock=clock)
    cache: Any = chaos.wrap(Cache(), methods=["get", "aget"])
    with pytest.raises(errorkit.ServiceUnavailableError, match=r"Cache\.get"):
        cache.get("k")
    with pytest.raises(errorkit.ServiceUnavailableError):
        await cache.aget("k")
    assert cache.size() == 1
    assert clock.sleeps == [0.2, 0.2]


def test_injected_failures_exercise_the_recovery_path(clock: ManualClock) -> None:
    """A retried call survives injected 503s: chaos proves the retry policy works."""
    chaos = Chaos(probability=0.5, error=503, seed=5, enabled=True)

    @retry(attempts=10, clock=clock)
    @chaos
    def fetch() -> str:
        return "fresh"

    assert [fetch() for _ in range(10)] == ["fresh"] * 10
    assert chaos.injected_failures > 0


@pytest.mark.parametrize(
    ("options", "error", "fix"),
    [
        ({"probability": 1.5}, ValueError, "between 0 and 1"),
        ({"error": 200}, ValueError, "400-599"),
        ({"error": "boom"}, TypeError, "exception class"),
        ({"latency": (2, 1)}, ValueError, "low <= high"),
    ],
)
def test_bad_settings_say_the_fix(
    options: dict[str, Any], error: type[Exception], fix: str
) -> None:
    """Each invalid setting is refused when built."""
    with pytest.raises(error, match=fix):
        Chaos(**options)


def test_wrapping_unknown_methods_is_refused() -> None:
    """wrap(methods=[...]) names the methods the dependency does not have."""
    with pytest.raises(AttributeError, match="fetch"):
        Chaos(enabled=True).wrap(object(), methods=["fetch"])
