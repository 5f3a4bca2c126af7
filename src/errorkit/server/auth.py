"""Bearer-token authentication for the tracker's API.

Every route but liveness depends on :func:`reader` or :func:`admin`. A missing, unknown,
expired or revoked token is a 401 in errorkit's envelope (with ``WWW-Authenticate``); a
read-only token on a route that changes something is a 403.
"""

from __future__ import annotations

import logging
from contextlib import suppress
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from errorkit.errors import AuthenticationError, AuthorizationError, InvalidTokenError
from errorkit.errors import TokenExpiredError as TokenExpired
from errorkit.store import StoreError
from errorkit.store.tokens import ApiToken, TokenRefused, TokenStore

__all__ = ["Admin", "Reader", "admin", "reader"]

_fallback = logging.getLogger("errorkit.security")


def log_security_event(event_type: str, message: str, **fields: Any) -> None:
    """A security event in errorkit's ``security`` log category (structlog, when the
    ``logging`` extra is installed), else on the stdlib ``errorkit.security`` logger."""
    try:
        from errorkit.observe.logging import log_security_event as structured
    except ImportError:
        _fallback.warning(
            "%s: %s", event_type, message, extra={"security_event": event_type, **fields}
        )
        return
    structured(event_type, message, **fields)


def _client(request: Request) -> str | None:
    return None if request.client is None else request.client.host


#: How often a token's ``last_used_at`` is written (not on every request).
TOUCH_EVERY = timedelta(minutes=1)
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="errorkit"'}

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="token",
    description="An API token from `errorkit tokens create` (role read or admin).",
)


def _tokens(request: Request) -> TokenStore:
    tokens: TokenStore = request.app.state.errorkit_tokens
    return tokens


def reader(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> ApiToken:
    """The token of the request, any role; 401 without a valid one."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        # No credentials at all is how every browser and probe starts: not worth a log line.
        raise AuthenticationError(headers=_CHALLENGE)
    tokens = _tokens(request)
    try:
        token = tokens.verify(credentials.credentials)
    except TokenRefused as refused:
        log_security_event(
            "api_token_refused",
            f"tracker API token refused ({refused.reason})",
            reason=refused.reason,
            method=request.method,
            path=request.url.path,
            ip_address=_client(request),
        )
        if refused.reason == "expired":
            raise TokenExpired(headers=_CHALLENGE) from None
        raise InvalidTokenError(headers=_CHALLENGE) from None
    now = datetime.now(UTC)
    if token.last_used_at is None or now - token.last_used_at >= TOUCH_EVERY:
        # A busy database must not refuse a valid token; the next request records it.
        with suppress(StoreError):
            tokens.touch(token.id)
    return token


def admin(request: Request, token: Annotated[ApiToken, Depends(reader)]) -> ApiToken:
    """The token of the request, which must have the admin role; 403 for a read token."""
    if token.role != "admin":
        log_security_event(
            "api_permission_denied",
            "a read-only tracker API token tried to change something",
            token_id=token.id,
            token_name=token.name,
            method=request.method,
            path=request.url.path,
            ip_address=_client(request),
        )
        raise AuthorizationError("This needs an admin token; this token is read-only.")
    return token


Reader = Annotated[ApiToken, Depends(reader)]
Admin = Annotated[ApiToken, Depends(admin)]
