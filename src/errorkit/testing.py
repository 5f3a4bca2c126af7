"""Helpers for testing code that uses errorkit.

::

    from errorkit.testing import capture_events

    def test_checkout_reports_the_failure():
        with capture_events() as events:
            checkout(order)                # calls errorkit.capture(...) somewhere
        assert events[0].error_code == "PAYMENT_DECLINED"
        assert "4242" not in events[0].request_payload

Inside :func:`capture_events` every capture (including reports from the HTTP integrations,
the logging handler and job wrappers) is built synchronously into the
:class:`~errorkit.store.ErrorRecord` that would be stored, scrubbed and capped, and appended
to the yielded list. Nothing is written to disk and no thread is started.

:func:`reset` (the same as :func:`errorkit.reset`) puts every default back between tests:
settings from the environment, scrubber, breakers, health, listeners, testing mode.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from errorkit.capturing import api
from errorkit.capturing.pipeline import Pipeline
from errorkit.config import DEFAULT_SETTINGS
from errorkit.runtime import reset
from errorkit.scrubbing import Scrubber, default_scrubber
from errorkit.store.models import WriteResult
from errorkit.store.records import CountDelta, ErrorRecord

__all__ = ["MemoryStore", "capture_events", "reset"]


@dataclass
class MemoryStore:
    """A store in memory with the real store's write semantics: idempotent by ``error_id``
    and ``delta_id``; ``counts`` holds each fingerprint's exact occurrence count."""

    records: list[ErrorRecord] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    _ids: set[str] = field(default_factory=set, repr=False)
    _deltas: set[str] = field(default_factory=set, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def write_batch(
        self, records: Sequence[ErrorRecord], deltas: Sequence[CountDelta] = ()
    ) -> WriteResult:
        inserted = duplicates = applied = skipped = occurrences = 0
        with self._lock:
            for record in records:
                if record.error_id in self._ids:
                    duplicates += 1
                    continue
                self._ids.add(record.error_id)
                self.records.append(record)
                self.counts[record.fingerprint] = self.counts.get(record.fingerprint, 0) + 1
                inserted += 1
                occurrences += 1
            for delta in deltas:
                if delta.delta_id in self._deltas:
                    skipped += 1
                    continue
                self._deltas.add(delta.delta_id)
                self.counts[delta.fingerprint] = self.counts.get(delta.fingerprint, 0) + delta.count
                applied += 1
                occurrences += delta.count
        return WriteResult(
            inserted=inserted,
            duplicates=duplicates,
            deltas_applied=applied,
            deltas_skipped=skipped,
            occurrences=occurrences,
        )

    def get(self, error_id: str) -> ErrorRecord | None:
        return next((r for r in self.records if r.error_id == error_id), None)

    @property
    def total(self) -> int:
        """Every occurrence counted, stored as a row or not."""
        return sum(self.counts.values())


@contextmanager
def capture_events(
    *,
    service: str = "test",
    environment: str | None = "test",
    release: str | None = None,
    max_payload_bytes: int = DEFAULT_SETTINGS.max_payload_bytes,
    scrubber: Scrubber | None = None,
) -> Iterator[list[ErrorRecord]]:
    """Capture into a list of records for the duration of the block (see the module)."""
    store = MemoryStore()
    pipeline = Pipeline(
        store,
        service=service,
        environment=environment,
        release=release,
        scrubber=scrubber or default_scrubber(),
        spool=None,
        max_payload_bytes=max_payload_bytes,
        flood_per_minute=2**62,
        synchronous=True,
    )
    previous = api._swap(pipeline)
    try:
        yield store.records
    finally:
        api._swap(previous)
