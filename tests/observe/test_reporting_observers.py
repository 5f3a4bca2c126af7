"""Observers of the reporting seam: see each occurrence once, in the reporting thread."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from errorkit import _guard, _reporting
from errorkit.errors import error_id_of


@pytest.fixture
def seen() -> Iterator[list[tuple[BaseException, str, dict[str, Any], int]]]:
    calls: list[tuple[BaseException, str, dict[str, Any], int]] = []

    def observer(exc: BaseException, error_id: str, context: dict[str, Any]) -> None:
        calls.append((exc, error_id, dict(context), threading.get_ident()))

    _reporting.add_observer(observer)
    yield calls
    _reporting.remove_observer(observer)


def test_observer_sees_each_occurrence_once_with_its_id_and_context(seen: list[Any]) -> None:
    """An observer gets the exception, the error id report() returns and the context."""
    exc = RuntimeError("boom")
    error_id = _reporting.report(exc, error_type="health_check_error")
    _reporting.report(exc, error_type="health_check_error")
    assert [(e, i, c) for e, i, c, _ in seen] == [
        (exc, error_id, {"error_type": "health_check_error"})
    ]


def test_observer_runs_in_the_reporting_thread(seen: list[Any]) -> None:
    """Observers run where report() is called, so thread-local state (a span) is current."""
    _reporting.report(ValueError("x"))
    assert seen[0][3] == threading.get_ident()


def test_adding_the_same_observer_twice_calls_it_once() -> None:
    """add_observer is idempotent per callable."""
    calls: list[str] = []

    def observer(exc: BaseException, error_id: str, context: dict[str, Any]) -> None:
        calls.append(error_id)

    _reporting.add_observer(observer)
    _reporting.add_observer(observer)
    try:
        _reporting.report(KeyError("k"))
    finally:
        _reporting.remove_observer(observer)
    assert len(calls) == 1


def test_failing_observer_never_reaches_the_caller(monkeypatch: pytest.MonkeyPatch) -> None:
    """An observer that raises is counted and report() still returns the error id."""

    def broken(exc: BaseException, error_id: str, context: dict[str, Any]) -> None:
        raise RuntimeError("observer bug")

    monkeypatch.setattr(_guard, "_strict", False)
    before = _guard.internal_error_counts().get("report.observer", 0)
    _reporting.add_observer(broken)
    try:
        exc = LookupError("x")
        assert _reporting.report(exc) == error_id_of(exc)
    finally:
        _reporting.remove_observer(broken)
    assert _guard.internal_error_counts()["report.observer"] == before + 1
