"""Delivery: records and counts into the store, or into the spool while the store fails.

A failed write sends its batch to the spool and backs off: until the wait is over, batches
go straight to the spool. The wait after the *n*-th failure in a row is
:data:`STORE_BACKOFF`'s, errorkit's own retry policy (0.5 s doubling up to
:data:`MAX_BACKOFF`, no jitter). Once the store answers, the spool is replayed (idempotently)
and emptied. A batch the store refuses as malformed is written item by item, so that one bad
record loses only itself. What neither the store nor the spool can take is kept as counts
(:meth:`~errorkit.capturing.counts.Counts.hold`): only samples are ever lost.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any, Protocol

from errorkit._guard import guard, report_internal_error
from errorkit.resilience.retrying import RetryPolicy
from errorkit.store.records import CountDelta, ErrorRecord, SlimRecord

from .counts import Counts
from .event import MAX_ID_CHARS, RecordBuilder
from .spool import Spool, SpoolFull

__all__ = ["MAX_BACKOFF", "STORE_BACKOFF", "BatchWriter", "Delivery"]

#: The longest wait between two attempts to reach a failing store.
MAX_BACKOFF = 30.0
#: The waits between attempts to reach a failing store (only its ``backoff()`` is used: the
#: writer keeps trying, each cycle, once the wait is over).
STORE_BACKOFF = RetryPolicy(
    wait_initial=0.5, wait_multiplier=2.0, wait_max=MAX_BACKOFF, jitter="none", capture=False
)


class BatchWriter(Protocol):
    """What the pipeline needs from a store (``errorkit.store.ErrorStore`` is one)."""

    def write_batch(
        self, records: Sequence[ErrorRecord], deltas: Sequence[CountDelta] = ()
    ) -> Any: ...


class Delivery:
    """The store (given, or opened on first use), the spool and the store's health."""

    def __init__(
        self,
        store: BatchWriter | None,
        factory: Callable[[], BatchWriter] | None,
        spool: Spool | None,
        counts: Counts,
        builder: RecordBuilder,
        *,
        monotonic: Callable[[], float],
        inherited: list[Any] | None = None,
    ) -> None:
        self._store = store
        self._factory = factory
        self.spool = spool
        self.counts = counts
        self._builder = builder
        self._monotonic = monotonic
        # Stores of a parent process: never used, never closed.
        self._inherited: list[Any] = [] if inherited is None else inherited
        self.store_up: bool | None = None
        self.last_error: str | None = None
        self._failures = 0
        self._next_attempt = 0.0
        self.written = 0
        self.duplicates = 0
        self.deltas_written = 0
        self.spooled = 0
        self.replayed = 0
        self.slim_written = 0

    def in_child(self, counts: Counts) -> Delivery:
        """This delivery for a forked child: same spool, fresh health and figures; the
        parent's store is kept aside (closing it would close the parent's connections)."""
        store = self._store
        inherited = self._inherited
        if store is not None:
            inherited.append(store)
            if self._factory is not None:
                store = None
            else:
                engine = getattr(store, "engine", None)
                with contextlib.suppress(Exception):
                    if engine is not None:
                        engine.dispose(close=False)
        return Delivery(
            store,
            self._factory,
            self.spool,
            counts,
            self._builder,
            monotonic=self._monotonic,
            inherited=inherited,
        )

    @property
    def store(self) -> BatchWriter:
        """The store written to (opened on first use)."""
        store = self._store
        if store is None:
            if self._factory is None:  # pragma: no cover - one of the two is always set
                message = "the pipeline has no store"
                raise RuntimeError(message)
            store = self._store = self._factory()
        return store

    # -- writing ---------------------------------------------------------------------------

    def deliver(self, records: list[ErrorRecord], deltas: list[CountDelta], force: bool) -> None:
        """Store ``records`` and ``deltas``, or spool them; ``force`` tries the store even
        while backing off."""
        if self.store_up is False and not force and self._monotonic() < self._next_attempt:
            self._to_spool(records, deltas)
            return
        try:
            result = self.store.write_batch(records, deltas)
        except Exception as exc:  # noqa: BLE001 - any store failure means: spool and retry
            if _is_invalid_record(exc):
                self._write_one_by_one(records, deltas, exc)
                return
            self._failed(exc)
            self._to_spool(records, deltas)
            return
        self._ok(result, len(records), len(deltas))

    def _write_one_by_one(
        self, records: list[ErrorRecord], deltas: list[CountDelta], exc: BaseException
    ) -> None:
        """A batch the store refuses as malformed: keep every item it does accept."""
        report_internal_error("capture.invalid_record", exc)
        store = self.store
        for record in records:
            try:
                self._ok(store.write_batch([record], []), 1, 0)
            except Exception as item_exc:  # noqa: BLE001 - per item: keep the rest
                if _is_invalid_record(item_exc):
                    self.counts.count_dropped("invalid_record")
                else:
                    self._failed(item_exc)
                    self._to_spool([record], [])
        for delta in deltas:
            try:
                self._ok(store.write_batch([], [delta]), 0, 1)
            except Exception as item_exc:  # noqa: BLE001 - per item: keep the rest
                if _is_invalid_record(item_exc):
                    self.counts.count_dropped("invalid_delta", delta.count)
                else:
                    self._failed(item_exc)
                    self._to_spool([], [delta])

    def _ok(self, result: Any, records: int, deltas: int) -> None:
        self._answered()
        self.written += int(getattr(result, "inserted", records))
        self.duplicates += int(getattr(result, "duplicates", 0))
        self.deltas_written += int(getattr(result, "deltas_applied", deltas))

    def _answered(self) -> None:
        self.store_up = True
        self._failures = 0
        self.last_error = None

    def _failed(self, exc: BaseException) -> None:
        self.store_up = False
        self._failures += 1
        wait = STORE_BACKOFF.backoff(self._failures)
        asked = getattr(exc, "retry_after", None)
        if isinstance(asked, int | float) and asked > wait:
            wait = float(asked)  # the tracker said how long (Retry-After): no sooner
        self._next_attempt = self._monotonic() + wait
        self.last_error = f"{type(exc).__name__}: {exc}"
        report_internal_error("capture.store", exc)

    def _to_spool(self, records: list[ErrorRecord], deltas: list[CountDelta]) -> None:
        if not records and not deltas:
            return
        spool = self.spool
        if spool is not None:
            try:
                spool.append(records, deltas)
                self.spooled += 1
                return
            except SpoolFull:
                pass
            except OSError as exc:
                report_internal_error("capture.spool", exc)
        # No room on disk: keep the occurrences as counts in memory; only samples are lost.
        if records:
            reason = "spool_full" if spool is not None else "no_spool"
            self.counts.count_dropped(reason, len(records))
        self.counts.hold(deltas, records)

    def replay(self, force: bool) -> None:
        """Replay the spool into the store when the store is up or the wait is over."""
        spool = self.spool
        if spool is None:
            return
        due = force or self.store_up is True or self._monotonic() >= self._next_attempt
        if not due or spool.is_empty():
            return
        try:
            store = self.store
        except Exception as exc:  # noqa: BLE001 - cannot even open the store: back off
            self._failed(exc)
            return
        result = spool.replay(lambda r, d: store.write_batch(r, d))
        self.replayed += result.batches
        if result.error is not None:
            self._failed(result.error)
        elif result.batches:
            self._answered()

    def deliver_slim(self, rows: list[SlimRecord]) -> None:
        """Store slim rows (best effort: while the store is down they are not spooled, only
        counted as dropped)."""
        if not rows:
            return
        try:
            store: BatchWriter | None = self.store
        except Exception:  # noqa: BLE001 - the main write path reports store failures
            store = None
        write = getattr(store, "write_slim", None)
        if self.store_up is False or not callable(write):
            self.counts.count_dropped("slim_unstored", len(rows))
            return
        clean = self._builder.clean
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
            self.slim_written += int(write(cleaned))
        except Exception as exc:  # noqa: BLE001 - slim rows never break the writer
            report_internal_error("capture.slim", exc)
            self.counts.count_dropped("slim_unstored", len(rows))

    # -- the end ---------------------------------------------------------------------------

    def settled(self) -> bool:
        """The store is not known to be down and the spool is empty."""
        return self.store_up is not False and (self.spool is None or self.spool.is_empty())

    def close(self) -> None:
        """Seal the spool; close the store when the pipeline opened it itself (one it was
        given belongs to the caller). Used again, a closed store reconnects."""
        if self.spool is not None:
            with guard("capture.spool_close"):
                self.spool.close()
        if self._factory is not None and self._store is not None:
            close = getattr(self._store, "close", None)
            if callable(close):
                with guard("capture.store_close"):
                    close()

    def spool_status(self) -> tuple[int, int]:
        """Files and bytes in the spool (0, 0 without one or when it cannot be read)."""
        if self.spool is not None:
            with contextlib.suppress(OSError):
                status = self.spool.status()
                return status.files, status.bytes
        return 0, 0


def _cut(value: Any) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else str(value)
    return text[:MAX_ID_CHARS]


def _is_invalid_record(exc: BaseException) -> bool:
    from errorkit.store.errors import InvalidRecord

    return isinstance(exc, InvalidRecord)
