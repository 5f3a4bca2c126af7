"""Reaching the real services the integration tests need.

Under ``CI=true`` a missing service is a failure, never a skip: a green run must have
talked to the real thing. Elsewhere the test skips with the reason.
"""

from __future__ import annotations

import os
import shutil
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}

POSTGRES_URL = os.environ.get(
    "ERRORKIT_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("ERRORKIT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
CHROMIUM = os.environ.get("ERRORKIT_TEST_CHROMIUM", "/usr/bin/chromium")


def missing(service: str, why: str) -> None:
    """Fail under CI, skip elsewhere, always saying which service and why."""
    message = f"{service} is not reachable ({why}); start it or set the test URL"
    if IN_CI:
        pytest.fail(f"CI=true and {message}", pytrace=False)
    pytest.skip(message)


def port_open(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def require_postgres() -> str:
    """The base PostgreSQL URL, after checking the server answers."""
    from sqlalchemy import create_engine, text

    try:
        engine = create_engine(POSTGRES_URL)
        with engine.connect() as conn:
            conn.execute(text("select 1"))
        engine.dispose()
    except Exception as exc:
        missing("PostgreSQL", f"{type(exc).__name__}: {exc}")
    return POSTGRES_URL


@contextmanager
def fresh_postgres_database() -> Iterator[str]:
    """Create an empty database for one test module or session and drop it afterwards."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    base = make_url(require_postgres())
    name = f"errorkit_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :n AND pid <> pg_backend_pid()"
                ),
                {"n": name},
            )
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


def require_redis() -> str:
    try:
        import redis

        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
        client.ping()
        client.close()
    except Exception as exc:
        missing("Redis", f"{type(exc).__name__}: {exc}")
    return REDIS_URL


def drop_breaker_namespace(url: str, namespace: str) -> None:
    """Delete every breaker key a test wrote under ``namespace``."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=f"errorkit:breaker:{namespace}:*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@contextmanager
def breaker_namespace(url: str, prefix: str) -> Iterator[str]:
    """A breaker namespace of its own in Redis; its keys are deleted afterwards."""
    namespace = f"{prefix}-{uuid.uuid4().hex[:12]}"
    try:
        yield namespace
    finally:
        drop_breaker_namespace(url, namespace)


def require_chromium() -> str:
    if not (os.path.exists(CHROMIUM) or shutil.which(CHROMIUM)):
        why = f"{CHROMIUM} not found; `apt-get install -y chromium` (as .ci/run does)"
        missing("Chromium", why)
    return CHROMIUM
