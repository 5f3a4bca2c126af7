"""What errorkit remembers about an exception lives in one attribute: its error id, and
whether it was answered, reported, observed and captured."""

from __future__ import annotations

import copy
import pickle
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.testclient import TestClient

import errorkit.starlette
from errorkit import _reporting, hooks
from errorkit._state import STATE_ATTR, ErrorState, state_of
from errorkit.capturing import api as capture
from errorkit.errors import error_id_of
from errorkit.http._common import mark_answered, was_answered
from errorkit.testing import capture_events


def _errorkit_attributes(exc: BaseException) -> set[str]:
    return {name for name in vars(exc) if name.startswith("__errorkit")}


class _Refuses(Exception):
    """An exception type that refuses every attribute."""

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(name)


def _observe(exc: BaseException, error_id: str, context: dict[str, Any]) -> None:
    """A "report" hook: with one, the observers' once-per-exception memory is used too."""


def test_answer_report_and_capture_leave_one_attribute_on_the_exception() -> None:
    """An exception an HTTP app answers, that is reported, observed, captured and captured
    again carries errorkit's state under one attribute and no other errorkit attribute."""
    raised: list[Exception] = []

    async def crash(request: Request) -> Response:
        exc = RuntimeError("boom")
        raised.append(exc)
        raise exc

    app = Starlette(routes=[Route("/crash", crash)])
    errorkit.starlette.install(app)
    hooks.add("report", _observe)
    try:
        with capture_events() as events:
            answer = TestClient(app, raise_server_exceptions=False).get("/crash")
            (exc,) = raised
            assert capture.capture(exc, endpoint="/again") == error_id_of(exc)
            assert _reporting.report(exc) == error_id_of(exc)
    finally:
        hooks.remove("report", _observe)
    assert answer.status_code == 500
    assert answer.json()["error"]["error_id"] == error_id_of(exc)
    assert len(events) == 1  # the later capture and report only amended it
    assert _errorkit_attributes(exc) == {STATE_ATTR}
    state = state_of(exc, create=False)
    assert isinstance(state, ErrorState)
    assert state.error_id == error_id_of(exc)
    assert (state.answered, state.reported, state.observed, state.captured) == (
        True,
        True,
        True,
        True,
    )


def test_each_marker_is_a_field_of_the_one_state() -> None:
    """error_id_of, mark_answered, report and capture each fill their own field."""
    exc = ValueError("x")
    assert state_of(exc, create=False) is None
    assert not was_answered(exc) and not _reporting.was_reported(exc)
    assert vars(exc) == {}  # asking attaches nothing
    error_id = error_id_of(exc)
    mark_answered(exc)
    _reporting.report(exc)
    with capture_events():
        capture.capture(exc)
    state = state_of(exc)
    assert state.error_id == error_id
    assert was_answered(exc) and _reporting.was_reported(exc) and state.captured
    assert _errorkit_attributes(exc) == {STATE_ATTR}


def test_an_exception_that_refuses_attributes_is_handled_each_time() -> None:
    """As before: no failure, a new id per call, and nothing remembered."""
    exc = _Refuses("x")
    assert error_id_of(exc) != error_id_of(exc)
    mark_answered(exc)
    assert not was_answered(exc)
    _reporting.report(exc)
    assert not _reporting.was_reported(exc)
    assert state_of(exc, create=False) is None
    with capture_events() as events:
        capture.capture(exc)
        capture.capture(exc)
    assert len(events) == 2


def test_a_pickled_or_copied_exception_names_the_same_occurrence() -> None:
    """The state travels with the exception: pickled and copied exceptions keep the id."""
    exc = KeyError("k")
    error_id = error_id_of(exc)
    mark_answered(exc)
    restored = pickle.loads(pickle.dumps(exc))
    assert error_id_of(restored) == error_id
    assert was_answered(restored)
    assert error_id_of(copy.deepcopy(exc)) == error_id
    assert error_id_of(copy.copy(exc)) == error_id


@pytest.mark.parametrize("value", [None, "an id", 42])
def test_a_foreign_value_under_the_attribute_is_replaced(value: object) -> None:
    """Something else stored under the attribute name is not mistaken for a state."""
    exc = OSError("x")
    setattr(exc, STATE_ATTR, value)
    assert state_of(exc, create=False) is None
    error_id = error_id_of(exc)
    assert error_id_of(exc) == error_id
    assert isinstance(getattr(exc, STATE_ATTR), ErrorState)
