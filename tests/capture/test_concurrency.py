"""Many threads and asyncio tasks capturing at once: counts exact, no duplicates."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.capture.conftest import stored_ids, total_count

from errorkit.capturing import api as capture
from errorkit.context import context_scope
from errorkit.store import ErrorStore

THREADS = 6
PER_THREAD = 300
TASKS = 40
PER_TASK = 15


def _boom(worker: int, n: int) -> None:
    raise RuntimeError(f"worker {worker} item {n} failed")


def _kind_a(worker: int, n: int) -> None:
    _boom(worker, n)


def _kind_b(worker: int, n: int) -> None:
    _boom(worker, n)


def _capture(worker: int, n: int) -> str:
    try:
        (_kind_a if n % 2 else _kind_b)(worker, n)
    except RuntimeError as exc:
        return capture.capture(exc)
    raise AssertionError("unreachable")


@pytest.mark.parametrize(
    ("flood_per_minute", "queue_size"),
    [(1_000_000, 100_000), (20, 200)],
    ids=["every-sample", "flood-and-full-queue"],
)
def test_threads_and_tasks_capture_at_once(
    store_url: str,
    tmp_path: Path,
    open_store: Callable[[str], ErrorStore],
    flood_per_minute: int,
    queue_size: int,
) -> None:
    """Threads and asyncio tasks capture concurrently; every occurrence is counted once,
    every stored row is a captured id, and no id is stored twice."""
    capture.configure(
        store_url=store_url,
        spool_dir=tmp_path / "spool",
        flood_per_minute=flood_per_minute,
        queue_size=queue_size,
        batch_size=100,
        flush_interval=0.02,
    )
    ids: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(THREADS + 1)

    def thread_worker(worker: int) -> None:
        start.wait()
        mine = [_capture(worker, n) for n in range(PER_THREAD)]
        with lock:
            ids.extend(mine)

    async def task_worker(worker: int) -> list[str]:
        out = []
        with context_scope(request_id=f"task-{worker}"):
            for n in range(PER_TASK):
                out.append(_capture(1000 + worker, n))
                await asyncio.sleep(0)
        return out

    async def all_tasks() -> None:
        start.wait()
        results = await asyncio.gather(*(task_worker(w) for w in range(TASKS)))
        with lock:
            for result in results:
                ids.extend(result)

    threads = [threading.Thread(target=thread_worker, args=(w,)) for w in range(THREADS - 1)]
    threads.append(threading.Thread(target=asyncio.run, args=(all_tasks(),)))
    for thread in threads:
        thread.start()
    start.wait()
    for thread in threads:
        thread.join(timeout=120)

    expected = (THREADS - 1) * PER_THREAD + TASKS * PER_TASK
    assert len(ids) == len(set(ids)) == expected
    assert capture.flush(timeout=60)
    store = open_store(store_url)
    assert total_count(store) == expected
    stored = stored_ids(store)
    assert len(stored) == len(set(stored))
    assert set(stored) <= set(ids)
    if flood_per_minute > expected:
        assert len(stored) == expected
    dropped = capture.stats().dropped
    assert len(stored) + dropped.get("sampled", 0) + dropped.get("queue_full", 0) == expected
