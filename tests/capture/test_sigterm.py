"""A server stopped with a plain SIGTERM (docker stop, Kubernetes, systemd) keeps every error
it captured: errorkit flushes or spools on SIGTERM, chains the handler that was there, and
leaves the process's exit as it was."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from errorkit.capturing.spool import decode_batch
from errorkit.store import ErrorStore

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGTERM"), reason="needs POSIX signals")

SERVER = textwrap.dedent(
    """
    import signal, sys
    from flask import Flask
    from werkzeug.serving import make_server
    import errorkit.flask
    from errorkit.capturing import configure

    store_url, spool_dir, port, own_handler = sys.argv[1:5]
    port = int(port)
    if own_handler == "yes":   # the app's own handler, installed before errorkit's
        def bye(signum, frame):
            print("app handler ran", flush=True)
            sys.exit(3)
        signal.signal(signal.SIGTERM, bye)
    # flush_interval=60: nothing is written before the signal unless errorkit flushes then
    configure(store_url=store_url, spool_dir=spool_dir, flush_interval=60, batch_size=1000)

    app = Flask("sigterm")

    @app.get("/boom")
    def boom():
        raise RuntimeError("lost unless flushed")

    errorkit.flask.install(app, endpoints=None)
    server = make_server("127.0.0.1", port, app)
    print("ready", flush=True)
    server.serve_forever()
    """
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run_and_terminate(
    tmp_path: Path, store_url: str, *, own_handler: bool, requests: int = 3
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    script = tmp_path / "server.py"
    script.write_text(SERVER)
    port = _free_port()
    child = subprocess.Popen(
        [
            sys.executable,
            str(script),
            store_url,
            str(tmp_path / "spool"),
            str(port),
            "yes" if own_handler else "no",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        ids = []
        for _ in range(requests):
            with pytest.raises(urllib.error.HTTPError) as answer:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/boom", timeout=10)
            assert answer.value.code == 500
            ids.append(json.loads(answer.value.read())["error"]["error_id"])
        child.send_signal(signal.SIGTERM)
        out, err = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    return subprocess.CompletedProcess(child.args, child.returncode, out, err), ids


def test_sigterm_stores_every_captured_error_and_still_ends_by_the_signal(
    tmp_path: Path, store_url: str, open_store: Callable[[str], ErrorStore]
) -> None:
    done, ids = _run_and_terminate(tmp_path, store_url, own_handler=False)
    assert done.returncode == -signal.SIGTERM, done.stderr  # exit behaviour unchanged
    store = open_store(store_url)
    assert len(ids) == 3
    for error_id in ids:
        assert store.get(error_id) is not None, error_id


def test_sigterm_chains_the_apps_own_handler(
    tmp_path: Path, store_url: str, open_store: Callable[[str], ErrorStore]
) -> None:
    done, ids = _run_and_terminate(tmp_path, store_url, own_handler=True, requests=1)
    assert "app handler ran" in done.stdout
    assert done.returncode == 3, done.stderr
    assert open_store(store_url).get(ids[0]) is not None


def test_sigterm_spools_what_an_unreachable_store_cannot_take(tmp_path: Path) -> None:
    """With the store down the captured errors are in the spool when the process is gone."""
    dead = "postgresql+psycopg://errorkit@127.0.0.1:1/none?connect_timeout=1"
    done, ids = _run_and_terminate(tmp_path, dead, own_handler=False, requests=2)
    assert done.returncode == -signal.SIGTERM, done.stderr
    spooled = [
        record.error_id
        for path in sorted((tmp_path / "spool").rglob("*"))
        if path.is_file()
        for line in path.read_bytes().splitlines()
        if line.strip()
        for record in decode_batch(line)[0]
    ]
    assert sorted(spooled) == sorted(ids)
