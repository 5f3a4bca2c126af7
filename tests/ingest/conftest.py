"""Fixtures for the ingest endpoints: a store of each backend (the store's own fixtures),
projects with keys of every kind, and the tracker served by a real uvicorn on a free port."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tests.store.conftest import backend, postgres_database, store, store_url

from errorkit.store import ErrorStore
from errorkit.store.projects import Project, ProjectKey, ProjectStore

__all__ = ["Keys", "Served", "backend", "postgres_database", "store", "store_url"]


@dataclass
class Keys:
    """Two projects: ``shop`` with a good and a revoked key, ``other`` with a key."""

    shop: Project
    other: Project
    good: ProjectKey
    revoked: ProjectKey
    others: ProjectKey


def make_keys(store: ErrorStore) -> Keys:
    projects = ProjectStore(store)
    shop = projects.create_project("shop")
    other = projects.create_project("other")
    good = projects.create_key(shop.id, label="production")
    revoked = projects.create_key(shop.id, label="old")
    projects.revoke_key(revoked.id)
    others = projects.create_key(other.id)
    return Keys(shop, other, good, revoked, others)


@pytest.fixture
def keys(store: ErrorStore) -> Keys:
    return make_keys(store)


@dataclass
class Served:
    """The tracker on a real HTTP server."""

    base_url: str
    app: Any
    store: ErrorStore
    keys: Keys

    @property
    def ingest(self) -> Any:
        return self.app.state.errorkit_ingest

    def dsn(self, key: ProjectKey | None = None) -> str:
        return (key or self.keys.good).dsn(self.base_url)


class UvicornThread:
    """uvicorn serving ``app`` on 127.0.0.1 (a port picked by the system) on a thread."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind(("127.0.0.1", 0))
        self.port = self.socket.getsockname()[1]
        config = uvicorn.Config(app, log_config=None, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True
        )

    def __enter__(self) -> UvicornThread:
        self.thread.start()
        for _ in range(500):
            if self.server.started:
                return self
            self.thread.join(timeout=0.02)
        message = "uvicorn did not start"
        raise RuntimeError(message)

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.socket.close()


def tracker_app(store: ErrorStore, spool: Path, **options: Any) -> Any:
    from errorkit.server import create_app

    return create_app(store=store, dashboard=False, ingest_spool=spool, **options)


@pytest.fixture
def served(store: ErrorStore, keys: Keys, tmp_path: Path) -> Iterator[Served]:
    """The tracker with its ingest, served by uvicorn, on a store of each backend."""
    app = tracker_app(store, tmp_path / "spool")
    with UvicornThread(app) as server:
        yield Served(f"http://127.0.0.1:{server.port}", app, store, keys)
