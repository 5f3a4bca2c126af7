"""The queue and the writer thread that drains it.

The caller's thread appends raw events (:meth:`Worker.put`); the writer thread wakes every
``flush_interval`` (or as soon as it is woken: a full batch, a flush, shutdown) and runs one
cycle of the pipeline under the work lock. :meth:`Worker.flush` asks the thread for a cycle
and waits for it, or runs the cycle itself when there is no thread. Until the writer takes a
queued event, a later report of the same exception may still fill its empty fields
(:meth:`Worker.amend`).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from errorkit._guard import guard

from .event import ErrorEvent

__all__ = ["Worker"]


class Worker:
    """A bounded queue's storage and the one thread that runs ``cycle(force)`` over it."""

    def __init__(
        self, cycle: Callable[[bool], None], *, flush_interval: float, start_thread: bool
    ) -> None:
        self._cycle = cycle
        self.flush_interval = flush_interval
        self._start_thread = start_thread
        self.queue: deque[ErrorEvent] = deque()
        # Queued events by error id, until the writer takes them (see amend()).
        self._waiting: dict[str, ErrorEvent] = {}
        self._waiting_lock = threading.Lock()
        # Re-entrant: code run by the writer (a listener, an exception's __str__, a log
        # handler) may capture or flush again on the same thread.
        self.lock = threading.RLock()
        self._start_lock = threading.Lock()
        self._wake = threading.Event()
        self._done = threading.Condition()
        self._flush_requested = 0
        self._flush_done = 0
        self._thread: threading.Thread | None = None
        self._stopping = False
        #: Stopped for good: later events are written at once by the caller.
        self.closed = False

    # -- the queue -------------------------------------------------------------------------

    def put(self, event: ErrorEvent) -> int:
        """Queue ``event`` (starting the thread on first use); the queue's depth after it."""
        self._waiting[event.error_id] = event
        queue = self.queue
        queue.append(event)
        if self._thread is None and self._start_thread:
            self._start()
        return len(queue)

    def take(self, n: int) -> list[ErrorEvent]:
        """Up to ``n`` events from the front of the queue; from now on they are not amended."""
        batch: list[ErrorEvent] = []
        popleft = self.queue.popleft
        with contextlib.suppress(IndexError):
            for _ in range(n):
                batch.append(popleft())
        if batch:
            waiting = self._waiting
            with self._waiting_lock:
                for event in batch:
                    if waiting.get(event.error_id) is event:
                        del waiting[event.error_id]
        return batch

    def amend(self, error_id: str, fields: dict[str, Any]) -> bool:
        """Fill the fields that the queued event ``error_id`` lacks (None, empty) from
        ``fields``; mappings gain the keys they lack. False when it is no longer waiting."""
        with self._waiting_lock:
            event = self._waiting.get(error_id)
            if event is None:
                return False
            _fill_empty(event.fields, fields)
        return True

    # -- the thread ------------------------------------------------------------------------

    def wake(self) -> None:
        self._wake.set()

    @property
    def alive(self) -> bool:
        thread = self._thread
        return thread is not None and thread.is_alive()

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is not None or self.closed:
                return
            thread = threading.Thread(target=self._run, name="errorkit-writer", daemon=True)
            self._thread = thread
            thread.start()

    def _run(self) -> None:
        while True:
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            with self._done:
                target = self._flush_requested
            stopping = self._stopping
            with guard("capture.writer"), self.lock:
                self._cycle(bool(target > self._flush_done) or stopping)
            with self._done:
                self._flush_done = max(self._flush_done, target)
                self._done.notify_all()
            if stopping:
                return

    def flush(self, timeout: float | None) -> bool:
        """Run one forced cycle (on the thread, or here when there is none); False when
        ``timeout`` seconds passed first."""
        thread = self._thread
        # Real time, not the injected clock: a timeout is the caller's wall-clock patience.
        deadline = None if timeout is None else time.monotonic() + max(0.0, timeout)
        if thread is None or not thread.is_alive() or thread is threading.current_thread():
            acquired = self.lock.acquire(timeout=-1 if timeout is None else max(timeout, 0))
            if not acquired:
                return False
            try:
                self._cycle(True)
            finally:
                self.lock.release()
            return True
        with self._done:
            self._flush_requested += 1
            target = self._flush_requested
        self._wake.set()
        with self._done:
            while self._flush_done < target:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._done.wait(remaining)
        return True

    def stop(self, timeout: float | None) -> None:
        """Let the thread run its last cycle and end (waiting up to ``timeout``); closed."""
        self._stopping = True
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        self.closed = True


def _empty(value: object) -> bool:
    # Only None and "" are empty: ``==`` on an app's object (a data frame) may not answer.
    return value is None or (isinstance(value, str) and not value)


def _fill_empty(fields: dict[str, Any], later: dict[str, Any]) -> None:
    for key, value in later.items():
        if _empty(value):
            continue
        current = fields.get(key)
        if _empty(current):
            fields[key] = value
        elif isinstance(current, Mapping) and isinstance(value, Mapping):
            fields[key] = {**value, **current}
