"""The WSGI twin of the ASGI middleware (used by the Flask integration).

Each request runs in a copy of the caller's :mod:`contextvars` context, and so does every
step of iterating its response: the request id stays bound while a streamed body is
produced, and nothing has to be reset afterwards (the copy is simply dropped).
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import Any

from errorkit._guard import guard
from errorkit.capturing import request_counts
from errorkit.config import get_settings
from errorkit.http._common import (
    DEFAULT_BODY_LIMIT,
    STATE_KEY,
    RequestState,
    check_options,
    start_request,
)
from errorkit.http.request_id import (
    CORRELATION_ID_HEADER,
    REQUEST_ID_HEADER,
    TRACEPARENT_HEADER,
)

__all__ = ["WSGIMiddleware", "environ_header"]

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]
StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


def _environ_key(name: str) -> str:
    key = name.upper().replace("-", "_")
    return key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else "HTTP_" + key


_CORRELATION = _environ_key(CORRELATION_ID_HEADER)
_TRACEPARENT = _environ_key(TRACEPARENT_HEADER)


def environ_header(environ: dict[str, Any], name: str) -> str | None:
    """A request header from a WSGI environ by its (case-insensitive) name."""
    value = environ.get(_environ_key(name))
    return value if isinstance(value, str) and value else None


class _KeepingInput:
    """Wraps ``wsgi.input``: whatever the app reads is also kept (bounded) for reports."""

    def __init__(self, stream: Any, state: RequestState) -> None:
        self._stream = stream
        self._state = state

    def read(self, size: int = -1) -> bytes:
        data: bytes = self._stream.read(size) if size is not None else self._stream.read()
        self._state.record(data)
        return data

    def readinto(self, buffer: bytearray | memoryview) -> int | None:
        readinto = getattr(self._stream, "readinto", None)
        if readinto is None:
            data = self.read(len(buffer))
            buffer[: len(data)] = data
            return len(data)
        size: int | None = readinto(buffer)
        if size:
            self._state.record(bytes(memoryview(buffer)[:size]))
        return size

    def readline(self, size: int = -1) -> bytes:
        data: bytes = self._stream.readline(size)
        self._state.record(data)
        return data

    def readlines(self, hint: int = -1) -> list[bytes]:
        lines: list[bytes] = self._stream.readlines(hint)
        for line in lines:
            self._state.record(line)
        return lines

    def __iter__(self) -> Iterator[bytes]:
        for line in self._stream:
            self._state.record(line)
            yield line

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


class _InContext:
    """The app's response iterable, iterated (and closed) inside the request's context."""

    def __init__(self, result: Iterable[bytes], ctx: contextvars.Context) -> None:
        self._result = result
        self._ctx = ctx
        self._iter: Iterator[bytes] | None = None

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        if self._iter is None:
            self._iter = self._ctx.run(iter, self._result)
        return self._ctx.run(next, self._iter)

    def close(self) -> None:
        close = getattr(self._result, "close", None)
        if close is not None:
            self._ctx.run(close)


def _count_request(route: Callable[[], str | None] | None, status: int) -> None:
    """Count the answered request (see :mod:`errorkit.capturing.request_counts`)."""
    with guard("http.count_request"):
        endpoint = route() if route is not None else None
        request_counts.default_request_counter().count(get_settings().service, endpoint, status)


def _status_code(status: str) -> int:
    try:
        return int(status[:3])
    except ValueError:
        return 500


class WSGIMiddleware:
    """Request id, context, body capture and request counts for a WSGI app.

    ``route`` returns the matched route's template while the app answers (None when no
    route matched); requests are counted under it."""

    def __init__(
        self,
        app: WSGIApp,
        *,
        request_id_header: str = REQUEST_ID_HEADER,
        trust_request_id: bool = True,
        body_limit: int = DEFAULT_BODY_LIMIT,
        route: Callable[[], str | None] | None = None,
    ) -> None:
        check_options(request_id_header, body_limit)
        self.app = app
        self.route = route
        self.header_name = request_id_header
        self._environ_key = _environ_key(request_id_header)
        self._skip = request_id_header.lower()  # the app's own header of that name is replaced
        self.trust_request_id = trust_request_id
        self.body_limit = body_limit

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if isinstance(environ.get(STATE_KEY), RequestState):
            return self.app(environ, start_response)
        ctx = contextvars.copy_context()
        result = ctx.run(self._call, environ, start_response)
        return _InContext(result, ctx)

    def _call(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        incoming = environ.get(self._environ_key) if self.trust_request_id else None
        state, _, _ = start_request(
            incoming_id=incoming or None,
            correlation=environ.get(_CORRELATION) or None,
            traceparent=environ.get(_TRACEPARENT) or None,
            user_agent=environ.get("HTTP_USER_AGENT") or None,
            content_type=environ.get("CONTENT_TYPE") or None,
            method=environ.get("REQUEST_METHOD", "GET"),
            path=environ.get("PATH_INFO", "/") or "/",
            request_id_header=self.header_name,
            body_limit=self.body_limit,
        )
        state.root_path = environ.get("SCRIPT_NAME", "")
        environ[STATE_KEY] = state
        stream = environ.get("wsgi.input")
        if stream is not None and self.body_limit:
            environ["wsgi.input"] = _KeepingInput(stream, state)
        skip = self._skip
        id_header = (self.header_name, state.request_id)
        route = self.route
        counted = False

        def start_with_id(
            status: str, headers: list[tuple[str, str]], exc_info: ExcInfo | None = None
        ) -> Any:
            nonlocal counted
            if not counted:
                counted = True
                _count_request(route, _status_code(status))
            headers = [h for h in headers if h[0].lower() != skip]
            headers.append(id_header)
            if exc_info is None:
                return start_response(status, headers)
            return start_response(status, headers, exc_info)

        try:
            return self.app(environ, start_with_id)
        except Exception:
            if not counted:  # the server answers it with a 500
                counted = True
                _count_request(route, 500)
            raise
