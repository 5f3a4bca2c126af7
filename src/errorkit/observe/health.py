"""Health checks: named, sync or async, each with a timeout and a criticality.

A :class:`HealthRegistry` runs its checks concurrently and answers three questions:

- **liveness**: is the process up? (no dependency is asked; always 200);
- **readiness**: can it serve? 503 when a *critical* check fails, else 200;
- **detailed**: every component with status and latency, recent and unresolved error counts
  with the last error from the store, and every circuit breaker's state.

A failing critical check makes the service ``unhealthy`` (503); a failing non-critical one,
or a breaker that is not closed, makes it ``degraded`` (still 200: it serves). Each failure
is reported through errorkit's pipeline as a ``health_check_error``.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import math
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Final, Literal, TypeAlias

from errorkit._guard import guard
from errorkit._reporting import report
from errorkit.codes import Category, Severity
from errorkit.config import get_settings
from errorkit.errors import AppError, ErrorType
from errorkit.scrubbing import default_scrubber

__all__ = [
    "BreakerHealth",
    "BreakerSource",
    "Check",
    "CheckFunction",
    "ComponentHealth",
    "ErrorSource",
    "ErrorSummary",
    "HealthCheckError",
    "HealthRegistry",
    "HealthReport",
    "HealthStatus",
    "default_health",
    "set_default_health",
    "store_error_summary",
]

HEALTH_JSON: Final = "application/health+json"
_STARTED = time.monotonic()
_MAX_ERROR_TEXT: Final = 300


class HealthStatus(StrEnum):
    """How a component, or the whole service, is doing."""

    HEALTHY = "healthy"
    DEGRADED = "degraded"  # serving, but something non-critical is down
    UNHEALTHY = "unhealthy"  # a critical component is down: do not send traffic

    @property
    def health_json(self) -> str:
        """The ``application/health+json`` word: pass, warn or fail."""
        return {"healthy": "pass", "degraded": "warn", "unhealthy": "fail"}[self.value]


class HealthCheckError(AppError):
    """A health check failed, timed out or reported its component unhealthy."""

    code = "HEALTH_CHECK_FAILED"
    status = 503
    message = "Health check {check} failed."
    plain_message = "A health check failed."
    detail_fields = ("reason", "timeout", "status_code")
    group_by = ("check",)  # one issue per check, titled with its name
    category = Category.EXTERNAL
    severity = Severity.WARNING
    retriable = True
    error_type = ErrorType.HEALTH_CHECK


CheckFunction: TypeAlias = Callable[[], Any] | Callable[[], Awaitable[Any]]
"""A check: returns (or awaits to) None/True for healthy, False for unhealthy, a
:class:`HealthStatus`, or a mapping of details (with an optional ``"status"``); raising
means unhealthy."""


@dataclass(frozen=True, slots=True)
class Check:
    """One registered check."""

    name: str
    function: CheckFunction
    timeout: float
    critical: bool
    component_type: str = "component"

    @property
    def is_async(self) -> bool:
        fn = self.function
        return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
            getattr(fn, "__call__", None)  # noqa: B004 - async __call__ on an object
        )


@dataclass(frozen=True, slots=True)
class ComponentHealth:
    """The result of one check."""

    name: str
    status: HealthStatus
    critical: bool
    latency_ms: float
    checked_at: datetime
    component_type: str = "component"
    error: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    def as_dict(self, *, detailed: bool = True) -> dict[str, Any]:
        data: dict[str, Any] = {
            "status": str(self.status),
            "critical": self.critical,
            "latency_ms": round(self.latency_ms, 3),
        }
        if detailed:
            data["error"] = self.error
            data["details"] = dict(self.details)
        return data


@dataclass(frozen=True, slots=True)
class ErrorSummary:
    """What the errors store says: recent and unresolved counts and the last error."""

    recent_count: int
    unresolved_count: int
    window_seconds: float
    last_error: Mapping[str, Any] | None = None
    available: bool = True
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "available": self.available,
            "recent_count": self.recent_count,
            "unresolved_count": self.unresolved_count,
            "window_seconds": self.window_seconds,
            "last_error": dict(self.last_error) if self.last_error is not None else None,
            "error": self.error,
        }


@dataclass(frozen=True, slots=True)
class BreakerHealth:
    """One circuit breaker's state."""

    name: str
    state: str
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def status(self) -> HealthStatus:
        return HealthStatus.HEALTHY if self.state == "closed" else HealthStatus.DEGRADED


ErrorSource: TypeAlias = Callable[[float], ErrorSummary | None]
"""``(window_seconds) -> ErrorSummary`` (None: no store configured)."""
BreakerSource: TypeAlias = Callable[[], Mapping[str, Any] | Iterable[Any] | None]
"""Returns breakers: a mapping name -> state (a string, an enum, or a mapping/object with a
``state``), or objects with ``name`` and ``state``."""


@dataclass(frozen=True, slots=True)
class HealthReport:
    """One answer of the registry."""

    kind: Literal["liveness", "readiness", "detailed"]
    status: HealthStatus
    checked_at: datetime
    uptime_seconds: float
    service: str | None = None
    release: str | None = None
    components: tuple[ComponentHealth, ...] = ()
    errors: ErrorSummary | None = None
    breakers: tuple[BreakerHealth, ...] = ()

    @property
    def http_status(self) -> int:
        """503 when a critical component is down, else 200 (degraded still serves)."""
        return 503 if self.status is HealthStatus.UNHEALTHY else 200

    def component(self, name: str) -> ComponentHealth | None:
        return next((c for c in self.components if c.name == name), None)

    def as_dict(self, *, details: bool = True) -> dict[str, Any]:
        """errorkit's JSON shape. ``details=False`` (a detailed report for a caller without
        the token) keeps the status of each component and breaker and leaves out error
        texts, check details, the errors section, the service and the release."""
        data: dict[str, Any] = {
            "status": str(self.status),
            "checked_at": _iso(self.checked_at),
            "uptime_seconds": round(self.uptime_seconds, 3),
        }
        if self.kind == "liveness":
            return data
        detailed = self.kind == "detailed"
        shown = detailed and details
        if shown:
            data["service"] = self.service
            data["release"] = self.release
        data["components"] = {c.name: c.as_dict(detailed=shown) for c in self.components}
        if shown:
            data["errors"] = self.errors.as_dict() if self.errors is not None else None
            data["breakers"] = {b.name: {"state": b.state, **b.details} for b in self.breakers}
        elif detailed:
            data["breakers"] = {b.name: {"state": b.state} for b in self.breakers}
        return data

    def as_health_json(self, *, details: bool = True) -> dict[str, Any]:
        """The ``application/health+json`` shape (draft-inadarei-api-health-check);
        ``details`` as in :meth:`as_dict`."""
        data: dict[str, Any] = {"status": self.status.health_json}
        if self.kind == "detailed" and details:
            if self.service:
                data["serviceId"] = self.service
            if self.release:
                data["releaseId"] = self.release
        checks: dict[str, list[dict[str, Any]]] = {}
        breakers = self.kind == "detailed"
        detailed = breakers and details
        for c in self.components:
            entry: dict[str, Any] = {
                "componentType": c.component_type,
                "observedValue": round(c.latency_ms, 3),
                "observedUnit": "ms",
                "status": c.status.health_json,
                "time": _iso(c.checked_at),
                "affectsServiceHealth": c.critical,
            }
            if detailed and c.error:
                entry["output"] = c.error
            checks[f"{c.name}:responseTime"] = [entry]
        if detailed and self.errors is not None:
            when = _iso(self.checked_at)
            summary = self.errors
            checks["errors:recent"] = [
                {
                    "observedValue": summary.recent_count,
                    "observedUnit": "errors",
                    "status": "pass",
                    "time": when,
                }
            ]
            checks["errors:unresolved"] = [
                {
                    "observedValue": summary.unresolved_count,
                    "observedUnit": "errors",
                    "status": "pass",
                    "time": when,
                }
            ]
        if breakers:
            for b in self.breakers:
                checks[f"{b.name}:circuitBreaker"] = [
                    {
                        "componentType": "component",
                        "observedValue": b.state,
                        "status": b.status.health_json,
                    }
                ]
        if self.kind != "liveness":
            data["checks"] = checks
        return data


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _error_text(exc: BaseException) -> str:
    text = default_scrubber().scrub_text(str(exc), single_line=True)
    out = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return out[:_MAX_ERROR_TEXT]


def _status_of(result: Any) -> tuple[HealthStatus, Mapping[str, Any]]:
    if result is None or result is True:
        return HealthStatus.HEALTHY, {}
    if result is False:
        return HealthStatus.UNHEALTHY, {}
    if isinstance(result, HealthStatus):
        return result, {}
    if isinstance(result, str):
        return HealthStatus(result), {}
    if isinstance(result, Mapping):
        details = dict(result)
        status = details.pop("status", HealthStatus.HEALTHY)
        return HealthStatus(status), default_scrubber().scrub(details)
    msg = (
        f"a health check returned {type(result).__name__}; return None/True (healthy), False "
        "(unhealthy), a HealthStatus, or a dict of details"
    )
    raise TypeError(msg)


# --- default sources -------------------------------------------------------------------------


def store_error_summary(store: Any, window_seconds: float) -> ErrorSummary:
    """Read an :class:`errorkit.store.ErrorStore`: errors stored in the window, unresolved
    errors, and the newest error."""
    since = datetime.now(UTC) - timedelta(seconds=window_seconds)
    recent = int(store.count(since=since))
    unresolved = int(store.count(resolved=False))
    newest = store.recent(1)
    last: dict[str, Any] | None = None
    if newest:
        e = newest[0]
        last = {
            "error_id": e.error_id,
            "timestamp": _iso(e.timestamp),
            "error_type": e.error_type,
            "error_code": e.error_code,
            "severity": e.severity,
            "message": default_scrubber().scrub_text(e.error_message, single_line=True)[:500],
            "endpoint": e.endpoint,
            "resolved": e.resolved,
        }
    return ErrorSummary(recent, unresolved, window_seconds, last)


def _capture_store_summary(window_seconds: float) -> ErrorSummary | None:
    # Capture not imported means no store configured (and no import cost per request).
    capture = sys.modules.get("errorkit.capturing")
    if capture is None:
        return None
    current_store = getattr(capture, "current_store", None)
    store = current_store() if callable(current_store) else None
    if store is None or not callable(getattr(store, "count", None)):
        return None  # none, or one that cannot be read here (a central tracker's HttpStore)
    return store_error_summary(store, window_seconds)


def _resilience_breakers() -> Mapping[str, Any] | Iterable[Any] | None:
    resilience = sys.modules.get("errorkit.resilience")
    if resilience is None:
        return None
    statuses = getattr(resilience, "breaker_statuses", None)
    if not callable(statuses):
        return None
    result: Iterable[Any] = statuses()
    return result


def breaker_state_name(state: object) -> str:
    """A breaker state (enum, string, ``HalfOpen``, ``CircuitState.HALF_OPEN``) as the name
    health reports and metrics labels use: ``closed``, ``open``, ``half_open``."""
    raw = getattr(state, "value", state)
    text = str(raw).strip().lower().replace("-", "_").replace(" ", "_").rsplit(".", 1)[-1]
    return "half_open" if text in ("halfopen", "half_open") else text


# What the detailed answer shows of a breaker besides its state (errorkit.resilience's
# BreakerStatus.as_dict() has these).
_BREAKER_DETAILS: Final = frozenset(
    {"backend", "failures", "rejected", "last_failure", "opened_at", "next_probe_at"}
)


def _breakers_from(raw: Mapping[str, Any] | Iterable[Any] | None) -> tuple[BreakerHealth, ...]:
    if raw is None:
        return ()
    pairs: list[tuple[str, Any]]
    if isinstance(raw, Mapping):
        pairs = [(str(k), v) for k, v in raw.items()]
    else:
        pairs = [(str(getattr(b, "name", b)), b) for b in raw]
    out: list[BreakerHealth] = []
    for name, value in pairs:
        details: dict[str, Any] = {}
        state: Any = value
        if isinstance(value, Mapping):
            details = {k: v for k, v in value.items() if k not in ("state", "name")}
            state = value.get("state", "unknown")
        elif not isinstance(value, str) and hasattr(value, "state"):
            state = value.state
            as_dict = getattr(value, "as_dict", None)
            data = as_dict() if callable(as_dict) else None
            if isinstance(data, Mapping):
                details = {k: v for k, v in data.items() if k in _BREAKER_DETAILS}
        scrubbed = default_scrubber().scrub(details)
        out.append(
            BreakerHealth(
                name, breaker_state_name(state), scrubbed if isinstance(scrubbed, dict) else {}
            )
        )
    return tuple(sorted(out, key=lambda b: b.name))


# --- the registry ----------------------------------------------------------------------------


class HealthRegistry:
    """Named checks and the three answers built from them.

    ``error_source`` and ``breaker_source`` default to the store capture writes to and the
    breakers of :mod:`errorkit.resilience`; pass None to leave a section out. Sync checks
    run on daemon threads, at most ``max_workers`` at once, so a hung check costs one
    thread and times out instead of blocking the answer (or the process's exit). Results
    are reused for ``cache_seconds`` (default 1 s) so a busy load balancer does not hammer
    the dependencies.
    """

    def __init__(
        self,
        *,
        service: str | None = None,
        release: str | None = None,
        error_window: timedelta | float = timedelta(hours=1),
        error_source: ErrorSource | Literal["default"] | None = "default",
        breaker_source: BreakerSource | Literal["default"] | None = "default",
        store_timeout: float = 2.0,
        cache_seconds: float = 1.0,
        max_workers: int = 4,
        report_failures: bool = True,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        window = (
            error_window.total_seconds() if isinstance(error_window, timedelta) else error_window
        )
        _check_seconds("error_window", window)
        _check_seconds("store_timeout", store_timeout)
        if not (isinstance(cache_seconds, int | float) and cache_seconds >= 0):
            msg = f"cache_seconds={cache_seconds!r}: use 0 (no caching) or more seconds"
            raise ValueError(msg)
        if not isinstance(max_workers, int) or max_workers < 1:
            msg = f"max_workers={max_workers!r}: sync checks need at least one thread"
            raise ValueError(msg)
        self.service = service
        self.release = release
        self.error_window = float(window)
        self.error_source: ErrorSource | None = (
            _capture_store_summary if isinstance(error_source, str) else error_source
        )
        self.breaker_source: BreakerSource | None = (
            _resilience_breakers if isinstance(breaker_source, str) else breaker_source
        )
        self.store_timeout = float(store_timeout)
        self.cache_seconds = float(cache_seconds)
        self.report_failures = report_failures
        self._clock = clock
        self._now = now
        self._checks: dict[str, Check] = {}
        self._lock = threading.Lock()
        self._max_workers = max_workers
        self._slots = threading.BoundedSemaphore(max_workers)
        self._cached: tuple[float, tuple[ComponentHealth, ...]] | None = None

    # -- registration -------------------------------------------------------------------------

    def add(
        self,
        name: str,
        check: CheckFunction,
        *,
        timeout: float = 2.0,
        critical: bool = True,
        component_type: str = "component",
    ) -> Check:
        """Register ``check`` under ``name``. Critical checks decide readiness."""
        if not isinstance(name, str) or not name.strip():
            msg = f"a health check needs a non-empty name, not {name!r}"
            raise ValueError(msg)
        if not callable(check):
            msg = f"health check {name!r}: {check!r} is not callable"
            raise TypeError(msg)
        _check_seconds(f"health check {name!r}: timeout", timeout)
        entry = Check(name, check, float(timeout), bool(critical), component_type)
        with self._lock:
            if name in self._checks:
                msg = (
                    f"a health check named {name!r} is already registered; pick another name "
                    "or remove() it first"
                )
                raise ValueError(msg)
            self._checks[name] = entry
            self._cached = None
        return entry

    def check(
        self,
        name: str,
        *,
        timeout: float = 2.0,
        critical: bool = True,
        component_type: str = "component",
    ) -> Callable[[CheckFunction], CheckFunction]:
        """Decorator form of :meth:`add`."""

        def register(fn: CheckFunction) -> CheckFunction:
            self.add(name, fn, timeout=timeout, critical=critical, component_type=component_type)
            return fn

        return register

    def remove(self, name: str) -> None:
        with self._lock:
            if self._checks.pop(name, None) is None:
                msg = f"no health check named {name!r}; registered: {sorted(self._checks)}"
                raise KeyError(msg)
            self._cached = None

    @property
    def checks(self) -> tuple[Check, ...]:
        return tuple(self._checks.values())

    async def _in_thread(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn`` on a daemon thread (a hung check never blocks the answer, nor the
        interpreter's exit); at most ``max_workers`` run at once."""
        if not self._slots.acquire(blocking=False):
            msg = (
                f"no free health-check thread: {self._max_workers} earlier checks are still "
                "running (raise max_workers or give the dependency a shorter timeout)"
            )
            raise HealthCheckError(msg, reason="no free thread")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()

        def settle(result: Any, exc: BaseException | None) -> None:
            if future.done():  # timed out meanwhile
                return
            if exc is not None:
                future.set_exception(exc)
            else:
                future.set_result(result)

        def run() -> None:
            result: Any = None
            error: BaseException | None = None
            try:
                result = fn(*args)
            except BaseException as exc:  # noqa: BLE001 - handed to the awaiting side
                error = exc
            finally:
                self._slots.release()
            with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits
                loop.call_soon_threadsafe(settle, result, error)

        threading.Thread(target=run, name="errorkit-health", daemon=True).start()
        return await future

    async def _run_one(self, check: Check) -> ComponentHealth:
        started = self._clock()
        error: str | None = None
        details: Mapping[str, Any] = {}
        failure: BaseException | None = None
        try:
            if check.is_async:
                result = await asyncio.wait_for(check.function(), check.timeout)
            else:
                result = await asyncio.wait_for(self._in_thread(check.function), check.timeout)
                if inspect.isawaitable(result):
                    remaining = max(0.001, check.timeout - (self._clock() - started))
                    result = await asyncio.wait_for(result, remaining)
            status, details = _status_of(result)
            if status is HealthStatus.UNHEALTHY:
                failure = HealthCheckError(check=check.name, reason="reported unhealthy")
                error = "reported unhealthy"
        except TimeoutError as exc:
            if str(exc):  # the check's own timeout (a socket's), not ours
                status, failure, error = HealthStatus.UNHEALTHY, exc, _error_text(exc)
            else:
                status = HealthStatus.UNHEALTHY
                failure = HealthCheckError(
                    f"Health check {check.name} timed out after {check.timeout}s.",
                    check=check.name,
                    timeout=check.timeout,
                )
                error = f"timed out after {check.timeout}s"
        except Exception as exc:  # noqa: BLE001 - a failing check is a result, not a crash
            status = HealthStatus.UNHEALTHY
            failure = exc
            error = _error_text(exc)
        latency_ms = max(0.0, (self._clock() - started) * 1000.0)
        if failure is not None and self.report_failures:
            self._report(check, failure)
        if status is HealthStatus.UNHEALTHY and not check.critical:
            status = HealthStatus.DEGRADED
        return ComponentHealth(
            name=check.name,
            status=status,
            critical=check.critical,
            latency_ms=latency_ms,
            checked_at=self._now(),
            component_type=check.component_type,
            error=error,
            details=details,
        )

    def _report(self, check: Check, exc: BaseException) -> None:
        with guard("health.report"):
            report(
                exc,
                error_type=ErrorType.HEALTH_CHECK.value,
                severity=Severity.WARNING.value if not check.critical else Severity.ERROR.value,
                endpoint=f"health:{check.name}",
                extra={"check": check.name, "critical": check.critical},
            )

    async def run_checks(self) -> tuple[ComponentHealth, ...]:
        """Run every check concurrently (or reuse results younger than ``cache_seconds``)."""
        cached = self._cached
        if cached is not None and self._clock() - cached[0] < self.cache_seconds:
            return cached[1]
        checks = self.checks
        results = tuple(await asyncio.gather(*(self._run_one(c) for c in checks)))
        self._cached = (self._clock(), results)
        return results

    async def _error_summary(self) -> ErrorSummary | None:
        source = self.error_source
        if source is None:
            return None
        try:
            return await asyncio.wait_for(
                self._in_thread(source, self.error_window), self.store_timeout
            )
        except TimeoutError:
            error = f"the errors store did not answer within {self.store_timeout}s"
        except Exception as exc:  # noqa: BLE001 - the store being down must not hide health
            error = _error_text(exc)
        return ErrorSummary(0, 0, self.error_window, None, available=False, error=error)

    def _breakers(self) -> tuple[BreakerHealth, ...]:
        source = self.breaker_source
        if source is None:
            return ()
        with guard("health.breakers"):
            return _breakers_from(source())
        return ()

    def _base(self, kind: Literal["liveness", "readiness", "detailed"]) -> dict[str, Any]:
        return {
            "kind": kind,
            "checked_at": self._now(),
            "uptime_seconds": max(0.0, time.monotonic() - _STARTED),
        }

    def liveness(self) -> HealthReport:
        """The process is up and answering; no dependency is asked."""
        return HealthReport(status=HealthStatus.HEALTHY, **self._base("liveness"))

    async def readiness(self) -> HealthReport:
        """Run the checks: unhealthy (503) when a critical one fails."""
        components = await self.run_checks()
        return HealthReport(
            status=_overall(components, ()), components=components, **self._base("readiness")
        )

    async def detailed(self) -> HealthReport:
        """Checks, error counts from the store, and breakers."""
        components, errors = await asyncio.gather(self.run_checks(), self._error_summary())
        breakers = self._breakers()
        settings = get_settings()
        return HealthReport(
            status=_overall(components, breakers),
            components=components,
            errors=errors,
            breakers=breakers,
            service=self.service or settings.service,
            release=self.release or settings.release,
            **self._base("detailed"),
        )

    def readiness_sync(self) -> HealthReport:
        """:meth:`readiness` for sync code (WSGI): runs the checks on a private event loop."""
        return _run_sync(self.readiness)

    def detailed_sync(self) -> HealthReport:
        """:meth:`detailed` for sync code (WSGI)."""
        return _run_sync(self.detailed)


def _run_sync(factory: Callable[[], Coroutine[Any, Any, HealthReport]]) -> HealthReport:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(factory())
    # Called from inside a running loop (sync code in an async app): use a helper thread.
    box: list[HealthReport] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            box.append(_run_sync(factory))
        except BaseException as exc:  # noqa: BLE001 - handed back to the caller below
            errors.append(exc)

    thread = threading.Thread(target=target, name="errorkit-health-sync")
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return box[0]


def _overall(
    components: Iterable[ComponentHealth], breakers: Iterable[BreakerHealth]
) -> HealthStatus:
    status = HealthStatus.HEALTHY
    for c in components:
        if c.status is HealthStatus.UNHEALTHY and c.critical:
            return HealthStatus.UNHEALTHY
        if c.status is not HealthStatus.HEALTHY:
            status = HealthStatus.DEGRADED
    if any(b.status is not HealthStatus.HEALTHY for b in breakers):
        status = HealthStatus.DEGRADED
    return status


def _check_seconds(name: str, value: object) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        msg = f"{name}={value!r}: use a number of seconds > 0"
        raise ValueError(msg)


_default_lock = threading.Lock()
_default: HealthRegistry | None = None


def default_health() -> HealthRegistry:
    """The process-wide registry that the mounted endpoints use unless given another."""
    global _default
    current = _default
    if current is None:
        with _default_lock:
            if _default is None:
                _default = HealthRegistry()
            current = _default
    return current


def set_default_health(registry: HealthRegistry | None) -> HealthRegistry | None:
    """Replace the process-wide registry (None: a fresh one on next use); returns the old."""
    global _default
    if registry is not None and not isinstance(registry, HealthRegistry):
        msg = f"set_default_health() needs a HealthRegistry, not {type(registry).__name__}"
        raise TypeError(msg)
    with _default_lock:
        previous, _default = _default, registry
    return previous
