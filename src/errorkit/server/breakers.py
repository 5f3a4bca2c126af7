"""Where the tracker reads and resets circuit breakers: this process's registry, or the
state apps share through Redis (``RedisBackend``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from errorkit.errors import CacheUnavailableError

if TYPE_CHECKING:
    from errorkit.resilience.breaker_redis import RedisBackend
    from errorkit.resilience.registry import BreakerRegistry

__all__ = ["BreakerSource", "RedisBreakers", "RegistryBreakers", "breaker_source"]

T = TypeVar("T")


class BreakerSource(Protocol):
    """What the breaker routes need."""

    kind: str

    def list(self) -> list[dict[str, Any]]:
        """Every breaker as a JSON-ready dict (``name``, ``state``, ``last_failure``, ...)."""
        ...

    def reset(self, name: str) -> str | None:
        """Close breaker ``name``; returns the state it was in, None when unknown."""
        ...

    def reset_all(self) -> dict[str, str]:
        """Close every breaker; returns each one's state before the reset."""
        ...


class RegistryBreakers:
    """The breakers of a :class:`~errorkit.resilience.registry.BreakerRegistry` (default:
    the process-wide one that ``circuit_breaker()`` fills)."""

    kind = "registry"

    def __init__(self, registry: BreakerRegistry | None = None) -> None:
        if registry is None:
            from errorkit.resilience.registry import default_registry

            registry = default_registry()
        self.registry = registry

    def list(self) -> list[dict[str, Any]]:
        return [status.as_dict() for status in self.registry.statuses()]

    def reset(self, name: str) -> str | None:
        breaker = self.registry.get(name)
        if breaker is None:
            return None
        was = str(breaker.status().state)
        breaker.reset()
        return was

    def reset_all(self) -> dict[str, str]:
        results: dict[str, str] = {}
        for name in self.registry.names():
            was = self.reset(name)
            if was is not None:
                results[name] = was
        return results


class RedisBreakers:
    """Breakers whose state apps keep in Redis: reading and resetting them here acts for
    every process sharing the namespace."""

    kind = "redis"

    def __init__(self, backend: RedisBackend) -> None:
        self.backend = backend

    @classmethod
    def from_url(cls, url: str, *, namespace: str = "default") -> RedisBreakers:
        from errorkit.resilience.breaker_redis import RedisBackend

        return cls(RedisBackend(url, namespace=namespace))

    @contextmanager
    def _reaching(self) -> Iterator[None]:
        """Redis being unreachable as a 503 in errorkit's envelope (its generic message:
        the URL stays out of the answer)."""
        import redis.exceptions

        try:
            yield
        except (redis.exceptions.RedisError, OSError) as exc:
            raise CacheUnavailableError() from exc

    def _call(self, fn: Callable[[], T]) -> T:
        with self._reaching():
            return fn()

    def list(self) -> list[dict[str, Any]]:
        def read() -> list[dict[str, Any]]:
            states = (self.backend.read_breaker(name) for name in self.backend.breaker_names())
            return [state.as_dict() for state in states if state is not None]

        return self._call(read)

    def reset(self, name: str) -> str | None:
        was = self._call(lambda: self.backend.reset_breaker(name))
        return None if was is None else str(was)

    def reset_all(self) -> dict[str, str]:
        results: dict[str, str] = {}
        for name in self._call(self.backend.breaker_names):
            was = self.reset(name)
            if was is not None:
                results[name] = was
        return results


def breaker_source(breakers: object) -> BreakerSource:
    """A :class:`BreakerSource` for what ``create_app(breakers=...)`` was given: None (the
    default registry), a registry, a ``RedisBackend``, a Redis URL, or a source."""
    from errorkit.resilience.registry import BreakerRegistry

    if breakers is None:
        return RegistryBreakers()
    if isinstance(breakers, BreakerRegistry):
        return RegistryBreakers(breakers)
    if isinstance(breakers, str):
        return RedisBreakers.from_url(breakers)
    if isinstance(breakers, RegistryBreakers | RedisBreakers):
        return breakers
    from errorkit.resilience.breaker_redis import RedisBackend

    if isinstance(breakers, RedisBackend):
        return RedisBreakers(breakers)
    if all(callable(getattr(breakers, n, None)) for n in ("list", "reset", "reset_all")):
        return breakers  # type: ignore[return-value]
    message = (
        f"breakers={breakers!r}: pass a BreakerRegistry, a RedisBackend, a redis:// URL, "
        "or None for the process's breakers"
    )
    raise TypeError(message)
