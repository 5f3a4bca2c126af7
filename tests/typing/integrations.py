"""HTTP, recovery and observability APIs used the way users will; mypy --strict, never run."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

from fastapi import FastAPI
from flask import Flask

import errorkit
import errorkit.fastapi
import errorkit.flask
from errorkit.http import ErrorAnswer, ErrorMeta, stream_errors
from errorkit.observe import HealthRegistry
from errorkit.resilience import CircuitBreaker, ManualClock, retry


def flat(c: errorkit.Classification, meta: ErrorMeta) -> ErrorAnswer:
    body = {"error": c.code, "message": c.message, "details": dict(c.details)}
    return ErrorAnswer(body, c.status)


def build_fastapi() -> FastAPI:
    app = FastAPI()
    errorkit.fastapi.install(app, format=flat)
    return app


def build_flask() -> Flask:
    app = Flask(__name__)
    errorkit.flask.install(app, format="problem")
    return app


def tokens() -> Iterator[str]:
    yield "data: hi\n\n"


async def atokens() -> AsyncIterator[str]:
    yield "data: hi\n\n"


def streams() -> tuple[Iterator[str], AsyncIterator[str]]:
    return stream_errors(tokens()), stream_errors(atokens())


@retry(attempts=3, clock=ManualClock())
def flaky() -> int:
    return 1


breaker: CircuitBreaker = errorkit.circuit_breaker("upstream", failure_threshold=5)


@breaker
def guarded() -> str:
    return "ok"


async def recovered() -> str:
    @errorkit.with_error_recovery(
        "llm", "complete", max_retries=2, fallback=lambda: "cached answer"
    )
    async def complete() -> str:
        return "fresh"

    return await complete()


def health() -> HealthRegistry:
    registry = HealthRegistry(service="api")
    registry.add("db", lambda: True, timeout=1.0, critical=True)
    return registry
