"""The runtime: the one object that says what errorkit runs with in this process.

:func:`errorkit.configure` builds it and returns it; :func:`current_runtime` returns it from
anywhere::

    runtime = errorkit.configure(store_url="sqlite:///errors.db", service="billing")
    runtime   # Runtime(service='billing', environment='production',
              #         store='sqlite:///errors.db', pipeline='running')
    errorkit.current_runtime() is runtime   # True

It holds the settings in force, the scrubber, the capture pipeline, the circuit-breaker
registry and the health registry. Each attribute answers with the object in force when it
is read, so a value changed by its own function (``set_code_rule``, ``set_default_scrubber``)
is what the runtime shows. :func:`reset` puts every one of them back to its default.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from errorkit import _reporting, classification, hooks
from errorkit.capturing import api as _capture
from errorkit.capturing import request_counts
from errorkit.config import Settings, get_settings, reset_settings
from errorkit.resilience import chaos, clock
from errorkit.resilience.breaker import MemoryBackend
from errorkit.resilience.registry import BreakerRegistry, default_registry
from errorkit.scrubbing import Scrubber, default_scrubber, set_default_scrubber

if TYPE_CHECKING:
    from errorkit.capturing.pipeline import Pipeline
    from errorkit.observe.health import HealthRegistry

__all__ = ["Runtime", "current_runtime", "reset"]


class Runtime:
    """What errorkit runs with: settings, scrubber, capture pipeline, breakers, health."""

    __slots__ = ()

    @property
    def settings(self) -> Settings:
        """The settings in force (arguments > ``ERRORKIT_*`` environment > defaults)."""
        return get_settings()

    @property
    def scrubber(self) -> Scrubber:
        """The scrubber of answers, stored events and logs."""
        return default_scrubber()

    @property
    def pipeline(self) -> Pipeline | None:
        """The capture pipeline, or None before :func:`errorkit.configure` (or when
        capture is disabled)."""
        return _capture._pipeline

    @property
    def breakers(self) -> BreakerRegistry:
        """The registry of named circuit breakers (``circuit_breaker("upstream")``)."""
        return default_registry()

    @property
    def health(self) -> HealthRegistry:
        """The health registry the mounted health endpoints use."""
        from errorkit.observe.health import default_health

        return default_health()

    @property
    def state(self) -> str:
        """The pipeline's state: ``running``, ``disabled`` or ``not configured``."""
        if _capture._pipeline is not None:
            return "running"
        return "disabled" if _capture._disabled else "not configured"

    @property
    def store_label(self) -> str:
        """Where capture writes, safe to show: the store URL without its password, or the
        class of the store object given to ``configure(store=...)``."""
        given = _capture._given_store
        if given is not None and self.pipeline is not None:
            url = getattr(given, "url", None)
            return _safe_url(str(url)) if url is not None else type(given).__name__
        return _safe_url(self.settings.store_url)

    def __repr__(self) -> str:
        settings = self.settings
        return (
            f"Runtime(service={settings.service!r}, environment={settings.environment!r}, "
            f"store={self.store_label!r}, pipeline={self.state!r})"
        )


def _safe_url(url: str) -> str:
    from errorkit.store.engine import describe_url

    return describe_url(url)


_current = Runtime()


def current_runtime() -> Runtime:
    """The runtime in force (the one :func:`errorkit.configure` returned)."""
    return _current


def reset(timeout: float | None = 5.0) -> Runtime:
    """Put errorkit back as a fresh process has it, and return the runtime.

    Shuts the capture pipeline down (flushing for at most ``timeout`` seconds), then
    restores every default: the settings from the environment again (the code rule with
    them), the default scrubber, an empty breaker registry (memory backend, system clock,
    no listeners), a fresh health registry and metrics, empty request counts, retry testing
    mode off, chaos following ``ERRORKIT_CHAOS`` again, and no listeners, observers, user mappers or
    tracing hook left. Tests call it between cases instead of restating each default."""
    _capture._reset(timeout)
    _reporting.set_reporter(None)
    _unhook_observe()
    hooks.clear()  # observers and listeners of reports, captures, retries, breakers, fallbacks
    for _, mapper in list(classification._user_mappers):
        classification.unregister_mapper(mapper)
    breakers = default_registry()
    breakers.clear()
    breakers._listeners.clear()
    breakers.configure(backend=MemoryBackend(), clock=clock.SYSTEM_CLOCK)
    reset_settings()
    set_default_scrubber(Scrubber())
    clock.set_testing(False)
    chaos.set_chaos(None)
    request_counts.set_default_request_counter(request_counts.RequestCounter())
    return _current


def _unhook_observe() -> None:
    # Only the parts already imported: a reset never imports prometheus or OpenTelemetry.
    health = sys.modules.get("errorkit.observe.health")
    if health is not None:
        health.set_default_health(None)
    metrics = sys.modules.get("errorkit.observe.metrics")
    if metrics is not None:
        previous = metrics.set_default_metrics(None)
        if previous is not None:
            previous.uninstrument()
    tracing = sys.modules.get("errorkit.observe.tracing")
    if tracing is not None:
        tracing.disable_tracing()
