"""One bounded cache for every memo errorkit keeps on a hot path.

A :class:`BoundedCache` is a plain ``dict`` (reads are ``dict.get`` at C speed) that empties
itself when a new entry would pass its limit. Emptying beats evicting here: the caches hold
cheap-to-recompute values keyed by what a process sees again and again (file names, message
templates, exception types), so after a clear the working set refills in a few calls, and a
flood of distinct keys costs bounded memory without any bookkeeping per read.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

K = TypeVar("K")
V = TypeVar("V")

__all__ = ["BoundedCache"]


class BoundedCache(dict[K, V]):
    """A dict of at most ``limit`` entries; ``put`` empties it first when it is full.

    ``on_clear`` runs each time it empties (to drop what was kept alive for its keys)."""

    __slots__ = ("limit", "on_clear")

    def __init__(self, limit: int, *, on_clear: Callable[[], object] | None = None) -> None:
        if limit < 1:
            msg = f"BoundedCache(limit={limit!r}): use a whole number >= 1"
            raise ValueError(msg)
        super().__init__()
        self.limit = limit
        self.on_clear = on_clear

    def put(self, key: K, value: V) -> V:
        """Remember ``value`` for ``key`` and return it."""
        if len(self) >= self.limit and key not in self:
            self.clear()
            if self.on_clear is not None:
                self.on_clear()
        self[key] = value
        return value
