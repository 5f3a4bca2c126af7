"""Shared constants and types for the store tests."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from errorkit.store import CountDelta, ErrorRecord

#: A fixed instant the tests count from, so timestamps never depend on the clock.
T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)

RecordFactory = Callable[..., ErrorRecord]
DeltaFactory = Callable[..., CountDelta]
