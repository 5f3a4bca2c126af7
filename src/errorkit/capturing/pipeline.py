"""The pipeline: a bounded queue in front of one background writer.

The caller's thread (:meth:`Pipeline.submit`) groups the occurrence (a cached fingerprint),
asks the flood limiter whether this fingerprint may store another sample this minute, and
appends the raw :class:`~errorkit.capturing.event.ErrorEvent` to a bounded queue. An
occurrence that is sampled out or finds the queue full is not lost: it is counted under its
fingerprint, and the writer stores those counts as :class:`~errorkit.store.CountDelta`, so
group counts stay exact. A sampled-out occurrence that was answered with an error id (an HTTP
answer: it has a request id) also leaves a slim row (:class:`~errorkit.store.SlimRecord`), at
most ``slim_per_minute`` a minute in all; past that it is only counted.

The writer thread wakes every ``flush_interval`` (or as soon as a batch is full), builds
records (formatting, scrubbing, caps), and calls the store's ``write_batch``. When the store
fails, batches go to the spool and the store is retried with exponential backoff; once it
answers again the spool is replayed (idempotently) and emptied.

:class:`Pipeline` ties three parts together, each in its own module:

- :mod:`.worker` -- the queue and the writer thread (:class:`~.worker.Worker`);
- :mod:`.counts` -- the flood limiter, the pending and held counts, the slim rows and the
  dropped samples (:class:`~.counts.Counts`);
- :mod:`.delivery` -- the store, the spool, replay and the backoff between store attempts
  (:class:`~.delivery.Delivery`).

Beside them, when given a request counter, the cycle also stores the HTTP request counts
(:mod:`.request_counts`).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from errorkit._guard import guard
from errorkit.config import DEFAULT_SETTINGS
from errorkit.context import current_context
from errorkit.scrubbing import Scrubber
from errorkit.store.records import CountDelta, ErrorRecord

from .counts import MAX_FINGERPRINTS, Counts, FloodLimiter
from .delivery import MAX_BACKOFF, BatchWriter, Delivery
from .event import ErrorEvent, RecordBuilder
from .fingerprint import apply_override, group_exception, group_message
from .request_counts import RequestCounter, RequestCountWriter
from .spool import Spool
from .worker import Worker

__all__ = [
    "MAX_BACKOFF",
    "MAX_FINGERPRINTS",
    "BatchWriter",
    "CaptureStats",
    "CaptureSummary",
    "FloodLimiter",
    "Listener",
    "Pipeline",
]


@dataclass(frozen=True, slots=True)
class CaptureSummary:
    """What a listener hears about each stored event (``count == 1``, ``sampled=False``)
    and each count of sampled-out occurrences (``sampled=True``)."""

    error_type: str
    code: str
    severity: str
    service: str | None
    count: int
    fingerprint: str
    sampled: bool


Listener = Callable[[CaptureSummary], None]


@dataclass(frozen=True, slots=True)
class CaptureStats:
    """The pipeline's health, cheap to read (a Prometheus collector reads it per scrape)."""

    configured: bool
    queue_depth: int = 0
    queue_size: int = 0
    pending_counts: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    events_written: int = 0
    duplicates: int = 0
    deltas_written: int = 0
    batches_spooled: int = 0
    slim_written: int = 0  # slim rows stored for answered occurrences sampled out
    batches_replayed: int = 0
    spool_bytes: int = 0
    spool_files: int = 0
    store_available: bool | None = None
    last_store_error: str | None = None
    internal_errors: dict[str, int] = field(default_factory=dict)


class Pipeline:
    """One process's capture pipeline: the caller's side, and the cycle that the writer
    runs over its parts (:attr:`worker`, :attr:`counts`, :attr:`delivery`)."""

    def __init__(
        self,
        store: BatchWriter | None = None,
        *,
        store_factory: Callable[[], BatchWriter] | None = None,
        service: str = DEFAULT_SETTINGS.service,
        environment: str | None = DEFAULT_SETTINGS.environment,
        release: str | None = DEFAULT_SETTINGS.release,
        scrubber: Scrubber,
        spool: Spool | None,
        queue_size: int = DEFAULT_SETTINGS.queue_size,
        batch_size: int = DEFAULT_SETTINGS.batch_size,
        flush_interval: float = DEFAULT_SETTINGS.flush_interval,
        max_payload_bytes: int = DEFAULT_SETTINGS.max_payload_bytes,
        flood_per_minute: int = DEFAULT_SETTINGS.flood_per_minute,
        slim_per_minute: int = DEFAULT_SETTINGS.slim_per_minute,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        start_writer: bool = True,
        synchronous: bool = False,
        requests: RequestCounter | None = None,
    ) -> None:
        if (store is None) == (store_factory is None):
            message = "Pipeline() needs either store= or store_factory=, not both or neither"
            raise TypeError(message)
        self.service = service
        self.environment = environment
        self.spool = spool
        self.queue_size = queue_size
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.slim_per_minute = slim_per_minute
        self._clock = clock
        self._monotonic = monotonic
        self._start_writer = start_writer and not synchronous
        self._synchronous = synchronous
        self.builder = RecordBuilder(
            service=service,
            environment=environment,
            release=release,
            max_payload_bytes=max_payload_bytes,
            scrubber=scrubber,
        )
        self.limiter = FloodLimiter(flood_per_minute, clock=monotonic)
        self._listeners: list[Listener] = []
        self.counts = self._new_counts()
        self.worker = self._new_worker()
        self.delivery = Delivery(
            store, store_factory, spool, self.counts, self.builder, monotonic=monotonic
        )
        self._request_counter = requests
        self.requests = self._new_requests()
        self._settled = True

    def _new_requests(self) -> RequestCountWriter | None:
        counter = self._request_counter
        if counter is None:
            return None
        return RequestCountWriter(counter, environment=self.environment, monotonic=self._monotonic)

    def _new_counts(self) -> Counts:
        return Counts(
            self.limiter,
            slim_per_minute=self.slim_per_minute,
            service=self.service,
            environment=self.environment,
            monotonic=self._monotonic,
        )

    def _new_worker(self) -> Worker:
        return Worker(
            self._cycle, flush_interval=self.flush_interval, start_thread=self._start_writer
        )

    def after_fork_in_child(self) -> None:
        """Forget the parent's queue, counts and writer; start afresh in this process.

        The parent still holds (and will write) what it captured; the child's copy would
        only count it twice. Its database connections are kept aside, unused and unclosed,
        because closing them would close the parent's."""
        self.limiter.reset()
        self.counts = self._new_counts()
        self.worker = self._new_worker()
        self.delivery = self.delivery.in_child(self.counts)
        self.requests = self._new_requests()
        self._settled = True

    # -- the caller's side -----------------------------------------------------------------

    def submit(
        self,
        error_id: str,
        exc: BaseException | None,
        fields: dict[str, Any],
        *,
        message: str | None = None,
        level: str | None = None,
        template: str | None = None,
        fingerprint: str | Sequence[Any] | None = None,
    ) -> None:
        """Take one occurrence on the caller's thread: group, limit, enqueue or count."""
        if exc is not None:
            grouping = group_exception(exc, self.service)
        else:
            grouping = group_message(template or message or "", self.service, fields.get("logger"))
        if fingerprint is not None:
            grouping = apply_override(fingerprint, grouping, self.service)
        now = self._clock()
        worker = self.worker
        closed = worker.closed
        if not closed:
            counts = self.counts
            if not self.limiter.admit(grouping.fingerprint):
                counts.count(grouping, exc, fields, level, now, "sampled")
                if fields.get("request_id") is not None:
                    counts.keep_slim(error_id, grouping.fingerprint, fields, now)
                return
            if len(worker.queue) >= self.queue_size:
                counts.count(grouping, exc, fields, level, now, "queue_full")
                return
        event = ErrorEvent(
            error_id,
            exc,
            message,
            level,
            now,
            current_context(),
            fields,
            grouping.fingerprint,
            grouping.title,
        )
        if closed:
            self._write_now(event)
            return
        depth = worker.put(event)
        if self._synchronous:
            with worker.lock:
                self.run_once(force=True)
        elif depth >= self.batch_size:
            worker.wake()

    def amend(self, error_id: str, fields: dict[str, Any]) -> bool:
        """Fill the fields that the queued event ``error_id`` lacks (None, empty) from a
        later report of the same exception: the HTTP layer's user agent and payload for a
        failure a retry reported first. Mappings (``extra``, ``tags``, ``headers``) gain the
        keys they lack. False when the event is not waiting (written, or only counted)."""
        return self.worker.amend(error_id, fields)

    def count_dropped(self, reason: str, n: int = 1) -> None:
        """Count ``n`` samples dropped for ``reason`` outside the pipeline's own paths."""
        self.counts.count_dropped(reason, n)

    # -- the writer's cycle ----------------------------------------------------------------

    def _cycle(self, force: bool) -> None:
        self.run_once(force=force)

    def run_once(self, *, force: bool = False) -> None:
        """One writer cycle: drain the queue in batches, store the counts, replay the spool.

        ``force`` tries the store even while backing off (``flush`` and shutdown)."""
        worker, counts, delivery = self.worker, self.counts, self.delivery
        # Only what is queued now: a flood arriving meanwhile waits for the next cycle, so
        # that counts, replays and flush requests are served even under a flood.
        budget = len(worker.queue)
        deltas = counts.take_deltas(self._notify_delta)
        build = self.builder.build
        while budget > 0 or deltas:
            batch = worker.take(min(self.batch_size, budget))
            budget = budget - len(batch) if batch else 0
            records = [build(event) for event in batch]
            del batch
            self._deliver(records, deltas, force)
            deltas = []
        delivery.deliver_slim(counts.take_slim())
        delivery.replay(force)
        requests = self.requests
        if requests is not None:
            requests.flush(lambda: delivery.store, force)
        self._settled = (
            not worker.queue
            and counts.is_empty()
            and delivery.settled()
            and (requests is None or requests.settled())
        )

    def _deliver(self, records: list[ErrorRecord], deltas: list[CountDelta], force: bool) -> None:
        for record in records:
            self._notify_record(record)
        self.delivery.deliver(records, deltas, force)

    def _write_now(self, event: ErrorEvent) -> None:
        """After shutdown (late errors at interpreter exit): store synchronously."""
        with self.worker.lock:
            self._deliver([self.builder.build(event)], [], True)

    # -- listeners -------------------------------------------------------------------------

    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        with contextlib.suppress(ValueError):
            self._listeners.remove(listener)

    def _notify_record(self, record: ErrorRecord) -> None:
        if not self._listeners:
            return
        summary = CaptureSummary(
            record.error_type,
            record.error_code,
            record.severity,
            record.service,
            1,
            record.fingerprint,
            False,
        )
        self._notify(summary)

    def _notify_delta(self, delta: CountDelta) -> None:
        if not self._listeners:
            return
        summary = CaptureSummary(
            delta.error_type,
            delta.error_code,
            delta.severity,
            delta.service,
            delta.count,
            delta.fingerprint,
            True,
        )
        self._notify(summary)

    def _notify(self, summary: CaptureSummary) -> None:
        for listener in tuple(self._listeners):
            with guard("capture.listener"):
                listener(summary)

    # -- control ---------------------------------------------------------------------------

    def flush(self, timeout: float | None = 5.0) -> bool:
        """Write everything taken so far (queue, counts, spool replay); True when all of it
        is in the store, False when time ran out or the store is down (then it is in the
        spool)."""
        return self.worker.flush(timeout) and self._settled

    def shutdown(self, timeout: float | None = 5.0) -> bool:
        """Flush, stop the writer and seal the spool; later captures are stored at once."""
        self.flush(timeout)
        worker = self.worker
        worker.stop(timeout)
        with worker.lock:
            # Anything that arrived between the flush and the stop.
            self.run_once(force=True)
            ok = self._settled
            self.delivery.close()
        return ok

    @property
    def writer_alive(self) -> bool:
        return self.worker.alive

    def stats(self) -> CaptureStats:
        from errorkit._guard import internal_error_counts

        dropped, pending = self.counts.status()
        delivery = self.delivery
        spool_files, spool_bytes = delivery.spool_status()
        return CaptureStats(
            configured=True,
            queue_depth=len(self.worker.queue),
            queue_size=self.queue_size,
            pending_counts=pending,
            dropped=dropped,
            events_written=delivery.written,
            duplicates=delivery.duplicates,
            deltas_written=delivery.deltas_written,
            batches_spooled=delivery.spooled,
            batches_replayed=delivery.replayed,
            slim_written=delivery.slim_written,
            spool_bytes=spool_bytes,
            spool_files=spool_files,
            store_available=delivery.store_up,
            last_store_error=delivery.last_error,
            internal_errors=internal_error_counts(),
        )

    @property
    def store(self) -> BatchWriter:
        """The store this pipeline writes to (opened on first use)."""
        return self.delivery.store

    @property
    def _counts(self) -> dict[str, Any]:
        """The pending counts by fingerprint (what the next cycle stores as deltas)."""
        return self.counts._pending
