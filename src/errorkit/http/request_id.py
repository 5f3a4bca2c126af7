"""Request ids and W3C trace context from incoming headers.

An incoming ``X-Request-ID`` is kept only when it is 1-128 characters of
``[A-Za-z0-9._:-]``; anything else (empty, too long, spaces, quotes, CR/LF) is replaced by
a new id and never echoed, so a client cannot inject text into logs or answers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from errorkit.config import DEFAULT_SETTINGS
from errorkit.errors import random_hex

__all__ = [
    "CORRELATION_ID_HEADER",
    "REQUEST_ID_HEADER",
    "TRACEPARENT_HEADER",
    "TraceParent",
    "accept_request_id",
    "is_valid_request_id",
    "new_request_id",
    "parse_traceparent",
]

REQUEST_ID_HEADER = DEFAULT_SETTINGS.request_id_header
CORRELATION_ID_HEADER = "X-Correlation-ID"
TRACEPARENT_HEADER = "traceparent"

MAX_REQUEST_ID_LENGTH = 128
_REQUEST_ID_RE = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
_TRACEPARENT_RE = re.compile(
    r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-[\x21-\x7e]*)?"
)


def is_valid_request_id(value: object) -> bool:
    """True when ``value`` is a request id errorkit will keep and echo."""
    return isinstance(value, str) and _REQUEST_ID_RE.fullmatch(value) is not None


def new_request_id() -> str:
    """A fresh random request id (32 lowercase hex characters, 128 bits)."""
    return random_hex()


def accept_request_id(value: str | None) -> str:
    """``value`` when it is a valid request id, else a new one."""
    if value is not None and _REQUEST_ID_RE.fullmatch(value) is not None:
        return value
    return random_hex()


@dataclass(frozen=True, slots=True)
class TraceParent:
    """A parsed W3C ``traceparent`` header; ``span_id`` is the caller's (parent) span."""

    version: str
    trace_id: str
    span_id: str
    flags: int

    @property
    def sampled(self) -> bool:
        return bool(self.flags & 0x01)


def parse_traceparent(value: str | None) -> TraceParent | None:
    """Parse a ``traceparent`` header (W3C Trace Context); None when absent or invalid.

    Version ``ff`` and all-zero trace or span ids are invalid; version ``00`` allows no
    trailing fields, later versions may add some (they are ignored).
    """
    if not value:
        return None
    match = _TRACEPARENT_RE.fullmatch(value.strip())
    if match is None:
        return None
    version, trace_id, span_id, flags, rest = match.groups()
    if version == "ff" or (version == "00" and rest):
        return None
    if trace_id == "0" * 32 or span_id == "0" * 16:
        return None
    return TraceParent(version, trace_id, span_id, int(flags, 16))
