"""The capture API used the way users will; checked by mypy --strict, never run."""

from __future__ import annotations

import logging

from errorkit.capturing import (
    CaptureStats,
    CaptureSummary,
    ErrorkitHandler,
    add_listener,
    capture,
    capture_errors,
    capture_message,
    configure,
    flush,
    stats,
)
from errorkit.testing import capture_events


def setup() -> None:
    configure(store_url="sqlite:///errors.db", service="billing", flood_per_minute=30)
    logging.getLogger().addHandler(ErrorkitHandler())


def handle(exc: ValueError) -> str:
    return capture(exc, endpoint="/charge", fingerprint=["{{ default }}", "tenant-a"])


def note() -> str:
    return capture_message("disk 91% full", level="warning")


@capture_errors(job="nightly")
def nightly(day: int) -> int:
    return day


@capture_errors(job="cleanup", reraise=False)
def cleanup() -> int:
    return 1


def results() -> tuple[int, int | None, bool]:
    return nightly(3), cleanup(), flush(timeout=5.0)


def metrics(summary: CaptureSummary) -> None:
    print(summary.error_type, summary.count)


def watch() -> CaptureStats:
    add_listener(metrics)
    return stats()


def in_tests() -> str:
    with capture_events() as events:
        note()
    return events[0].error_code
