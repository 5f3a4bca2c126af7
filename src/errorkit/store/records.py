"""The rows the capture pipeline hands to the store.

This is the contract between ``errorkit.capture`` (which builds records on the writer's
thread) and ``errorkit.store`` (which persists them). Both sides import it; neither reaches
into the other's internals.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class ErrorRecord:
    """One stored occurrence: a row of the ``errors`` table.

    Every text field is already scrubbed and size-capped when a record is built.
    ``data`` holds the structured rest of the event (frames, exception chain, tags,
    context, extra) as JSON-serialisable values.
    """

    error_id: str
    timestamp: datetime
    error_type: str
    error_code: str
    error_message: str
    severity: str
    fingerprint: str
    title: str
    stack_trace: str | None = None
    exception_type: str | None = None
    status: int | None = None
    session_id: str | None = None
    request_id: str | None = None
    correlation_id: str | None = None
    trace_id: str | None = None
    user_id: str | None = None
    endpoint: str | None = None
    method: str | None = None
    user_agent: str | None = None
    request_payload: str | None = None
    response_payload: str | None = None
    service: str | None = None
    environment: str | None = None
    release: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CountDelta:
    """Occurrences counted but not stored as rows (sampled out under a flood).

    ``delta_id`` makes applying it idempotent: the store records applied ids, so a
    replay from the spool never counts the same occurrences twice.
    """

    delta_id: str
    fingerprint: str
    title: str
    error_type: str
    error_code: str
    severity: str
    count: int
    first_seen: datetime
    last_seen: datetime
    service: str | None = None
    environment: str | None = None
