"""See it: structured logs, Prometheus metrics, OpenTelemetry and health checks.

Health checks need nothing beyond errorkit; logging needs ``structlog``
(``errorkit[logging]``), metrics ``prometheus_client`` (``errorkit[prometheus]``) and
tracing ``opentelemetry-api`` (``errorkit[otel]``). Those parts are imported on first use,
so ``import errorkit.observe`` works with any subset installed.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from errorkit.observe.checks import http_check, redis_check, sqlalchemy_check
from errorkit.observe.endpoints import EndpointConfig, mount_asgi, mount_flask
from errorkit.observe.health import (
    ComponentHealth,
    ErrorSummary,
    HealthCheckError,
    HealthRegistry,
    HealthReport,
    HealthStatus,
    default_health,
    set_default_health,
)

if TYPE_CHECKING:
    from errorkit.observe.logging import (
        LoggingSetup,
        get_logger,
        log_performance_metric,
        log_security_event,
        setup_logging,
    )
    from errorkit.observe.metrics import Metrics, default_metrics, set_default_metrics
    from errorkit.observe.tracing import (
        current_trace_ids,
        disable_tracing,
        enable_tracing,
        record_error,
        trace_context,
    )

_LAZY = {
    "LoggingSetup": "errorkit.observe.logging",
    "get_logger": "errorkit.observe.logging",
    "log_performance_metric": "errorkit.observe.logging",
    "log_security_event": "errorkit.observe.logging",
    "setup_logging": "errorkit.observe.logging",
    "Metrics": "errorkit.observe.metrics",
    "default_metrics": "errorkit.observe.metrics",
    "set_default_metrics": "errorkit.observe.metrics",
    "current_trace_ids": "errorkit.observe.tracing",
    "disable_tracing": "errorkit.observe.tracing",
    "enable_tracing": "errorkit.observe.tracing",
    "record_error": "errorkit.observe.tracing",
    "trace_context": "errorkit.observe.tracing",
}

__all__ = [
    "ComponentHealth",
    "EndpointConfig",
    "ErrorSummary",
    "HealthCheckError",
    "HealthRegistry",
    "HealthReport",
    "HealthStatus",
    "LoggingSetup",
    "Metrics",
    "current_trace_ids",
    "default_health",
    "default_metrics",
    "disable_tracing",
    "enable_tracing",
    "get_logger",
    "http_check",
    "log_performance_metric",
    "log_security_event",
    "mount_asgi",
    "mount_flask",
    "record_error",
    "redis_check",
    "set_default_health",
    "set_default_metrics",
    "setup_logging",
    "sqlalchemy_check",
    "trace_context",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        msg = f"module 'errorkit.observe' has no attribute {name!r}"
        raise AttributeError(msg)
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
