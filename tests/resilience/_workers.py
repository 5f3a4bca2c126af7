"""Code run in child processes by the multi-process breaker test (spawned, so importable)."""

from __future__ import annotations

from multiprocessing.queues import Queue
from typing import Any

import errorkit
from errorkit.resilience import CircuitBreaker, RedisBackend


def _boom() -> None:
    raise errorkit.ServiceUnavailableError()


def breaker_worker(
    url: str, namespace: str, index: int, commands: Queue[str], results: Queue[Any]
) -> None:
    """Serve commands against one shared breaker until told to stop."""
    backend = RedisBackend(url, namespace=namespace)
    breaker = CircuitBreaker("shared", failure_threshold=4, recovery_timeout=300, backend=backend)
    results.put((index, "ready"))
    try:
        while True:
            command = commands.get(timeout=120)
            if command == "stop":
                return
            try:
                if command == "fail":
                    breaker.call(_boom)
                elif command == "call":
                    breaker.call(lambda: None)
                elif command == "reset":
                    breaker.reset()
                elif command == "state":
                    results.put((index, str(breaker.state)))
                    continue
                results.put((index, "ok"))
            except errorkit.CircuitOpenError:
                results.put((index, "refused"))
            except errorkit.ServiceUnavailableError:
                results.put((index, "failed"))
    finally:
        backend.close()
