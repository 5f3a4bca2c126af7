"""Breakers by service name: one per dependency, listed, inspected and reset in one place.

``circuit_breaker("upstream", failure_threshold=5, recovery_timeout=30)`` makes the breaker
the first time and returns the same one afterwards, so every module that talks to
``upstream`` shares it. Admin endpoints, the CLI and metrics read the same registry.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import fields
from typing import Any

from errorkit import hooks
from errorkit.resilience._common import ErrorFilter
from errorkit.resilience.breaker import (
    BreakerBackend,
    BreakerConfig,
    BreakerStatus,
    CircuitBreaker,
    MemoryBackend,
    OpenError,
    TransitionListener,
    validate_breaker_name,
)
from errorkit.resilience.clock import SYSTEM_CLOCK, Clock

__all__ = [
    "BreakerRegistry",
    "add_breaker_listener",
    "breaker_statuses",
    "circuit_breaker",
    "configure_breakers",
    "default_registry",
    "get_breaker",
    "remove_breaker_listener",
    "reset_all_breakers",
    "reset_breaker",
]

_CONFIG_FIELDS = frozenset(f.name for f in fields(BreakerConfig))
_KNOWN = _CONFIG_FIELDS | {"fallback", "failure_on", "ignore_on", "open_error", "backend"}


class BreakerRegistry:
    """Named breakers sharing one backend, one clock and one set of listeners."""

    def __init__(self, *, backend: BreakerBackend | None = None, clock: Clock | None = None):
        self._backend: BreakerBackend = backend if backend is not None else MemoryBackend()
        self._clock: Clock = clock if clock is not None else SYSTEM_CLOCK
        self._breakers: dict[str, CircuitBreaker] = {}
        self._listeners: list[TransitionListener] = []
        self._lock = threading.Lock()

    def configure(
        self, *, backend: BreakerBackend | None = None, clock: Clock | None = None
    ) -> None:
        """Set the backend and clock of breakers made from now on (existing ones keep
        theirs; :meth:`clear` forgets them)."""
        with self._lock:
            if backend is not None:
                self._backend = backend
            if clock is not None:
                self._clock = clock

    def circuit_breaker(
        self,
        name: str,
        *,
        fallback: Callable[..., Any] | None = None,
        failure_on: ErrorFilter | None = None,
        ignore_on: ErrorFilter | None = None,
        open_error: OpenError | None = None,
        backend: BreakerBackend | None = None,
        clock: Clock | None = None,
        listeners: Sequence[TransitionListener] = (),
        **config: Any,
    ) -> CircuitBreaker:
        """The breaker called ``name``, made with these settings the first time.

        Asking again with no settings, or the same ones, returns it; asking with different
        settings is an error (two places would disagree about one dependency)."""
        validate_breaker_name(name)
        unknown = set(config) - _CONFIG_FIELDS
        if unknown:
            msg = (
                f"circuit_breaker({name!r}): unknown setting(s) {sorted(unknown)}; "
                f"known: {sorted(_KNOWN)}"
            )
            raise TypeError(msg)
        with self._lock:
            existing = self._breakers.get(name)
            if existing is None:
                breaker = CircuitBreaker(
                    name,
                    fallback=fallback,
                    failure_on=failure_on,
                    ignore_on=ignore_on,
                    open_error=open_error,
                    backend=backend if backend is not None else self._backend,
                    clock=clock if clock is not None else self._clock,
                    listeners=listeners,
                    **config,
                )
                breaker._shared_listeners = self._listeners
                self._breakers[name] = breaker
                return breaker
        differs = [k for k, v in config.items() if getattr(existing.config, k) != v]
        if fallback is not None and fallback is not existing.fallback:
            differs.append("fallback")
        if failure_on is not None and failure_on is not existing._failure_on:
            differs.append("failure_on")
        if ignore_on is not None and ignore_on is not existing._ignore_on:
            differs.append("ignore_on")
        if open_error is not None and open_error is not existing.open_error:
            differs.append("open_error")
        if backend is not None and backend is not existing.backend:
            differs.append("backend")
        if differs:
            msg = (
                f"circuit breaker {name!r} already exists with other settings "
                f"({', '.join(sorted(differs))}): make it once with its settings and fetch it "
                f"elsewhere with get_breaker({name!r}), or use another name"
            )
            raise ValueError(msg)
        for listener in listeners:
            existing.add_listener(listener)
        return existing

    def get(self, name: str) -> CircuitBreaker | None:
        return self._breakers.get(name)

    def __getitem__(self, name: str) -> CircuitBreaker:
        breaker = self._breakers.get(name)
        if breaker is None:
            known = ", ".join(sorted(self._breakers)) or "none yet"
            msg = f"no circuit breaker named {name!r} (known: {known})"
            raise KeyError(msg)
        return breaker

    def __contains__(self, name: object) -> bool:
        return name in self._breakers

    def __len__(self) -> int:
        return len(self._breakers)

    def names(self) -> list[str]:
        return sorted(self._breakers)

    def statuses(self) -> list[BreakerStatus]:
        """Every breaker's status, by name."""
        return [self._breakers[name].status() for name in self.names()]

    async def statuses_async(self) -> list[BreakerStatus]:
        return [await self._breakers[name].status_async() for name in self.names()]

    def status(self, name: str) -> BreakerStatus:
        return self[name].status()

    def reset(self, name: str) -> None:
        """Close breaker ``name`` and clear its counters."""
        self[name].reset()

    def reset_all(self) -> None:
        for name in self.names():
            self._breakers[name].reset()

    async def reset_async(self, name: str) -> None:
        await self[name].reset_async()

    async def reset_all_async(self) -> None:
        for name in self.names():
            await self._breakers[name].reset_async()

    def add_listener(self, listener: TransitionListener) -> None:
        """Call ``listener(name, old_state, new_state)`` after each transition of every
        breaker in this registry, existing or future."""
        if not callable(listener):
            msg = f"add_listener({listener!r}): pass a callable(name, old_state, new_state)"
            raise TypeError(msg)
        self._listeners.append(listener)

    def remove_listener(self, listener: TransitionListener) -> None:
        self._listeners[:] = [cb for cb in self._listeners if cb is not listener]

    def remove(self, name: str) -> None:
        """Forget breaker ``name`` (its shared state, if any, stays in the backend)."""
        with self._lock:
            self._breakers.pop(name, None)

    def clear(self) -> None:
        """Forget every breaker (for tests)."""
        with self._lock:
            self._breakers.clear()

    def __repr__(self) -> str:
        return f"BreakerRegistry(breakers={self.names()!r}, backend={self._backend!r})"


_default = BreakerRegistry()


def default_registry() -> BreakerRegistry:
    """The registry the module-level functions use."""
    return _default


def circuit_breaker(
    name: str,
    *,
    fallback: Callable[..., Any] | None = None,
    failure_on: ErrorFilter | None = None,
    ignore_on: ErrorFilter | None = None,
    open_error: OpenError | None = None,
    backend: BreakerBackend | None = None,
    clock: Clock | None = None,
    listeners: Sequence[TransitionListener] = (),
    **config: Any,
) -> CircuitBreaker:
    """The breaker for dependency ``name`` in the default registry (made on first use).

    Settings: ``failure_threshold``, ``recovery_timeout``, ``success_threshold``,
    ``half_open_max_calls``, ``failure_rate_threshold``, ``window``, ``minimum_calls``,
    ``probe_timeout`` (see :class:`BreakerConfig`), plus ``fallback``, ``failure_on``,
    ``ignore_on``, ``open_error``, ``backend`` and ``clock``."""
    return _default.circuit_breaker(
        name,
        fallback=fallback,
        failure_on=failure_on,
        ignore_on=ignore_on,
        open_error=open_error,
        backend=backend,
        clock=clock,
        listeners=listeners,
        **config,
    )


def get_breaker(name: str) -> CircuitBreaker:
    """The existing breaker called ``name`` (KeyError naming the known ones otherwise)."""
    return _default[name]


def breaker_statuses() -> list[BreakerStatus]:
    return _default.statuses()


def reset_breaker(name: str) -> None:
    _default.reset(name)


def reset_all_breakers() -> None:
    _default.reset_all()


def add_breaker_listener(listener: TransitionListener) -> None:
    """Subscribe ``listener(name, old_state, new_state)`` to every breaker's transitions
    in this process: ``errorkit.hooks.add("breaker", listener)``."""
    hooks.add("breaker", listener)


def remove_breaker_listener(listener: TransitionListener) -> None:
    """``errorkit.hooks.remove("breaker", listener)``."""
    hooks.remove("breaker", listener)


def configure_breakers(
    *, backend: BreakerBackend | None = None, clock: Clock | None = None
) -> None:
    """Choose where breakers made from now on keep their state (e.g. a RedisBackend)."""
    _default.configure(backend=backend, clock=clock)
