"""Breakers and transactions speak through ``logging`` only: nothing is printed when the
app has not set logging up, and everything reaches it when it has."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

import errorkit
from errorkit import _guard
from errorkit.resilience import CircuitBreaker, ManualClock, RedisBackend, transaction

# A breaker that opens and falls back, a breaker whose Redis is unreachable (an internal
# error, counted), and two transactions that roll back: every one of them logs a WARNING.
SCRIPT = textwrap.dedent(
    """
    import errorkit
    from errorkit.resilience import CircuitBreaker, ManualClock, RedisBackend, transaction
    from sqlalchemy import create_engine, text

    def down():
        raise errorkit.ServiceUnavailableError()

    clock = ManualClock()
    CircuitBreaker("quiet", failure_threshold=1, clock=clock, fallback=lambda: "x").call(down)
    dead = CircuitBreaker("dead", backend=RedisBackend("redis://127.0.0.1:1/0"), clock=clock)
    dead.call(lambda: None)
    engine = create_engine("sqlite://")
    try:
        with transaction(engine, "create order") as conn:
            conn.execute(text("select * from missing"))
    except errorkit.DatabaseError:
        pass
    try:
        with transaction(engine, "own error"):
            raise KeyError("mine")
    except KeyError:
        pass
    print("done")
    """
)


def test_nothing_reaches_stderr_when_logging_is_not_set_up() -> None:
    src = str(Path(errorkit.__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": src}
    env.pop("ERRORKIT_LOG_LEVEL", None)
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=60
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "done\n", "")


def test_the_same_warnings_reach_the_apps_logging(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="errorkit")
    before = _guard.internal_error_counts().get("breaker.redis", 0)

    def down() -> None:
        raise errorkit.ServiceUnavailableError()

    clock = ManualClock()
    CircuitBreaker("heard", failure_threshold=1, clock=clock, fallback=lambda: "x").call(down)
    dead = CircuitBreaker("gone", backend=RedisBackend("redis://127.0.0.1:1/0"), clock=clock)
    dead.call(lambda: None)
    with pytest.raises(KeyError), transaction(create_engine("sqlite://"), "own error"):
        raise KeyError("mine")
    engine = create_engine("sqlite://")
    with pytest.raises(errorkit.DatabaseError), transaction(engine, "create order") as conn:
        conn.execute(text("select * from missing"))
    heard = {(r.name, r.levelname, r.getMessage().split(":")[0]) for r in caplog.records}
    assert {
        ("errorkit.breaker", "WARNING", "circuit heard"),
        ("errorkit.breaker", "WARNING", "circuit gone"),
        ("errorkit.transaction", "WARNING", "transaction 'own error' rolled back"),
        ("errorkit.transaction", "WARNING", "transaction 'create order' rolled back"),
    } <= heard
    gone = [r for r in caplog.records if r.getMessage().startswith("circuit gone")]
    assert "Redis unreachable (ConnectionError: " in gone[0].getMessage()
    assert _guard.internal_error_counts()["breaker.redis"] == before + 1


def test_errorkit_has_a_library_null_handler() -> None:
    handlers = logging.getLogger("errorkit").handlers
    assert any(isinstance(h, logging.NullHandler) for h in handlers)
