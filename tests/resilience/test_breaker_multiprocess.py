"""Four processes share one breaker through a real Redis."""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from typing import Any

import pytest
from tests._services import breaker_namespace, require_redis
from tests.resilience._workers import breaker_worker

pytestmark = [pytest.mark.redis, pytest.mark.slow]

PROCESSES = 4
WAIT = 60  # seconds any one reply may take (process start-up included); never reached


class Fleet:
    """Spawned worker processes, each driven through its own command queue."""

    def __init__(self, url: str, namespace: str) -> None:
        context = multiprocessing.get_context("spawn")
        self.results: Any = context.Queue()
        self.commands: list[Any] = [context.Queue() for _ in range(PROCESSES)]
        self.processes = [
            context.Process(
                target=breaker_worker,
                args=(url, namespace, i, self.commands[i], self.results),
                daemon=True,
            )
            for i in range(PROCESSES)
        ]
        for process in self.processes:
            process.start()
        assert sorted(self.replies(PROCESSES)) == [(i, "ready") for i in range(PROCESSES)]

    def replies(self, count: int) -> list[tuple[int, str]]:
        return [self.results.get(timeout=WAIT) for _ in range(count)]

    def ask(self, index: int, command: str) -> str:
        self.commands[index].put(command)
        who, answer = self.results.get(timeout=WAIT)
        assert who == index
        return str(answer)

    def ask_all(self, command: str) -> list[str]:
        return [self.ask(i, command) for i in range(PROCESSES)]

    def stop(self) -> None:
        for queue in self.commands:
            queue.put("stop")
        for process in self.processes:
            process.join(timeout=WAIT)
            if process.is_alive():
                process.terminate()


@pytest.fixture
def fleet() -> Iterator[Fleet]:
    url = require_redis()
    with breaker_namespace(url, "fleet") as namespace:
        running = Fleet(url, namespace)
        try:
            yield running
        finally:
            running.stop()


def test_failures_in_some_processes_open_it_for_all_and_a_reset_closes_it_for_all(
    fleet: Fleet,
) -> None:
    """Two processes fail twice each (threshold 4): all four are refused; one process
    resets it and all four get through again."""
    assert fleet.ask_all("call") == ["ok"] * PROCESSES
    for index in (0, 1, 0, 1):
        assert fleet.ask(index, "fail") == "failed"
    assert fleet.ask_all("call") == ["refused"] * PROCESSES
    assert fleet.ask_all("state") == ["open"] * PROCESSES
    assert fleet.ask(3, "reset") == "ok"
    assert fleet.ask_all("state") == ["closed"] * PROCESSES
    assert fleet.ask_all("call") == ["ok"] * PROCESSES
