"""Ready-made health checks for a SQLAlchemy engine, Redis and an HTTP dependency.

Each returns a check function for :meth:`errorkit.observe.health.HealthRegistry.add`::

    health.add("postgres", sqlalchemy_check(engine), timeout=2, component_type="datastore")
    health.add("redis", redis_check("redis://127.0.0.1:6379/0"), critical=False)
    health.add("billing", http_check("https://billing.internal/healthz"), critical=False)
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable, Container, Mapping
from typing import Any

from errorkit._extras import require
from errorkit.observe.health import HealthCheckError
from errorkit.scrubbing import default_scrubber

__all__ = ["http_check", "redis_check", "sqlalchemy_check"]


def sqlalchemy_check(
    engine: Any, *, query: str = "SELECT 1"
) -> Callable[[], Mapping[str, Any]] | Callable[[], Awaitable[Mapping[str, Any]]]:
    """Check a SQLAlchemy ``Engine`` (run in a thread) or ``AsyncEngine`` (awaited) by
    running ``query`` on a pooled connection."""
    import sqlalchemy

    statement = sqlalchemy.text(query)
    async_mod = _optional("sqlalchemy.ext.asyncio")
    if async_mod is not None and isinstance(engine, async_mod.AsyncEngine):

        async def check_async() -> Mapping[str, Any]:
            async with engine.connect() as connection:
                await connection.execute(statement)
            return {"dialect": engine.dialect.name}

        return check_async
    if not isinstance(engine, sqlalchemy.engine.Engine):
        msg = (
            f"sqlalchemy_check() needs a sqlalchemy Engine or AsyncEngine, not "
            f"{type(engine).__name__} (build one with sqlalchemy.create_engine(url))"
        )
        raise TypeError(msg)

    def check() -> Mapping[str, Any]:
        with engine.connect() as connection:
            connection.execute(statement)
        return {"dialect": engine.dialect.name}

    return check


def redis_check(
    client: Any, *, timeout: float = 2.0
) -> Callable[[], bool] | Callable[[], Awaitable[bool]]:
    """Check Redis with ``PING``: a ``redis.Redis`` (run in a thread), a
    ``redis.asyncio.Redis`` (awaited), or a URL (a client is made on first use, with
    ``timeout`` seconds for connecting and answering)."""
    redis = require("redis", extra="redis", feature="redis_check()")
    if isinstance(client, str):
        url = client
        lock = threading.Lock()
        made: list[Any] = []

        def check_url() -> bool:
            with lock:
                if not made:
                    made.append(
                        redis.Redis.from_url(
                            url, socket_connect_timeout=timeout, socket_timeout=timeout
                        )
                    )
                c = made[0]
            return bool(c.ping())

        return check_url
    asyncio_mod = _optional("redis.asyncio")
    if asyncio_mod is not None and isinstance(client, asyncio_mod.Redis):

        async def check_async() -> bool:
            return bool(await client.ping())

        return check_async
    if not isinstance(client, redis.Redis):
        msg = (
            f"redis_check() needs a redis URL, redis.Redis or redis.asyncio.Redis, not "
            f"{type(client).__name__}"
        )
        raise TypeError(msg)

    def check() -> bool:
        return bool(client.ping())

    return check


def http_check(
    url: str,
    *,
    method: str = "GET",
    expect: Container[int] = range(200, 400),
    headers: Mapping[str, str] | None = None,
    timeout: float = 2.0,
    client: Any = None,
) -> Callable[[], Awaitable[Mapping[str, Any]]]:
    """Check an HTTP dependency: healthy when ``method url`` answers a status in
    ``expect`` (2xx/3xx by default) within ``timeout`` seconds. Uses ``client`` (an
    ``httpx.AsyncClient``) or a new one per check."""
    httpx = require("httpx", extra="http", feature="http_check()")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        msg = f"http_check() needs an http:// or https:// URL, not {url!r}"
        raise ValueError(msg)
    shown = default_scrubber().scrub_text(url, single_line=True)
    request_headers = dict(headers or {})

    async def check() -> Mapping[str, Any]:
        if client is not None:
            response = await client.request(method, url, headers=request_headers, timeout=timeout)
        else:
            async with httpx.AsyncClient(timeout=timeout) as own:
                response = await own.request(method, url, headers=request_headers)
        if response.status_code not in expect:
            raise HealthCheckError(
                f"{shown} answered HTTP {response.status_code}.",
                check=shown,
                status_code=response.status_code,
            )
        return {"status_code": response.status_code}

    return check


def _optional(name: str) -> Any:
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError:
        return None
