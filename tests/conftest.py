"""Suite-wide fixtures: errorkit's internal guard is strict, so its own bugs fail tests."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

from errorkit import _guard

settings.register_profile(
    "ci", derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci" if os.environ.get("CI") else "dev")


@pytest.fixture(autouse=True)
def _strict_guard() -> Iterator[None]:
    """Internal failures raise in tests instead of being swallowed."""
    _guard.set_strict(True)
    yield
    _guard.set_strict(False)
