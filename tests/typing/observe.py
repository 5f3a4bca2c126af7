"""The observability API used the way users will (checked by mypy --strict)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import create_engine
from starlette.applications import Starlette

from errorkit.observe import (
    HealthRegistry,
    HealthReport,
    HealthStatus,
    LoggingSetup,
    Metrics,
    enable_tracing,
    http_check,
    log_performance_metric,
    log_security_event,
    mount_asgi,
    record_error,
    redis_check,
    setup_logging,
    sqlalchemy_check,
)

setup: LoggingSetup = setup_logging(level="INFO", log_dir="logs", max_bytes=1 << 20)
log_security_event("failed_login", "three failures", user_id="u1", severity="error")
log_performance_metric("render", 12.5, unit="ms")
setup.close()

health = HealthRegistry(service="shop", error_window=timedelta(minutes=5), cache_seconds=0)
health.add("db", sqlalchemy_check(create_engine("sqlite://")), timeout=2)
health.add("redis", redis_check("redis://127.0.0.1:6379/0"), critical=False)
health.add("billing", http_check("https://billing.internal/healthz"), critical=False)


@health.check("queue", timeout=1)
async def queue_ok() -> bool:
    return True


report: HealthReport = asyncio.run(health.readiness())
status: HealthStatus = report.status
code: int = report.http_status

metrics = Metrics()
metrics.record_errors("http_error", "NOT_FOUND", "warning", "shop")
with metrics.time_error_handling("http_error"):
    pass
body, content_type = metrics.render()
joined: list[str] = metrics.instrument()

enabled: bool = enable_tracing()
marked: bool = record_error(ValueError("x"))
paths: list[str] = mount_asgi(Starlette(), token="t", health=health, metrics=metrics)
