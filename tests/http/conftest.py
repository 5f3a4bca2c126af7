"""Fixtures for the HTTP suite: apps per framework and format, and a recording reporter."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from _apps import FORMATS, FRAMEWORKS, Client, make_app

from errorkit._reporting import set_reporter
from errorkit.http.envelope import Renderer


@dataclass
class Report:
    exc: BaseException
    error_id: str
    context: dict[str, Any]


@pytest.fixture
def reports() -> Iterator[list[Report]]:
    """Every report errorkit makes during the test, in order."""
    recorded: list[Report] = []

    def reporter(exc: BaseException, *, error_id: str, **context: Any) -> None:
        recorded.append(Report(exc, error_id, context))

    previous = set_reporter(reporter)
    yield recorded
    set_reporter(previous)


@pytest.fixture(params=FRAMEWORKS)
def framework(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=FORMATS)
def fmt(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def client_for() -> Callable[..., Client]:
    """Build a client for (framework, format) with optional CORS."""

    def build(
        framework: str,
        fmt: str | Renderer = "default",
        *,
        cors: str = "",
        raise_server_exceptions: bool = False,
    ) -> Client:
        return Client(framework, make_app(framework, fmt, cors=cors), raise_server_exceptions)

    return build


@pytest.fixture
def client(framework: str, fmt: str, client_for: Callable[..., Client]) -> Client:
    return client_for(framework, fmt)
