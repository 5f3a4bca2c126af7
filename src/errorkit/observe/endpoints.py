"""``/metrics``, ``/health``, ``/health/ready`` and ``/health/detailed`` on your app.

:func:`mount_asgi` adds them to a Starlette or FastAPI app, :func:`mount_flask` to a Flask
app. Each path can be changed or turned off with None. With ``token``, the metrics answer
401 unless the request carries ``Authorization: Bearer <token>``. The detailed health shows
its details (error texts, check details, the errors store, breaker details, service and
release) only with that token; without it (and always when no token is configured) it
answers the status of each component and breaker only. Liveness and readiness stay open for
load balancers and orchestrators.

Both frameworks share :func:`answer`, which builds the status, headers and body.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal

from errorkit._extras import require
from errorkit.classification import for_status
from errorkit.context import current_context
from errorkit.errors import _new_error_id
from errorkit.observe.health import HEALTH_JSON, HealthRegistry, HealthReport, default_health

__all__ = [
    "Answer",
    "EndpointConfig",
    "answer",
    "answer_sync",
    "check_endpoints",
    "mount_asgi",
    "mount_config_asgi",
    "mount_config_flask",
    "mount_flask",
]

Kind = Literal["metrics", "liveness", "readiness", "detailed"]
_NO_STORE: Final = ("cache-control", "no-store")


@dataclass(frozen=True, slots=True)
class Answer:
    """What an endpoint sends: status, headers and body bytes."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def header(self, name: str) -> str | None:
        low = name.lower()
        return next((v for k, v in self.headers if k == low), None)


@dataclass(frozen=True, slots=True)
class EndpointConfig:
    """The paths to mount (None: not mounted), the token and what they read from."""

    metrics_path: str | None = "/metrics"
    health_path: str | None = "/health"
    ready_path: str | None = "/health/ready"
    detailed_path: str | None = "/health/detailed"
    token: str | None = None
    protect: Collection[Kind] = ("metrics", "detailed")
    health: HealthRegistry | None = None
    metrics: Any = None  # errorkit.observe.metrics.Metrics; Any keeps prometheus optional

    def __post_init__(self) -> None:
        paths = [self.metrics_path, self.health_path, self.ready_path, self.detailed_path]
        for name, path in zip(
            ("metrics_path", "health_path", "ready_path", "detailed_path"), paths, strict=True
        ):
            if path is not None and (not isinstance(path, str) or not path.startswith("/")):
                msg = f"{name}={path!r}: use a path starting with '/' or None to turn it off"
                raise ValueError(msg)
        given = [p for p in paths if p is not None]
        if len(set(given)) != len(given):
            msg = f"two endpoints share a path ({given}); give each its own path"
            raise ValueError(msg)
        if self.token is not None and (not isinstance(self.token, str) or not self.token):
            msg = "token must be a non-empty string (or None for open endpoints)"
            raise ValueError(msg)
        unknown = set(self.protect) - {"metrics", "detailed", "readiness", "liveness"}
        if unknown:
            msg = f"protect={sorted(unknown)}: use some of metrics, detailed, readiness, liveness"
            raise ValueError(msg)

    def routes(self) -> list[tuple[str, Kind]]:
        pairs: list[tuple[str | None, Kind]] = [
            (self.metrics_path, "metrics"),
            (self.health_path, "liveness"),
            (self.ready_path, "readiness"),
            (self.detailed_path, "detailed"),
        ]
        return [(path, kind) for path, kind in pairs if path is not None]

    def registry(self) -> HealthRegistry:
        return self.health if self.health is not None else default_health()

    def metrics_instance(self) -> Any:
        if self.metrics is not None:
            return self.metrics
        from errorkit.observe.metrics import default_metrics

        return default_metrics()


def _authorized(config: EndpointConfig, kind: Kind, authorization: str | None) -> bool:
    if config.token is None or kind not in config.protect:
        return True
    expected = f"Bearer {config.token}".encode()
    given = (authorization or "").strip().encode("utf-8", "replace")
    return hmac.compare_digest(given, expected)


def _json(status: int, data: Any, content_type: str) -> Answer:
    body = json.dumps(data, separators=(",", ":"), default=str).encode()
    return Answer(status, (("content-type", content_type), _NO_STORE), body)


def _unauthorized(path: str) -> Answer:
    classification = for_status(401)
    www = ("www-authenticate", 'Bearer realm="errorkit"')
    try:
        from errorkit.http.envelope import ErrorMeta, encode_answer, get_renderer
        from errorkit.http.request_id import new_request_id

        ctx = current_context()
        meta = ErrorMeta(
            error_id=_new_error_id(),
            request_id=ctx.request_id or new_request_id(),
            correlation_id=ctx.correlation_id,
            timestamp=datetime.now(UTC),
            instance=path,
        )
        encoded = encode_answer(classification, meta, get_renderer())
        headers = tuple((k, v) for k, v in encoded.headers if k != "cache-control")
        return Answer(401, (*headers, www, _NO_STORE), encoded.body)
    except Exception:  # noqa: BLE001 - without the http package, a plain body in the same shape
        data = {"error": {"code": classification.code, "message": classification.message}}
        plain = _json(401, data, "application/json")
        return Answer(401, (*plain.headers, www), plain.body)


def _shows_details(config: EndpointConfig, authorization: str | None) -> bool:
    """Whether a detailed health answer may show its details: with the configured token, or
    when ``protect`` leaves "detailed" out (details open to everyone, by choice)."""
    if "detailed" not in config.protect:
        return True
    return config.token is not None and _authorized(config, "detailed", authorization)


def _report_answer(report: HealthReport, accept: str | None, *, details: bool = True) -> Answer:
    if accept and HEALTH_JSON in accept:
        return _json(report.http_status, report.as_health_json(details=details), HEALTH_JSON)
    return _json(report.http_status, report.as_dict(details=details), "application/json")


def _answer_without_checks(
    config: EndpointConfig, kind: Kind, path: str, accept: str | None, authorization: str | None
) -> Answer | None:
    """The answer when no health check has to run (refused, metrics, liveness), else None.
    The detailed health is never refused: without the token it shows statuses only."""
    if kind != "detailed" and not _authorized(config, kind, authorization):
        return _unauthorized(path)
    if kind == "metrics":
        body, content_type = config.metrics_instance().render(accept)
        return Answer(200, (("content-type", content_type), _NO_STORE), body)
    if kind == "liveness":
        return _report_answer(config.registry().liveness(), accept)
    return None


async def answer(
    config: EndpointConfig,
    kind: Kind,
    *,
    path: str,
    accept: str | None,
    authorization: str | None,
) -> Answer:
    """The answer of one endpoint (async: health checks may await)."""
    early = _answer_without_checks(config, kind, path, accept, authorization)
    if early is not None:
        return early
    registry = config.registry()
    if kind == "readiness":
        return _report_answer(await registry.readiness(), accept)
    details = _shows_details(config, authorization)
    return _report_answer(await registry.detailed(), accept, details=details)


def answer_sync(
    config: EndpointConfig,
    kind: Kind,
    *,
    path: str,
    accept: str | None,
    authorization: str | None,
) -> Answer:
    """:func:`answer` for WSGI."""
    early = _answer_without_checks(config, kind, path, accept, authorization)
    if early is not None:
        return early
    registry = config.registry()
    if kind == "readiness":
        return _report_answer(registry.readiness_sync(), accept)
    details = _shows_details(config, authorization)
    return _report_answer(registry.detailed_sync(), accept, details=details)


def _config(
    metrics_path: str | None,
    health_path: str | None,
    ready_path: str | None,
    detailed_path: str | None,
    token: str | None,
    protect: Collection[Kind],
    health: HealthRegistry | None,
    metrics: Any,
) -> EndpointConfig:
    if metrics is None and metrics_path is not None and not _prometheus_installed():
        metrics_path = None  # /metrics needs prometheus_client; the rest works without it
    return EndpointConfig(
        metrics_path=metrics_path,
        health_path=health_path,
        ready_path=ready_path,
        detailed_path=detailed_path,
        token=token,
        protect=tuple(protect),
        health=health,
        metrics=metrics,
    )


def _instrument(config: EndpointConfig) -> None:
    # What /metrics shows is fed by capture, breakers and retries: join them once.
    if config.metrics_path is not None:
        instrument = getattr(config.metrics_instance(), "instrument", None)
        if callable(instrument):
            instrument()


def _prometheus_installed() -> bool:
    try:
        import prometheus_client  # noqa: F401
    except ImportError:
        return False
    return True


def mount_config_asgi(app: Any, config: EndpointConfig) -> list[str]:
    """:func:`mount_asgi` with the options as one :class:`EndpointConfig` (what
    ``errorkit.fastapi.install(app, endpoints=...)`` passes)."""
    return mount_asgi(app, **_options(config))


def mount_config_flask(app: Any, config: EndpointConfig) -> list[str]:
    """:func:`mount_flask` with the options as one :class:`EndpointConfig`."""
    return mount_flask(app, **_options(config))


def check_endpoints(config: object) -> None:
    """Refuse anything but an :class:`EndpointConfig` or None, before an app is changed."""
    if config is not None:
        _options(config)


def _options(config: object) -> dict[str, Any]:
    if not isinstance(config, EndpointConfig):
        msg = (
            f"endpoints={config!r}: pass an errorkit.observe.EndpointConfig(...) "
            "or None to mount no endpoints"
        )
        raise TypeError(msg)
    return {
        "metrics_path": config.metrics_path,
        "health_path": config.health_path,
        "ready_path": config.ready_path,
        "detailed_path": config.detailed_path,
        "token": config.token,
        "protect": config.protect,
        "health": config.health,
        "metrics": config.metrics,
    }


def mount_asgi(
    app: Any,
    *,
    metrics_path: str | None = "/metrics",
    health_path: str | None = "/health",
    ready_path: str | None = "/health/ready",
    detailed_path: str | None = "/health/detailed",
    token: str | None = None,
    protect: Collection[Kind] = ("metrics", "detailed"),
    health: HealthRegistry | None = None,
    metrics: Any = None,
) -> list[str]:
    """Add the endpoints to a Starlette or FastAPI ``app``; returns the mounted paths.

    ``/metrics`` is left out when ``prometheus_client`` is not installed (unless you pass
    ``metrics``)."""
    require("starlette", extra="starlette", feature="mount_asgi()")
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    router = getattr(app, "router", None)
    if router is None or not hasattr(router, "routes"):
        msg = f"mount_asgi() needs a Starlette or FastAPI app, not {type(app).__name__}"
        raise TypeError(msg)
    config = _config(
        metrics_path, health_path, ready_path, detailed_path, token, protect, health, metrics
    )
    _instrument(config)

    def endpoint_for(kind: Kind) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            result = await answer(
                config,
                kind,
                path=request.url.path,
                accept=request.headers.get("accept"),
                authorization=request.headers.get("authorization"),
            )
            return Response(
                content=result.body,
                status_code=result.status,
                headers={k: v for k, v in result.headers if k != "content-type"},
                media_type=result.header("content-type"),
            )

        return endpoint

    mounted: list[str] = []
    for path, kind in config.routes():
        router.routes.append(
            Route(
                path,
                endpoint_for(kind),
                methods=["GET", "HEAD"],
                name=f"errorkit_{kind}",
                include_in_schema=False,
            )
        )
        mounted.append(path)
    return mounted


def mount_flask(
    app: Any,
    *,
    metrics_path: str | None = "/metrics",
    health_path: str | None = "/health",
    ready_path: str | None = "/health/ready",
    detailed_path: str | None = "/health/detailed",
    token: str | None = None,
    protect: Collection[Kind] = ("metrics", "detailed"),
    health: HealthRegistry | None = None,
    metrics: Any = None,
) -> list[str]:
    """Add the endpoints to a Flask ``app``; returns the mounted paths."""
    flask = require("flask", extra="flask", feature="mount_flask()")
    if not isinstance(app, flask.Flask):
        msg = f"mount_flask() needs a flask.Flask app, not {type(app).__name__}"
        raise TypeError(msg)
    config = _config(
        metrics_path, health_path, ready_path, detailed_path, token, protect, health, metrics
    )
    _instrument(config)
    names = [f"errorkit_{kind}" for _, kind in config.routes()]
    taken = [n for n in names if n in app.view_functions]
    if taken:
        msg = f"errorkit's endpoints are already mounted on this app ({taken}); mount once"
        raise ValueError(msg)

    def view_for(kind: Kind) -> Callable[[], Any]:
        def view() -> Any:
            request = flask.request
            result = answer_sync(
                config,
                kind,
                path=request.path,
                accept=request.headers.get("Accept"),
                authorization=request.headers.get("Authorization"),
            )
            return flask.Response(
                result.body,
                status=result.status,
                headers=[(k, v) for k, v in result.headers if k != "content-type"],
                content_type=result.header("content-type"),
            )

        return view

    mounted: list[str] = []
    for path, kind in config.routes():
        app.add_url_rule(
            path, endpoint=f"errorkit_{kind}", view_func=view_for(kind), methods=["GET"]
        )
        mounted.append(path)
    return mounted
