"""Durability of the ingest: an answered event is stored or spooled, the spool is replayed
once the store is back (each event exactly once), a full queue or spool is a 503 the SDK
retries, and stopping the server writes every queued event first.

SQLite goes down the way it does in production (another process holds an exclusive lock);
PostgreSQL for real, through a TCP proxy the test stops and starts.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import make_url
from starlette.testclient import TestClient
from tests._proxy import TCPProxy
from tests._services import fresh_postgres_database
from tests.ingest._wire import event, event_envelope, sentry_auth
from tests.ingest.conftest import Keys, UvicornThread, make_keys, tracker_app

from errorkit.capturing.spool import Spool
from errorkit.ingest.app import IngestApp
from errorkit.ingest.writer import GroupCommit, IngestUnavailable
from errorkit.store import ErrorStore
from errorkit.store.models import WriteResult
from errorkit.store.projects import ProjectStore
from errorkit.store.records import CountDelta, ErrorRecord


@dataclass
class Outage:
    """A store the server writes to, a reader beside it, and the switch."""

    store: ErrorStore
    reader: ErrorStore
    down: Callable[[], None]
    up: Callable[[], None]
    reads_work: bool  # while down (SQLite's readers go on under a writer's lock)


@pytest.fixture
def sqlite_outage(tmp_path: Path) -> Iterator[Outage]:
    url = f"sqlite:///{tmp_path / 'errors.db'}"
    store = ErrorStore(url, busy_timeout_ms=50)  # a locked database fails in 50 ms
    store.ping()
    reader = ErrorStore(url)
    holder: list[sqlite3.Connection] = []

    def down() -> None:
        connection = sqlite3.connect(str(tmp_path / "errors.db"))
        connection.execute("BEGIN EXCLUSIVE")
        holder.append(connection)

    def up() -> None:
        connection = holder.pop()
        connection.rollback()
        connection.close()

    yield Outage(store, reader, down, up, reads_work=True)
    while holder:
        up()
    store.close()
    reader.close()


@pytest.fixture
def postgres_outage() -> Iterator[Outage]:
    with fresh_postgres_database() as direct:
        url = make_url(direct)
        with TCPProxy(url.host or "127.0.0.1", url.port or 5432) as proxy:
            proxied = url.set(host="127.0.0.1", port=proxy.port)
            store = ErrorStore(proxied.render_as_string(hide_password=False))
            store.ping()
            reader = ErrorStore(direct)
            yield Outage(store, reader, proxy.stop, proxy.start, reads_work=False)
            store.close()
            reader.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def outage(request: pytest.FixtureRequest) -> Outage:
    result: Outage = request.getfixturevalue(f"{request.param}_outage")
    return result


def _post(http: httpx.Client, base: str, keys: Keys, ev: dict[str, Any]) -> httpx.Response:
    return http.post(
        f"{base}/api/{keys.shop.id}/envelope/",
        content=event_envelope(ev),
        headers={"X-Sentry-Auth": sentry_auth(keys.good.public_key)},
    )


def test_store_down_answers_from_the_spool_and_replays_each_event_once(
    outage: Outage, tmp_path: Path
) -> None:
    """While the store is down every event is still answered 200 (spooled); once it is
    back, the spool is replayed and each event is stored exactly once, retries included."""
    keys = make_keys(outage.store)
    app = tracker_app(outage.store, tmp_path / "spool")
    with UvicornThread(app) as server, httpx.Client(timeout=60) as http:
        base = f"http://127.0.0.1:{server.port}"
        first = event(message="before the outage")
        assert _post(http, base, keys, first).status_code == 200
        outage.down()
        during = [event(message=f"during the outage {n % 3}") for n in range(12)]
        answers = [_post(http, base, keys, ev) for ev in during]
        answers.append(_post(http, base, keys, during[0]))  # the SDK sending one again
        assert [a.status_code for a in answers] == [200] * 13
        ingest = app.state.errorkit_ingest
        assert ingest.writer.stats().spooled_batches >= 1
        outage.up()
        ids = [ev["event_id"] for ev in [first, *during]]
        deadline = time.monotonic() + 120
        while outage.reader.count() < len(ids) and time.monotonic() < deadline:
            ingest.writer.replay_now()
            time.sleep(0.2)
    assert all(outage.reader.get(eid) is not None for eid in ids)
    assert outage.reader.count() == len(ids)
    groups = outage.reader.groups(limit=100).items
    assert sum(group.count for group in groups) == len(ids)
    assert Spool(tmp_path / "spool", 1 << 30).is_empty()


def test_auth_keeps_working_from_what_it_knew_while_the_store_is_down(
    outage: Outage, tmp_path: Path
) -> None:
    """A key seen before the outage is still accepted (its last known answer stands); a
    key never seen cannot be checked when the store cannot be read: 503, for the SDK to
    retry."""
    keys = make_keys(outage.store)
    app = tracker_app(outage.store, tmp_path / "spool")
    app.state.errorkit_ingest.keys.ttl = 0  # every request asks the store again
    with UvicornThread(app) as server, httpx.Client(timeout=60) as http:
        base = f"http://127.0.0.1:{server.port}"
        assert _post(http, base, keys, event()).status_code == 200
        outage.down()
        known = _post(http, base, keys, event())
        unseen = http.post(
            f"{base}/api/{keys.other.id}/envelope/",
            content=event_envelope(event()),
            headers={"X-Sentry-Auth": sentry_auth(keys.others.public_key)},
        )
        outage.up()
    assert known.status_code == 200
    if outage.reads_work:
        assert unseen.status_code == 200
    else:
        assert unseen.status_code == 503
        assert int(unseen.headers["retry-after"]) >= 1


class Gate:
    """A store whose writes wait until the test opens the gate."""

    def __init__(self, store: ErrorStore) -> None:
        self.store = store
        self.open = threading.Event()
        self.entered = threading.Event()
        self.fail = False

    @property
    def url(self) -> str:
        return self.store.url

    def write_batch(
        self, records: Sequence[ErrorRecord], deltas: Sequence[CountDelta] = ()
    ) -> WriteResult:
        self.entered.set()
        self.open.wait(60)
        if self.fail:
            message = "the store is gone"
            raise ConnectionError(message)
        return self.store.write_batch(records, deltas)


def _records(n: int) -> list[ErrorRecord]:
    now = datetime.now(UTC)
    return [
        ErrorRecord(
            error_id=event()["event_id"],
            timestamp=now,
            error_type="unknown_error",
            error_code="UNKNOWN_ERROR",
            error_message=f"queued {i}",
            severity="error",
            fingerprint="f" * 32,
            title="queued",
            service="shop",
        )
        for i in range(n)
    ]


def test_a_full_queue_is_refused_with_retry_after(store: ErrorStore, tmp_path: Path) -> None:
    """While one batch is being written and the queue is full, a new event is refused
    (IngestUnavailable: 503 Retry-After); the queued ones are written all the same."""
    gate = Gate(store)
    writer = GroupCommit(gate, Spool(tmp_path / "spool", 1 << 20), max_queue=2)

    async def scenario() -> tuple[list[str], IngestUnavailable]:
        first = asyncio.ensure_future(writer.write(_records(1)))
        while not gate.entered.is_set():
            await asyncio.sleep(0.01)
        queued = asyncio.ensure_future(writer.write(_records(2)))
        await asyncio.sleep(0)
        with pytest.raises(IngestUnavailable) as refused:
            await writer.write(_records(1))
        gate.open.set()
        done = [await first, await queued]
        await writer.aclose()
        return done, refused.value

    done, refused = asyncio.run(scenario())
    assert done == ["stored", "stored"]
    assert refused.retry_after >= 1
    assert store.count() == 3


def test_stopping_writes_every_queued_event_first(store: ErrorStore, tmp_path: Path) -> None:
    """aclose() while events wait: each is written (one batch) and its request answered."""
    gate = Gate(store)
    writer = GroupCommit(gate, Spool(tmp_path / "spool", 1 << 20))

    async def scenario() -> list[str]:
        waiting = [asyncio.ensure_future(writer.write(_records(1))) for _ in range(20)]
        while not gate.entered.is_set():
            await asyncio.sleep(0.01)
        closing = asyncio.ensure_future(writer.aclose())
        await asyncio.sleep(0.05)
        gate.open.set()
        await closing
        return [await w for w in waiting]

    assert asyncio.run(scenario()) == ["stored"] * 20
    assert store.count() == 20
    assert writer.stats().batches == 1  # all twenty in one write_batch


def test_store_down_and_no_room_in_the_spool_is_503(
    store: ErrorStore, keys: Keys, tmp_path: Path
) -> None:
    """Neither stored nor spooled: 503 with Retry-After (the SDK sends it again), and
    nothing is counted as kept."""
    gate = Gate(store)
    gate.fail = True
    gate.open.set()
    ingest = IngestApp(gate, ProjectStore(store), spool=Spool(tmp_path / "spool", max_bytes=10))
    with TestClient(ingest) as http:
        answer = http.post(
            f"/api/{keys.shop.id}/envelope/",
            content=event_envelope(event()),
            headers={"X-Sentry-Auth": sentry_auth(keys.good.public_key)},
        )
    assert answer.status_code == 503
    assert int(answer.headers["retry-after"]) >= 1
    assert "spool" in json.loads(answer.text)["detail"]
    assert store.count() == 0
