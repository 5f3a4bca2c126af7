"""Exceptions nobody handled: the one that ends a script and the ones that end threads are
captured as critical, and Python's (or the app's) own hook still runs afterwards."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable
from pathlib import Path

import errorkit
from errorkit.capturing import configure, flush, uncaught
from errorkit.store import ErrorStore

SCRIPT = textwrap.dedent(
    """
    import sys
    from errorkit.capturing import configure

    configure(store_url=sys.argv[1], flush_interval=60, service="script")

    def charge(amount):
        raise ValueError(f"cannot charge {amount}")

    charge(42)
    """
)


def test_an_exception_that_ends_the_script_is_stored_and_still_printed(
    tmp_path: Path, sqlite_url: str, open_store: Callable[[str], ErrorStore]
) -> None:
    script = tmp_path / "job.py"
    script.write_text(SCRIPT)
    done = subprocess.run(
        [sys.executable, str(script), sqlite_url], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1
    assert "ValueError: cannot charge 42" in done.stderr  # Python's own hook still printed it
    assert "Traceback" in done.stderr
    rows = open_store(sqlite_url).list(limit=10).items
    assert len(rows) == 1
    row = rows[0]
    assert row.exception_type == "ValueError"
    assert row.severity == "critical"
    assert row.service == "script"
    assert row.data["tags"] == {"mechanism": "excepthook"}
    assert row.data["extra"]["handled"] is False
    assert "charge" in (row.stack_trace or "")


def test_a_thread_that_dies_is_captured_and_the_previous_hook_still_runs(
    sqlite_url: str, open_store: Callable[[str], ErrorStore]
) -> None:
    heard: list[str] = []
    original = threading.excepthook

    def apps_hook(args: threading.ExceptHookArgs) -> None:
        heard.append(type(args.exc_value).__name__)

    threading.excepthook = apps_hook
    try:
        configure(store_url=sqlite_url)
        assert uncaught.installed()

        def work() -> None:
            raise KeyError("missing")

        worker = threading.Thread(target=work, name="nightly-sync")
        worker.start()
        worker.join()
        assert flush(10)
        assert heard == ["KeyError"]
        [row] = open_store(sqlite_url).list(limit=10).items
        assert row.exception_type == "KeyError"
        assert row.severity == "critical"
        assert row.data["tags"] == {"mechanism": "threading"}
        assert row.data["extra"]["thread"] == "nightly-sync"
        errorkit.reset()
        assert threading.excepthook is apps_hook  # what errorkit found is back
    finally:
        threading.excepthook = original


def test_keyboard_interrupt_and_system_exit_are_not_errors(
    sqlite_url: str, open_store: Callable[[str], ErrorStore]
) -> None:
    configure(store_url=sqlite_url)
    seen: list[type[BaseException]] = []
    original_sys = uncaught._previous_sys
    uncaught._previous_sys = lambda t, e, tb: seen.append(t)
    try:
        for exc in (KeyboardInterrupt(), SystemExit(2)):
            sys.excepthook(type(exc), exc, None)
    finally:
        uncaught._previous_sys = original_sys
    assert seen == [KeyboardInterrupt, SystemExit]  # passed through to the hook before
    assert flush(10)
    assert open_store(sqlite_url).list(limit=10).items == ()


def test_a_hook_installed_after_configure_is_left_alone(sqlite_url: str) -> None:
    original = sys.excepthook
    configure(store_url=sqlite_url)
    assert uncaught.installed()

    def later(*args: object) -> None:
        return None

    sys.excepthook = later
    try:
        errorkit.reset()
        assert sys.excepthook is later  # a later hook is never undone
    finally:
        sys.excepthook = original


def test_capture_uncaught_false_installs_nothing(sqlite_url: str) -> None:
    before = (sys.excepthook, threading.excepthook)
    configure(store_url=sqlite_url, capture_uncaught=False)
    assert not uncaught.installed()
    assert (sys.excepthook, threading.excepthook) == before
    configure(store_url=sqlite_url, capture_uncaught=True)  # a left-out setting keeps its value
    assert uncaught.installed()
    configure(store_url=sqlite_url, capture_uncaught=False)
    assert (sys.excepthook, threading.excepthook) == before
