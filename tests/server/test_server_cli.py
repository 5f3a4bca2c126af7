"""``errorkit tokens`` and ``errorkit serve``: tokens shown once and usable, and the refusal
to serve on a network address before an admin token exists."""

from __future__ import annotations

import json
import sys
from typing import Any

import pytest
from click.testing import CliRunner

from errorkit.cli import cli
from errorkit.cli.server_cmds import is_loopback
from errorkit.store import open_store
from errorkit.store.tokens import TokenStore


def run(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_tokens_create_list_revoke(store_url: str) -> None:
    made = run("tokens", "create", "--role", "admin", "--name", "ops", "--store", store_url)
    assert made.exit_code == 0, made.output
    secret = made.stdout.strip().splitlines()[0]
    assert secret.startswith("ekt_")
    assert "shown only now" in made.stderr
    with open_store(store_url) as store:
        assert TokenStore(store).verify(secret).role == "admin"

    read = run(
        "tokens", "create", "--role", "read", "--expires", "30d", "--json", "--store", store_url
    )
    assert read.exit_code == 0, read.output
    read_token = json.loads(read.stdout)
    assert read_token["role"] == "read"
    assert read_token["expires_at"] is not None

    listed = run("tokens", "list", "--json", "--store", store_url)
    assert listed.exit_code == 0
    items = json.loads(listed.stdout)
    assert [(t["name"], t["role"], t["state"]) for t in items] == [
        ("ops", "admin", "active"),
        ("read token", "read", "active"),
    ]
    assert secret not in listed.stdout
    assert read_token["token"] not in listed.stdout
    table = run("tokens", "list", "--store", store_url)
    assert "ops" in table.stdout
    assert secret not in table.stdout

    revoked = run("tokens", "revoke", str(items[0]["id"]), "--store", store_url)
    assert revoked.exit_code == 0
    assert "revoked token" in revoked.stdout
    states = [
        t["state"] for t in json.loads(run("tokens", "list", "--json", "--store", store_url).stdout)
    ]
    assert states == ["revoked", "active"]
    unknown = CliRunner().invoke(cli, ["tokens", "revoke", "999", "--store", store_url])
    assert unknown.exit_code == 1
    assert "no API token with id 999" in unknown.output


def test_tokens_create_refuses_a_bad_expiry(store_url: str) -> None:
    bad = CliRunner().invoke(
        cli, ["tokens", "create", "--role", "read", "--expires", "soon", "--store", store_url]
    )
    assert bad.exit_code == 2
    assert "is not a duration" in bad.output


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """uvicorn.run replaced by a recorder: serve's checks run, no server starts."""
    import uvicorn

    calls: list[dict[str, Any]] = []

    def fake_run(app: Any, **options: Any) -> None:
        calls.append({"app": app, **options})

    monkeypatch.setattr(uvicorn, "run", fake_run)
    return calls


def test_serve_refuses_a_network_address_without_an_admin_token(
    store_url: str, started: list[dict[str, Any]]
) -> None:
    with open_store(store_url) as store:
        TokenStore(store).create(role="read")  # a read token is not enough
    refused = CliRunner().invoke(cli, ["serve", "--store", store_url, "--host", "0.0.0.0"])
    assert refused.exit_code == 2
    assert "refusing to serve on 0.0.0.0" in refused.output
    assert "errorkit tokens create --role admin" in refused.output
    assert started == []


def test_serve_starts_on_loopback_without_a_token_and_anywhere_with_one(
    store_url: str, started: list[dict[str, Any]]
) -> None:
    local = run("serve", "--store", store_url, "--port", "9999")
    assert local.exit_code == 0, local.output
    assert "no admin token yet" in local.stderr
    assert started[0]["host"] == "127.0.0.1"
    assert started[0]["port"] == 9999
    assert started[0]["log_config"] is None
    run("tokens", "create", "--role", "admin", "--store", store_url)
    network = run("serve", "--store", store_url, "--host", "0.0.0.0", "--prefix", "/tracker")
    assert network.exit_code == 0, network.output
    assert "http://0.0.0.0:8080/tracker/api/" in network.stdout
    assert started[1]["host"] == "0.0.0.0"
    paths = started[1]["app"].openapi()["paths"]
    assert "/tracker/api/groups" in paths


def test_serve_with_redis_reads_shared_breakers(
    store_url: str, started: list[dict[str, Any]]
) -> None:
    from tests._services import require_redis

    url = require_redis()
    served = run("serve", "--store", store_url, "--redis", url, "--namespace", "tracker-test")
    assert served.exit_code == 0, served.output
    source = started[0]["app"].state.errorkit_breakers
    assert source.kind == "redis"
    assert source.backend.namespace == "tracker-test"


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("localhost", True),
        ("::1", True),
        ("[::1]", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.5", False),
        ("tracker.example.com", False),
    ],
)
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_serve_answers_over_http(tmp_path: Any) -> None:
    """The real command under uvicorn: liveness is open, a token made by the CLI works."""
    import os
    import subprocess
    import sys
    import time
    from pathlib import Path

    import httpx

    url = f"sqlite:///{tmp_path / 'served.db'}"
    made = run("tokens", "create", "--role", "read", "--store", url)
    token = made.stdout.strip().splitlines()[0]
    port = _free_port()
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root / "src")}
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from errorkit.cli import main; main()",
            "serve",
            "--store",
            url,
            "--port",
            str(port),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}/admin/api"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                live = httpx.get(f"{base}/health/live", timeout=2)
                break
            except httpx.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    output = process.stdout.read() if process.stdout else ""
                    raise AssertionError(f"serve did not come up: {output}") from None
                time.sleep(0.1)
        assert live.status_code == 200
        assert httpx.get(f"{base}/groups", timeout=5).status_code == 401
        groups = httpx.get(
            f"{base}/groups", headers={"Authorization": f"Bearer {token}"}, timeout=5
        )
        assert groups.status_code == 200
        assert groups.json()["items"] == []
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_serve_refuses_workers_with_alerts(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path / 'served.db'}"
    (tmp_path / "alerts.toml").write_text("")
    result = run(
        "serve", "--store", url, "--workers", "2", "--alerts", str(tmp_path / "alerts.toml")
    )
    assert result.exit_code == 2
    assert "--alerts runs with one worker only" in result.output


def test_serve_with_workers_shares_the_port_and_stores_every_event_once(tmp_path: Any) -> None:
    """`--workers 2`: two processes answer on one port; Sentry envelopes sent on fresh
    connections (spread over both) are each stored once."""
    import json
    import os
    import subprocess
    import sys
    import time
    import uuid

    import httpx

    from errorkit.store import ErrorStore
    from errorkit.store.projects import ProjectStore

    url = f"sqlite:///{tmp_path / 'served.db'}"
    store = ErrorStore(url)
    projects = ProjectStore(store)
    project = projects.create_project("shop")
    key = projects.create_key(project.id)
    port = _free_port()
    process = _serve_two_workers(url, port, subprocess.PIPE)
    ids = [uuid.uuid4().hex for _ in range(40)]
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/admin/api/health/live", timeout=2):
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                output = process.stdout.read() if process.stdout else ""
                raise AssertionError(f"serve did not come up: {output}")
            time.sleep(0.2)
        workers = _children(process.pid)
        if sys.platform == "linux":
            # each listens on a socket of its own (SO_REUSEPORT): the kernel spreads
            # connections over them instead of the first awake taking them all
            workers = _two_listening(process, port, deadline)
        auth = {"X-Sentry-Auth": f"Sentry sentry_key={key.public_key}, sentry_version=7"}
        for event_id in ids:
            event = {
                "event_id": event_id,
                "level": "error",
                "exception": {"values": [{"type": "ValueError", "value": "bad cart"}]},
            }
            payload = json.dumps(event).encode()
            body = b"\n".join(
                [
                    json.dumps({"event_id": event_id}).encode(),
                    json.dumps({"type": "event", "length": len(payload)}).encode(),
                    payload,
                ]
            )
            with httpx.Client() as client:  # a fresh connection: either worker may take it
                answer = client.post(
                    f"http://127.0.0.1:{port}/api/{project.id}/envelope/",
                    content=body,
                    headers=auth,
                    timeout=10,
                )
            assert answer.status_code == 200, answer.text
        stored = [store.get(event_id) for event_id in ids]
        assert all(row is not None for row in stored)
        [group] = store.groups(limit=10).items
        assert group.count == len(ids)
        if sys.platform == "linux":
            # a worker that dies is replaced; the port stays served meanwhile
            os.kill(workers[0], 9)
            deadline = time.monotonic() + 60
            while True:
                now = _children(process.pid)
                if (
                    len(now) == 2
                    and workers[0] not in now
                    and all(_listens_on(pid, port) for pid in now)
                ):
                    break
                assert time.monotonic() < deadline, f"no worker replaced {workers[0]}"
                time.sleep(0.2)
            live = httpx.get(f"http://127.0.0.1:{port}/admin/api/health/live", timeout=5)
            assert live.status_code == 200
            workers = now
        process.terminate()
        assert process.wait(timeout=60) == 0
        assert not any(_alive(pid) for pid in workers)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)
        store.close()


@pytest.mark.skipif(sys.platform != "linux", reason="the worker supervisor is Linux's")
def test_serve_workers_do_not_outlive_a_killed_supervisor(tmp_path: Any) -> None:
    """SIGKILL leaves the supervisor no time to stop its workers: the kernel tells each
    (PR_SET_PDEATHSIG), so none keeps the port."""
    import subprocess
    import time

    port = _free_port()
    process = _serve_two_workers(f"sqlite:///{tmp_path / 'killed.db'}", port, subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 90
        workers = _two_listening(process, port, deadline)
        process.kill()
        process.wait(timeout=30)
        while any(_alive(pid) for pid in workers):
            assert time.monotonic() < deadline + 30, f"workers {workers} outlived it"
            time.sleep(0.2)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)


def _serve_two_workers(url: str, port: int, output: int) -> Any:
    """`errorkit serve --workers 2` on ``url`` in a process of its own (errorkit from this
    checkout, no session secret given); its output to ``output``."""
    import os
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root / "src")}
    env.pop("ERRORKIT_SESSION_SECRET", None)
    command = [sys.executable, "-m", "errorkit", "serve", "--store", url, "--port", str(port)]
    return subprocess.Popen(
        [*command, "--workers", "2"],
        env=env,
        stdout=output,
        stderr=subprocess.STDOUT if output == subprocess.PIPE else output,
        text=True,
    )


def _two_listening(process: Any, port: int, deadline: float) -> list[int]:
    """The two workers of ``process``, once each listens on ``port``."""
    import time

    workers = _children(process.pid)
    while not (len(workers) == 2 and all(_listens_on(pid, port) for pid in workers)):
        assert process.poll() is None, "serve stopped"
        assert time.monotonic() < deadline, f"workers {workers} are not listening"
        time.sleep(0.2)
        workers = _children(process.pid)
    return workers


def _children(pid: int) -> list[int]:
    from pathlib import Path

    found = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(n) for n in found.read_text().split()] if found.exists() else []


def _alive(pid: int) -> bool:
    from pathlib import Path

    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _listens_on(pid: int, port: int) -> bool:
    """Whether process ``pid`` holds a listening TCP socket on ``port`` (Linux /proc)."""
    import os
    from pathlib import Path

    listening = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                listening.add(fields[9])  # the socket's inode
    try:
        links = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
    except OSError:
        return False
    return any(link == f"socket:[{inode}]" for inode in listening for link in links)
