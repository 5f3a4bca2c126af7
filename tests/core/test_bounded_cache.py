"""The one bounded cache: a dict that empties itself instead of growing."""

from __future__ import annotations

import pytest

from errorkit._cache import BoundedCache


def test_it_never_holds_more_than_its_limit() -> None:
    cleared: list[int] = []
    cache: BoundedCache[int, int] = BoundedCache(3, on_clear=lambda: cleared.append(1))
    for n in range(10):
        assert cache.put(n, n * n) == n * n
        assert len(cache) <= 3
    assert cleared == [1, 1, 1]
    assert cache.get(9) == 81


def test_updating_a_key_it_holds_does_not_empty_it() -> None:
    cache: BoundedCache[str, int] = BoundedCache(2)
    cache.put("a", 1)
    cache.put("b", 2)
    cache.put("a", 3)
    assert dict(cache) == {"a": 3, "b": 2}


def test_a_limit_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="limit=0"):
        BoundedCache(0)
