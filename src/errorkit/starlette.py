"""errorkit for Starlette::

    from starlette.applications import Starlette
    import errorkit.starlette

    app = Starlette(routes=[...])
    errorkit.starlette.install(app)              # or format="problem" / "wrapped" / a callable

Every error, expected or not, is answered in one shape with the right status and headers;
``X-Request-ID`` is accepted or generated, returned and bound to the context.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from errorkit._extras import require

require("starlette", extra="starlette", feature="errorkit.starlette")

from starlette.applications import Starlette  # noqa: E402 - after the extra check on purpose
from starlette.exceptions import HTTPException  # noqa: E402
from starlette.middleware import Middleware  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import Response  # noqa: E402

from errorkit.errors import AppError  # noqa: E402
from errorkit.http._asgi import ErrorkitMiddleware, route_template  # noqa: E402
from errorkit.http._common import (  # noqa: E402
    STATE_KEY,
    RequestState,
    answer_exception,
    current_request,
    detached_state,
    http_options,
    prepare_install,
    was_answered,
)
from errorkit.http.envelope import EncodedAnswer, Renderer, get_renderer  # noqa: E402
from errorkit.http.request_id import REQUEST_ID_HEADER  # noqa: E402
from errorkit.observe.endpoints import EndpointConfig, mount_config_asgi  # noqa: E402

DEFAULT_ENDPOINTS = EndpointConfig()

__all__ = [
    "DEFAULT_ENDPOINTS",
    "EndpointConfig",
    "ErrorkitMiddleware",
    "exception_handler",
    "install",
    "mount_admin",
]

_INSTALLED_ATTR = "_errorkit_renderer"


class _AnswerResponse(Response):
    """A :class:`Response` made straight from an encoded answer, whose headers are already
    final (Starlette's own constructor would normalise them all again)."""

    def __init__(self, answer: EncodedAnswer, extra: tuple[tuple[str, str], ...] = ()) -> None:
        self.status_code = answer.status
        self.background = None
        self.body = answer.body
        self.raw_headers = answer.raw_headers(extra)
        self.media_type = self.raw_headers[-1][1].decode("latin-1")  # raw_headers ends with it


class _Unsent(Response):
    """What the handler returns for an error errorkit's middleware already answered: an
    empty 500 that Starlette does not send (the answer has started)."""

    def __init__(self) -> None:
        self.status_code = 500
        self.background = None
        self.body = b""
        self.raw_headers = [(b"content-length", b"0")]


def _state_of(request: Request, request_id_header: str) -> tuple[RequestState, bool]:
    """The request's state, and whether the answer still needs the request id header:
    true outside errorkit's middleware, whose sender adds it to every answer."""
    state = request.scope.get(STATE_KEY)
    if isinstance(state, RequestState):
        return state, current_request() is not state
    headers = request.headers
    detached = detached_state(
        headers.get,
        method=request.method,
        path=request.url.path,
        request_id_header=request_id_header,
    )
    return detached, True


def exception_handler(
    format: str | Renderer | None = None, *, request_id_header: str = REQUEST_ID_HEADER
) -> Callable[[Request, Exception], Awaitable[Response]]:
    """A Starlette exception handler that answers in errorkit's format (``install()``
    registers it; use it directly to answer one exception class errorkit's way)."""
    renderer = get_renderer(format)

    async def handle(request: Request, exc: Exception) -> Response:
        if was_answered(exc):
            # errorkit's middleware answered and re-raised it for the server log; this
            # answer is never sent (the response has started).
            return _Unsent()
        state, needs_id = _state_of(request, request_id_header)
        answer, _ = answer_exception(
            exc, state, renderer, endpoint=route_template(request.scope, state)
        )
        # Outside errorkit's middleware no layer adds the request id: add it here.
        return _AnswerResponse(answer, ((request_id_header, state.request_id),) if needs_id else ())

    return handle


def install_asgi(
    app: Starlette,
    *,
    format: str | Renderer | None,
    request_id_header: str,
    trust_request_id: bool,
    body_limit: int,
    endpoints: EndpointConfig | None,
    handled: tuple[type[Exception], ...] = (),
) -> Renderer:
    """What :func:`install` does, with extra exception classes to answer as handled
    (the FastAPI integration adds ``RequestValidationError``)."""
    renderer = prepare_install(
        format,
        request_id_header,
        body_limit,
        endpoints,
        installed=getattr(app, _INSTALLED_ATTR, None) is not None,
    )
    if app.middleware_stack is not None:
        msg = (
            "install() must run before the app serves its first request (its middleware "
            "stack is already built); call it right after creating the app"
        )
        raise RuntimeError(msg)
    handler = exception_handler(renderer, request_id_header=request_id_header)
    for exc_class in (HTTPException, AppError, *handled):
        app.add_exception_handler(exc_class, handler)
    # The last resort, for exceptions raised by middleware added outside errorkit's own.
    app.add_exception_handler(Exception, handler)

    def middleware() -> Middleware:
        return Middleware(
            ErrorkitMiddleware,
            format=renderer,
            request_id_header=request_id_header,
            trust_request_id=trust_request_id,
            body_limit=body_limit,
            handled=(AppError, HTTPException, *handled),
        )

    if app.user_middleware:
        # Outermost: every other middleware runs inside the request context.
        app.user_middleware.insert(0, middleware())
    # Innermost: the answer to an unexpected error flows back through CORSMiddleware & co.
    # Without middleware added before install() this one instance is outermost too (those
    # added later go outside it), so one instance does both jobs: one layer less per request.
    app.user_middleware.append(middleware())
    if endpoints is not None:
        mount_config_asgi(app, endpoints)
    setattr(app, _INSTALLED_ATTR, renderer)
    return renderer


def install(
    app: Starlette,
    *,
    format: str | Renderer | None = None,
    request_id_header: str | None = None,
    trust_request_id: bool | None = None,
    body_limit: int | None = None,
    endpoints: EndpointConfig | None = DEFAULT_ENDPOINTS,
    admin: bool = False,
) -> None:
    """Answer every error of ``app`` in errorkit's ``format`` ("default", "problem",
    "wrapped" or a renderer callable; None reads ``ERRORKIT_RESPONSE_FORMAT``).

    ``admin=True`` mounts the tracker (its API and dashboard) under ``/admin`` on the
    app's own store and breakers: see :func:`mount_admin` (extra ``server``).

    ``trust_request_id=False`` ignores incoming request ids; ``body_limit`` bounds how much
    of the body the app reads is kept for reports (0 keeps none). ``endpoints`` mounts
    ``/metrics``, ``/health``, ``/health/ready`` and ``/health/detailed``: pass an
    ``EndpointConfig`` to move them, turn one off (``metrics_path=None``) or require a token,
    or None to mount none.
    """
    request_id_header, trust_request_id, body_limit = http_options(
        request_id_header, trust_request_id, body_limit
    )
    install_asgi(
        app,
        format=format,
        request_id_header=request_id_header,
        trust_request_id=trust_request_id,
        body_limit=body_limit,
        endpoints=endpoints,
    )
    if admin:
        mount_admin(app)


def mount_admin(
    app: Starlette,
    path: str = "/admin",
    *,
    store_url: str | None = None,
    breakers: object = None,
    session_secret: str | bytes | None = None,
) -> None:
    """Mount the tracker under ``path`` of ``app``: its API at ``{path}/api/`` and its
    dashboard at ``{path}/``, both needing a token (``errorkit tokens create``) or a user
    (``errorkit users add``).

    It reads the store the app captures into (``store_url``, default: the configured
    ``ERRORKIT_STORE_URL``) and this process's circuit breakers (``breakers`` as in
    :func:`errorkit.server.create_app`).
    """
    require("fastapi", extra="server", feature="the embedded tracker (admin=True)")
    from errorkit.config import get_settings
    from errorkit.server import create_app

    path = "/" + path.strip("/")
    tracker = create_app(
        store_url or get_settings().store_url,
        breakers=breakers,
        prefix="",
        session_secret=session_secret,
        ingest=False,  # the embedded tracker reads the app's own store; it takes no SDK traffic
    )
    app.mount(path, tracker)
