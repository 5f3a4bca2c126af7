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

from typing import TYPE_CHECKING

from errorkit.capturing import api as _capture
from errorkit.config import Settings, get_settings
from errorkit.resilience.registry import BreakerRegistry, default_registry
from errorkit.scrubbing import Scrubber, default_scrubber

if TYPE_CHECKING:
    from errorkit.capturing.pipeline import Pipeline
    from errorkit.observe.health import HealthRegistry

__all__ = ["Runtime", "current_runtime"]


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
    def store(self) -> str:
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
            f"store={self.store!r}, pipeline={self.state!r})"
        )


def _safe_url(url: str) -> str:
    from errorkit.store.engine import describe_url

    return describe_url(url)


_current = Runtime()


def current_runtime() -> Runtime:
    """The runtime in force (the one :func:`errorkit.configure` returned)."""
    return _current
