"""The counts: what is kept of the occurrences that are not queued as full events.

An occurrence the flood limiter samples out, or one that finds the queue full, is counted
under its fingerprint; the writer stores those counts as :class:`~errorkit.store.CountDelta`,
so group counts stay exact. A sampled-out occurrence that was answered with an error id also
leaves a slim row (:class:`~errorkit.store.SlimRecord`), within a per-minute budget. Counts
that could neither be stored nor spooled are held here (announced already) until the next
write. Every sample dropped is counted by reason.

Merging one count into another is :meth:`_Count.add`, the only place it is written: the
pending counts, records reduced to counts and held deltas all go through it.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from errorkit.classification import classify
from errorkit.context import current_context
from errorkit.errors import AppError, ErrorType
from errorkit.store.records import CountDelta, ErrorRecord, SlimRecord

from .event import MESSAGE_CODE, normalize_severity
from .fingerprint import Grouping, group_message

__all__ = ["MAX_FINGERPRINTS", "Counts", "FloodLimiter"]

#: Distinct fingerprints the flood limiter and the pending counters track at once.
MAX_FINGERPRINTS = 10_000


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


#: When an occurrence happened: a timestamp while pending, a datetime once it is a record.
W = TypeVar("W", float, datetime)


class _Count(Generic[W]):
    """Occurrences of one fingerprint counted but not stored as rows."""

    __slots__ = ("code", "count", "error_type", "first", "last", "severity", "title")

    def __init__(
        self, title: str, error_type: str, code: str, severity: str, first: W, last: W, count: int
    ) -> None:
        self.title = title
        self.error_type = error_type
        self.code = code
        self.severity = severity
        self.first: W = first
        self.last: W = last
        self.count = count

    def add(self, first: W, last: W, count: int) -> None:
        """Merge ``count`` more occurrences seen between ``first`` and ``last``."""
        self.count += count
        if last > self.last:
            self.last = last
        if first < self.first:
            self.first = first

    def delta(
        self, fingerprint: str, first: datetime, last: datetime, service: str, env: str | None
    ) -> CountDelta:
        return CountDelta(
            delta_id=str(uuid.uuid4()),
            fingerprint=fingerprint,
            title=self.title,
            error_type=self.error_type,
            error_code=self.code,
            severity=self.severity,
            count=self.count,
            first_seen=first,
            last_seen=last,
            service=service,
            environment=env,
        )


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


def when(timestamp: float) -> datetime:
    """A timestamp as the UTC datetime the store keeps."""
    return datetime.fromtimestamp(timestamp, UTC)


class Counts:
    """The pending counts, the held deltas, the slim rows and the dropped samples of one
    pipeline; one lock guards them all (the caller's threads add, the writer takes)."""

    def __init__(
        self,
        limiter: FloodLimiter,
        *,
        slim_per_minute: int,
        service: str,
        environment: str | None,
        monotonic: Callable[[], float],
    ) -> None:
        self.limiter = limiter
        self.service = service
        self.environment = environment
        self._pending: dict[str, _Count[float]] = {}
        self._held: list[CountDelta] = []
        self._slim: list[SlimRecord] = []
        self._slim_budget = _MinuteBudget(slim_per_minute, monotonic)
        self._dropped: Counter[str] = Counter()
        self._lock = threading.Lock()

    # -- the caller's side -----------------------------------------------------------------

    def count(
        self,
        grouping: Grouping,
        exc: BaseException | None,
        fields: dict[str, Any],
        level: str | None,
        at: float,
        reason: str,
    ) -> None:
        """Count one occurrence that is not queued (``reason``: why its sample is dropped)."""
        fingerprint = grouping.fingerprint
        with self._lock:
            self._dropped[reason] += 1
            pending = self._pending  # read under the lock: the writer swaps it for a new one
            entry = pending.get(fingerprint)
            if entry is not None:  # the common case under a flood: one more of a counted group
                entry.add(at, at, 1)
                return
            overflow = len(pending) >= MAX_FINGERPRINTS
        title = grouping.title
        if overflow:
            type_name = type(exc).__qualname__ if exc is not None else "message"
            fingerprint = group_message(
                f"overflow {type_name}", self.service, "errorkit"
            ).fingerprint
            title = f"{type_name} (counted together: too many distinct errors at once)"
            with self._lock:
                if self._bump(fingerprint, at):  # the overflow group is counting already
                    return
        # A new fingerprint: classify outside the lock (once per fingerprint per cycle).
        error_type, code, severity = _meta(exc, fields, level)
        with self._lock:
            if not self._bump(fingerprint, at):
                self._pending[fingerprint] = _Count(title, error_type, code, severity, at, at, 1)

    def _bump(self, fingerprint: str, at: float) -> bool:
        """Add one occurrence to a pending count, if there is one (the lock is held)."""
        entry = self._pending.get(fingerprint)
        if entry is None:
            return False
        entry.add(at, at, 1)
        return True

    def keep_slim(self, error_id: str, fingerprint: str, fields: dict[str, Any], at: float) -> None:
        """A sampled-out occurrence the client was shown an id for: a slim row, within the
        per-minute bound (past it, the group's count is all that is left)."""
        if not self._slim_budget.admit():
            self.count_dropped("slim_limit")
            return
        status = fields.get("status")
        slim = SlimRecord(
            error_id,
            when(at),
            fingerprint,
            fields.get("request_id"),
            fields.get("session_id") or current_context().session_id,
            fields.get("endpoint"),
            status if isinstance(status, int) and not isinstance(status, bool) else None,
        )
        with self._lock:
            self._slim.append(slim)

    def count_dropped(self, reason: str, n: int = 1) -> None:
        """Count ``n`` samples dropped for ``reason``."""
        with self._lock:
            self._dropped[reason] += n

    # -- the writer's side -----------------------------------------------------------------

    def take_deltas(self, announce: Callable[[CountDelta], None]) -> list[CountDelta]:
        """Everything counted so far as deltas to store; the fresh ones are ``announce``d
        (held deltas were announced when they were first counted)."""
        with self._lock:
            pending, self._pending = self._pending, {}
            held, self._held = self._held, []
        service, env = self.service, self.environment
        fresh = [
            entry.delta(fingerprint, when(entry.first), when(entry.last), service, env)
            for fingerprint, entry in pending.items()
        ]
        for delta in fresh:
            announce(delta)
        return held + fresh

    def take_slim(self) -> list[SlimRecord]:
        with self._lock:
            rows, self._slim = self._slim, []
        return rows

    def hold(self, deltas: list[CountDelta], records: list[ErrorRecord]) -> None:
        """Keep counts that could be neither stored nor spooled, ``records`` reduced to
        counts, until the next write (merged per fingerprint past :data:`MAX_FINGERPRINTS`)."""
        reduced = deltas + self._merge(_record_counts(records))
        with self._lock:
            self._held.extend(reduced)
            if len(self._held) > MAX_FINGERPRINTS:
                self._held = self._merge(_delta_counts(self._held))

    def _merge(self, items: Iterable[tuple[str, _Count[datetime]]]) -> list[CountDelta]:
        merged: dict[str, _Count[datetime]] = {}
        for fingerprint, item in items:
            seen = merged.get(fingerprint)
            if seen is None:
                merged[fingerprint] = item
            else:
                seen.add(item.first, item.last, item.count)
        service, env = self.service, self.environment
        return [
            entry.delta(fingerprint, entry.first, entry.last, service, env)
            for fingerprint, entry in merged.items()
        ]

    # -- reading ---------------------------------------------------------------------------

    def is_empty(self) -> bool:
        """Nothing pending, held or waiting as a slim row."""
        return not self._pending and not self._held and not self._slim

    def status(self) -> tuple[dict[str, int], int]:
        """The samples dropped by reason, and the occurrences counted but not yet stored."""
        with self._lock:
            dropped = dict(self._dropped)
            pending = sum(c.count for c in self._pending.values())
            pending += sum(d.count for d in self._held)
        return dropped, pending


def _record_counts(records: list[ErrorRecord]) -> Iterable[tuple[str, _Count[datetime]]]:
    for r in records:
        at = r.timestamp
        yield r.fingerprint, _Count(r.title, r.error_type, r.error_code, r.severity, at, at, 1)


def _delta_counts(deltas: list[CountDelta]) -> Iterable[tuple[str, _Count[datetime]]]:
    for d in deltas:
        yield (
            d.fingerprint,
            _Count(
                d.title, d.error_type, d.error_code, d.severity, d.first_seen, d.last_seen, d.count
            ),
        )
