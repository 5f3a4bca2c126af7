"""A real tracker for the HTTP transport's tests: ``errorkit serve`` in its own process on
127.0.0.1, on a SQLite or PostgreSQL store, with a project and a key; it can be stopped and
started again on the same port and store."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from tests._services import fresh_postgres_database

import errorkit
from errorkit.capturing import api as capture
from errorkit.store import ErrorStore
from errorkit.store.projects import Project, ProjectKey, ProjectStore

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _no_pipeline_left_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test starts unconfigured, with default spools under its own directory, and
    ends with its pipeline stopped and every default back."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    capture.shutdown(timeout=5)
    yield
    errorkit.reset(timeout=5)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Tracker:
    """``errorkit serve`` on ``store_url`` at 127.0.0.1:``port``; ``reader`` reads its
    store, ``projects`` its projects and keys."""

    store_url: str
    port: int
    reader: ErrorStore
    projects: ProjectStore
    project: Project
    key: ProjectKey
    log: Path
    process: subprocess.Popen[bytes] | None = field(default=None)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def dsn(self, key: ProjectKey | None = None, port: int | None = None) -> str:
        """The store_url an app reports with (through ``port`` when given: a proxy)."""
        return (key or self.key).dsn(f"http://127.0.0.1:{port or self.port}")

    def start(self) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    "from errorkit.cli import main; main()",
                    "serve",
                    "--store",
                    self.store_url,
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                ],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{self.base}/admin/api/health/live", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"errorkit serve did not come up: {self.log.read_text()}")
            time.sleep(0.05)

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)


def _tracker(store_url: str, tmp_path: Path) -> Iterator[Tracker]:
    reader = ErrorStore(store_url)
    projects = ProjectStore(reader)
    project = projects.create_project("checkout")
    key = projects.create_key(project.id, label="app")
    log = tmp_path / "serve.log"
    tracker = Tracker(store_url, free_port(), reader, projects, project, key, log)
    tracker.start()
    try:
        yield tracker
    finally:
        tracker.stop()
        reader.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def tracker(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Tracker]:
    """A running tracker on each backend, with an empty store of its own."""
    if request.param == "sqlite":
        yield from _tracker(f"sqlite:///{tmp_path / 'tracker.db'}", tmp_path)
        return
    with fresh_postgres_database() as url:
        yield from _tracker(url, tmp_path)


@pytest.fixture
def sqlite_tracker(tmp_path: Path) -> Iterator[Tracker]:
    yield from _tracker(f"sqlite:///{tmp_path / 'tracker.db'}", tmp_path)


def total_count(store: ErrorStore) -> int:
    """Every occurrence the store's groups count."""
    return sum(group.count for group in store.groups(limit=10_000).items)


def stored_ids(store: ErrorStore) -> list[str]:
    """The error ids of every stored row."""
    ids: list[str] = []
    cursor: str | None = None
    while True:
        page = store.list(limit=10_000, cursor=cursor)
        ids.extend(item.error_id for item in page.items)
        if page.next_cursor is None:
            return ids
        cursor = page.next_cursor
