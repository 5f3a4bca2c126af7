"""Group commit for the ingest endpoints: many requests, one ``write_batch``, then answers.

A request hands its records to :meth:`GroupCommit.write` and waits. One writer task takes
everything queued (up to ``batch_size`` records: whatever arrived while the previous batch
was being written) and calls the store's ``write_batch`` once, on a thread of its own; then
it wakes every request of the batch. So each answer is sent only once its event is durable,
and a busy server writes hundreds of events per transaction instead of one.

When the store fails, the batch is appended to the spool (one ``fsync``) and the requests
are answered as durable all the same; while the store stays down, batches go straight to
the spool until :data:`~errorkit.capturing.delivery.STORE_BACKOFF`'s wait is over. Once the
store answers again, the spool is replayed into it on another thread. Writes are idempotent
by ``error_id``, so a replay, or an SDK sending the same event again, never counts twice.
Only when the store is down *and* the spool is full (or absent) is a request refused
(:class:`IngestUnavailable`, answered 503 with ``Retry-After``: the SDK sends it again).

(:class:`~errorkit.capturing.delivery.Delivery` does store-or-spool for the capture
pipeline, but turns what the spool cannot take into counts: right for an app that must
never block, wrong for a server whose client will retry and must learn whether its event
was kept.)
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from errorkit._guard import report_internal_error
from errorkit.capturing.delivery import STORE_BACKOFF, BatchWriter
from errorkit.capturing.spool import Spool, SpoolFull
from errorkit.store.errors import InvalidRecord, StoreError, StoreUnavailable
from errorkit.store.records import ErrorRecord

__all__ = ["GroupCommit", "IngestUnavailable", "RecordRefused", "WriterStats"]

#: Records written in one ``write_batch`` at most.
DEFAULT_BATCH_SIZE = 500
#: Records waiting for the writer at most; a request beyond is answered 503.
DEFAULT_MAX_QUEUE = 10_000

STORED = "stored"
SPOOLED = "spooled"


class IngestUnavailable(Exception):
    """The event could be neither stored nor spooled (or the server is stopping): the
    client should send it again after ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


class RecordRefused(Exception):
    """The store refused a record as malformed (answered 400: sending it again will not
    help)."""


@dataclass(frozen=True, slots=True)
class WriterStats:
    """What the writer has done since it started."""

    written: int
    duplicates: int
    batches: int
    spooled_batches: int
    replayed_batches: int
    queued: int
    store_up: bool | None
    last_error: str | None


class _Pending:
    __slots__ = ("future", "records")

    def __init__(self, records: Sequence[ErrorRecord], future: asyncio.Future[str]) -> None:
        self.records = records
        self.future = future


class GroupCommit:
    """The writer of one serving process (see the module's docstring)."""

    def __init__(
        self,
        store: BatchWriter,
        spool: Spool | None,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        max_queue: int = DEFAULT_MAX_QUEUE,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if batch_size < 1 or max_queue < 1:
            message = (
                f"GroupCommit(batch_size={batch_size!r}, max_queue={max_queue!r}): both must "
                "be whole numbers >= 1"
            )
            raise ValueError(message)
        self.store = store
        self.spool = spool
        self.batch_size = batch_size
        self.max_queue = max_queue
        self._monotonic = monotonic
        self._lock = threading.Lock()  # store health, shared by the writer and the replay
        self.store_up: bool | None = None
        self.last_error: str | None = None
        self._failures = 0
        self._next_attempt = 0.0
        self.written = 0
        self.duplicates = 0
        self.batches = 0
        self.spooled_batches = 0
        self.replayed_batches = 0
        # Whether the spool may hold batches (it may, from an earlier run, at the start).
        self._spool_dirty = True
        self._looked_at = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._reset_loop_state()

    def _reset_loop_state(self) -> None:
        self._pending: deque[_Pending] = deque()
        self._queued = 0
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._replaying: asyncio.Future[None] | None = None
        self._closing = False
        self._executor: ThreadPoolExecutor | None = None
        self._replayer: ThreadPoolExecutor | None = None

    # -- the requests' side -----------------------------------------------------------------

    def _started(self) -> asyncio.Event:
        """Start the writer task in the running loop (first use, or a new loop)."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._task is None or self._wake is None:
            if self._loop is not None and self._loop is not loop:
                self._shutdown_executors()
                self._reset_loop_state()
            self._loop = loop
            self._wake = asyncio.Event()
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="errorkit-ingest-writer")
            self._replayer = ThreadPoolExecutor(1, thread_name_prefix="errorkit-ingest-replay")
            self._task = loop.create_task(self._run(), name="errorkit-ingest-writer")
        return self._wake

    async def write(self, records: Sequence[ErrorRecord]) -> str:
        """Wait until ``records`` are stored (``"stored"``) or spooled (``"spooled"``).

        Raises :class:`IngestUnavailable` when they can be neither (or the queue is full,
        or the writer is stopping) and :class:`RecordRefused` when the store refuses one."""
        wake = self._started()
        if self._closing:
            message = "the server is shutting down; send the event again"
            raise IngestUnavailable(message, retry_after=5)
        if self._queued + len(records) > self.max_queue and self._queued:
            message = (
                f"{self._queued} events are waiting to be written (at most {self.max_queue}); "
                "send the event again shortly"
            )
            raise IngestUnavailable(message, retry_after=1)
        assert self._loop is not None
        future: asyncio.Future[str] = self._loop.create_future()
        self._pending.append(_Pending(records, future))
        self._queued += len(records)
        wake.set()
        return await future

    @property
    def queued(self) -> int:
        """Records waiting for the writer."""
        return self._queued

    def stats(self) -> WriterStats:
        return WriterStats(
            self.written,
            self.duplicates,
            self.batches,
            self.spooled_batches,
            self.replayed_batches,
            self._queued,
            self.store_up,
            self.last_error,
        )

    # -- the writer task ---------------------------------------------------------------------

    def _take(self) -> list[_Pending]:
        taken: list[_Pending] = []
        count = 0
        pending = self._pending
        while pending:
            size = len(pending[0].records)
            if taken and count + size > self.batch_size:
                break
            taken.append(pending.popleft())
            count += size
        self._queued -= count
        return taken

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        wake = self._wake
        assert wake is not None
        while True:
            if not self._pending:
                if self._closing:
                    return
                wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), timeout=1.0)
                self.maybe_replay()
                continue
            taken = self._take()
            records = [record for item in taken for record in item.records]
            try:
                outcome, refused = await loop.run_in_executor(
                    self._executor, self._deliver, records
                )
            except IngestUnavailable as exc:
                for item in taken:
                    if not item.future.done():
                        item.future.set_exception(exc)
                continue
            except BaseException as exc:
                report_internal_error("ingest.writer", exc)
                failure = IngestUnavailable("the event could not be written", retry_after=5)
                for item in taken:
                    if not item.future.done():
                        item.future.set_exception(failure)
                if not isinstance(exc, Exception):
                    raise
                continue
            for item in taken:
                if item.future.done():
                    continue
                bad = [refused[r.error_id] for r in item.records if r.error_id in refused]
                if bad:
                    item.future.set_exception(RecordRefused(bad[0]))
                else:
                    item.future.set_result(outcome)
            if outcome == STORED and self._replay_due():
                self.maybe_replay()

    # -- on the writer thread ----------------------------------------------------------------

    def _deliver(self, records: list[ErrorRecord]) -> tuple[str, dict[str, str]]:
        """Store the batch, or spool it; the outcome and the records the store refused."""
        self.batches += 1
        with self._lock:
            backing_off = self.store_up is False and self._monotonic() < self._next_attempt
        if backing_off:
            return self._to_spool(records), {}
        try:
            result = self.store.write_batch(records)
        except Exception as exc:  # noqa: BLE001 - sorted out below
            if not self._answers(exc):
                self._failed(exc)
                return self._to_spool(records), {}
            report_internal_error("ingest.invalid_record", exc)
            return self._one_by_one(records)
        self._ok(result, len(records))
        return STORED, {}

    def _answers(self, exc: Exception) -> bool:
        """Whether the store refused the batch for what is in it (it still answers)
        rather than being down: then each record is tried on its own, so that one record
        it cannot take loses only itself (and never blocks the spool)."""
        if isinstance(exc, InvalidRecord):
            return True
        if isinstance(exc, StoreUnavailable) or not isinstance(exc, StoreError):
            return False  # unreachable, locked, read-only, or no telling: an outage
        ping = getattr(self.store, "ping", None)
        if not callable(ping):
            return False
        try:
            ping()
        except Exception:  # noqa: BLE001 - the store is down
            return False
        return True

    def _one_by_one(self, records: list[ErrorRecord]) -> tuple[str, dict[str, str]]:
        """A batch the store refuses for its content: keep each record it accepts."""
        refused: dict[str, str] = {}
        failed: list[ErrorRecord] = []
        for position, record in enumerate(records):
            try:
                self._ok(self.store.write_batch([record]), 1)
            except Exception as exc:  # noqa: BLE001 - per record
                if not self._answers(exc):
                    self._failed(exc)
                    failed.extend(records[position:])
                    break
                refused[record.error_id] = "the store refused the event's content"
                report_internal_error("ingest.refused_record", exc)
        if failed:
            self._to_spool(failed)
            return SPOOLED, refused
        return STORED, refused

    def _replay_write(self, records: list[ErrorRecord], deltas: list[Any]) -> None:
        """One spooled batch into the store; a record the store refuses for its content
        is reported and left out instead of stopping the replay for good."""
        try:
            self.store.write_batch(records, deltas)
        except Exception as exc:
            if not self._answers(exc):
                raise
            for record in records:
                try:
                    self.store.write_batch([record])
                except Exception as item_exc:
                    if not self._answers(item_exc):
                        raise
                    report_internal_error("ingest.refused_record", item_exc)
            if deltas:
                self.store.write_batch([], deltas)

    def _to_spool(self, records: list[ErrorRecord]) -> str:
        spool = self.spool
        if spool is None:
            message = "the store is unavailable and this server has no spool"
            raise IngestUnavailable(message, retry_after=60)
        try:
            spool.append(records, [])
        except SpoolFull as exc:
            report_internal_error("ingest.spool_full", exc)
            message = "the store is unavailable and the spool is full"
            raise IngestUnavailable(message, retry_after=60) from None
        except OSError as exc:
            report_internal_error("ingest.spool", exc)
            message = "the store is unavailable and the spool cannot be written"
            raise IngestUnavailable(message, retry_after=60) from None
        with self._lock:
            self.spooled_batches += 1
            self._spool_dirty = True
        return SPOOLED

    def _ok(self, result: Any, records: int) -> None:
        inserted = int(getattr(result, "inserted", records))
        with self._lock:
            self.written += inserted
            self.duplicates += int(getattr(result, "duplicates", records - inserted))
            self.store_up = True
            self._failures = 0
            self.last_error = None

    def _failed(self, exc: BaseException) -> None:
        with self._lock:
            self.store_up = False
            self._failures += 1
            self._next_attempt = self._monotonic() + STORE_BACKOFF.backoff(self._failures)
            self.last_error = f"{type(exc).__name__}: {exc}"
        report_internal_error("ingest.store", exc)

    # -- replaying the spool -------------------------------------------------------------------

    def _replay_due(self) -> bool:
        """After a stored batch: whether to look at the spool. At once when this writer
        spooled since the spool was last found empty; otherwise once a second (another
        process may have spooled into the same folder). Not after every batch: a look
        is a hop to the replay thread and a listing of the folder."""
        if self._spool_dirty:
            return True
        now = self._monotonic()
        if now - self._looked_at < 1.0:
            return False
        self._looked_at = now
        return True

    def maybe_replay(self) -> None:
        """Start replaying the spool (on its own thread) when it holds batches and the store
        is up or due for another try."""
        spool = self.spool
        loop = self._loop
        if spool is None or loop is None or self._replayer is None:
            return
        if self._replaying is not None and not self._replaying.done():
            return
        with self._lock:
            due = self.store_up is not False or self._monotonic() >= self._next_attempt
        if due:
            self._replaying = loop.run_in_executor(self._replayer, self._replay, spool)

    def _replay(self, spool: Spool) -> None:
        with self._lock:
            spooled = self.spooled_batches
        try:
            if spool.is_empty():
                with self._lock:
                    if self.spooled_batches == spooled:  # nothing spooled meanwhile
                        self._spool_dirty = False
                return
            result = spool.replay(self._replay_write)
        except Exception as exc:  # noqa: BLE001 - a replay failing must not stop the writer
            report_internal_error("ingest.replay", exc)
            return
        self.replayed_batches += result.batches
        if result.error is not None:
            self._failed(result.error)
        elif result.batches:
            with self._lock:
                self.store_up = True
                self._failures = 0
                self.last_error = None

    def replay_now(self) -> None:
        """Replay the spool on the caller's thread (whatever the backoff says)."""
        if self.spool is not None:
            self._replay(self.spool)

    # -- the end -------------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Refuse new records, write (or spool) every queued one, then stop."""
        if self._loop is not asyncio.get_running_loop() or self._task is None:
            self._shutdown_executors()
            return
        self._closing = True
        if self._wake is not None:
            self._wake.set()
        with contextlib.suppress(Exception):
            await self._task
        if self._replaying is not None:
            with contextlib.suppress(Exception):
                await self._replaying
        self._shutdown_executors()
        if self.spool is not None:
            with contextlib.suppress(OSError):
                self.spool.close()
        self._task = None

    def _shutdown_executors(self) -> None:
        for executor in (self._executor, self._replayer):
            if executor is not None:
                executor.shutdown(wait=True)
        self._executor = self._replayer = None
