"""Capture: every error into the store without slowing or breaking the app.

capture -> scrub -> fingerprint -> queue -> batch writer -> store, with flood control, a
local spool while the store is down, and replay when it is back. See ``docs/capture.md``.
"""

from errorkit.capturing.api import (
    EXIT_FLUSH_TIMEOUT,
    add_listener,
    capture,
    capture_message,
    configure,
    current_store,
    flush,
    is_configured,
    remove_listener,
    shutdown,
    stats,
)
from errorkit.capturing.event import ErrorEvent, RecordBuilder
from errorkit.capturing.fingerprint import (
    Grouping,
    group_exception,
    group_message,
    normalize_message,
)
from errorkit.capturing.jobs import JobGuard, capture_errors
from errorkit.capturing.logging import ErrorkitHandler
from errorkit.capturing.pipeline import (
    CaptureStats,
    CaptureSummary,
    FloodLimiter,
    Listener,
    Pipeline,
)
from errorkit.capturing.spool import ReplayResult, Spool, SpoolFull, SpoolStatus

__all__ = [
    "EXIT_FLUSH_TIMEOUT",
    "CaptureStats",
    "CaptureSummary",
    "ErrorEvent",
    "ErrorkitHandler",
    "FloodLimiter",
    "Grouping",
    "JobGuard",
    "Listener",
    "Pipeline",
    "RecordBuilder",
    "ReplayResult",
    "Spool",
    "SpoolFull",
    "SpoolStatus",
    "add_listener",
    "capture",
    "capture_errors",
    "capture_message",
    "configure",
    "current_store",
    "flush",
    "group_exception",
    "group_message",
    "is_configured",
    "normalize_message",
    "remove_listener",
    "shutdown",
    "stats",
]
