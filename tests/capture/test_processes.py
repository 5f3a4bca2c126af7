"""Processes: interpreter exit flushes everything; a forked child has its own writer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.capture.conftest import stored_ids, total_count

from errorkit.capturing import api as capture
from errorkit.store import ErrorStore

CHILD = textwrap.dedent(
    """
    import json, sys
    from errorkit.capturing import api as capture

    store_url, spool_dir, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    # A writer that would not wake for a minute: only the exit flush can store these.
    capture.configure(store_url=store_url, spool_dir=spool_dir, flush_interval=60,
                      flood_per_minute=1_000_000)
    ids = []
    for n in range(count):
        try:
            raise RuntimeError(f"job {n} failed")
        except RuntimeError as exc:
            ids.append(capture.capture(exc))
    print(json.dumps(ids))
    # No flush, no shutdown: a normal exit.
    """
)


def test_normal_exit_stores_every_captured_event(
    store_url: str, tmp_path: Path, open_store: Callable[[str], ErrorStore]
) -> None:
    """A child process captures events and exits without flushing; all of them are stored."""
    done = subprocess.run(
        [sys.executable, "-c", CHILD, store_url, str(tmp_path / "spool"), "300"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    ids = json.loads(done.stdout)
    store = open_store(store_url)
    assert sorted(stored_ids(store)) == sorted(ids)
    assert total_count(store) == 300


def _fail(n: int) -> None:
    raise ValueError(f"value {n} rejected")


def _capture(n: int) -> str:
    try:
        _fail(n)
    except ValueError as exc:
        return capture.capture(exc)
    raise AssertionError("unreachable")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_child_writes_its_own_events_once(
    store_url: str, tmp_path: Path, open_store: Callable[[str], ErrorStore]
) -> None:
    """After fork the child starts its own writer and never re-writes or re-counts what
    the parent had queued; both processes' events are stored exactly once."""
    capture.configure(
        store_url=store_url,
        spool_dir=tmp_path / "spool",
        flush_interval=60,
        flood_per_minute=1_000_000,
    )
    assert capture.flush(timeout=30)  # the writer thread and the store now exist
    parent_ids = [_capture(n) for n in range(5)]  # queued, not written yet
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 1
        try:
            os.close(read)
            child_ids = [_capture(n) for n in range(100, 103)]
            ok = capture.flush(timeout=30)
            os.write(write, json.dumps({"ids": child_ids, "ok": ok}).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write)
    with os.fdopen(read) as pipe:
        child = json.loads(pipe.read())
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert child["ok"] is True
    assert capture.flush(timeout=30)
    store = open_store(store_url)
    assert sorted(stored_ids(store)) == sorted(parent_ids + child["ids"])
    assert total_count(store) == 8
