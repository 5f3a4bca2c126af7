"""Three ``errorkit serve`` nodes on one PostgreSQL take the same Sentry traffic from
concurrent clients, retries of one event included (sent to different nodes at the same
time): afterwards the store holds one row per distinct event id, every group's count is
exact, and the alert rule all three nodes evaluate fired once and was delivered once."""

from __future__ import annotations

import gzip
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, text
from tests._services import fresh_postgres_database
from tests.alerts._support import Receiver

from errorkit.cli import cli
from errorkit.store import upgrade

ROOT = Path(__file__).resolve().parents[2]
NODES = 3
PROJECT = "shop"
#: Distinct events per group: one group large enough for the alert rule, three below it.
GROUPS = {"checkout": 90, "search": 30, "login": 30, "upload": 30}
EXCEPTIONS = {
    "checkout": "ValueError",
    "search": "KeyError",
    "login": "PermissionError",
    "upload": "OSError",
}
RULE_COUNT = 60
#: Every bound of the test, so a hung node fails it instead of hanging it.
START_SECONDS = 60.0
SEND_SECONDS = 120.0
ALERT_SECONDS = 60.0
INTERVAL_SECONDS = 0.3

ALERTS = """\
interval = "{interval}s"

[[channels]]
name = "hook"
type = "webhook"
url = "{url}"

[[rules]]
name = "hot-group"
kind = "repeat"
count = {count}
window = "1h"
cooldown = "1h"
scope = {{ service = "{project}" }}
channels = ["hook"]
"""

_DSN = re.compile(r"https?://([0-9a-f]{32})@[^/\s]+/(\d+)")


@dataclass(frozen=True)
class Key:
    public_key: str
    project_id: int


@dataclass
class Node:
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def tail(self) -> str:
        lines = self.log.read_text(encoding="utf-8", errors="replace").splitlines()
        return "\n".join(lines[-30:])


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A migrated PostgreSQL database of this test's own, dropped afterwards."""
    with fresh_postgres_database() as url:
        upgrade(url)
        yield url


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _invoke(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def _make_key(url: str) -> Key:
    """The project and its DSN key, made the way an operator does: with the CLI."""
    _invoke("projects", "create", PROJECT, "--store", url)
    output = _invoke(
        "keys", "create", "--project", PROJECT, "--rate-limit", "1000000", "--store", url
    )
    match = _DSN.search(output)
    assert match is not None, output
    return Key(match.group(1), int(match.group(2)))


def _start_node(url: str, folder: Path, alerts: str) -> Node:
    folder.mkdir(parents=True)
    config = folder / "alerts.toml"
    config.write_text(alerts, encoding="utf-8")
    port = _free_port()
    log = folder / "serve.log"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    env["ERRORKIT_SPOOL_DIR"] = str(folder / "spool")
    command = [sys.executable, "-m", "errorkit", "serve", "--store", url]
    command += ["--host", "127.0.0.1", "--port", str(port), "--alerts", str(config)]
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    return Node(port, process, log)


def _wait_ready(nodes: list[Node]) -> None:
    deadline = time.monotonic() + START_SECONDS
    for node in nodes:
        while True:
            if node.process.poll() is not None:
                pytest.fail(f"node on {node.port} exited:\n{node.tail()}")
            try:
                with socket.create_connection(("127.0.0.1", node.port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"node on {node.port} did not start:\n{node.tail()}")
                time.sleep(0.1)


def _stop(nodes: list[Node]) -> None:
    for node in nodes:
        if node.process.poll() is None:
            node.process.terminate()
    for node in nodes:
        try:
            node.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            node.process.kill()
            node.process.wait(timeout=15)


def _event(event_id: str, group: str, n: int) -> dict[str, Any]:
    """An error event as sentry-python sends it (shortened stack)."""
    frames = [
        {
            "filename": f"shop/{group}/step{depth}.py",
            "abs_path": f"/srv/shop/{group}/step{depth}.py",
            "function": f"{group}_step{depth}",
            "module": f"shop.{group}.step{depth}",
            "lineno": 10 + depth,
            "context_line": f"    return {group}_step{depth + 1}(cart)",
            "pre_context": ["", f"def {group}_step{depth}(cart):"],
            "post_context": ["", ""],
            "in_app": True,
        }
        for depth in range(5)
    ]
    return {
        "event_id": event_id,
        "timestamp": datetime.now(UTC).isoformat(),
        "platform": "python",
        "level": "error",
        "server_name": "web-1",
        "environment": "production",
        "release": "shop@1.4.2",
        "exception": {
            "values": [
                {
                    "type": EXCEPTIONS[group],
                    "value": f"{group} failed for cart {n}",
                    "module": None,
                    "mechanism": {"type": "generic", "handled": True},
                    "stacktrace": {"frames": frames},
                }
            ]
        },
        "tags": {"region": "eu", "flow": group},
        "user": {"id": f"user-{n % 7}"},
        "request": {"method": "POST", "url": f"http://shop.example/{group}"},
        "sdk": {"name": "sentry.python", "version": "2.75.0"},
    }


def _envelope(event: dict[str, Any]) -> bytes:
    payload = json.dumps(event).encode()
    header = {"event_id": event["event_id"], "sent_at": datetime.now(UTC).isoformat()}
    item = {"type": "event", "length": len(payload), "content_type": "application/json"}
    lines = [json.dumps(header).encode(), json.dumps(item).encode(), payload]
    return gzip.compress(b"\n".join(lines) + b"\n")


class Sender:
    """Posts envelopes as a Sentry SDK does, retrying what a node did not take (a refused
    connection, a 429 or a 5xx), within the test's bound."""

    def __init__(self, key: Key) -> None:
        self.key = key
        self.deadline = time.monotonic() + SEND_SECONDS
        self.answers: Counter[int] = Counter()
        self._lock = threading.Lock()
        self._local = threading.local()
        self._clients: list[httpx.Client] = []

    def _client(self) -> httpx.Client:
        client: httpx.Client | None = getattr(self._local, "client", None)
        if client is None:
            client = httpx.Client(timeout=30.0)
            self._local.client = client
            with self._lock:
                self._clients.append(client)
        return client

    def close(self) -> None:
        for client in self._clients:
            client.close()

    def send(self, node: Node, event_id: str, body: bytes) -> None:
        auth = (
            f"Sentry sentry_version=7, sentry_key={self.key.public_key}, "
            "sentry_client=sentry.python/2.75.0"
        )
        headers = {
            "Content-Type": "application/x-sentry-envelope",
            "Content-Encoding": "gzip",
            "X-Sentry-Auth": auth,
        }
        url = f"{node.base}/api/{self.key.project_id}/envelope/"
        while True:
            try:
                answer = self._client().post(url, content=body, headers=headers)
            except httpx.TransportError:
                status, wait = 0, 0.2
            else:
                status = answer.status_code
                with self._lock:
                    self.answers[status] += 1
                if status == 200:
                    assert answer.json()["id"].replace("-", "") == event_id
                    return
                assert status == 429 or status >= 500, (status, answer.text)
                wait = min(float(answer.headers.get("Retry-After") or 0.5), 2.0)
            if time.monotonic() + wait > self.deadline:
                pytest.fail(f"event {event_id} not taken by node {node.port} (last {status})")
            time.sleep(wait)


@pytest.mark.postgres
@pytest.mark.slow
def test_three_nodes_store_each_event_once_and_alert_once(
    postgres_url: str, tmp_path: Path
) -> None:
    key = _make_key(postgres_url)
    receiver = Receiver()
    alerts = ALERTS.format(
        interval=INTERVAL_SECONDS, url=receiver.url + "/hook", count=RULE_COUNT, project=PROJECT
    )
    events: list[tuple[str, str, bytes]] = []  # (event id, group, gzip'd envelope)
    for group, count in GROUPS.items():
        for n in range(count):
            event_id = uuid.uuid4().hex
            events.append((event_id, group, _envelope(_event(event_id, group, n))))
    # Every third event is a retry storm: the same envelope to all three nodes at once.
    stormed = events[::3]
    single = [e for i, e in enumerate(events) if i % 3]
    nodes: list[Node] = []
    sender = Sender(key)
    try:
        nodes = [_start_node(postgres_url, tmp_path / f"node-{i}", alerts) for i in range(NODES)]
        _wait_ready(nodes)
        sender.deadline = time.monotonic() + SEND_SECONDS  # the bound starts now
        barrier = threading.Barrier(NODES, timeout=SEND_SECONDS)

        def storm(node: Node) -> None:
            try:
                for event_id, _, body in stormed:
                    barrier.wait()
                    sender.send(node, event_id, body)
            except BaseException:
                barrier.abort()  # the other storm threads stop at once instead of waiting
                raise

        def plain(worker: int) -> None:
            try:
                for i, (event_id, _, body) in enumerate(single[worker::6]):
                    sender.send(nodes[(worker + i) % NODES], event_id, body)
                    if i % 4 == 0:  # and some retried later, on the next node
                        sender.send(nodes[(worker + i + 1) % NODES], event_id, body)
            except BaseException:
                barrier.abort()
                raise

        with ThreadPoolExecutor(max_workers=NODES + 6) as pool:
            futures = [pool.submit(storm, node) for node in nodes]
            futures += [pool.submit(plain, worker) for worker in range(6)]
            for future in futures:
                future.result(timeout=SEND_SECONDS + 30)

        engine = create_engine(postgres_url)
        try:
            with engine.connect() as conn:
                rows = conn.execute(text("SELECT error_id, fingerprint, service FROM errors"))
                stored = [(r.error_id.replace("-", ""), r.fingerprint, r.service) for r in rows]
                groups = dict(
                    conn.execute(text("SELECT fingerprint, count FROM error_groups")).all()
                )
        finally:
            engine.dispose()
        ids = [event_id for event_id, _, _ in stored]
        assert len(ids) == len(set(ids)) == len(events)
        assert set(ids) == {event_id for event_id, _, _ in events}
        assert {service for _, _, service in stored} == {PROJECT}
        fingerprint_of = {event_id: fp for event_id, fp, _ in stored}
        by_group: dict[str, set[str]] = {}
        for event_id, group, _ in events:
            by_group.setdefault(group, set()).add(fingerprint_of[event_id])
        assert all(len(fps) == 1 for fps in by_group.values()), by_group
        expected = {fps.pop(): GROUPS[group] for group, fps in by_group.items()}
        assert groups == expected

        # The rule holds for the hot group only; all three nodes keep evaluating it.
        deadline = time.monotonic() + ALERT_SECONDS
        while not receiver.requests:
            assert time.monotonic() < deadline, "the alert never arrived:\n" + nodes[0].tail()
            time.sleep(INTERVAL_SECONDS)
        time.sleep(10 * INTERVAL_SECONDS)  # ten more evaluations on every node
        assert all(node.process.poll() is None for node in nodes)
        engine = create_engine(postgres_url)
        try:
            with engine.connect() as conn:
                fired = conn.execute(
                    text("SELECT rule, scope FROM alert_events WHERE kind = 'fired'")
                ).all()
        finally:
            engine.dispose()
        hot = next(fp for fp, count in expected.items() if count >= RULE_COUNT)
        assert [tuple(row) for row in fired] == [("hot-group", f"service={PROJECT}|group={hot}")]
        assert [request.path for request in receiver.requests] == ["/hook"]
        assert sender.answers[200] >= len(events) + 2 * len(stormed)
    finally:
        sender.close()
        _stop(nodes)
        receiver.close()
