"""Prometheus metrics fed by the same pipeline as the store.

``errorkit_errors_total`` moves for every error errorkit reports (each HTTP answer, 4xx and
5xx, stream errors, retries that gave up, failing checks, direct captures), with or without a
store; the handling histogram is filled by the HTTP integrations; other counters move when
capture samples an occurrence out, when a retry happens and when a breaker changes state;
queue depth, dropped events and the spool size are read from capture's statistics at scrape
time, so the hot path does no work for them; so is ``errorkit_http_requests_total``, read from
the HTTP integrations' request counter. Every label has a bounded number of values:
codes the catalog does not know collapse into ``OTHER``, and services, error types,
operations and breakers past their cap collapse into ``other``.

Metrics live in their own ``CollectorRegistry`` unless you pass one (for example
``prometheus_client.REGISTRY`` to share the process-wide one).
"""

from __future__ import annotations

import importlib
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from errorkit import _reporting
from errorkit._cache import BoundedCache
from errorkit._guard import guard, internal_error_counts
from errorkit.classification import classify
from errorkit.codes import Severity, catalog
from errorkit.config import get_settings
from errorkit.errors import AppError, ErrorType
from errorkit.observe.health import breaker_state_name

__all__ = [
    "BREAKER_STATES",
    "OTHER",
    "OTHER_CODE",
    "BoundedLabel",
    "CaptureStats",
    "Metrics",
    "RequestTotals",
    "default_metrics",
    "set_default_metrics",
]

OTHER: Final = "other"
OTHER_CODE: Final = "OTHER"
BREAKER_STATES: Final = ("closed", "open", "half_open")
_MAX_LABEL_CHARS: Final = 100

# Error handling is fast (microseconds to a few milliseconds); the buckets say so.
_HANDLING_BUCKETS: Final = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
)


class BoundedLabel:
    """Maps raw values to label values, letting at most ``limit`` distinct ones through.

    ``known`` (if given) decides which values may appear at all; the others become
    ``overflow``. Once ``limit`` values were seen, new ones become ``overflow`` too.
    """

    def __init__(
        self, limit: int, overflow: str = OTHER, known: Callable[[str], bool] | None = None
    ) -> None:
        if limit < 1:
            msg = f"limit={limit!r}: a label needs room for at least one value"
            raise ValueError(msg)
        self.limit = limit
        self.overflow = overflow
        self._known = known
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, value: object) -> str:
        text = "" if value is None else str(value)[:_MAX_LABEL_CHARS]
        if text in self._seen:
            return text
        if self._known is not None and not self._known(text):
            return self.overflow
        with self._lock:
            if text in self._seen:
                return text
            if len(self._seen) >= self.limit:
                return self.overflow
            self._seen.add(text)
        return text


CaptureStats = Callable[[], Any]
"""Returns capture's statistics (``errorkit.capturing.stats()``): an object or a mapping with
``queue_depth``, ``queue_size``, ``dropped`` (reason -> count), ``spool_bytes``,
``events_written`` and ``store_available``; missing fields are left out."""


def _capture_stats_default() -> Any:
    # Not imported means not configured: nothing to show, and no import cost per scrape.
    capture = sys.modules.get("errorkit.capturing")
    stats = getattr(capture, "stats", None) if capture is not None else None
    return stats() if callable(stats) else None


def _optional_module(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def _field(stats: Any, name: str) -> Any:
    if isinstance(stats, Mapping):
        return stats.get(name)
    return getattr(stats, name, None)


def _by_reason(value: Any, default_reason: str) -> dict[str, float]:
    if value is None:
        return {}
    if isinstance(value, Mapping):
        return {str(k): float(v) for k, v in value.items()}
    return {default_reason: float(value)}


class _CaptureCollector(Collector):
    """Reads capture's statistics when Prometheus scrapes."""

    def __init__(self, source: CaptureStats, reasons: BoundedLabel) -> None:
        self._source = source
        self._reasons = reasons

    def describe(self) -> Iterable[Metric]:
        return list(self._families().values())

    @staticmethod
    def _families() -> dict[str, GaugeMetricFamily | CounterMetricFamily]:
        return {
            "queue_depth": GaugeMetricFamily(
                "errorkit_capture_queue_depth",
                "Events accepted by capture and waiting for the writer.",
            ),
            "queue_size": GaugeMetricFamily(
                "errorkit_capture_queue_capacity",
                "How many events the capture queue holds at most.",
            ),
            "dropped": CounterMetricFamily(
                "errorkit_capture_events_dropped",
                "Event samples capture could not keep, by reason (occurrences stay counted).",
                labels=["reason"],
            ),
            "events_written": CounterMetricFamily(
                "errorkit_capture_events_written",
                "Events the writer stored.",
            ),
            "spool_bytes": GaugeMetricFamily(
                "errorkit_capture_spool_size_bytes",
                "Bytes of events waiting in the local spool to be replayed.",
            ),
            "store_available": GaugeMetricFamily(
                "errorkit_capture_store_up",
                "1 when the writer's last contact with the store worked, 0 when it failed.",
            ),
        }

    def collect(self) -> Iterable[Metric]:
        stats = None
        with guard("metrics.capture_stats"):
            stats = self._source()
        if stats is None or _field(stats, "configured") is False:
            return []
        families = self._families()
        out: list[Metric] = []
        for key, family in families.items():
            raw = _field(stats, key)
            if raw is None:
                continue
            if key == "dropped":
                for reason, count in _by_reason(raw, "dropped").items():
                    family.add_metric([self._reasons(reason)], count)
            else:
                family.add_metric([], float(raw))
            out.append(family)
        return out


RequestTotals = Callable[[], Mapping[tuple[str, str, str], int]]
"""Returns every HTTP request counted so far by (service, endpoint, status class): the
request counter's ``totals()`` (see :mod:`errorkit.capturing.request_counts`)."""


def _request_totals_default() -> Mapping[tuple[str, str, str], int]:
    from errorkit.capturing.request_counts import default_request_counter

    return default_request_counter().totals()


class _RequestsCollector(Collector):
    """The HTTP request counts, read from the request counter when Prometheus scrapes."""

    def __init__(self, source: RequestTotals, services: BoundedLabel) -> None:
        self._source = source
        self._services = services

    def describe(self) -> Iterable[Metric]:
        return [self._family()]

    @staticmethod
    def _family() -> CounterMetricFamily:
        return CounterMetricFamily(
            "errorkit_http_requests",
            "HTTP requests answered by the integrations, by service, route template "
            "(<other> past the endpoint cap, <unmatched> when no route matched) and status "
            "class.",
            labels=["service", "endpoint", "status_class"],
        )

    def collect(self) -> Iterable[Metric]:
        totals: Mapping[tuple[str, str, str], int] = {}
        with guard("metrics.request_counts"):
            totals = self._source()
        family = self._family()
        merged: dict[tuple[str, str, str], int] = {}
        for (service, endpoint, cls), n in totals.items():
            key = (self._services(service), endpoint, cls)
            merged[key] = merged.get(key, 0) + n
        for key, n in sorted(merged.items()):
            family.add_metric(list(key), float(n))
        return [family]


class _InternalErrorsCollector(Collector):
    """errorkit's own swallowed failures, by site (see ``errorkit._guard``)."""

    def describe(self) -> Iterable[Metric]:
        return [self._family()]

    @staticmethod
    def _family() -> CounterMetricFamily:
        return CounterMetricFamily(
            "errorkit_internal_errors",
            "Failures inside errorkit that were swallowed to protect the app, by site.",
            labels=["site"],
        )

    def collect(self) -> Iterable[Metric]:
        family = self._family()
        for site, count in sorted(internal_error_counts().items()):
            family.add_metric([site], float(count))
        return [family]


def _known_code(code: str) -> bool:
    return code in catalog


_SEVERITIES: Final = frozenset(str(s) for s in Severity)
_ERROR_TYPES: Final = frozenset(str(t) for t in ErrorType)
_STATUSES: Final = frozenset(str(s) for s in range(100, 600))


class Metrics:
    """errorkit's Prometheus metrics in one registry.

    ``errorkit_errors_total{error_type,code,severity,status,service}``,
    ``errorkit_error_handling_duration_seconds{error_type}``,
    ``errorkit_retries_total{operation}``, ``errorkit_retries_exhausted_total{operation}``,
    ``errorkit_fallbacks_total{operation}``,
    ``errorkit_circuit_breaker_state{breaker,state}`` (1 for the current state),
    ``errorkit_circuit_breaker_transitions_total{breaker,from_state,to_state}``,
    ``errorkit_capture_events_sampled_total{reason}``, and read at scrape time
    ``errorkit_capture_queue_depth``, ``errorkit_capture_queue_capacity``,
    ``errorkit_capture_events_dropped_total{reason}``, ``errorkit_capture_events_written_total``,
    ``errorkit_capture_spool_size_bytes``, ``errorkit_capture_store_up``,
    ``errorkit_http_requests_total{service,endpoint,status_class}`` and
    ``errorkit_internal_errors_total{site}``.
    """

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        capture_stats: CaptureStats | None = None,
        request_totals: RequestTotals | None = None,
        max_codes: int = 200,
        max_services: int = 20,
        max_error_types: int = 50,
        max_operations: int = 100,
        max_breakers: int = 100,
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.codes = BoundedLabel(max_codes, OTHER_CODE, known=_known_code)
        self.services = BoundedLabel(max_services)
        self.error_types = BoundedLabel(len(_ERROR_TYPES) + max_error_types)
        self.severities = BoundedLabel(len(_SEVERITIES), known=_SEVERITIES.__contains__)
        self.statuses = BoundedLabel(len(_STATUSES), known=_STATUSES.__contains__)
        self.operations = BoundedLabel(max_operations)
        self.breakers = BoundedLabel(max_breakers)
        self.states = BoundedLabel(len(BREAKER_STATES) + 3)
        self._reasons = BoundedLabel(30)
        self._breaker_lock = threading.Lock()
        self._instrumented: list[str] | None = None
        r = self.registry
        self.errors_total = Counter(
            "errorkit_errors",
            "Errors reported (every HTTP error answer, 4xx and 5xx, and every other error "
            "errorkit reports or captures), by error type, catalog code, severity, HTTP "
            "status and service.",
            ["error_type", "code", "severity", "status", "service"],
            registry=r,
        )
        self.error_handling_seconds = Histogram(
            "errorkit_error_handling_duration_seconds",
            "Time the HTTP integrations spent handling an error: classify, report and answer.",
            ["error_type"],
            buckets=_HANDLING_BUCKETS,
            registry=r,
        )
        self.retries_total = Counter(
            "errorkit_retries",
            "Retries made after a failed attempt, by operation (every retry policy once "
            "instrument() ran).",
            ["operation"],
            registry=r,
        )
        self.retries_exhausted_total = Counter(
            "errorkit_retries_exhausted",
            "Calls whose retries ran out (attempts, deadline or Retry-After too long), "
            "by operation.",
            ["operation"],
            registry=r,
        )
        self.fallbacks_total = Counter(
            "errorkit_fallbacks",
            "Calls a fallback answered instead of the primary (fallback chains, breaker and "
            "with_error_recovery fallbacks), by operation.",
            ["operation"],
            registry=r,
        )
        self.breaker_state = Gauge(
            "errorkit_circuit_breaker_state",
            "1 for the state each circuit breaker is in, 0 for the others.",
            ["breaker", "state"],
            registry=r,
        )
        self.sampled_total = Counter(
            "errorkit_capture_events_sampled",
            "Occurrences counted but not stored as rows (flood sampling), by reason.",
            ["reason"],
            registry=r,
        )
        self.breaker_transitions_total = Counter(
            "errorkit_circuit_breaker_transitions",
            "Circuit breaker state changes.",
            ["breaker", "from_state", "to_state"],
            registry=r,
        )
        # Labelled children by the raw values, so that a hot path skips prometheus_client's
        # label lookup and the limiters (bounded: emptied when full).
        self._error_children: BoundedCache[tuple[Any, ...], Any] = BoundedCache(4096)
        self._handling_children: BoundedCache[str, Any] = BoundedCache(256)
        r.register(_CaptureCollector(capture_stats or _capture_stats_default, self._reasons))
        r.register(_RequestsCollector(request_totals or _request_totals_default, self.services))
        r.register(_InternalErrorsCollector())

    # -- feeding ------------------------------------------------------------------------------

    def record_errors(
        self,
        error_type: str,
        code: str,
        severity: str,
        service: str | None = None,
        count: int = 1,
        *,
        status: int | None = None,
    ) -> None:
        """Count ``count`` occurrences (:meth:`on_report` calls this). ``status`` is the
        HTTP status (empty label when unknown). Never raises."""
        with guard("metrics.record_errors"):
            if count <= 0:
                return
            key = (error_type, code, severity, status, service)
            child = self._error_children.get(key)
            if child is None:
                child = self.errors_total.labels(
                    error_type=self.error_types(error_type),
                    code=self.codes(code),
                    severity=self.severities(str(getattr(severity, "value", severity))),
                    status="" if status is None else self.statuses(status),
                    service=self.services(service or ""),
                )
                self._error_children.put(key, child)
            child.inc(count)

    def on_report(self, exc: BaseException, error_id: str, context: Mapping[str, Any]) -> None:
        """The reporting observer :meth:`instrument` adds: counts each reported (or
        captured) error once, with the status, error type and severity the HTTP answer
        used, whether or not a store is configured and whatever ``capture_4xx`` says.
        Never raises."""
        with guard("metrics.on_report"):
            status = context.get("status")
            error_type = context.get("error_type")
            severity = context.get("severity")
            code = context.get("code")
            if isinstance(exc, AppError):
                code = code or exc.code
                status = status if status is not None else exc.status
                error_type = error_type or exc.error_type
                severity = severity or exc.severity
            elif not (code and error_type and severity and status is not None):
                c = classify(exc)
                code, error_type = code or c.code, error_type or c.error_type
                severity = severity or c.severity
                status = status if status is not None else c.status
            service = context.get("service") or get_settings().service
            self.record_errors(
                str(error_type),
                str(code),
                str(severity),
                str(service),
                status=status if isinstance(status, int) else None,
            )

    def on_capture(self, summary: Any) -> None:
        """capture's listener: counts occurrences the flood limiter sampled out
        (``errorkit.capturing.add_listener(metrics.on_capture)``). Errors themselves are
        counted when they are reported (:meth:`on_report`), stored or not. Never raises."""
        with guard("metrics.on_capture"):
            count = int(summary.count)
            if getattr(summary, "sampled", False) and count > 0:
                self.sampled_total.labels(reason="flood").inc(count)

    def on_error_handled(self, error_type: str, seconds: float) -> None:
        """The handling observer :meth:`instrument` adds (the HTTP integrations call it
        once per answered error). Never raises."""
        self.observe_error_handling(seconds, error_type=error_type)

    def observe_error_handling(self, seconds: float, *, error_type: str = "unknown_error") -> None:
        """Record how long handling one error took. Never raises."""
        with guard("metrics.observe_error_handling"):
            child = self._handling_children.get(error_type)
            if child is None:
                child = self.error_handling_seconds.labels(error_type=self.error_types(error_type))
                self._handling_children.put(error_type, child)
            child.observe(max(0.0, seconds))

    @contextmanager
    def time_error_handling(
        self, error_type: str = "unknown_error", *, clock: Callable[[], float] = time.perf_counter
    ) -> Iterator[None]:
        """Time a block of error handling into the histogram."""
        started = clock()
        try:
            yield
        finally:
            self.observe_error_handling(clock() - started, error_type=error_type)

    def on_retry(self, event: Any) -> None:
        """The retry listener :meth:`instrument` subscribes to every policy
        (``errorkit.resilience.add_retry_listener``): counts each retry of the event's
        ``operation``, and each give-up (``exhausted``) in the exhausted counter. It also
        works as one policy's ``retry(..., on_retry=metrics.on_retry)``. Never raises."""
        with guard("metrics.on_retry"):
            self.record_retry(
                str(getattr(event, "operation", event)),
                exhausted=getattr(event, "exhausted", False) is True,
            )

    def record_retry(self, operation: str, *, exhausted: bool = False) -> None:
        """Count one retry of ``operation`` (or one that gave up). Never raises."""
        with guard("metrics.record_retry"):
            label = self.operations(operation)
            if exhausted:
                self.retries_exhausted_total.labels(operation=label).inc()
            else:
                self.retries_total.labels(operation=label).inc()

    def on_fallback(self, event: Any) -> None:
        """The fallback listener :meth:`instrument` subscribes
        (``errorkit.resilience.add_fallback_listener``): counts the event's ``operation``.
        Never raises."""
        with guard("metrics.on_fallback"):
            self.record_fallback(str(getattr(event, "operation", event)))

    def record_fallback(self, operation: str) -> None:
        """Count one call a fallback answered for ``operation``. Never raises."""
        with guard("metrics.record_fallback"):
            self.fallbacks_total.labels(operation=self.operations(operation)).inc()

    def set_breaker_state(self, breaker: str, state: object) -> None:
        """Show ``breaker`` in ``state`` (closed, open, half_open). Never raises."""
        with guard("metrics.set_breaker_state"):
            name = self.breakers(breaker)
            current = self.states(breaker_state_name(state))
            with self._breaker_lock:
                for known in {*BREAKER_STATES, current}:
                    self.breaker_state.labels(breaker=name, state=known).set(
                        1.0 if known == current else 0.0
                    )

    def record_breaker_transition(self, breaker: str, old_state: object, new_state: object) -> None:
        """A breaker changed state (the resilience listener calls this). Never raises."""
        with guard("metrics.record_breaker_transition"):
            self.breaker_transitions_total.labels(
                breaker=self.breakers(breaker),
                from_state=self.states(breaker_state_name(old_state)),
                to_state=self.states(breaker_state_name(new_state)),
            ).inc()
            self.set_breaker_state(breaker, new_state)

    # -- wiring -------------------------------------------------------------------------------

    def instrument(self) -> list[str]:
        """Subscribe to the errorkit parts that are installed: capture's listener, every
        breaker's transitions (seeding the state of breakers that exist already) and a
        process-wide retry listener. Returns the names of the parts it joined; calling it
        again joins nothing twice."""
        with self._breaker_lock:
            if self._instrumented is not None:
                return list(self._instrumented)
            self._instrumented = []
        joined = self._instrumented
        _reporting.add_observer(self.on_report)
        _reporting.add_handling_observer(self.on_error_handled)
        joined.append("errors")
        capture = _optional_module("errorkit.capturing")
        add = getattr(capture, "add_listener", None) if capture is not None else None
        if callable(add):
            add(self.on_capture)
            joined.append("capture")
        resilience = _optional_module("errorkit.resilience")
        if resilience is None:
            return list(joined)
        add_breaker = getattr(resilience, "add_breaker_listener", None)
        if callable(add_breaker):
            add_breaker(self.record_breaker_transition)
            statuses = getattr(resilience, "breaker_statuses", None)
            for status in statuses() if callable(statuses) else ():
                self.set_breaker_state(status.name, status.state)
            joined.append("breakers")
        add_retry = getattr(resilience, "add_retry_listener", None)
        if callable(add_retry):
            add_retry(self.on_retry)
            joined.append("retries")
        add_fallback = getattr(resilience, "add_fallback_listener", None)
        if callable(add_fallback):
            add_fallback(self.on_fallback)
            joined.append("fallbacks")
        return list(joined)

    def uninstrument(self) -> None:
        """Undo :meth:`instrument`."""
        with self._breaker_lock:
            if self._instrumented is None:
                return
            self._instrumented = None
        _reporting.remove_observer(self.on_report)
        _reporting.remove_handling_observer(self.on_error_handled)
        capture = _optional_module("errorkit.capturing")
        remove = getattr(capture, "remove_listener", None) if capture is not None else None
        if callable(remove):
            remove(self.on_capture)
        resilience = _optional_module("errorkit.resilience")
        for attr, callback in (
            ("remove_breaker_listener", self.record_breaker_transition),
            ("remove_retry_listener", self.on_retry),
            ("remove_fallback_listener", self.on_fallback),
        ):
            hook = getattr(resilience, attr, None) if resilience is not None else None
            if callable(hook):
                hook(callback)

    # -- exposition ---------------------------------------------------------------------------

    def render(self, accept: str | None = None) -> tuple[bytes, str]:
        """The exposition body and its content type (OpenMetrics when ``accept`` asks)."""
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type


_default_lock = threading.Lock()
_default: Metrics | None = None


def default_metrics() -> Metrics:
    """The process-wide :class:`Metrics` (created with its own registry on first use)."""
    global _default
    current = _default
    if current is None:
        with _default_lock:
            if _default is None:
                _default = Metrics()
            current = _default
    return current


def set_default_metrics(metrics: Metrics | None) -> Metrics | None:
    """Replace the process-wide metrics (None: create a fresh one on next use); returns the
    previous one."""
    global _default
    if metrics is not None and not isinstance(metrics, Metrics):
        msg = f"set_default_metrics() needs a Metrics instance, not {type(metrics).__name__}"
        raise TypeError(msg)
    with _default_lock:
        previous, _default = _default, metrics
    return previous
