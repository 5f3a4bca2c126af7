"""Fixtures for recovery: a manual clock, a recording reporter, a clean breaker registry."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from tests.resilience._support import Reports

from errorkit import _reporting
from errorkit.resilience import ManualClock, default_registry, set_chaos, set_testing


@pytest.fixture
def clock() -> ManualClock:
    """A clock that only moves when told to, recording every sleep."""
    return ManualClock()


@pytest.fixture
def reports() -> Iterator[Reports]:
    """Install a recording reporter in place of capture; restore the previous one after."""
    recorder = Reports()
    previous = _reporting.set_reporter(recorder)
    try:
        yield recorder
    finally:
        _reporting.set_reporter(previous)


@pytest.fixture(autouse=True)
def _isolated() -> Iterator[None]:
    """Each test starts with no breakers, waits on, chaos following the environment."""
    default_registry().clear()
    yield
    default_registry().clear()
    set_testing(False)
    set_chaos(None)


@pytest.fixture
def retry_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger="errorkit")
    return caplog
