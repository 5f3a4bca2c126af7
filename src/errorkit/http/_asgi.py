"""errorkit's pure-ASGI middleware, shared by the FastAPI and Starlette integrations.

One class does three jobs for an HTTP request:

1. request context: accept or generate the request id, read ``X-Correlation-ID`` and
   ``traceparent``, bind them into :mod:`errorkit.context` for the request's lifetime and
   return ``X-Request-ID`` on every answer;
2. body capture: keep the first ``body_limit`` bytes the app itself reads (nothing is read
   on its behalf), so a report can carry the request payload;
3. catch-all: any exception still unhandled becomes errorkit's answer. Unexpected server
   errors (no mapper classified them) are re-raised after the answer is sent, like
   Starlette's own ``ServerErrorMiddleware``, so the server still logs them; they are
   reported once. Classified ones (an httpx timeout answered 504) are not re-raised, so
   the server keeps the client's keep-alive connection open.

The integrations install it twice: outermost (so every middleware sees the context) and
innermost (so its 500 flows back through ``CORSMiddleware`` and keeps the CORS headers).
The inner instance finds the outer one's state in the scope and only catches.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from errorkit._guard import guard
from errorkit._reporting import was_reported
from errorkit.capturing import request_counts
from errorkit.classification import _is_unexpected, classify
from errorkit.config import get_settings
from errorkit.errors import AppError, ErrorType
from errorkit.http._common import (
    DEFAULT_BODY_LIMIT,
    STATE_KEY,
    RequestState,
    answer_exception,
    check_options,
    finish_request,
    mark_answered,
    report_request,
    start_request,
)
from errorkit.http.envelope import EncodedAnswer, Renderer, get_renderer
from errorkit.http.request_id import (
    CORRELATION_ID_HEADER,
    REQUEST_ID_HEADER,
    TRACEPARENT_HEADER,
)

__all__ = ["SHUTDOWN_FLUSH_SECONDS", "ErrorkitMiddleware", "route_template"]

SHUTDOWN_FLUSH_SECONDS = 10.0
"""How long a server shutdown waits for captured events to reach the store (or spool)."""

_CORRELATION = CORRELATION_ID_HEADER.lower().encode("latin-1")
_TRACEPARENT = TRACEPARENT_HEADER.lower().encode("latin-1")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def route_template(scope: Scope, state: RequestState | None = None) -> str | None:
    """The matched route's path template (``/items/{item_id}``), prefixed with the path
    of the mounts it sits under; None before routing or when nothing matched."""
    route = scope.get("route") or _match_route(scope)
    path = getattr(route, "path", None)
    if not isinstance(path, str):
        return None
    root = scope.get("root_path", "")
    base = state.root_path if state is not None else ""
    if isinstance(root, str) and root.startswith(base) and len(root) > len(base):
        return root[len(base) :] + path
    return path


def _match_route(scope: Scope) -> Any:
    # Some routers (FastAPI's, for plain Starlette routes) do not record the matched route
    # in the scope; match again. Only error answers get here, never the happy path.
    router = scope.get("router")
    for route in getattr(router, "routes", ()):
        try:
            match, _ = route.matches(scope)
        except Exception:  # noqa: BLE001, S112 - a route that cannot match this scope is not it
            continue
        if getattr(match, "name", None) == "FULL":
            return route
    return None


class ErrorkitMiddleware:
    """Request context, request id and catch-all for an ASGI app (see the module doc)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        format: str | Renderer | None = None,
        request_id_header: str = REQUEST_ID_HEADER,
        trust_request_id: bool = True,
        body_limit: int = DEFAULT_BODY_LIMIT,
        handled: tuple[type[BaseException], ...] = (AppError,),
    ) -> None:
        check_options(request_id_header, body_limit)
        self.app = app
        self.renderer = get_renderer(format)
        self.header_name = request_id_header.lower()
        self._header_bytes = self.header_name.encode("latin-1")
        self.trust_request_id = trust_request_id
        self.body_limit = body_limit
        self.handled = handled

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan" and STATE_KEY not in scope:
                scope = {**scope, STATE_KEY: "lifespan"}
                await self.app(scope, receive, _flush_on_shutdown(send))
            else:
                await self.app(scope, receive, send)
            return
        state = scope.get(STATE_KEY)
        if isinstance(state, RequestState):
            # The inner instance. When send is the outer instance's own sender (nothing
            # sits in between), that sender already knows whether the answer started and
            # whether sending failed: no second wrapper is needed.
            tracker = send if type(send) is _Sender and send.state is state else _Sender(send)
            try:
                await self.app(scope, receive, tracker)
            except Exception as exc:
                if tracker.started or tracker.failed:
                    self._pass_on(exc, scope, state, tracker)
                    raise
                if await self._answer(exc, scope, state, tracker):
                    raise
            return
        # The outer instance: everything below runs on every request, so it reads each
        # header once from one dict, binds the context once and wraps send (and receive,
        # to keep the body) once.
        headers = dict(scope.get("headers") or ())
        incoming = headers.get(self._header_bytes) if self.trust_request_id else None
        correlation = headers.get(_CORRELATION)
        traceparent = headers.get(_TRACEPARENT)
        user_agent = headers.get(b"user-agent")
        content_type = headers.get(b"content-type")
        state, current_token, ctx_token = start_request(
            incoming_id=None if incoming is None else incoming.decode("latin-1"),
            correlation=None if correlation is None else correlation.decode("latin-1"),
            traceparent=None if traceparent is None else traceparent.decode("latin-1"),
            user_agent=None if user_agent is None else user_agent.decode("latin-1"),
            content_type=None if content_type is None else content_type.decode("latin-1"),
            method=scope.get("method", "GET"),
            path=scope.get("path", "/"),
            request_id_header=self.header_name,
            body_limit=self.body_limit,
        )
        state.root_path = scope.get("root_path", "")
        # The scope is shared with the layers inside, as Starlette's router shares it: the
        # inner instance and errorkit's exception handlers find the state there.
        scope[STATE_KEY] = state
        # The sender knows the state, not the other way round: the scope holds the state and
        # the server's send often holds the scope, so state -> sender would be a reference
        # cycle on every request, left for the garbage collector.
        sender = _Sender(send, state, self._header_bytes)
        try:
            await self.app(scope, _Keeper(receive, state) if self.body_limit else receive, sender)
        except Exception as exc:
            if sender.started or sender.failed:
                self._pass_on(exc, scope, state, sender)
                raise
            if await self._answer(exc, scope, state, sender):
                raise
        finally:
            finish_request(current_token, ctx_token)
            if sender.status is not None:
                _count_request(scope, state, sender.status)

    def _pass_on(self, exc: Exception, scope: Scope, state: RequestState, sender: _Sender) -> None:
        """For an exception raised once the answer has started (it is re-raised)."""
        if sender.failed:
            # The transport failed (the client went away): not an error of the app.
            return
        # Headers are out, so there is nothing left to answer: report it (once: the inner
        # instance may have answered it already) and let the server log it and close the
        # connection.
        if not was_reported(exc):
            self._report_late(exc, scope, state)

    async def _answer(
        self, exc: Exception, scope: Scope, state: RequestState, sender: _Sender
    ) -> bool:
        """Answer ``exc`` (the answer has not started); True when it must be re-raised."""
        answer, c = answer_exception(
            exc, state, self.renderer, endpoint=route_template(scope, state)
        )
        await _send_answer(sender, answer)
        # Only an unexpected error goes on to the server, to be logged with its traceback
        # (the server then closes a keep-alive connection). One errorkit classified (an
        # upstream's timeout answered 504) is answered, reported and done.
        if c.status >= 500 and not isinstance(exc, self.handled) and _is_unexpected(c):
            mark_answered(exc)
            return True
        return False

    def _report_late(self, exc: Exception, scope: Scope, state: RequestState) -> None:
        report_request(
            exc,
            classify(exc),
            state,
            error_type=str(ErrorType.STREAM),
            endpoint=route_template(scope, state),
        )


def _count_request(scope: Scope, state: RequestState, status: int) -> None:
    """Count the answered request under its route template (see
    :mod:`errorkit.capturing.request_counts`): the status its answer started with."""
    with guard("http.count_request"):
        # A router that matched records the endpoint (and mostly the route itself): only
        # then is there a template to find; an unmatched path is never matched again.
        matched = "route" in scope or "endpoint" in scope
        endpoint = route_template(scope, state) if matched else None
        request_counts.default_request_counter().count(get_settings().service, endpoint, status)


class _Sender:
    """Wraps ``send``: remembers whether the answer started (and its status) and whether
    sending failed, and (for the outer instance) puts the request id header on the answer."""

    __slots__ = ("_header", "_name", "_send", "failed", "started", "state", "status")

    def __init__(self, send: Send, state: RequestState | None = None, name: bytes = b"") -> None:
        self._send = send
        self.state = state  # the request's state when this is the outer instance's sender
        self._name = name
        self._header = (name, state.request_id.encode("latin-1") if state is not None else b"")
        self.started = False
        self.failed = False
        self.status: int | None = None

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.started = True
            self.status = message["status"]
            if self._name:
                message = _with_header(message, self._name, self._header)
        try:
            await self._send(message)
        except BaseException:
            self.failed = True
            raise


def _with_header(message: Message, name: bytes, header: tuple[bytes, bytes]) -> Message:
    """``message`` with ``header`` as the only header called ``name`` (a copy: the app's
    own message and header list stay as they were)."""
    size = len(name)
    headers = [h for h in message.get("headers", ()) if len(h[0]) != size or h[0].lower() != name]
    headers.append(header)
    return {**message, "headers": headers}


class _Keeper:
    """Wraps ``receive``: the body chunks the app reads are kept (bounded) for reports."""

    __slots__ = ("_receive", "_state")

    def __init__(self, receive: Receive, state: RequestState) -> None:
        self._receive = receive
        self._state = state

    async def __call__(self) -> Message:
        message = await self._receive()
        if message["type"] == "http.request":
            self._state.record(message.get("body", b""))
        return message


def _flush_on_shutdown(send: Send) -> Send:
    """Flush captured events before the server is told shutdown is complete, so nothing
    captured during the last requests is lost when the worker exits."""

    async def send_after_flush(message: Message) -> None:
        if message["type"] in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
            capture = sys.modules.get("errorkit.capturing")
            flush = getattr(capture, "flush", None)
            if callable(flush):
                with guard("http.shutdown_flush"):
                    await asyncio.to_thread(flush, SHUTDOWN_FLUSH_SECONDS)
        await send(message)

    return send_after_flush


async def _send_answer(send: Send, answer: EncodedAnswer) -> None:
    start = {
        "type": "http.response.start",
        "status": answer.status,
        "headers": answer.raw_headers(),
    }
    await send(start)
    await send({"type": "http.response.body", "body": answer.body, "more_body": False})
