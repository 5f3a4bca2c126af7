"""Fixtures for the observability tests: real setups, torn down after each test."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from errorkit import _guard, _reporting, config
from errorkit.observe.logging import LoggingSetup, setup_logging


class Lines(io.StringIO):
    """A stream that a logging setup writes to; parses what was really emitted."""

    def records(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.getvalue().splitlines() if line.strip()]


@pytest.fixture
def fresh_settings(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Make errorkit read its settings from the environment again (after setenv)."""

    def reload(**env: str) -> None:
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        monkeypatch.setattr(config, "_settings", None)

    monkeypatch.setattr(config, "_settings", None)
    return reload


@pytest.fixture
def configure_logging() -> Iterator[Callable[..., LoggingSetup]]:
    """setup_logging(...) that is undone after the test."""
    setups: list[LoggingSetup] = []

    def configure(**kwargs: Any) -> LoggingSetup:
        setup = setup_logging(**kwargs)
        setups.append(setup)
        return setup

    yield configure
    for setup in reversed(setups):
        setup.close()


@pytest.fixture
def json_lines(configure_logging: Callable[..., LoggingSetup]) -> Lines:
    """A JSON logging setup at DEBUG writing into an in-memory stream."""
    stream = Lines()
    configure_logging(stream=stream, level="DEBUG", renderer="json")
    return stream


@pytest.fixture
def lenient_guard(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let errorkit's guard swallow failures, as in production (tests of "never raises")."""
    monkeypatch.setattr(_guard, "_strict", False)


@pytest.fixture
def reported() -> Iterator[list[tuple[BaseException, dict[str, Any]]]]:
    """Occurrences handed to the capture reporter."""
    calls: list[tuple[BaseException, dict[str, Any]]] = []

    def reporter(exc: BaseException, *, error_id: str, **context: Any) -> None:
        calls.append((exc, {"error_id": error_id, **context}))

    previous = _reporting.set_reporter(reporter)
    yield calls
    _reporting.set_reporter(previous)
