"""classify() turns any exception into (error_type, code, status, severity, retriable)."""

from __future__ import annotations

import errno
import json
import sqlite3
from datetime import UTC, datetime

import httpx
import pydantic
import pytest
import requests
import sqlalchemy as sa

import errorkit
from errorkit import Classification, Severity, classify, register_mapper, unregister_mapper
from errorkit.classification import code_for_status, parse_retry_after


def _triple(exc: BaseException) -> tuple[str, str, int, bool]:
    c = classify(exc)
    return (str(c.error_type), c.code, c.status, c.retriable)


def test_errorkit_errors_keep_their_own_attributes() -> None:
    """An AppError classifies as itself, Retry-After included."""
    c = classify(errorkit.RateLimitError(retry_after=5))
    assert (c.code, c.status, c.retriable, c.retry_after) == ("RATE_LIMIT_EXCEEDED", 429, True, 5)
    assert c.headers["Retry-After"] == "5"


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (TimeoutError(), ("timeout_error", "TIMEOUT_ERROR", 504, True)),
        (ConnectionRefusedError(), ("network_error", "NETWORK_ERROR", 503, True)),
        (
            OSError(errno.ENOSPC, "No space left on device"),
            ("system_error", "SYSTEM_DISK_FULL", 503, False),
        ),
        (
            OSError(errno.ENOMEM, "Cannot allocate memory"),
            ("system_error", "SYSTEM_OUT_OF_MEMORY", 503, False),
        ),
        (
            PermissionError(errno.EACCES, "Permission denied"),
            ("system_error", "SYSTEM_PERMISSION_DENIED", 500, False),
        ),
        (OSError(errno.ECONNREFUSED, "refused"), ("network_error", "NETWORK_ERROR", 503, True)),
        (
            OSError(errno.EMFILE, "Too many open files"),
            ("system_error", "SYSTEM_RESOURCE_EXHAUSTED", 503, False),
        ),
        (MemoryError(), ("system_error", "SYSTEM_OUT_OF_MEMORY", 503, False)),
        (ValueError("whatever"), ("unknown_error", "INTERNAL_ERROR", 500, False)),
        (KeyError("k"), ("unknown_error", "INTERNAL_ERROR", 500, False)),
    ],
)
def test_standard_library(exc: BaseException, expected: tuple[str, str, int, bool]) -> None:
    """Stdlib errors map by type and errno; anything unknown is a non-retriable 500."""
    assert _triple(exc) == expected


def test_system_errors_are_critical_and_need_an_operator() -> None:
    """Disk full is critical and in the system category."""
    c = classify(OSError(errno.ENOSPC, "full"))
    assert c.severity is Severity.CRITICAL and c.category == "system"


def test_unknown_exceptions_never_leak_their_text() -> None:
    """The public message of an unknown error is generic."""
    c = classify(RuntimeError("password=hunter2"))
    assert "hunter2" not in c.message and not c.details


def test_json_decode_error() -> None:
    """Bad JSON is a 400 with the position."""
    with pytest.raises(json.JSONDecodeError) as info:
        json.loads("{bad")
    c = classify(info.value)
    assert (c.code, c.status, c.error_type) == ("INVALID_JSON", 400, "validation_error")


def _httpx_error(status: int, headers: dict[str, str] | None = None) -> httpx.HTTPStatusError:
    request = httpx.Request("POST", "https://llm.example.com/v1/chat")
    response = httpx.Response(status, headers=headers, request=request)
    try:
        response.raise_for_status()
    except httpx.HTTPStatusError as exc:
        return exc
    raise AssertionError("no error")


@pytest.mark.parametrize(
    ("status", "headers", "code", "answer", "retriable", "retry_after"),
    [
        (429, {"Retry-After": "7"}, "UPSTREAM_RATE_LIMITED", 429, True, 7.0),
        (503, {"Retry-After": "3"}, "UPSTREAM_UNAVAILABLE", 503, True, 3.0),
        (500, None, "EXTERNAL_SERVICE_ERROR", 502, True, None),
        (502, None, "EXTERNAL_SERVICE_ERROR", 502, True, None),
        (504, None, "UPSTREAM_TIMEOUT", 504, True, None),
        (400, None, "UPSTREAM_REQUEST_REJECTED", 502, False, None),
        (404, None, "UPSTREAM_REQUEST_REJECTED", 502, False, None),
    ],
)
def test_httpx_and_requests_by_status(
    status: int,
    headers: dict[str, str] | None,
    code: str,
    answer: int,
    retriable: bool,
    retry_after: float | None,
) -> None:
    """Upstream answers map by status; 429 and 503 carry Retry-After; 4xx is never retriable."""
    for exc in (_httpx_error(status, headers), _requests_error(status, headers)):
        c = classify(exc)
        assert (c.error_type, c.code, c.status, c.retriable, c.retry_after) == (
            "api_error",
            code,
            answer,
            retriable,
            retry_after,
        ), type(exc)
        assert c.details["upstream_status"] == status


def _requests_error(status: int, headers: dict[str, str] | None) -> requests.HTTPError:
    response = requests.Response()
    response.status_code = status
    response.headers.update(headers or {})
    response.url = "https://llm.example.com/v1/chat"
    try:
        response.raise_for_status()
    except requests.HTTPError as exc:
        return exc
    raise AssertionError("no error")


def test_real_connection_failures() -> None:
    """Real refused connections from httpx and requests are retriable network errors."""
    with pytest.raises(httpx.ConnectError) as hx:
        httpx.get("http://127.0.0.1:9/", timeout=1)
    with pytest.raises(requests.ConnectionError) as rq:
        requests.get("http://127.0.0.1:9/", timeout=1)
    for exc in (hx.value, rq.value):
        c = classify(exc)
        assert (c.error_type, c.status, c.retriable) == ("network_error", 503, True)


def test_httpx_timeout() -> None:
    """An httpx timeout is a retriable upstream timeout."""
    c = classify(httpx.ReadTimeout("slow", request=httpx.Request("GET", "http://127.0.0.1/")))
    assert (c.code, c.status, c.retriable) == ("UPSTREAM_TIMEOUT", 504, True)


def test_retry_after_parsing() -> None:
    """Retry-After accepts seconds and HTTP dates, never negative."""
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert parse_retry_after("120") == 120
    assert parse_retry_after("Thu, 01 Jan 2026 00:00:30 GMT", now=now) == 30
    assert parse_retry_after("Wed, 31 Dec 2025 00:00:00 GMT", now=now) == 0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


def test_sqlite3_and_sqlalchemy_on_a_real_database(tmp_path: object) -> None:
    """Integrity errors are conflicts; a locked database is retriable; others are 500s."""
    engine = sa.create_engine(f"sqlite:///{tmp_path}/t.db")
    with engine.begin() as conn:
        conn.execute(sa.text("create table t (id integer primary key)"))
        conn.execute(sa.text("insert into t values (1)"))
    with pytest.raises(sa.exc.IntegrityError) as dup, engine.begin() as conn:
        conn.execute(sa.text("insert into t values (1)"))
    assert _triple(dup.value) == ("database_error", "RESOURCE_CONFLICT", 409, False)
    with pytest.raises(sa.exc.OperationalError) as missing, engine.begin() as conn:
        conn.execute(sa.text("select * from nope"))
    assert _triple(missing.value) == ("database_error", "DATABASE_ERROR", 500, False)

    raw = sqlite3.connect(f"{tmp_path}/t.db", timeout=0)
    other = sqlite3.connect(f"{tmp_path}/t.db", timeout=0)
    raw.execute("begin exclusive")
    with pytest.raises(sqlite3.OperationalError) as locked:
        other.execute("insert into t values (2)")
    raw.rollback()
    assert _triple(locked.value) == ("database_error", "DATABASE_UNAVAILABLE", 503, True)
    assert _triple(sqlite3.IntegrityError("x")) == (
        "database_error",
        "RESOURCE_CONFLICT",
        409,
        False,
    )
    engine.dispose()


def test_psycopg_connection_refused_is_retriable() -> None:
    """A PostgreSQL that cannot be reached is a retriable 503."""
    import psycopg

    with pytest.raises(psycopg.OperationalError) as info:
        psycopg.connect("host=127.0.0.1 port=9 connect_timeout=1")
    assert _triple(info.value) == ("database_error", "DATABASE_UNAVAILABLE", 503, True)


def test_redis_connection_refused_is_retriable() -> None:
    """A Redis that cannot be reached is a retriable cache error."""
    import redis

    with pytest.raises(redis.ConnectionError) as info:
        redis.Redis(port=9, socket_connect_timeout=1).ping()
    assert _triple(info.value) == ("database_error", "CACHE_UNAVAILABLE", 503, True)


def test_pydantic_errors_have_one_entry_per_field() -> None:
    """Pydantic validation lists each field with location, message and type."""

    class User(pydantic.BaseModel):
        email: str
        age: int

    with pytest.raises(pydantic.ValidationError) as info:
        User.model_validate({"age": "x"})
    c = classify(info.value)
    assert (c.code, c.status) == ("VALIDATION_ERROR", 422)
    assert sorted(e.field for e in c.errors) == ["age", "email"]
    assert {e.type for e in c.errors} == {"missing", "int_parsing"}


def test_framework_http_exceptions() -> None:
    """Starlette and Werkzeug HTTP exceptions map by status with their headers."""
    from starlette.exceptions import HTTPException
    from werkzeug.exceptions import MethodNotAllowed, TooManyRequests

    c = classify(HTTPException(429, "slow down", headers={"Retry-After": "4"}))
    assert (c.code, c.status, c.message, c.retry_after) == (
        "RATE_LIMIT_EXCEEDED",
        429,
        "slow down",
        4,
    )
    c = classify(HTTPException(500, "db password=hunter2"))
    assert "hunter2" not in c.message
    w = classify(MethodNotAllowed(valid_methods=["GET"]))
    assert (w.code, w.status, w.headers["Allow"]) == ("METHOD_NOT_ALLOWED", 405, "GET")
    assert classify(TooManyRequests(retry_after=9)).retry_after == 9


def test_code_for_every_status() -> None:
    """Every status has a code; unlisted ones fall back by class."""
    assert code_for_status(418) == "HTTP_CLIENT_ERROR"
    assert code_for_status(507) == "INTERNAL_ERROR"
    assert code_for_status(413) == "PAYLOAD_TOO_LARGE"


def test_registered_mapper_wins_and_broken_ones_are_skipped() -> None:
    """A user mapper takes precedence; one that raises is skipped."""

    class QuotaError(Exception):
        pass

    def mapper(exc: BaseException) -> Classification | None:
        return Classification("api_error", "PAYMENT_REQUIRED", 402, Severity.WARNING, False)

    def broken(exc: BaseException) -> Classification | None:
        raise RuntimeError("bug in user mapper")

    register_mapper(mapper, QuotaError)
    register_mapper(broken)
    try:
        assert classify(QuotaError()).status == 402
        assert classify(ValueError()).status == 500
    finally:
        unregister_mapper(mapper)
        unregister_mapper(broken)
    assert classify(QuotaError()).status == 500
