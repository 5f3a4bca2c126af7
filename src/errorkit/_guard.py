"""The one guard around errorkit's own work inside the host app.

Whatever fails inside capture, logging, metrics or alerting is swallowed here, counted by
site, and reported once per site on stderr, never per event. The test suite turns strict
mode on so that errorkit's own bugs still fail tests.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections import Counter
from contextlib import AbstractContextManager
from types import TracebackType

__all__ = ["guard", "internal_error_counts", "report_internal_error", "set_strict"]

_counts: Counter[str] = Counter()
_reported: set[str] = set()
_lock = threading.Lock()
_strict = False


def set_strict(strict: bool) -> None:
    """In strict mode the guard re-raises (for errorkit's own tests)."""
    global _strict
    _strict = strict


def internal_error_counts() -> dict[str, int]:
    """How many internal failures each site has swallowed so far."""
    with _lock:
        return dict(_counts)


def report_internal_error(site: str, exc: BaseException, *, logged: bool = False) -> None:
    """Count ``exc`` under ``site`` and say so on stderr the first time only.

    ``logged=True``: the caller says so through :mod:`logging` itself (a breaker that lost
    its Redis), so only count it; stderr stays for failures where logging may be what
    broke."""
    with _lock:
        _counts[site] += 1
        first = site not in _reported
        _reported.add(site)
    if first and not logged:
        # stderr itself may be gone at interpreter shutdown.
        with contextlib.suppress(Exception):
            sys.stderr.write(
                f"errorkit: internal error in {site}: {type(exc).__name__}: {exc} "
                "(reported once; later ones are only counted)\n"
            )


class _Guard:
    """The context manager :func:`guard` returns (a class: about three times cheaper than a
    generator-based one, and it runs on every error errorkit answers)."""

    __slots__ = ("site",)

    def __init__(self, site: str) -> None:
        self.site = site

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        if exc is None or not isinstance(exc, Exception):
            return False
        report_internal_error(self.site, exc)
        return not _strict


def guard(site: str) -> AbstractContextManager[None]:
    """Run a block of errorkit's own work; never let its failure reach the host app."""
    return _Guard(site)
