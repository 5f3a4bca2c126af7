"""One registry of hooks for every event errorkit emits; the older listener functions are
aliases of it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from errorkit import _guard, _reporting, hooks
from errorkit.capturing import api as capture
from errorkit.capturing.pipeline import CaptureSummary
from errorkit.config import update_settings
from errorkit.resilience import (
    CircuitBreaker,
    CircuitState,
    FallbackEvent,
    ManualClock,
    RetryEvent,
    add_breaker_listener,
    add_fallback_listener,
    add_retry_listener,
    remove_breaker_listener,
    remove_fallback_listener,
    remove_retry_listener,
    retry,
)
from errorkit.resilience.fallback import fallback_used


@pytest.fixture(autouse=True)
def _hooks_restored() -> Iterator[None]:
    """Each test may add or clear hooks; those of the rest of the suite come back."""
    before = {event: hooks.registered(event) for event in hooks.EVENTS}
    yield
    hooks.clear()
    for event, registered in before.items():
        for hook in registered:
            hooks.add(event, hook)  # type: ignore[call-overload]


def test_the_events_are_named() -> None:
    assert hooks.EVENTS == ("report", "capture", "retry", "breaker", "fallback", "handled")


def test_a_hook_hears_its_event_with_its_payload() -> None:
    """emit() calls each hook of the event, in the order added, with the payload."""
    heard: list[tuple[str, Any]] = []
    hooks.add("handled", lambda error_type, seconds: heard.append(("a", (error_type, seconds))))
    hooks.add("handled", lambda error_type, seconds: heard.append(("b", (error_type, seconds))))
    hooks.emit("handled", "not_found", 0.5)
    hooks.emit("retry", "not heard by handled hooks")
    assert heard == [("a", ("not_found", 0.5)), ("b", ("not_found", 0.5))]


def test_adding_twice_adds_once_and_remove_compares_with_equality() -> None:
    """``seen.append`` added twice is one hook; another ``seen.append`` removes it."""
    seen: list[FallbackEvent] = []
    hooks.add("fallback", seen.append)
    hooks.add("fallback", seen.append)
    assert hooks.registered("fallback").count(seen.append) == 1
    fallback_used("prices", "cache")
    hooks.remove("fallback", seen.append)
    fallback_used("prices", "cache")
    assert [(e.operation, e.source) for e in seen] == [("prices", "cache")]
    hooks.remove("fallback", seen.append)  # not there any more: nothing happens


def test_an_unknown_event_or_a_non_callable_is_refused() -> None:
    with pytest.raises(ValueError, match=r"unknown hook event 'retries'.*retry"):
        hooks.add("retries", print)  # type: ignore[call-overload]
    with pytest.raises(ValueError, match="unknown hook event"):
        hooks.emit("nope")
    with pytest.raises(TypeError, match=r"callable\(RetryEvent\)"):
        hooks.add("retry", "metrics")  # type: ignore[call-overload]


def test_a_failing_hook_is_counted_and_the_next_one_still_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A hook that raises never reaches the emitter; it is counted under the event's site."""
    monkeypatch.setattr(_guard, "_strict", False)
    heard: list[RetryEvent] = []

    def broken(event: RetryEvent) -> None:
        raise RuntimeError("hook bug")

    hooks.add("retry", broken)
    hooks.add("retry", heard.append)
    before = _guard.internal_error_counts().get("retry.listener", 0)
    calls = 0

    @retry(attempts=2, jitter="none", wait_initial=1, operation="flaky", clock=ManualClock())
    def flaky() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("reset")
        return "ok"

    assert flaky() == "ok"
    assert _guard.internal_error_counts()["retry.listener"] == before + 1
    assert [(e.operation, e.attempt) for e in heard] == [("flaky", 1)]


def test_clear_forgets_every_hook_or_one_events() -> None:
    hooks.add("retry", print)
    hooks.add("fallback", print)
    hooks.clear("retry")
    assert hooks.registered("retry") == ()
    assert hooks.registered("fallback") == (print,)
    hooks.clear()
    assert all(hooks.registered(event) == () for event in hooks.EVENTS)


@pytest.mark.parametrize(
    ("event", "add", "remove"),
    [
        ("report", _reporting.add_observer, _reporting.remove_observer),
        ("handled", _reporting.add_handling_observer, _reporting.remove_handling_observer),
        ("capture", capture.add_listener, capture.remove_listener),
        ("retry", add_retry_listener, remove_retry_listener),
        ("breaker", add_breaker_listener, remove_breaker_listener),
        ("fallback", add_fallback_listener, remove_fallback_listener),
    ],
)
def test_the_older_listener_functions_are_aliases(
    event: str, add: Callable[[Any], None], remove: Callable[[Any], None]
) -> None:
    """Each older add/remove pair adds to and removes from the event's hooks."""

    def hook(*payload: object) -> None:
        pass

    add(hook)
    assert hook in hooks.registered(event)
    remove(hook)
    assert hook not in hooks.registered(event)
    hooks.add(event, hook)  # type: ignore[call-overload]
    remove(hook)
    assert hook not in hooks.registered(event)


def test_report_hooks_hear_each_exception_once() -> None:
    heard: list[tuple[BaseException, str, dict[str, Any]]] = []
    hooks.add("report", lambda exc, error_id, context: heard.append((exc, error_id, context)))
    exc = RuntimeError("x")
    error_id = _reporting.report(exc, error_type="job_error")
    _reporting.report(exc)
    assert heard == [(exc, error_id, {"error_type": "job_error"})]


def test_breaker_hooks_hear_every_breaker_of_the_process() -> None:
    """A breaker made outside the default registry is heard too."""
    heard: list[tuple[str, CircuitState, CircuitState]] = []
    hooks.add("breaker", lambda name, old, new: heard.append((name, old, new)))
    breaker = CircuitBreaker("payments", failure_threshold=1, clock=ManualClock())
    with pytest.raises(ConnectionError):
        breaker.call(_fail)
    assert heard == [("payments", CircuitState.CLOSED, CircuitState.OPEN)]


def _fail() -> None:
    raise ConnectionError("down")


def test_capture_hooks_added_before_or_after_configure_hear_stored_events(
    tmp_path: Path,
) -> None:
    """The pipeline hands each summary to the hooks of the moment."""
    early: list[CaptureSummary] = []
    late: list[CaptureSummary] = []
    hooks.add("capture", early.append)
    try:
        capture.configure(store_url=f"sqlite:///{tmp_path / 'e.db'}", spool_dir=tmp_path / "s")
        hooks.add("capture", late.append)
        capture.capture(RuntimeError("x"))
        assert capture.flush(timeout=30)
    finally:
        capture.shutdown(timeout=5)
        _reporting.set_reporter(None)
        update_settings(spool_dir=None)
    assert [s.count for s in early] == [1]
    assert [s.count for s in late] == [1]


def test_the_observability_page_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    """docs/observability.md's hooks example runs as written and prints what it says."""
    import re

    doc = Path(__file__).resolve().parents[2] / "docs" / "observability.md"
    blocks = re.findall(r"```python\n(.*?)```", doc.read_text(), re.S)
    (block,) = [b for b in blocks if "hooks.add(" in b]
    exec(compile(block, str(doc), "exec"), {})
    assert capsys.readouterr().out == "[('rates', 1), ('rates', 2)]\n"
    assert all(getattr(h, "__name__", "") != "on_retry" for h in hooks.registered("retry"))
