"""What the ingest dropped, counted in memory and added to the store about once a second.

Requests only add to an in-memory counter; :meth:`OutcomeCounter.flush` (run by the ingest's
background task every second, and at shutdown) hands the sums to
:meth:`ProjectStore.add_outcomes` in one transaction. When that fails, the sums are kept and
added again next time, so a flush never loses or doubles a count. At most ``max_keys``
distinct counters wait at once; beyond that new kinds are counted under ``overflow``.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable

from errorkit._guard import report_internal_error
from errorkit.store.errors import InvalidQuery
from errorkit.store.projects import MAX_OUTCOME_FIELD, Outcome, ProjectStore

__all__ = ["OutcomeCounter", "item_category"]

#: Distinct (project, source, category, reason) counters kept between two flushes.
MAX_KEYS = 10_000

# Envelope item types by the data category Sentry counts them in.
_CATEGORIES = {
    "event": "error",
    "transaction": "transaction",
    "span": "span",
    "otel_span": "span",
    "session": "session",
    "sessions": "session",
    "attachment": "attachment",
    "profile": "profile",
    "profile_chunk": "profile_chunk",
    "replay_event": "replay",
    "replay_recording": "replay",
    "replay_video": "replay",
    "check_in": "monitor",
    "statsd": "metric_bucket",
    "metric_buckets": "metric_bucket",
    "log": "log_item",
    "user_report": "user_report_v2",
    "feedback": "feedback",
    "security": "security",
    "raw_security": "security",
    "client_report": "internal",
}

_Key = tuple[int, str, str, str]


def item_category(item_type: str) -> str:
    """The data category of an envelope item type (the type itself when unknown, cut to
    ``MAX_OUTCOME_FIELD`` characters)."""
    return _CATEGORIES.get(item_type) or item_type[:MAX_OUTCOME_FIELD] or "unknown"


class OutcomeCounter:
    """Counts waiting to be added to the store (thread-safe)."""

    def __init__(self, projects: ProjectStore, *, max_keys: int = MAX_KEYS) -> None:
        self.projects = projects
        self.max_keys = max_keys
        self._counts: Counter[_Key] = Counter()
        self._lock = threading.Lock()

    def add(self, project_id: int, source: str, category: str, reason: str, n: int = 1) -> None:
        key = (
            project_id,
            source,
            category[:MAX_OUTCOME_FIELD] or "unknown",
            reason[:MAX_OUTCOME_FIELD] or "unknown",
        )
        with self._lock:
            counts = self._counts
            if key not in counts and len(counts) >= self.max_keys:
                key = (project_id, source, "overflow", "overflow")
            counts[key] += n

    def add_all(self, outcomes: Iterable[Outcome]) -> None:
        for o in outcomes:
            if o.quantity > 0:
                self.add(o.project_id, o.source, o.category, o.reason, o.quantity)

    def pending(self) -> dict[_Key, int]:
        """The counts not yet added to the store."""
        with self._lock:
            return dict(self._counts)

    def flush(self) -> bool:
        """Add every waiting count to the store; False (counts kept) when that failed."""
        with self._lock:
            taken, self._counts = self._counts, Counter()
        if not taken:
            return True
        try:
            self.projects.add_outcomes(Outcome(*key, n) for key, n in taken.items() if n > 0)
        except InvalidQuery as exc:  # a count the store can never take: adding it again won't help
            report_internal_error("ingest.outcomes_invalid", exc)
            return False
        except Exception as exc:  # noqa: BLE001 - kept for the next flush
            report_internal_error("ingest.outcomes", exc)
            with self._lock:
                taken.update(self._counts)
                self._counts = taken
            return False
        return True
