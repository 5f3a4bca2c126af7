"""The per-key rate limit of the ingest endpoints: one token bucket per DSN key, in memory.

Each key may send ``rate`` events per minute (its own ``rate_limit``, else the server's
default). The bucket holds up to one minute's worth, so a quiet key may burst that much at
once, and refills at ``rate / 60`` events a second. The buckets live in the serving process:
behind a load balancer each node counts for itself, so N nodes let a key through up to N
times its rate.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

__all__ = ["DEFAULT_RATE_LIMIT", "KeyRateLimiter"]

#: Events per minute per key when neither the key nor the server says otherwise.
DEFAULT_RATE_LIMIT = 6000

#: Buckets kept before the idle ones are forgotten (a forgotten bucket starts full again).
MAX_BUCKETS = 10_000


class KeyRateLimiter:
    """Token buckets by key id. ``rate`` is events per minute; ``None`` or ``0`` means
    no limit."""

    __slots__ = ("_buckets", "_monotonic")

    def __init__(self, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._monotonic = monotonic
        # key id -> [tokens, last refill time]
        self._buckets: dict[int, list[float]] = {}

    def _bucket(self, key_id: int, rate: int) -> list[float]:
        now = self._monotonic()
        bucket = self._buckets.get(key_id)
        if bucket is None:
            if len(self._buckets) >= MAX_BUCKETS:
                self._forget_idle(now)
            bucket = self._buckets[key_id] = [float(rate), now]
            return bucket
        tokens, last = bucket
        if now > last:
            bucket[0] = min(float(rate), tokens + (now - last) * rate / 60.0)
            bucket[1] = now
        return bucket

    def _forget_idle(self, now: float) -> None:
        """Drop buckets untouched for a minute (they would be full again by now)."""
        idle = [key for key, (_, last) in self._buckets.items() if now - last >= 60.0]
        for key in idle:
            del self._buckets[key]
        if len(self._buckets) >= MAX_BUCKETS:
            self._buckets.clear()

    def blocked(self, key_id: int, rate: int | None) -> int | None:
        """Seconds to wait when the key has no event left to send now, else None (takes
        nothing: the events are taken by :meth:`take` once counted)."""
        if not rate:
            return None
        bucket = self._bucket(key_id, rate)
        if bucket[0] >= 1.0:
            return None
        return self._wait(bucket[0], 1.0, rate)

    def take(self, key_id: int, rate: int | None, events: int) -> int | None:
        """Take ``events`` from the key's bucket; the seconds to wait (taking nothing) when
        it has fewer than that, else None."""
        if not rate or events <= 0:
            return None
        bucket = self._bucket(key_id, rate)
        wanted = float(min(events, rate))
        if bucket[0] >= wanted:
            bucket[0] -= float(events)
            return None
        return self._wait(bucket[0], wanted, rate)

    @staticmethod
    def _wait(tokens: float, wanted: float, rate: int) -> int:
        return max(1, math.ceil((wanted - tokens) * 60.0 / rate))
