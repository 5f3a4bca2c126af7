"""The Sentry-compatible ingest's pure part: limits, wire formats and event mapping.

``decode_body`` -> ``parse_envelope`` (or ``parse_store_body``) -> ``event_to_record``: a
body a Sentry SDK sent becomes the same :class:`~errorkit.store.records.ErrorRecord` local
capture builds (same scrubber, caps and fingerprint rule). See ``docs/ingest.md``.
"""

from errorkit.ingest.envelope import (
    Envelope,
    Item,
    decode_body,
    parse_envelope,
    parse_json,
    parse_json_object,
    parse_store_body,
)
from errorkit.ingest.events import client_report_items, event_to_record
from errorkit.ingest.limits import IngestLimits, IngestRefused

__all__ = [
    "Envelope",
    "IngestLimits",
    "IngestRefused",
    "Item",
    "client_report_items",
    "decode_body",
    "event_to_record",
    "parse_envelope",
    "parse_json",
    "parse_json_object",
    "parse_store_body",
]
