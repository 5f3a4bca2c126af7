"""An app reporting to a central tracker over errorkit's HTTP transport: a real
``errorkit serve`` process on SQLite and PostgreSQL, stopped, slowed and refusing keys,
and every occurrence still lands exactly once."""

from __future__ import annotations

import contextlib
import socket
import threading
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from tests._proxy import TCPProxy
from tests.transport.conftest import Tracker, stored_ids, total_count

import errorkit
from errorkit.capturing import api as capture
from errorkit.capturing.request_counts import default_request_counter
from errorkit.store import CountDelta, ErrorRecord
from errorkit.store.http import HttpStore, TrackerRefused


def _fail(kind: int, n: int) -> None:
    raise RuntimeError(f"job {kind} failed (attempt {n})")  # kind changes the place below


def _one(n: int) -> None:
    _fail(1, n)


def _two(n: int) -> None:
    _fail(2, n)


def _three(n: int) -> None:
    _fail(3, n)


def capture_many(start: int, count: int, places: int = 3) -> list[str]:
    """Capture ``count`` errors from ``places`` different places; return their ids."""
    ids = []
    for n in range(start, start + count):
        try:
            (_one, _two, _three)[n % places](n)
        except RuntimeError as exc:
            ids.append(capture.capture(exc))
    return ids


def _group_counts(tracker: Tracker) -> list[int]:
    return sorted(group.count for group in tracker.reader.groups(limit=100).items)


def test_errors_land_once_with_exact_group_counts(tracker: Tracker, tmp_path: Path) -> None:
    """Captured errors arrive once each, grouped, with the app's own service name."""
    runtime = errorkit.configure(
        store_url=tracker.dsn(),
        service="billing",
        spool_dir=tmp_path / "spool",
        flush_interval=0.05,
        flood_per_minute=1_000_000,
    )
    assert tracker.key.public_key not in repr(runtime)
    ids = capture_many(0, 30)
    assert capture.flush(timeout=30)
    assert sorted(stored_ids(tracker.reader)) == sorted(ids)
    assert _group_counts(tracker) == [10, 10, 10]
    stored = tracker.reader.get(ids[0])
    assert stored.service == "billing"
    status = capture.stats()
    assert (status.events_written, status.store_available, status.spool_bytes) == (30, True, 0)


def test_flood_deltas_and_request_counts_arrive(tracker: Tracker, tmp_path: Path) -> None:
    """Under a flood only samples are sent as rows; the counted rest arrives as deltas, so
    the tracker's group counts are exact; request counts arrive for error-rate alerts."""
    errorkit.configure(
        store_url=tracker.dsn(),
        spool_dir=tmp_path / "spool",
        flush_interval=0.05,
        flood_per_minute=5,
    )
    counter = default_request_counter()
    for status in (200, 200, 200, 500):
        counter.count("svc", "/pay", status)
    ids = capture_many(0, 200, places=2)
    assert capture.flush(timeout=30)
    assert _group_counts(tracker) == [100, 100]
    stored = stored_ids(tracker.reader)
    assert len(stored) == len(set(stored)) < 200
    assert set(stored) <= set(ids)
    hour = timedelta(hours=1)
    requests = tracker.reader.request_counts(datetime.now(UTC) - hour, datetime.now(UTC) + hour)
    assert (requests.total, requests.server_errors) == (4, 1)


@pytest.mark.parametrize("flood_per_minute", [1_000_000, 5], ids=["every-sample", "flood"])
def test_tracker_outage_loses_nothing(
    tracker: Tracker, tmp_path: Path, flood_per_minute: int
) -> None:
    """The acceptance test: the tracker process is stopped while the app captures 500
    errors over two floods; capture never blocks or raises and the queue stays bounded;
    the tracker starts again on the same port and store, and after a flush every record
    and every count is there exactly once."""
    errorkit.configure(
        store_url=tracker.dsn(),
        spool_dir=tmp_path / "spool",
        flush_interval=0.05,
        batch_size=40,
        queue_size=1_000,
        flood_per_minute=flood_per_minute,
    )
    ids = capture_many(0, 60, places=2)
    assert capture.flush(timeout=30)

    tracker.stop()
    depths = []
    for start in range(60, 560, 50):
        ids += capture_many(start, 50, places=2)
        depths.append(capture.stats().queue_depth)
    assert len(ids) == 560
    assert max(depths) <= 1_000
    assert capture.flush(timeout=30) is False  # the tracker is away: it waits in the spool
    during = capture.stats()
    assert during.store_available is False
    assert during.spool_bytes > 0
    assert "unreachable" in (during.last_store_error or "")
    assert tracker.key.public_key not in (during.last_store_error or "")

    tracker.start()
    assert capture.flush(timeout=60)

    assert _group_counts(tracker) == [280, 280]
    assert total_count(tracker.reader) == 560
    stored = stored_ids(tracker.reader)
    assert len(stored) == len(set(stored))
    if flood_per_minute > 560:
        assert sorted(stored) == sorted(ids)
    else:
        assert set(stored) <= set(ids)
    after = capture.stats()
    assert (after.spool_bytes, after.queue_depth, after.pending_counts) == (0, 0, 0)
    assert after.dropped.get("queue_full", 0) == 0


class GatedProxy(TCPProxy):
    """A proxy that holds every byte until :attr:`gate` is set: a tracker that is slow to
    answer, for as long as the test wants."""

    def __init__(self, target_host: str, target_port: int) -> None:
        super().__init__(target_host, target_port)
        self.gate = threading.Event()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:  # type: ignore[override]
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                self.gate.wait()
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


def test_a_slow_tracker_costs_the_caller_nothing(sqlite_tracker: Tracker, tmp_path: Path) -> None:
    """While the tracker holds its answer, capture() still returns at once for every
    error (the queue absorbs them); once it answers, all of them land once."""
    with GatedProxy("127.0.0.1", sqlite_tracker.port) as proxy:
        errorkit.configure(
            store_url=sqlite_tracker.dsn(port=proxy.port),
            spool_dir=tmp_path / "spool",
            flush_interval=0.05,
            batch_size=50,
            flood_per_minute=1_000_000,
        )
        ids = capture_many(0, 300)
        assert len(set(ids)) == 300
        assert total_count(sqlite_tracker.reader) == 0  # nothing got through the gate yet
        assert capture.stats().dropped.get("queue_full", 0) == 0
        proxy.gate.set()
        assert capture.flush(timeout=60)
    assert sorted(stored_ids(sqlite_tracker.reader)) == sorted(ids)
    assert _group_counts(sqlite_tracker) == [100, 100, 100]


def test_a_revoked_key_spools_and_a_fixed_key_delivers(
    sqlite_tracker: Tracker, tmp_path: Path
) -> None:
    """Events sent with a refused key wait in the spool (which is named without the key);
    configured again with a valid key, the app delivers every one of them once."""
    revoked = sqlite_tracker.projects.create_key(sqlite_tracker.project.id, label="old")
    sqlite_tracker.projects.revoke_key(revoked.public_key)
    errorkit.configure(store_url=sqlite_tracker.dsn(revoked), flush_interval=0.05)
    ids = capture_many(0, 12)
    assert capture.flush(timeout=30) is False
    status = capture.stats()
    assert status.store_available is False
    assert "403" in (status.last_store_error or "")
    assert revoked.public_key not in (status.last_store_error or "")
    assert status.spool_bytes > 0
    assert total_count(sqlite_tracker.reader) == 0
    spools = list((tmp_path / "cache").rglob("*.jsonl"))
    assert spools
    assert all(revoked.public_key not in str(path) for path in spools)

    errorkit.configure(store_url=sqlite_tracker.dsn(), flush_interval=0.05)
    assert capture.flush(timeout=30)
    assert sorted(stored_ids(sqlite_tracker.reader)) == sorted(ids)


def test_an_unknown_key_is_refused_with_401(sqlite_tracker: Tracker) -> None:
    """A key the tracker never made: ping() says so, without showing the key."""
    unknown = "0" * 32
    url = f"http://{unknown}@127.0.0.1:{sqlite_tracker.port}/{sqlite_tracker.project.id}"
    with HttpStore(url) as store, pytest.raises(TrackerRefused, match="refused the key") as refused:
        store.ping()
    assert refused.value.status == 401
    assert unknown not in str(refused.value)


def test_a_batch_sent_twice_is_stored_once(sqlite_tracker: Tracker) -> None:
    """A retry after a lost answer sends the same batch again: it counts nothing twice."""
    when = datetime.now(UTC)
    record = ErrorRecord(
        error_id=uuid.uuid4().hex,
        timestamp=when,
        error_type="unknown_error",
        error_code="INTERNAL_ERROR",
        error_message="boom",
        severity="error",
        fingerprint="f" * 16,
        title="RuntimeError: boom",
        service="worker",
    )
    delta = CountDelta(
        uuid.uuid4().hex,
        "f" * 16,
        "RuntimeError: boom",
        "unknown_error",
        "INTERNAL_ERROR",
        "error",
        4,
        when,
        when,
        service="worker",
    )
    with HttpStore(sqlite_tracker.dsn()) as store:
        first = store.write_batch([record], [delta])
        again = store.write_batch([record], [delta])
    assert (first.inserted, first.deltas_applied) == (1, 1)
    assert (again.inserted, again.duplicates, again.deltas_applied) == (0, 1, 0)
    assert _group_counts(sqlite_tracker) == [5]
