"""The pipeline: a bounded queue in front of one background writer.

The caller's thread (:meth:`Pipeline.submit`) groups the occurrence (a cached fingerprint),
asks the flood limiter whether this fingerprint may store another sample this minute, and
appends the raw :class:`~errorkit.capturing.event.ErrorEvent` to a bounded deque. An
occurrence that is sampled out or finds the queue full is not lost: it is counted under its
fingerprint, and the writer stores those counts as :class:`~errorkit.store.CountDelta`, so
group counts stay exact. A sampled-out occurrence that was answered with an error id (an HTTP
answer: it has a request id) also leaves a slim row (:class:`~errorkit.store.SlimRecord`), at
most ``slim_per_minute`` a minute in all; past that it is only counted.

The writer thread wakes every ``flush_interval`` (or as soon as a batch is full), builds
records (formatting, scrubbing, caps), and calls the store's ``write_batch``. When the store
fails, batches go to the spool and the store is retried with exponential backoff; once it
answers again the spool is replayed (idempotently) and emptied.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Protocol

from errorkit._guard import guard, report_internal_error
from errorkit.classification import classify
from errorkit.config import DEFAULT_SETTINGS
from errorkit.context import current_context
from errorkit.errors import AppError, ErrorType
from errorkit.scrubbing import Scrubber
from errorkit.store.records import CountDelta, ErrorRecord, SlimRecord

from .event import MAX_ID_CHARS, MESSAGE_CODE, ErrorEvent, RecordBuilder, normalize_severity
from .fingerprint import Grouping, apply_override, group_exception, group_message
from .spool import Spool, SpoolFull

__all__ = [
    "BatchWriter",
    "CaptureStats",
    "CaptureSummary",
    "FloodLimiter",
    "Listener",
    "Pipeline",
]

#: Distinct fingerprints the flood limiter and the pending counters track at once.
MAX_FINGERPRINTS = 10_000
#: The longest wait between two attempts to reach a failing store.
MAX_BACKOFF = 30.0
_FIRST_BACKOFF = 0.5


class BatchWriter(Protocol):
    """What the pipeline needs from a store (``errorkit.store.ErrorStore`` is one)."""

    def write_batch(
        self, records: Sequence[ErrorRecord], deltas: Sequence[CountDelta] = ()
    ) -> Any: ...


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


class FloodLimiter:
    """At most ``per_minute`` stored samples per fingerprint in each clock minute.

    Memory is bounded: the table is emptied every minute and tracks at most
    :data:`MAX_FINGERPRINTS` fingerprints (beyond that, new ones are admitted untracked and
    the queue's bound applies)."""

    def __init__(
        self,
        per_minute: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_fingerprints: int = MAX_FINGERPRINTS,
    ) -> None:
        self.per_minute = per_minute
        self._clock = clock
        self._max = max_fingerprints
        self._window = -1
        self._seen: dict[str, int] = {}
        self._lock = threading.Lock()

    def admit(self, fingerprint: str) -> bool:
        """Whether this occurrence may be stored as a sample (else it is only counted)."""
        window = int(self._clock() // 60)
        with self._lock:
            if window != self._window:
                self._window = window
                self._seen = {}
            seen = self._seen.get(fingerprint, 0)
            if seen >= self.per_minute:
                return False
            if seen or len(self._seen) < self._max:
                self._seen[fingerprint] = seen + 1
            return True

    def reset(self) -> None:
        self._lock = threading.Lock()
        self._window = -1
        self._seen = {}


class _MinuteBudget:
    """At most ``per_minute`` admissions in each clock minute, all keys together."""

    __slots__ = ("_clock", "_lock", "_used", "_window", "per_minute")

    def __init__(self, per_minute: int, clock: Callable[[], float]) -> None:
        self.per_minute = per_minute
        self._clock = clock
        self._window = -1
        self._used = 0
        self._lock = threading.Lock()

    def admit(self) -> bool:
        window = int(self._clock() // 60)
        with self._lock:
            if window != self._window:
                self._window, self._used = window, 0
            if self._used >= self.per_minute:
                return False
            self._used += 1
            return True


class _Count:
    """Occurrences of one fingerprint counted but not stored as rows."""

    __slots__ = ("code", "count", "error_type", "first", "last", "severity", "title")

    def __init__(
        self, title: str, error_type: str, code: str, severity: str, when: float, count: int
    ) -> None:
        self.title = title
        self.error_type = error_type
        self.code = code
        self.severity = severity
        self.first = when
        self.last = when
        self.count = count


def _meta(
    exc: BaseException | None, fields: dict[str, Any], level: str | None
) -> tuple[str, str, str]:
    """error_type, code and severity of an occurrence that will only be counted."""
    if exc is not None:
        if isinstance(exc, AppError):
            error_type, code, severity = str(exc.error_type), exc.code, str(exc.severity)
        else:
            c = classify(exc)
            error_type, code, severity = c.error_type, c.code, str(c.severity)
    else:
        error_type, code = ErrorType.UNKNOWN.value, MESSAGE_CODE
        severity = normalize_severity(level, "error")
    return (
        str(fields.get("error_type") or error_type),
        str(fields.get("code") or code),
        normalize_severity(fields.get("severity"), severity),
    )


def _when(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)


class Pipeline:
    """One process's capture pipeline: queue, flood limiter, counters, writer, spool."""

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
    ) -> None:
        if (store is None) == (store_factory is None):
            message = "Pipeline() needs either store= or store_factory=, not both or neither"
            raise TypeError(message)
        self._factory = store_factory
        self._store: BatchWriter | None = store
        self.service = service
        self.environment = environment
        self.spool = spool
        self.queue_size = queue_size
        self.batch_size = batch_size
        self.flush_interval = flush_interval
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
        self.slim_per_minute = slim_per_minute
        self._listeners: list[Listener] = []
        self._inherited: list[Any] = []  # stores of a parent process, never used, never closed
        self._init_runtime()

    # -- state that a forked child rebuilds ------------------------------------------------

    def _init_runtime(self) -> None:
        self._queue: deque[ErrorEvent] = deque()
        # Queued events by error id, until the writer takes them: a later report of the
        # same exception may still fill their empty fields (see amend()).
        self._waiting: dict[str, ErrorEvent] = {}
        self._waiting_lock = threading.Lock()
        self._counts: dict[str, _Count] = {}
        self._held: list[CountDelta] = []
        self._slim: list[SlimRecord] = []
        self._slim_budget = _MinuteBudget(self.slim_per_minute, self._monotonic)
        self._slim_written = 0
        self._count_lock = threading.Lock()
        self._dropped: Counter[str] = Counter()
        # Re-entrant: code run by the writer (a listener, an exception's __str__, a log
        # handler) may capture or flush again on the same thread.
        self._work_lock = threading.RLock()
        self._start_lock = threading.Lock()
        self._wake = threading.Event()
        self._done = threading.Condition()
        self._flush_requested = 0
        self._flush_done = 0
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._closed = False
        self._store_up: bool | None = None
        self._failures = 0
        self._next_attempt = 0.0
        self._last_error: str | None = None
        self._settled = True
        self._written = 0
        self._duplicates = 0
        self._deltas_written = 0
        self._spooled = 0
        self._replayed = 0

    def after_fork_in_child(self) -> None:
        """Forget the parent's queue, counts and writer; start afresh in this process.

        The parent still holds (and will write) what it captured; the child's copy would
        only count it twice. Its database connections are kept aside, unused and unclosed,
        because closing them would close the parent's."""
        if self._store is not None:
            self._inherited.append(self._store)
            if self._factory is not None:
                self._store = None
            else:
                engine = getattr(self._store, "engine", None)
                with contextlib.suppress(Exception):
                    if engine is not None:
                        engine.dispose(close=False)
        self.limiter.reset()
        self._init_runtime()

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
        closed = self._closed
        queue = self._queue
        if not closed:
            if not self.limiter.admit(grouping.fingerprint):
                self._count(grouping, exc, fields, level, now, "sampled")
                if fields.get("request_id") is not None:
                    self._keep_slim(error_id, grouping.fingerprint, fields, now)
                return
            if len(queue) >= self.queue_size:
                self._count(grouping, exc, fields, level, now, "queue_full")
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
        self._waiting[error_id] = event
        queue.append(event)
        if self._synchronous:
            with self._work_lock:
                self.run_once(force=True)
            return
        if self._thread is None and self._start_writer:
            self._start()
        if len(queue) >= self.batch_size:
            self._wake.set()

    def amend(self, error_id: str, fields: dict[str, Any]) -> bool:
        """Fill the fields that the queued event ``error_id`` lacks (None, empty) from a
        later report of the same exception: the HTTP layer's user agent and payload for a
        failure a retry reported first. Mappings (``extra``, ``tags``, ``headers``) gain the
        keys they lack. False when the event is not waiting (written, or only counted)."""
        with self._waiting_lock:
            event = self._waiting.get(error_id)
            if event is None:
                return False
            _fill_empty(event.fields, fields)
        return True

    def _take_waiting(self, batch: list[ErrorEvent]) -> None:
        """The writer takes ``batch``: from now on it is no longer amended."""
        waiting = self._waiting
        with self._waiting_lock:
            for event in batch:
                if waiting.get(event.error_id) is event:
                    del waiting[event.error_id]

    def _count(
        self,
        grouping: Grouping,
        exc: BaseException | None,
        fields: dict[str, Any],
        level: str | None,
        when: float,
        reason: str,
    ) -> None:
        fingerprint = grouping.fingerprint
        with self._count_lock:
            self._dropped[reason] += 1
            entry = self._counts.get(fingerprint)
            if entry is not None:
                entry.count += 1
                if when > entry.last:
                    entry.last = when
                elif when < entry.first:
                    entry.first = when
                return
            overflow = len(self._counts) >= MAX_FINGERPRINTS
        if overflow:
            type_name = type(exc).__qualname__ if exc is not None else "message"
            fingerprint = group_message(
                f"overflow {type_name}", self.service, "errorkit"
            ).fingerprint
            title = f"{type_name} (counted together: too many distinct errors at once)"
            with self._count_lock:
                entry = self._counts.get(fingerprint)
                if entry is not None:  # the overflow group is counting already
                    entry.count += 1
                    entry.last = max(entry.last, when)
                    entry.first = min(entry.first, when)
                    return
        else:
            title = grouping.title
        # A new fingerprint: classify outside the lock (once per fingerprint per cycle).
        error_type, code, severity = _meta(exc, fields, level)
        with self._count_lock:
            entry = self._counts.get(fingerprint)
            if entry is None:
                self._counts[fingerprint] = _Count(title, error_type, code, severity, when, 1)
            else:
                entry.count += 1
                entry.last = max(entry.last, when)
                entry.first = min(entry.first, when)

    def _keep_slim(
        self, error_id: str, fingerprint: str, fields: dict[str, Any], when: float
    ) -> None:
        """A sampled-out occurrence the client was shown an id for: a slim row, within the
        per-minute bound (past it, the group's count is all that is left)."""
        if not self._slim_budget.admit():
            self.count_dropped("slim_limit")
            return
        status = fields.get("status")
        slim = SlimRecord(
            error_id,
            _when(when),
            fingerprint,
            fields.get("request_id"),
            fields.get("session_id") or current_context().session_id,
            fields.get("endpoint"),
            status if isinstance(status, int) and not isinstance(status, bool) else None,
        )
        with self._count_lock:
            self._slim.append(slim)

    def _deliver_slim(self) -> None:
        """Store the slim rows taken so far (best effort: while the store is down they are
        not spooled, only counted as dropped)."""
        with self._count_lock:
            rows, self._slim = self._slim, []
        if not rows:
            return
        try:
            store = self._get_store()
        except Exception:  # noqa: BLE001 - the main write path reports store failures
            store = None
        write = getattr(store, "write_slim", None)
        if self._store_up is False or not callable(write):
            self.count_dropped("slim_unstored", len(rows))
            return
        clean = self.builder.clean
        cleaned = [
            replace(
                row,
                error_id=row.error_id[:36],
                request_id=_cut(row.request_id),
                session_id=_cut(row.session_id),
                endpoint=_cut(clean(str(row.endpoint), single_line=True)) if row.endpoint else None,
            )
            for row in rows
        ]
        try:
            self._slim_written += int(write(cleaned))
        except Exception as exc:  # noqa: BLE001 - slim rows never break the writer
            report_internal_error("capture.slim", exc)
            self.count_dropped("slim_unstored", len(rows))

    def count_dropped(self, reason: str, n: int = 1) -> None:
        """Count ``n`` samples dropped for ``reason`` outside the pipeline's own paths."""
        with self._count_lock:
            self._dropped[reason] += n

    # -- the writer thread -----------------------------------------------------------------

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is not None or self._closed:
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
            with guard("capture.writer"), self._work_lock:
                self.run_once(force=bool(target > self._flush_done) or stopping)
            with self._done:
                self._flush_done = max(self._flush_done, target)
                self._done.notify_all()
            if stopping:
                return

    def run_once(self, *, force: bool = False) -> None:
        """One writer cycle: drain the queue in batches, store the counts, replay the spool.

        ``force`` tries the store even while backing off (``flush`` and shutdown)."""
        queue = self._queue
        # Only what is queued now: a flood arriving meanwhile waits for the next cycle, so
        # that counts, replays and flush requests are served even under a flood.
        budget = len(queue)
        deltas = self._take_deltas()
        popleft = queue.popleft
        while budget > 0 or deltas:
            batch: list[ErrorEvent] = []
            with contextlib.suppress(IndexError):
                for _ in range(min(self.batch_size, budget)):
                    batch.append(popleft())
            budget = budget - len(batch) if batch else 0
            if batch:
                self._take_waiting(batch)
            records = [self.builder.build(event) for event in batch]
            del batch
            self._deliver(records, deltas, force)
            deltas = []
        self._deliver_slim()
        self._replay(force)
        self._settled = (
            not queue
            and not self._counts
            and not self._held
            and not self._slim
            and self._store_up is not False
            and (self.spool is None or self.spool.is_empty())
        )

    def _take_deltas(self) -> list[CountDelta]:
        with self._count_lock:
            counts, self._counts = self._counts, {}
            held, self._held = self._held, []
        fresh = [
            CountDelta(
                delta_id=str(uuid.uuid4()),
                fingerprint=fingerprint,
                title=entry.title,
                error_type=entry.error_type,
                error_code=entry.code,
                severity=entry.severity,
                count=entry.count,
                first_seen=_when(entry.first),
                last_seen=_when(entry.last),
                service=self.service,
                environment=self.environment,
            )
            for fingerprint, entry in counts.items()
        ]
        for delta in fresh:  # held deltas were announced when they were first counted
            self._notify_delta(delta)
        return held + fresh

    def _get_store(self) -> BatchWriter:
        store = self._store
        if store is None:
            if self._factory is None:  # pragma: no cover - one of the two is always set
                message = "the pipeline has no store"
                raise RuntimeError(message)
            store = self._store = self._factory()
        return store

    def _deliver(self, records: list[ErrorRecord], deltas: list[CountDelta], force: bool) -> None:
        for record in records:
            self._notify_record(record)
        if self._store_up is False and not force and self._monotonic() < self._next_attempt:
            self._to_spool(records, deltas)
            return
        try:
            result = self._get_store().write_batch(records, deltas)
        except Exception as exc:  # noqa: BLE001 - any store failure means: spool and retry
            if _is_invalid_record(exc):
                self._write_one_by_one(records, deltas, exc)
                return
            self._store_failed(exc)
            self._to_spool(records, deltas)
            return
        self._store_ok(result, len(records), len(deltas))

    def _write_one_by_one(
        self, records: list[ErrorRecord], deltas: list[CountDelta], exc: BaseException
    ) -> None:
        """A batch the store refuses as malformed: keep every item it does accept."""
        report_internal_error("capture.invalid_record", exc)
        store = self._get_store()
        for record in records:
            try:
                self._store_ok(store.write_batch([record], []), 1, 0)
            except Exception as item_exc:  # noqa: BLE001 - per item: keep the rest
                if _is_invalid_record(item_exc):
                    self.count_dropped("invalid_record")
                else:
                    self._store_failed(item_exc)
                    self._to_spool([record], [])
        for delta in deltas:
            try:
                self._store_ok(store.write_batch([], [delta]), 0, 1)
            except Exception as item_exc:  # noqa: BLE001 - per item: keep the rest
                if _is_invalid_record(item_exc):
                    self.count_dropped("invalid_delta", delta.count)
                else:
                    self._store_failed(item_exc)
                    self._to_spool([], [delta])

    def _store_ok(self, result: Any, records: int, deltas: int) -> None:
        self._store_up = True
        self._failures = 0
        self._last_error = None
        self._written += int(getattr(result, "inserted", records))
        self._duplicates += int(getattr(result, "duplicates", 0))
        self._deltas_written += int(getattr(result, "deltas_applied", deltas))

    def _store_failed(self, exc: BaseException) -> None:
        self._store_up = False
        self._failures += 1
        backoff = min(MAX_BACKOFF, _FIRST_BACKOFF * 2 ** (self._failures - 1))
        self._next_attempt = self._monotonic() + backoff
        self._last_error = f"{type(exc).__name__}: {exc}"
        report_internal_error("capture.store", exc)

    def _to_spool(self, records: list[ErrorRecord], deltas: list[CountDelta]) -> None:
        if not records and not deltas:
            return
        spool = self.spool
        if spool is not None:
            try:
                spool.append(records, deltas)
                self._spooled += 1
                return
            except SpoolFull:
                pass
            except OSError as exc:
                report_internal_error("capture.spool", exc)
        # No room on disk: keep the occurrences as counts in memory; only samples are lost.
        if records:
            self.count_dropped("spool_full" if spool is not None else "no_spool", len(records))
        reduced = deltas + _as_deltas(records, self.service, self.environment)
        with self._count_lock:
            self._held.extend(reduced)
            if len(self._held) > MAX_FINGERPRINTS:
                self._held = _merge(self._held)

    def _replay(self, force: bool) -> None:
        spool = self.spool
        if spool is None:
            return
        due = force or self._store_up is True or self._monotonic() >= self._next_attempt
        if not due or spool.is_empty():
            return
        try:
            store = self._get_store()
        except Exception as exc:  # noqa: BLE001 - cannot even open the store: back off
            self._store_failed(exc)
            return
        result = spool.replay(lambda r, d: store.write_batch(r, d))
        self._replayed += result.batches
        if result.error is not None:
            self._store_failed(result.error)
        elif result.batches:
            self._store_up = True
            self._failures = 0
            self._last_error = None

    def _write_now(self, event: ErrorEvent) -> None:
        """After shutdown (late errors at interpreter exit): store synchronously."""
        with self._work_lock:
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
        thread = self._thread
        # Real time, not the injected clock: a timeout is the caller's wall-clock patience.
        deadline = None if timeout is None else time.monotonic() + max(0.0, timeout)
        if thread is None or not thread.is_alive() or thread is threading.current_thread():
            acquired = self._work_lock.acquire(timeout=-1 if timeout is None else max(timeout, 0))
            if not acquired:
                return False
            try:
                self.run_once(force=True)
            finally:
                self._work_lock.release()
            return self._settled
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
        return self._settled

    def shutdown(self, timeout: float | None = 5.0) -> bool:
        """Flush, stop the writer and seal the spool; later captures are stored at once."""
        ok = self.flush(timeout)
        self._stopping = True
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        self._closed = True
        with self._work_lock:
            # Anything that arrived between the flush and the stop.
            self.run_once(force=True)
            ok = self._settled
            if self.spool is not None:
                with guard("capture.spool_close"):
                    self.spool.close()
            if self._factory is not None and self._store is not None:
                # A store the pipeline opened itself is closed with it (one it was given
                # belongs to the caller). Used again, it reconnects.
                close = getattr(self._store, "close", None)
                if callable(close):
                    with guard("capture.store_close"):
                        close()
        return ok

    @property
    def writer_alive(self) -> bool:
        thread = self._thread
        return thread is not None and thread.is_alive()

    def stats(self) -> CaptureStats:
        from errorkit._guard import internal_error_counts

        with self._count_lock:
            dropped = dict(self._dropped)
            pending = sum(c.count for c in self._counts.values()) + sum(d.count for d in self._held)
        spool_files = spool_bytes = 0
        if self.spool is not None:
            with contextlib.suppress(OSError):
                status = self.spool.status()
                spool_files, spool_bytes = status.files, status.bytes
        return CaptureStats(
            configured=True,
            queue_depth=len(self._queue),
            queue_size=self.queue_size,
            pending_counts=pending,
            dropped=dropped,
            events_written=self._written,
            duplicates=self._duplicates,
            deltas_written=self._deltas_written,
            batches_spooled=self._spooled,
            batches_replayed=self._replayed,
            slim_written=self._slim_written,
            spool_bytes=spool_bytes,
            spool_files=spool_files,
            store_available=self._store_up,
            last_store_error=self._last_error,
            internal_errors=internal_error_counts(),
        )

    @property
    def store(self) -> BatchWriter:
        """The store this pipeline writes to (opened on first use)."""
        return self._get_store()


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


def _cut(value: Any) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else str(value)
    return text[:MAX_ID_CHARS]


def _is_invalid_record(exc: BaseException) -> bool:
    from errorkit.store.errors import InvalidRecord

    return isinstance(exc, InvalidRecord)


def _as_deltas(
    records: list[ErrorRecord], service: str | None, environment: str | None
) -> list[CountDelta]:
    """Records reduced to counts per fingerprint (when their rows cannot be kept)."""
    by_fp: dict[str, list[ErrorRecord]] = {}
    for record in records:
        by_fp.setdefault(record.fingerprint, []).append(record)
    return [
        CountDelta(
            delta_id=str(uuid.uuid4()),
            fingerprint=fp,
            title=items[0].title,
            error_type=items[0].error_type,
            error_code=items[0].error_code,
            severity=items[0].severity,
            count=len(items),
            first_seen=min(r.timestamp for r in items),
            last_seen=max(r.timestamp for r in items),
            service=service,
            environment=environment,
        )
        for fp, items in by_fp.items()
    ]


def _merge(deltas: list[CountDelta]) -> list[CountDelta]:
    merged: dict[str, CountDelta] = {}
    for delta in deltas:
        seen = merged.get(delta.fingerprint)
        if seen is None:
            merged[delta.fingerprint] = delta
            continue
        merged[delta.fingerprint] = replace(
            seen,
            delta_id=str(uuid.uuid4()),
            count=seen.count + delta.count,
            first_seen=min(seen.first_seen, delta.first_seen),
            last_seen=max(seen.last_seen, delta.last_seen),
        )
    return list(merged.values())
