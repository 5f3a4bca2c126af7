"""The rows the capture pipeline hands to the store.

This is the contract between ``errorkit.capture`` (which builds records on the writer's
thread) and ``errorkit.store`` (which persists them). Both sides import it; neither reaches
into the other's internals.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NoReturn


class EncodedData(dict[str, Any]):
    """An :attr:`ErrorRecord.data` whose JSON text is already known (``json``).

    The capture writer builds this text from parts it serialised once per code path, and
    the store writes it as it is instead of serialising the mapping again. The mapping is
    read-only, and what it holds was built for this record (or, like frames, is shared
    read-only between records of one code path), so the two stay in agreement.
    """

    __slots__ = ("json",)

    def __init__(self, data: Mapping[str, Any], json: str) -> None:
        super().__init__(data)
        self.json = json

    def _read_only(self, *args: Any, **kwargs: Any) -> NoReturn:
        message = "a record's encoded data is read-only; build a new dict instead"
        raise TypeError(message)

    __setitem__ = __delitem__ = __ior__ = _read_only
    clear = pop = popitem = setdefault = update = _read_only

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (dict(self), self.json))


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


@dataclass(frozen=True, slots=True)
class SlimRecord:
    """An answered occurrence the flood limiter sampled out: a row of ``slim_errors``.

    The client was shown ``error_id``; this row lets support find its group and request
    although the full sample (message, stack, payloads) was not kept. Text fields are
    already scrubbed when a record is built.
    """

    error_id: str
    timestamp: datetime
    fingerprint: str
    request_id: str | None = None
    session_id: str | None = None
    endpoint: str | None = None
    status: int | None = None


@dataclass(frozen=True, slots=True)
class RequestCountRow:
    """Requests one endpoint answered in one time bucket: an addition to a row of
    ``request_counts``. ``bucket_start`` is the bucket's first instant (UTC);
    ``status_class`` is ``"2xx"``, ``"3xx"``, ``"4xx"``, ... ; ``granularity`` is
    ``"minute"`` or ``"hour"``."""

    bucket_start: datetime
    service: str
    endpoint: str
    status_class: str
    count: int
    granularity: str = "minute"
    environment: str | None = None
