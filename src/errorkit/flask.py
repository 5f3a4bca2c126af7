"""errorkit for Flask::

    from flask import Flask
    import errorkit.flask

    app = Flask(__name__)
    errorkit.flask.install(app)                  # or format="problem" / "wrapped" / a callable

Every error, expected or not, is answered in one shape with the right status and headers
(Werkzeug's HTTP exceptions for every status, pydantic validation errors with one entry per
field, anything else as a generic 500 with an error id); ``X-Request-ID`` is accepted or
generated, returned and bound to the context, streamed bodies included.
"""

from __future__ import annotations

from typing import Any

from errorkit._extras import require

require("flask", extra="flask", feature="errorkit.flask")

from flask import (  # noqa: E402 - after the extra check on purpose
    Flask,
    Response,
    has_request_context,
    request,
)
from werkzeug.exceptions import HTTPException  # noqa: E402

from errorkit.errors import AppError  # noqa: E402
from errorkit.http._common import (  # noqa: E402
    STATE_KEY,
    RequestState,
    answer_exception,
    detached_state,
    http_options,
    prepare_install,
)
from errorkit.http._wsgi import WSGIMiddleware, environ_header  # noqa: E402
from errorkit.http.envelope import Renderer  # noqa: E402
from errorkit.observe.endpoints import EndpointConfig, mount_config_flask  # noqa: E402

DEFAULT_ENDPOINTS = EndpointConfig()

__all__ = ["EndpointConfig", "WSGIMiddleware", "install"]

_EXTENSION = "errorkit"


def _route_template() -> str | None:
    """The matched URL rule (``/items/<int:item_id>``) of the request being answered."""
    if not has_request_context():
        return None
    rule = request.url_rule
    return rule.rule if rule is not None else None


def install(
    app: Flask,
    *,
    format: str | Renderer | None = None,
    request_id_header: str | None = None,
    trust_request_id: bool | None = None,
    body_limit: int | None = None,
    endpoints: EndpointConfig | None = DEFAULT_ENDPOINTS,
) -> None:
    """Answer every error of ``app`` in errorkit's ``format`` ("default", "problem",
    "wrapped" or a renderer callable; None reads ``ERRORKIT_RESPONSE_FORMAT``).

    ``trust_request_id=False`` ignores incoming request ids; ``body_limit`` bounds how much
    of the body the app reads is kept for reports (0 keeps none). ``endpoints`` mounts
    ``/metrics`` and the health endpoints (see :func:`errorkit.starlette.install`); None
    mounts none.
    """
    request_id_header, trust_request_id, body_limit = http_options(
        request_id_header, trust_request_id, body_limit
    )
    renderer = prepare_install(
        format, request_id_header, body_limit, endpoints, installed=_EXTENSION in app.extensions
    )
    app.wsgi_app = WSGIMiddleware(  # type: ignore[method-assign]
        app.wsgi_app,
        request_id_header=request_id_header,
        trust_request_id=trust_request_id,
        body_limit=body_limit,
        route=_route_template,
    )

    def handle(exc: Exception) -> Any:
        if isinstance(exc, HTTPException) and (
            exc.code is None or exc.code < 400 or exc.response is not None
        ):
            # Redirects, and answers the app built itself (abort(response)), stay as they are.
            return exc
        state = request.environ.get(STATE_KEY)
        if not isinstance(state, RequestState):
            state = detached_state(
                lambda name: environ_header(request.environ, name),
                method=request.method,
                path=request.path,
                request_id_header=request_id_header,
            )
        rule = request.url_rule.rule if request.url_rule is not None else None
        answer, c = answer_exception(exc, state, renderer, endpoint=rule)
        if c.status >= 500 and not isinstance(exc, AppError | HTTPException):
            # An unexpected error: the server log still gets its traceback, as without us.
            app.log_exception((type(exc), exc, exc.__traceback__))  # type: ignore[arg-type]
        headers = [(k, v) for k, v in answer.headers if k != "content-type"]
        return Response(
            answer.body,
            status=answer.status,
            headers=headers,
            content_type=answer.header("content-type") or "application/json",
        )

    app.register_error_handler(Exception, handle)
    if endpoints is not None:
        mount_config_flask(app, endpoints)
    app.extensions[_EXTENSION] = renderer
