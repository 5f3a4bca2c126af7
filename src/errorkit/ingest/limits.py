"""What the ingest accepts: the size and shape limits of one request, and its refusal.

Every limit has a stated default (see ``docs/ingest.md``); a request past any of them is
refused with an :class:`IngestRefused` that names the limit, never half-read.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

__all__ = ["IngestLimits", "IngestRefused"]

KIB = 1024
MIB = 1024 * KIB


@dataclass(frozen=True, slots=True)
class IngestLimits:
    """Limits of one ingest request (all sizes in bytes).

    ``max_ratio`` bounds decompressed / compressed size; it is checked only once the output
    passes ``ratio_floor_bytes``, so a tiny, very compressible envelope is not refused.
    """

    #: The request body as received (compressed).
    max_body_bytes: int = 20 * MIB
    #: The body after decompression (the whole envelope).
    max_envelope_bytes: int = 20 * MIB
    #: One event item's payload (or a legacy store body) after decompression.
    max_event_bytes: int = 1 * MIB
    #: Items in one envelope.
    max_items: int = 100
    #: Nesting of arrays and objects in one JSON document.
    max_json_depth: int = 64
    #: Decompressed size / compressed size.
    max_ratio: int = 100
    #: One header line (the envelope's or an item's).
    max_header_bytes: int = 16 * KIB
    #: Output below this size is never refused for its ratio.
    ratio_floor_bytes: int = 64 * KIB

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                msg = f"IngestLimits({item.name}={value!r}): must be a whole number >= 1"
                raise ValueError(msg)
        if self.max_event_bytes > self.max_envelope_bytes:
            msg = (
                f"IngestLimits(max_event_bytes={self.max_event_bytes}): must not exceed "
                f"max_envelope_bytes={self.max_envelope_bytes} (an event is part of an envelope)"
            )
            raise ValueError(msg)


class IngestRefused(Exception):
    """A request the ingest will not take: ``status`` (400, 413, 415) and ``message``, which
    says what is wrong (and where: the item, the field, the limit)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(status, message)
        self.status = status
        self.message = message

    def __str__(self) -> str:
        return f"{self.status}: {self.message}"
