"""Request counts: how many HTTP requests each endpoint answered, by status class.

An error *rate* needs the number of requests, not only the errors. The HTTP integrations
call :meth:`RequestCounter.count` once per answered request, with the route template (not
the raw path) and the status; the counter adds one to a minute bucket under one lock, with
no I/O. The number of distinct endpoints is bounded: past :data:`MAX_ENDPOINTS`, new ones
are counted as :data:`OTHER_ENDPOINT`; a request no route matched is counted as
:data:`UNMATCHED_ENDPOINT`.

The capture writer takes the buckets each cycle (:class:`RequestCountWriter`) and adds them
to the store's ``request_counts`` table beside the errors; without capture configured
nothing is written, and buckets older than a few minutes are folded into the totals that
``/metrics`` shows (:meth:`RequestCounter.totals`), so memory stays bounded either way.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, Protocol

from errorkit._guard import report_internal_error
from errorkit.store.records import RequestCountRow

from .delivery import STORE_BACKOFF

__all__ = [
    "MAX_ENDPOINTS",
    "MAX_UNSTORED_ROWS",
    "OTHER_ENDPOINT",
    "STATUS_CLASSES",
    "UNMATCHED_ENDPOINT",
    "RequestCountWriter",
    "RequestCounter",
    "default_request_counter",
    "set_default_request_counter",
    "status_class",
]

#: Distinct endpoints counted under their own name (the others: :data:`OTHER_ENDPOINT`).
MAX_ENDPOINTS = 200
#: The endpoint of requests past :data:`MAX_ENDPOINTS`.
OTHER_ENDPOINT = "<other>"
#: The endpoint of requests no route matched (a 404 for an unknown path, a redirect).
UNMATCHED_ENDPOINT = "<unmatched>"
#: Rows kept for a store that is down; past that the oldest are dropped (and counted).
MAX_UNSTORED_ROWS = 100_000
#: Minutes a bucket waits in the counter for a writer before it only counts in the totals.
_STALE_MINUTES = 5
_MAX_ENDPOINT_CHARS = 200

STATUS_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")
_CLASSES = {n: f"{n}xx" for n in range(1, 6)}

Key = tuple[int, str, str, str]  # (minute since the epoch, service, endpoint, status class)


def status_class(status: int) -> str:
    """``"2xx"`` for 200 ... 299, and so on; anything outside 100 ... 599 is ``"5xx"``."""
    return _CLASSES.get(status // 100, "5xx")


class RequestCounter:
    """In-process request counts by minute, service, endpoint and status class."""

    def __init__(
        self,
        *,
        max_endpoints: int = MAX_ENDPOINTS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if max_endpoints < 1:
            message = f"max_endpoints={max_endpoints!r}: needs room for at least one endpoint"
            raise ValueError(message)
        self.max_endpoints = max_endpoints
        self._clock = clock
        self._lock = threading.Lock()
        self._endpoints: set[str] = set()
        self._pending: dict[Key, int] = {}
        self._totals: dict[tuple[str, str, str], int] = {}
        self._minute = -1

    def count(self, service: str, endpoint: str | None, status: int) -> None:
        """Count one answered request (the hot path: one lock, two dict operations)."""
        minute = int(self._clock() // 60)
        cls = _CLASSES.get(status // 100, "5xx")
        if endpoint is None:
            endpoint = UNMATCHED_ENDPOINT
        with self._lock:
            if endpoint not in self._endpoints:
                endpoint = self._admit(endpoint)
            if minute != self._minute:
                self._new_minute(minute)
            key = (minute, service, endpoint, cls)
            pending = self._pending
            pending[key] = pending.get(key, 0) + 1

    def _admit(self, endpoint: str) -> str:
        endpoint = endpoint[:_MAX_ENDPOINT_CHARS]
        if endpoint in self._endpoints or endpoint in (OTHER_ENDPOINT, UNMATCHED_ENDPOINT):
            return endpoint
        if len(self._endpoints) >= self.max_endpoints:
            return OTHER_ENDPOINT
        self._endpoints.add(endpoint)
        return endpoint

    def _new_minute(self, minute: int) -> None:
        # Once a minute: buckets no writer took (capture not configured) only count in the
        # totals from now on, so the counter holds a few minutes of buckets at most.
        self._minute = minute
        stale = [key for key in self._pending if key[0] < minute - _STALE_MINUTES]
        for key in stale:
            self._fold(key, self._pending.pop(key))

    def _fold(self, key: Key, n: int) -> None:
        total = key[1:]
        self._totals[total] = self._totals.get(total, 0) + n

    def take(self) -> list[RequestCountRow]:
        """The buckets counted since the last call, for the store (the writer calls this)."""
        with self._lock:
            pending, self._pending = self._pending, {}
            for key, n in pending.items():
                self._fold(key, n)
        return [
            RequestCountRow(
                datetime.fromtimestamp(minute * 60, UTC), service, endpoint, cls, n, "minute"
            )
            for (minute, service, endpoint, cls), n in pending.items()
        ]

    def totals(self) -> dict[tuple[str, str, str], int]:
        """Every request counted so far, by (service, endpoint, status class)."""
        with self._lock:
            out = dict(self._totals)
            for (_, service, endpoint, cls), n in self._pending.items():
                key = (service, endpoint, cls)
                out[key] = out.get(key, 0) + n
        return out

    def clear(self) -> None:
        """Forget every count and endpoint (a reset; a forked child's fresh start)."""
        self._lock = threading.Lock()
        self._endpoints = set()
        self._pending = {}
        self._totals = {}
        self._minute = -1


class RequestCountStore(Protocol):
    """What the writer needs from a store (``errorkit.store.ErrorStore`` is one)."""

    def write_request_counts(
        self, rows: Sequence[RequestCountRow], *, batch_id: str | None = None
    ) -> int: ...


class RequestCountWriter:
    """The capture writer's side: takes the counter's buckets each cycle and adds them to
    the store. While the store fails, batches wait (bounded by :data:`MAX_UNSTORED_ROWS`)
    and are retried with backoff, each under its batch id so a retry never counts twice."""

    def __init__(
        self,
        counter: RequestCounter,
        *,
        environment: str | None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.counter = counter
        self.environment = environment
        self._monotonic = monotonic
        self._waiting: deque[tuple[str, list[RequestCountRow]]] = deque()
        self._rows_waiting = 0
        self._failures = 0
        self._next_attempt = 0.0
        self.written = 0
        self.dropped = 0  # requests whose counts were dropped while the store was down

    def flush(self, store: Callable[[], Any], force: bool) -> None:
        """Take the counter's buckets and store every waiting batch (``force``: even while
        backing off). ``store`` opens the store; one without ``write_request_counts``
        stores nothing and keeps nothing."""
        rows = self.counter.take()
        if rows:
            environment = self.environment
            if environment is not None:
                rows = [replace(row, environment=environment) for row in rows]
            self._wait(uuid.uuid4().hex, rows)
        if not self._waiting or (not force and self._monotonic() < self._next_attempt):
            return
        try:
            write = getattr(store(), "write_request_counts", None)
        except Exception as exc:  # noqa: BLE001 - cannot open the store: back off
            self._failed(exc)
            return
        if not callable(write):
            self._waiting.clear()
            self._rows_waiting = 0
            return
        while self._waiting:
            batch_id, batch = self._waiting[0]
            try:
                write(batch, batch_id=batch_id)
            except Exception as exc:  # noqa: BLE001 - counts never break the writer
                self._failed(exc)
                return
            self._waiting.popleft()
            self._rows_waiting -= len(batch)
            self.written += sum(row.count for row in batch)
            self._failures = 0

    def _wait(self, batch_id: str, rows: list[RequestCountRow]) -> None:
        self._waiting.append((batch_id, rows))
        self._rows_waiting += len(rows)
        while self._rows_waiting > MAX_UNSTORED_ROWS and len(self._waiting) > 1:
            _, oldest = self._waiting.popleft()
            self._rows_waiting -= len(oldest)
            self.dropped += sum(row.count for row in oldest)

    def _failed(self, exc: BaseException) -> None:
        self._failures += 1
        self._next_attempt = self._monotonic() + STORE_BACKOFF.backoff(self._failures)
        report_internal_error("capture.request_counts", exc)

    def settled(self) -> bool:
        """Nothing waits for the store."""
        return not self._waiting


_default = RequestCounter()


def default_request_counter() -> RequestCounter:
    """The process's counter, which the HTTP integrations count into."""
    return _default


def set_default_request_counter(counter: RequestCounter) -> RequestCounter:
    """Count into ``counter`` from now on; returns the previous one."""
    global _default
    if not isinstance(counter, RequestCounter):
        message = f"set_default_request_counter() needs a RequestCounter, not {counter!r}"
        raise TypeError(message)
    previous, _default = _default, counter
    return previous


def _after_fork_in_child() -> None:
    # The parent stores what it counted; the child's copy would count it twice.
    _default.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
