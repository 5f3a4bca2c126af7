"""What the store's queries return: plain, frozen dataclasses."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

__all__ = [
    "ERROR_FIELDS",
    "GROUP_FIELDS",
    "Bucket",
    "ErrorGroup",
    "GroupStatus",
    "Page",
    "RequestCounts",
    "SlimError",
    "Stats",
    "StoredError",
    "WriteResult",
]

T = TypeVar("T")

GroupStatus = Literal["unresolved", "resolved", "ignored", "regressed"]
Bucket = Literal["hour", "day"]


@dataclass(frozen=True, slots=True)
class StoredError:
    """One row of ``errors``: an occurrence as it was stored."""

    id: int
    error_id: str
    timestamp: datetime
    error_type: str
    error_code: str
    error_message: str
    severity: str
    fingerprint: str
    title: str
    stack_trace: str | None
    exception_type: str | None
    status: int | None
    session_id: str | None
    request_id: str | None
    correlation_id: str | None
    trace_id: str | None
    user_id: str | None
    endpoint: str | None
    method: str | None
    user_agent: str | None
    request_payload: str | None
    response_payload: str | None
    service: str | None
    environment: str | None
    release: str | None
    data: dict[str, Any]
    resolved: bool
    notes: str | None
    created_at: datetime

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready fields, datetimes as ISO 8601 text."""
        return _json_ready(self, ERROR_FIELDS)


@dataclass(frozen=True, slots=True)
class ErrorGroup:
    """One issue: every occurrence sharing a fingerprint, with its exact count."""

    id: int
    fingerprint: str
    title: str
    error_type: str
    error_code: str
    severity: str
    first_seen: datetime
    last_seen: datetime
    count: int
    status: GroupStatus
    resolved_at: datetime | None
    regressed_at: datetime | None
    notes: str | None
    last_error_id: str | None
    service: str | None
    environment: str | None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready fields, datetimes as ISO 8601 text."""
        return _json_ready(self, GROUP_FIELDS)


@dataclass(frozen=True, slots=True)
class SlimError:
    """One row of ``slim_errors``: an answered occurrence whose full sample was not kept
    (the flood limiter sampled it out), with the group it belongs to when that is stored."""

    error_id: str
    timestamp: datetime
    fingerprint: str
    request_id: str | None
    session_id: str | None
    endpoint: str | None
    status: int | None
    group: ErrorGroup | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready fields (the group as its own dict), datetimes as ISO 8601 text."""
        data = _json_ready(self, SLIM_FIELDS)
        data["group"] = self.group.as_dict() if self.group is not None else None
        data["sample_kept"] = False
        return data


ERROR_FIELDS: tuple[str, ...] = tuple(StoredError.__dataclass_fields__)
GROUP_FIELDS: tuple[str, ...] = tuple(ErrorGroup.__dataclass_fields__)
SLIM_FIELDS: tuple[str, ...] = tuple(n for n in SlimError.__dataclass_fields__ if n != "group")


def _json_ready(item: object, names: tuple[str, ...]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name in names:
        value = getattr(item, name)
        values[name] = value.isoformat() if isinstance(value, datetime) else value
    return values


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a listing.

    ``total`` counts every match (None when not asked for); ``next_cursor`` continues an
    error listing after the last item (None on the last page).
    """

    items: tuple[T, ...]
    total: int | None
    limit: int
    offset: int = 0
    next_cursor: str | None = None

    def __iter__(self) -> Iterator[T]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)


@dataclass(frozen=True, slots=True)
class Stats:
    """Counts of stored rows in a time window (exact occurrence counts live in groups)."""

    total: int
    unresolved: int
    by_type: dict[str, int]
    by_severity: dict[str, int]
    by_code: dict[str, int]
    by_endpoint: dict[str, int]
    buckets: tuple[tuple[datetime, int], ...]
    bucket: Bucket
    since: datetime | None
    until: datetime | None
    by_service: dict[str, int] = field(default_factory=dict)
    #: The groups with the most stored occurrences in the window, with that number.
    top_groups: tuple[tuple[ErrorGroup, int], ...] = ()
    #: Groups first seen in the window, newest first.
    new_groups: tuple[ErrorGroup, ...] = ()
    #: Groups marked ``regressed`` and last seen in the window, most recent first.
    regressed_groups: tuple[ErrorGroup, ...] = ()
    #: HTTP requests answered in the window; None when no request counts are stored.
    requests: RequestCounts | None = None

    @property
    def error_rate(self) -> float | None:
        """The share of requests in the window answered with a server error (5xx), the
        rate an ``error_rate`` alert watches; None without request counts."""
        return None if self.requests is None else self.requests.failure_rate

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready fields, datetimes as ISO 8601 text."""
        requests = self.requests
        return {
            "total": self.total,
            "unresolved": self.unresolved,
            "by_type": self.by_type,
            "by_severity": self.by_severity,
            "by_code": self.by_code,
            "by_endpoint": self.by_endpoint,
            "by_service": self.by_service,
            "buckets": [[start.isoformat(), count] for start, count in self.buckets],
            "bucket": self.bucket,
            "since": None if self.since is None else self.since.isoformat(),
            "until": None if self.until is None else self.until.isoformat(),
            "top_groups": [{**group.as_dict(), "occurrences": n} for group, n in self.top_groups],
            "new_groups": [group.as_dict() for group in self.new_groups],
            "regressed_groups": [group.as_dict() for group in self.regressed_groups],
            "requests": None
            if requests is None
            else {
                "total": requests.total,
                "client_errors": requests.client_errors,
                "server_errors": requests.server_errors,
                "failure_rate": requests.failure_rate,
            },
            "error_rate": self.error_rate,
        }


@dataclass(frozen=True, slots=True)
class RequestCounts:
    """HTTP requests answered in a time window (:meth:`ErrorStore.request_counts`):
    all of them, those answered 4xx and those answered 5xx."""

    total: int = 0
    client_errors: int = 0
    server_errors: int = 0

    @property
    def failure_rate(self) -> float:
        """The share of requests answered with a server error (5xx); 0.0 without requests."""
        return self.server_errors / self.total if self.total else 0.0


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What one ``write_batch`` changed.

    ``inserted`` rows were new; ``duplicates`` were already stored (a replay) and counted
    nothing. ``new_groups`` and ``regressed_groups`` are fingerprints this batch created or
    reopened, for alerting.
    """

    inserted: int = 0
    duplicates: int = 0
    deltas_applied: int = 0
    deltas_skipped: int = 0
    occurrences: int = 0
    new_groups: tuple[str, ...] = field(default=())
    regressed_groups: tuple[str, ...] = field(default=())
