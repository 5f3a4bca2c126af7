"""errorkit for FastAPI::

    from fastapi import FastAPI
    import errorkit.fastapi

    app = FastAPI()
    errorkit.fastapi.install(app)                # or format="problem" / "wrapped" / a callable

Besides what :mod:`errorkit.starlette` does, request validation errors are answered with one
entry per field, and the OpenAPI schema documents errorkit's 4XX, 5XX and 422 answers
instead of FastAPI's ``{"detail": ...}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from errorkit._extras import require

require("fastapi", extra="fastapi", feature="errorkit.fastapi")

from fastapi import FastAPI  # noqa: E402 - after the extra check on purpose
from fastapi.exceptions import RequestValidationError  # noqa: E402

from errorkit.http._common import http_options  # noqa: E402
from errorkit.http.envelope import FORMATS, Renderer  # noqa: E402
from errorkit.http.openapi import document_errors  # noqa: E402
from errorkit.starlette import (  # noqa: E402
    DEFAULT_ENDPOINTS,
    EndpointConfig,
    ErrorkitMiddleware,
    exception_handler,
    install_asgi,
    mount_admin,
)

__all__ = ["EndpointConfig", "ErrorkitMiddleware", "exception_handler", "install", "mount_admin"]


def install(
    app: FastAPI,
    *,
    format: str | Renderer | None = None,
    request_id_header: str | None = None,
    trust_request_id: bool | None = None,
    body_limit: int | None = None,
    openapi: bool = True,
    openapi_schema: Mapping[str, Any] | None = None,
    endpoints: EndpointConfig | None = DEFAULT_ENDPOINTS,
    admin: bool = False,
) -> None:
    """Answer every error of ``app`` in errorkit's ``format`` ("default", "problem",
    "wrapped" or a renderer callable; None reads ``ERRORKIT_RESPONSE_FORMAT``).

    With ``openapi=True`` the schema documents errorkit's answers; for a renderer of your
    own pass ``openapi_schema`` (the JSON Schema of its body). ``endpoints`` is as in
    :func:`errorkit.starlette.install`. ``admin=True`` mounts the tracker (API and
    dashboard) under ``/admin`` on the app's own store and breakers
    (:func:`errorkit.starlette.mount_admin`).
    """
    request_id_header, trust_request_id, body_limit = http_options(
        request_id_header, trust_request_id, body_limit
    )
    renderer = install_asgi(
        app,
        format=format,
        request_id_header=request_id_header,
        trust_request_id=trust_request_id,
        body_limit=body_limit,
        endpoints=endpoints,
        handled=(RequestValidationError,),
    )
    if admin:
        mount_admin(app)
    if not openapi:
        return
    name = next((k for k, v in FORMATS.items() if v is renderer), None)
    if name is None and openapi_schema is None:
        openapi_schema = {"type": "object", "description": "An error (custom format)."}
    build = app.openapi
    documented: dict[str, Any] | None = None

    def documented_openapi() -> dict[str, Any]:
        # FastAPI builds the schema once and caches it: document it once too, not on every
        # request for /openapi.json (a new schema, after the cache is cleared, is documented).
        nonlocal documented
        schema = build()
        if schema is not documented:
            documented = document_errors(schema, name or "custom", custom_schema=openapi_schema)
        return documented

    app.openapi = documented_openapi  # type: ignore[method-assign]
