"""Fallback and failover: the source plans' recipes against real components."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import sqlalchemy as sa

import errorkit
from errorkit.resilience import (
    FallbackExhaustedError,
    fallback_chain,
    step,
    with_fallback,
)


@pytest.fixture
def database(tmp_path: Path) -> sa.Engine:
    """A real SQLite database with one user row."""
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'app.db'}")
    with engine.begin() as conn:
        conn.execute(sa.text("create table users (id integer primary key, name text)"))
        conn.execute(sa.text("insert into users values (1, 'ada')"))
    return engine


def read_user(engine: sa.Engine, user_id: int) -> str:
    with engine.connect() as conn:
        return str(
            conn.execute(sa.text("select name from users where id = :i"), {"i": user_id}).scalar()
        )


@pytest.fixture
def upstream() -> Iterator[str]:
    """A real HTTP server that answers 503 with Retry-After, like a provider in trouble."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(503)
            self.send_header("Retry-After", "30")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_recipe_cache_error_bypasses_the_cache(database: sa.Engine) -> None:
    """Redis unreachable -> read the database instead, saying why."""
    cache = redis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=1)
    chain = fallback_chain(
        step("cache", lambda user_id: cache.get(f"user:{user_id}")),
        step("database", lambda user_id: read_user(database, user_id)),
        operation="load user",
    )
    result = chain.run(1)
    assert (result.value, result.source, result.degraded) == ("ada", "database", True)
    assert [(s.name, s.outcome) for s in result.steps] == [("cache", "failed"), ("database", "ok")]
    assert result.steps[0].code == "CACHE_UNAVAILABLE"
    assert (
        result.steps[1].reason
        == "cache failed: redis.exceptions.ConnectionError (CACHE_UNAVAILABLE)"
    )


def test_recipe_primary_store_fails_over_to_the_replica(
    database: sa.Engine, tmp_path: Path
) -> None:
    """A primary that cannot be opened -> the replica answers."""
    primary = sa.create_engine(f"sqlite:///{tmp_path / 'missing-dir' / 'primary.db'}")
    chain = fallback_chain(
        step("primary", lambda user_id: read_user(primary, user_id)),
        step("replica", lambda user_id: read_user(database, user_id)),
    )
    result = chain.run(1)
    assert (result.value, result.source) == ("ada", "replica")
    assert result.steps[0].code == "DATABASE_UNAVAILABLE"


def test_recipe_provider_falls_back_to_a_local_answer(upstream: str) -> None:
    """An upstream 503 -> a local default, with the upstream's error kept in the steps."""

    def provider(prompt: str) -> str:
        response = httpx.get(f"{upstream}/complete", params={"q": prompt}, timeout=5)
        response.raise_for_status()
        return response.text

    def local_model(prompt: str) -> str:
        return f"(offline) {prompt}"

    result = fallback_chain(provider, local_model).run("hello")
    assert (result.value, result.source) == ("(offline) hello", "local_model")
    assert isinstance(result.errors[0], httpx.HTTPStatusError)
    assert result.steps[0].code == "UPSTREAM_UNAVAILABLE"


def test_recipe_all_failed_raises_a_typed_error_holding_every_cause(
    tmp_path: Path, upstream: str
) -> None:
    """When every step fails: FallbackExhaustedError (503) from an ExceptionGroup of causes."""
    primary = sa.create_engine(f"sqlite:///{tmp_path / 'nope' / 'primary.db'}")

    def from_store() -> str:
        return read_user(primary, 1)

    def from_upstream() -> str:
        return httpx.get(upstream, timeout=5).raise_for_status().text

    with pytest.raises(FallbackExhaustedError) as caught:
        fallback_chain(from_store, from_upstream, operation="load profile").call()
    error = caught.value
    assert isinstance(error, errorkit.ServiceUnavailableError)
    assert (error.status, error.code) == (503, "FALLBACK_EXHAUSTED")
    assert error.message == "load profile is unavailable: every fallback failed."
    group = error.__cause__
    assert isinstance(group, ExceptionGroup)
    assert [type(e).__name__ for e in group.exceptions] == ["OperationalError", "HTTPStatusError"]
    assert [s.name for s in error.steps] == ["from_store", "from_upstream"]
    assert errorkit.classify(error).status == 503


def test_a_client_error_is_an_answer_not_a_failure() -> None:
    """A 4xx from the primary propagates at once: no fallback is tried."""
    tried: list[str] = []

    def primary() -> str:
        raise errorkit.NotFoundError()

    def fallback() -> str:
        tried.append("fallback")
        return "x"

    with pytest.raises(errorkit.NotFoundError):
        fallback_chain(primary, fallback).call()
    assert tried == []


def test_values_are_steps_too() -> None:
    """A plain value answers as-is when the steps before it failed."""

    def primary() -> dict[str, str]:
        raise errorkit.ExternalServiceError()

    result = fallback_chain(primary, {"rates": "default"}).run()
    assert (result.value, result.source) == ({"rates": "default"}, "value")


def test_on_chooses_which_errors_move_on() -> None:
    """on= replaces the default: here a KeyError moves on, anything else propagates."""

    def primary() -> str:
        raise KeyError("missing")

    assert fallback_chain(primary, "default", on=KeyError).call() == "default"
    with pytest.raises(KeyError):
        fallback_chain(primary, "default", on=ValueError).call()


async def test_async_chains_mix_sync_and_async_steps() -> None:
    """run_async awaits async steps and calls sync ones."""

    async def primary(key: str) -> str:
        raise errorkit.UpstreamTimeoutError()

    def secondary(key: str) -> str:
        raise errorkit.CacheUnavailableError()

    async def tertiary(key: str) -> str:
        return f"t:{key}"

    result = await fallback_chain(primary, secondary, tertiary).run_async("k")
    assert (result.value, [s.name for s in result.steps]) == (
        "t:k",
        ["primary", "secondary", "tertiary"],
    )


def test_a_sync_run_refuses_async_steps() -> None:
    """run() with an async step says to use run_async()."""

    async def primary() -> str:
        return "x"

    with pytest.raises(TypeError, match="run_async"):
        fallback_chain(primary, "y").run()


async def test_with_fallback_decorates_sync_and_async_functions() -> None:
    """@with_fallback(...) returns the value; fn.chain.run(...) also gives the steps."""

    @with_fallback(lambda city: f"cached {city}")
    def weather(city: str) -> str:
        raise errorkit.ThirdPartyAPIError()

    @with_fallback("unknown")
    async def forecast(city: str) -> str:
        raise errorkit.ThirdPartyAPIError()

    assert weather("oslo") == "cached oslo"
    assert weather.chain.run("oslo").degraded  # type: ignore[attr-defined]
    assert await forecast("oslo") == "unknown"


def test_a_chain_needs_a_fallback() -> None:
    """A chain of one step would not fall back to anything: it is refused."""
    with pytest.raises(ValueError, match="at least one fallback"):
        fallback_chain(lambda: 1)
    with pytest.raises(ValueError, match="at least one fallback"):
        with_fallback()
