"""One registry for the callables that hear what errorkit does.

::

    from errorkit import hooks

    def on_retry(event):  # a RetryEvent
        print(event.operation, event.attempt, event.wait)

    hooks.add("retry", on_retry)
    ...
    hooks.remove("retry", on_retry)

Each hook is called with its event's payload, in the thread where the event happens:

- ``"report"``: ``(exc, error_id, context)``, an error reported or captured, once per
  exception, before it is handed to capture (OpenTelemetry marks the span there);
- ``"capture"``: ``(CaptureSummary)``, the writer stored an event or a count of
  sampled-out occurrences (on the writer's thread);
- ``"retry"``: ``(RetryEvent)``, a retry about to happen, and once with
  ``exhausted=True`` when a policy gives up;
- ``"breaker"``: ``(name, old_state, new_state)``, a circuit breaker of this process
  changed state;
- ``"fallback"``: ``(FallbackEvent)``, a fallback answered instead of the primary;
- ``"handled"``: ``(error_type, seconds)``, an HTTP integration finished handling one
  error (classify, report, render).

Adding the same callable twice adds it once; :func:`remove` of a callable never added does
nothing (callables are compared with ``==``, so ``remove("capture", seen.append)`` removes
the ``seen.append`` added before). A hook that raises is counted (under its event's site in
``errorkit.capturing.stats().internal_errors``: ``report.observer``, ``capture.listener``,
``retry.listener``, ``breaker.listener``, ``fallback.listener``,
``report.handling_observer``) and never breaks the code that emitted the event.
:func:`clear` forgets every hook (tests, a reset).

The older names are aliases of this registry: ``errorkit.capturing.add_listener(fn)`` is
``hooks.add("capture", fn)``, ``errorkit.resilience.add_retry_listener``,
``add_breaker_listener`` and ``add_fallback_listener`` are ``"retry"``, ``"breaker"`` and
``"fallback"``, and their ``remove_*`` twins are :func:`remove`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, overload

from errorkit._guard import guard

if TYPE_CHECKING:
    from errorkit.capturing.pipeline import CaptureSummary
    from errorkit.resilience.breaker import CircuitState
    from errorkit.resilience.fallback import FallbackEvent
    from errorkit.resilience.retrying import RetryEvent

__all__ = ["EVENTS", "Event", "add", "clear", "emit", "registered", "remove"]

Event = Literal["report", "capture", "retry", "breaker", "fallback", "handled"]

Hook = Callable[..., object]


class _Channel:
    """One event's hooks: a tuple swapped whole under the lock, read without it."""

    __slots__ = ("hooks", "name", "payload", "site")

    def __init__(self, name: str, payload: str, site: str) -> None:
        self.name = name
        self.payload = payload
        self.site = site
        self.hooks: tuple[Hook, ...] = ()

    def emit(self, *payload: Any) -> None:
        for hook in self.hooks:
            with guard(self.site):
                hook(*payload)


_channels: dict[str, _Channel] = {
    channel.name: channel
    for channel in (
        _Channel("report", "exc, error_id, context", "report.observer"),
        _Channel("capture", "CaptureSummary", "capture.listener"),
        _Channel("retry", "RetryEvent", "retry.listener"),
        _Channel("breaker", "name, old_state, new_state", "breaker.listener"),
        _Channel("fallback", "FallbackEvent", "fallback.listener"),
        _Channel("handled", "error_type, seconds", "report.handling_observer"),
    )
}
_lock = threading.Lock()

EVENTS: tuple[str, ...] = tuple(_channels)
"""The names :func:`add` accepts."""


def _channel(event: str) -> _Channel:
    try:
        return _channels[event]
    except (KeyError, TypeError):
        message = f"unknown hook event {event!r}; errorkit emits {', '.join(EVENTS)}"
        raise ValueError(message) from None


@overload
def add(
    event: Literal["report"], hook: Callable[[BaseException, str, dict[str, Any]], object]
) -> None: ...
@overload
def add(event: Literal["capture"], hook: Callable[[CaptureSummary], object]) -> None: ...
@overload
def add(event: Literal["retry"], hook: Callable[[RetryEvent], object]) -> None: ...
@overload
def add(
    event: Literal["breaker"], hook: Callable[[str, CircuitState, CircuitState], object]
) -> None: ...
@overload
def add(event: Literal["fallback"], hook: Callable[[FallbackEvent], object]) -> None: ...
@overload
def add(event: Literal["handled"], hook: Callable[[str, float], object]) -> None: ...


def add(event: str, hook: Hook) -> None:
    """Call ``hook(payload...)`` each time ``event`` happens from now on (once per
    callable). Raises ValueError for an unknown event, TypeError for a non-callable."""
    channel = _channel(event)
    if not callable(hook):
        message = f"hooks.add({event!r}, {hook!r}): pass a callable({channel.payload})"
        raise TypeError(message)
    with _lock:
        if hook not in channel.hooks:
            channel.hooks = (*channel.hooks, hook)


def remove(event: str, hook: Hook) -> None:
    """Stop calling ``hook`` for ``event`` (nothing happens if it was not added)."""
    channel = _channel(event)
    with _lock:
        channel.hooks = tuple(h for h in channel.hooks if h != hook)


def clear(event: str | None = None) -> None:
    """Forget every hook of ``event``, or of every event."""
    channels = list(_channels.values()) if event is None else [_channel(event)]
    with _lock:
        for channel in channels:
            channel.hooks = ()


def registered(event: str) -> tuple[Hook, ...]:
    """The hooks of ``event``, in the order they were added."""
    return _channel(event).hooks


def emit(event: str, *payload: object) -> None:
    """Call every hook of ``event`` with ``payload``. Never raises: a failing hook is
    counted under the event's site and the next one still runs."""
    _channel(event).emit(*payload)
