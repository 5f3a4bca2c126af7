"""The Sentry-compatible ingest endpoints: ``POST /api/<project_id>/envelope/`` and the
legacy ``POST /api/<project_id>/store/``, as a raw ASGI app.

A request is authenticated by its DSN key (see :mod:`errorkit.ingest.auth`), held to its
key's rate limit (:mod:`errorkit.ingest.ratelimit`), read with a hard cap, decoded and
parsed (:mod:`errorkit.ingest.envelope`); its event becomes an
:class:`~errorkit.store.records.ErrorRecord` (:func:`~errorkit.ingest.events.event_to_record`)
and the answer ``200 {"id": "<event_id>"}`` is sent once the record is stored or spooled
(:mod:`errorkit.ingest.writer`). Other item types are accepted, dropped and counted
(:mod:`errorkit.ingest.outcomes`); every answer tells the SDK, in ``X-Sentry-Rate-Limits``,
to stop sending the types errorkit does not keep.

Answers:

- 200 ``{"id": ...}``: stored, or spooled to be stored (``{}`` for an envelope without id);
- 400 / 413 / 415: the body is malformed, too big, or in an unknown encoding (the message
  says which limit or field);
- 401 no key or an unknown key, 403 a revoked key or another project's;
- 429 the key's rate limit, with ``Retry-After`` and ``X-Sentry-Rate-Limits: <s>:error:key``;
- 503 with ``Retry-After``: the event could be neither stored nor spooled, the writer's
  queue is full, or the server is stopping (the SDK sends it again).

Error bodies are ``{"detail": "<message>", "error": {"code", "message", "retriable"}}``.
The app is built for throughput: no framework on the hot path, the key's answer cached, the
body read once, one ``write_batch`` for many requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from errorkit._guard import report_internal_error
from errorkit.capturing.delivery import BatchWriter
from errorkit.capturing.spool import Spool
from errorkit.ingest.auth import KeyCache, dsn_key, header_key, query_key
from errorkit.ingest.envelope import decode_body, parse_envelope, parse_json, parse_store_body
from errorkit.ingest.events import client_report_items, event_to_record
from errorkit.ingest.limits import IngestLimits, IngestRefused
from errorkit.ingest.outcomes import OutcomeCounter, item_category
from errorkit.ingest.ratelimit import DEFAULT_RATE_LIMIT, KeyRateLimiter
from errorkit.ingest.writer import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_MAX_QUEUE,
    GroupCommit,
    IngestUnavailable,
    RecordRefused,
)
from errorkit.scrubbing import Scrubber, default_scrubber
from errorkit.store.errors import StoreError
from errorkit.store.projects import KeyRefused, Project, ProjectKey, ProjectStore
from errorkit.store.records import ErrorRecord
from errorkit.store.repository import ErrorStore

try:
    import orjson as _orjson
except ImportError:  # pragma: no cover - orjson comes with the logging extra
    _orjson = None  # type: ignore[assignment]

__all__ = [
    "DEFAULT_RATE_LIMIT",
    "INGEST_PATHS",
    "UNSUPPORTED_LIMIT_SECONDS",
    "IngestApp",
    "IngestMiddleware",
    "document_ingest",
    "mount_ingest",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: How long SDKs are told to stop sending the item types errorkit drops.
UNSUPPORTED_LIMIT_SECONDS = 3600
#: The routes, as OpenAPI spells them.
INGEST_PATHS = ("/api/{project_id}/envelope/", "/api/{project_id}/store/")

_ROUTE = re.compile(r"^/api/([0-9]{1,18})/(envelope|store)/?$")
_UNSUPPORTED = (
    f"{UNSUPPORTED_LIMIT_SECONDS}:transaction;span;profile;replay:project:errorkit_unsupported"
)
_EXPOSED = b"x-sentry-error, x-sentry-rate-limits, retry-after"
_BASE_HEADERS = [
    (b"content-type", b"application/json"),
    (b"x-sentry-rate-limits", _UNSUPPORTED.encode()),
    (b"access-control-allow-origin", b"*"),
    (b"access-control-expose-headers", _EXPOSED),
]
_CODES = {
    400: "INGEST_BODY_INVALID",
    401: "AUTH_REQUIRED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    429: "RATE_LIMIT_EXCEEDED",
    500: "INTERNAL_ERROR",
    503: "SERVICE_UNAVAILABLE",
}


def _dumps(value: Any) -> bytes:
    if _orjson is not None:
        return _orjson.dumps(value)
    return json.dumps(value, separators=(",", ":")).encode()


@dataclass(slots=True)
class _Answer:
    status: int
    body: bytes
    headers: list[tuple[bytes, bytes]]


def _error(status: int, message: str, *, retry_after: int | None = None) -> _Answer:
    code = _CODES.get(status, "INGEST_REFUSED")
    retriable = status in {429, 503}
    body = {
        "detail": message,
        "error": {"code": code, "message": message, "retriable": retriable},
    }
    headers = [*_BASE_HEADERS, (b"x-sentry-error", _header_text(message))]
    if retry_after is not None:
        headers.append((b"retry-after", str(retry_after).encode()))
    return _Answer(status, _dumps(body), headers)


def _header_text(text: str) -> bytes:
    """``text`` safe as a header value: one line, printable ASCII, at most 200 bytes."""
    cleaned = "".join(c if " " <= c <= "~" else "?" for c in text[:200])
    return cleaned.encode("ascii")


class _Disconnected(Exception):
    """The client went away before its body arrived."""


class IngestApp:
    """The ingest endpoints as an ASGI app (answers 404 for any other path).

    ``store`` is where events are written (through ``writer``, one per app) and
    ``projects`` where keys are checked and outcomes counted. ``rate_limit`` is the
    server's default events per minute per key (``None`` or 0: no limit; a key's own
    ``rate_limit`` wins). ``scrubber`` scrubs events (default: errorkit's default scrubber,
    read at each request). ``spool`` keeps batches while the store is down (None: refuse
    with 503 instead).
    """

    def __init__(
        self,
        store: BatchWriter,
        projects: ProjectStore,
        *,
        spool: Spool | None,
        limits: IngestLimits | None = None,
        rate_limit: int | None = DEFAULT_RATE_LIMIT,
        scrubber: Scrubber | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        max_queue: int = DEFAULT_MAX_QUEUE,
        flush_interval: float = 1.0,
    ) -> None:
        if rate_limit is not None and rate_limit < 0:
            message = f"rate_limit={rate_limit!r}: give events per minute >= 1, or 0/None for none"
            raise ValueError(message)
        self.limits = limits if limits is not None else IngestLimits()
        self.rate_limit = rate_limit or None
        self.projects = projects
        self.keys = KeyCache(projects)
        self.limiter = KeyRateLimiter()
        self.outcomes = OutcomeCounter(projects)
        self.writer = GroupCommit(store, spool, batch_size=batch_size, max_queue=max_queue)
        self._scrubber = scrubber
        self.flush_interval = flush_interval
        self._ticker: asyncio.Task[None] | None = None
        self._ticker_loop: asyncio.AbstractEventLoop | None = None
        self.accepted = 0

    # -- ASGI -----------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(receive, send)
            return
        if kind == "http":
            match = _ROUTE.match(scope["path"])
            if match is not None:
                await self.handle(scope, receive, send, int(match.group(1)), match.group(2))
                return
            await _send(send, _error(404, "no such ingest route"))

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def handle(
        self, scope: Scope, receive: Receive, send: Send, project_id: int, route: str
    ) -> None:
        """Answer one request to ``/api/<project_id>/<route>/``."""
        method = scope["method"]
        if method == "OPTIONS":
            await _send(send, _preflight(scope))
            return
        if method != "POST":
            answer = _error(405, f"{method} is not allowed here; SDKs send POST")
            answer.headers.append((b"allow", b"POST, OPTIONS"))
            await _send(send, answer)
            return
        try:
            self._tick_started()
            answer = await self._ingest(scope, receive, project_id, route == "envelope")
        except _Disconnected:
            return
        except Exception as exc:  # noqa: BLE001 - an answer always goes out, with no internals
            report_internal_error("ingest.request", exc)
            answer = _error(500, "the event could not be taken; it was reported")
        await _send(send, answer)

    # -- one request ----------------------------------------------------------------------

    async def _ingest(
        self, scope: Scope, receive: Receive, project_id: int, is_envelope: bool
    ) -> _Answer:
        sentry_auth = authorization = encoding = length = None
        for name, value in scope["headers"]:
            if name == b"x-sentry-auth":
                sentry_auth = value
            elif name == b"authorization":
                authorization = value
            elif name == b"content-encoding":
                encoding = value
            elif name == b"content-length":
                length = value
        public_key = header_key(sentry_auth, authorization) or query_key(scope["query_string"])
        found: tuple[Project, ProjectKey] | None = None
        if public_key is not None or not is_envelope:
            answer, found = await self._authenticate(project_id, public_key)
            if answer is not None:
                return answer
        if found is not None:
            refused = self._blocked(found[1])
            if refused is not None:
                return refused
        limits = self.limits
        try:
            body = await self._read_body(receive, length)
            data = decode_body(body, encoding.decode("latin-1") if encoding else None, limits)
            del body
            if is_envelope:
                envelope = parse_envelope(data, limits)
                if found is None:
                    public_key = dsn_key(envelope.headers.get("dsn"))
                    answer, found = await self._authenticate(project_id, public_key)
                    if answer is not None:
                        return answer
                    assert found is not None
                    refused = self._blocked(found[1])
                    if refused is not None:
                        return refused
                project = found[0]
                records, dropped, reports = self._envelope_records(envelope, project)
                event_id = envelope.headers.get("event_id")
            else:
                assert found is not None
                project = found[0]
                event = parse_store_body(data, limits)
                records = [self._record(event, project)]
                dropped, reports = [], []
                event_id = None
        except IngestRefused as exc:
            return _error(exc.status, exc.message)
        key = found[1]
        if records:
            wait = self.limiter.take(key.id, self._rate(key), len(records))
            if wait is not None:
                self.outcomes.add(project.id, "dropped", "error", "rate_limited", len(records))
                return self._rate_limited(wait)
            try:
                await self.writer.write(records)
            except IngestUnavailable as exc:
                return _error(503, exc.message, retry_after=exc.retry_after)
            except RecordRefused as exc:
                return _error(400, str(exc))
            event_id = records[0].error_id
        counter = self.outcomes
        for item_type in dropped:
            counter.add(project.id, "dropped", item_category(item_type), "unsupported_item")
        for category, reason, quantity in reports:
            counter.add(project.id, "client_report", category, reason, quantity)
        self.accepted += len(records)
        shown = {"id": event_id} if isinstance(event_id, str) and len(event_id) <= 64 else {}
        return _Answer(200, _dumps(shown), list(_BASE_HEADERS))

    async def _authenticate(
        self, project_id: int, public_key: str | None
    ) -> tuple[_Answer | None, tuple[Project, ProjectKey] | None]:
        try:
            return None, await self.keys.authenticate(project_id, public_key)
        except KeyRefused as exc:
            answer = _error(exc.status, str(exc))
            if exc.status == 401:
                answer.headers.append((b"www-authenticate", b"Sentry"))
            return answer, None
        except StoreError as exc:
            report_internal_error("ingest.auth", exc)
            return _error(
                503, "the DSN key cannot be checked now; send again", retry_after=10
            ), None

    def _rate(self, key: ProjectKey) -> int | None:
        return key.rate_limit if key.rate_limit is not None else self.rate_limit

    def _blocked(self, key: ProjectKey) -> _Answer | None:
        wait = self.limiter.blocked(key.id, self._rate(key))
        if wait is None:
            return None
        self.outcomes.add(key.project_id, "dropped", "error", "rate_limited")
        return self._rate_limited(wait)

    def _rate_limited(self, wait: int) -> _Answer:
        message = f"this DSN key sent more events than its rate limit allows; wait {wait}s"
        answer = _error(429, message, retry_after=wait)
        answer.headers[1] = (b"x-sentry-rate-limits", f"{wait}:error:key, {_UNSUPPORTED}".encode())
        return answer

    async def _read_body(self, receive: Receive, length: bytes | None) -> bytes:
        """The body, read as it streams in, refused (413) as soon as it passes the limit."""
        limit = self.limits.max_body_bytes
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                raise IngestRefused(400, "Content-Length is not a number") from None
            if declared > limit:
                refusal = f"the body has {declared} bytes, beyond max_body_bytes={limit}"
                raise IngestRefused(413, refusal)
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                raise _Disconnected
            chunk = message.get("body", b"")
            if chunk:
                size += len(chunk)
                if size > limit:
                    raise IngestRefused(413, f"the body is larger than max_body_bytes={limit}")
                chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def _record(self, event: Any, project: Project) -> ErrorRecord:
        if not isinstance(event, dict):
            raise IngestRefused(400, "the event must be a JSON object")
        scrubber = self._scrubber if self._scrubber is not None else default_scrubber()
        return event_to_record(
            event, project=project.name, scrubber=scrubber, received_at=datetime.now(UTC)
        )

    def _envelope_records(
        self, envelope: Any, project: Project
    ) -> tuple[list[ErrorRecord], list[str], list[tuple[str, str, int]]]:
        records: list[ErrorRecord] = []
        dropped: list[str] = []
        reports: list[tuple[str, str, int]] = []
        limits = self.limits
        for index, item in enumerate(envelope.items):
            kind = item.type
            if kind == "event":
                event = parse_json(item.payload, limits, f"item {index} (event)")
                records.append(self._record(event, project))
            elif kind == "client_report":
                # An SDK's own telemetry: a malformed one is ignored, never the envelope.
                with contextlib.suppress(IngestRefused):
                    report = parse_json(item.payload, limits, f"item {index} (client_report)")
                    reports.extend(client_report_items(report))
            else:
                dropped.append(kind)
        return records, dropped, reports

    # -- background -----------------------------------------------------------------------

    def _tick_started(self) -> None:
        loop = asyncio.get_running_loop()
        if self._ticker is None or self._ticker_loop is not loop or self._ticker.done():
            self._ticker_loop = loop
            self._ticker = loop.create_task(self._tick(), name="errorkit-ingest-outcomes")

    async def _tick(self) -> None:
        """Every ``flush_interval``: add the outcomes counted to the store."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.flush_interval)
            if self.outcomes.pending():
                await loop.run_in_executor(None, self.outcomes.flush)

    async def aclose(self) -> None:
        """Write every queued event (or spool it), add the outcomes counted, stop."""
        ticker, self._ticker = self._ticker, None
        if ticker is not None and self._ticker_loop is asyncio.get_running_loop():
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await ticker
        await self.writer.aclose()
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self.outcomes.flush)


def _preflight(scope: Scope) -> _Answer:
    """CORS preflight for browser SDKs: any origin may POST here."""
    requested = b"content-type, x-sentry-auth, content-encoding"
    for name, value in scope["headers"]:
        if name == b"access-control-request-headers" and len(value) <= 1024:
            requested = value
    headers = [
        (b"access-control-allow-origin", b"*"),
        (b"access-control-allow-methods", b"POST, OPTIONS"),
        (b"access-control-allow-headers", requested),
        (b"access-control-expose-headers", _EXPOSED),
        (b"access-control-max-age", b"86400"),
    ]
    return _Answer(200, b"", headers)


async def _send(send: Send, answer: _Answer) -> None:
    headers = answer.headers
    headers.append((b"content-length", str(len(answer.body)).encode()))
    await send({"type": "http.response.start", "status": answer.status, "headers": headers})
    await send({"type": "http.response.body", "body": answer.body})


class IngestMiddleware:
    """Serves the ingest routes in front of ``app`` (everything else goes to ``app``),
    so an ingest request passes through no other middleware."""

    def __init__(self, app: ASGIApp, ingest: IngestApp) -> None:
        self.app = app
        self.ingest = ingest

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path = scope["path"]
            if path.startswith("/api/"):
                match = _ROUTE.match(path)
                if match is not None:
                    await self.ingest.handle(
                        scope, receive, send, int(match.group(1)), match.group(2)
                    )
                    return
        await self.app(scope, receive, send)


# -- OpenAPI ----------------------------------------------------------------------------------


def _operation(operation_id: str, summary: str, description: str, media: str) -> dict[str, Any]:
    def error(text: str) -> dict[str, Any]:
        return {
            "description": text,
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/IngestError"}}
            },
        }

    return {
        "tags": ["ingest"],
        "summary": summary,
        "description": description,
        "operationId": operation_id,
        "security": [{"SentryAuth": []}, {"SentryKeyQuery": []}, {}],
        "parameters": [
            {
                "name": "project_id",
                "in": "path",
                "required": True,
                "schema": {"type": "integer", "minimum": 1},
                "description": "The project id that ends the DSN.",
            },
            {
                "name": "sentry_key",
                "in": "query",
                "required": False,
                "schema": {"type": "string"},
                "description": "The DSN key, for clients that cannot send headers.",
            },
            {
                "name": "Content-Encoding",
                "in": "header",
                "required": False,
                "schema": {"type": "string", "enum": ["gzip", "deflate", "br", "identity"]},
            },
        ],
        "requestBody": {
            "required": True,
            "content": {media: {"schema": {"type": "string", "format": "binary"}}},
        },
        "responses": {
            "200": {
                "description": "Stored, or spooled to be stored: safe to forget.",
                "headers": {
                    "X-Sentry-Rate-Limits": {
                        "description": "Item types errorkit drops, for the SDK to stop sending.",
                        "schema": {"type": "string"},
                    }
                },
                "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/IngestAccepted"}}
                },
            },
            "400": error("The body is malformed (the message says where)."),
            "401": error("No DSN key, or one not known here."),
            "403": error("The key is revoked, or is another project's."),
            "413": error("The body, the envelope, an item or a header is too big."),
            "415": error("Unknown Content-Encoding."),
            "429": error("The key's rate limit: wait Retry-After seconds."),
            "503": error("Neither stored nor spooled: send again after Retry-After."),
        },
    }


def document_ingest(schema: dict[str, Any]) -> dict[str, Any]:
    """Add the ingest routes to an OpenAPI ``schema`` (in place; also returned)."""
    paths = schema.setdefault("paths", {})
    paths[INGEST_PATHS[0]] = {
        "post": _operation(
            "ingest_envelope",
            "Take a Sentry envelope",
            "What Sentry SDKs send. Event items are stored as errorkit errors; other item "
            "types are accepted, counted and dropped. Authenticated by the DSN key "
            "(X-Sentry-Auth, Authorization: Sentry, ?sentry_key= or the envelope's dsn), "
            "not by a tracker token.",
            "application/x-sentry-envelope",
        )
    }
    paths[INGEST_PATHS[1]] = {
        "post": _operation(
            "ingest_store",
            "Take one event (legacy store endpoint)",
            "What old Sentry SDKs send: one event as JSON (or base64 of zlib'd JSON).",
            "application/json",
        )
    }
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas["IngestAccepted"] = {
        "type": "object",
        "properties": {"id": {"type": "string", "description": "The event id (error_id)."}},
    }
    schemas["IngestError"] = {
        "type": "object",
        "required": ["detail"],
        "properties": {
            "detail": {"type": "string"},
            "error": {
                "type": "object",
                "properties": {
                    "code": {"type": "string"},
                    "message": {"type": "string"},
                    "retriable": {"type": "boolean"},
                },
            },
        },
    }
    security = components.setdefault("securitySchemes", {})
    security["SentryAuth"] = {
        "type": "apiKey",
        "in": "header",
        "name": "X-Sentry-Auth",
        "description": "Sentry sentry_key=<public key>, sentry_version=7",
    }
    security["SentryKeyQuery"] = {"type": "apiKey", "in": "query", "name": "sentry_key"}
    return schema


def mount_ingest(
    app: Any,
    store: ErrorStore,
    *,
    rate_limit: int | None = DEFAULT_RATE_LIMIT,
    limits: IngestLimits | None = None,
    spool: Spool | str | os.PathLike[str] | None = None,
    scrubber: Scrubber | None = None,
) -> IngestApp:
    """Serve the ingest routes at the root of the FastAPI/Starlette ``app``, in front of
    its other middleware, documented in its OpenAPI schema; the queue is drained at
    shutdown. ``spool`` is the directory (or Spool) batches wait in while ``store`` is down
    (default: the store's spool directory, as capture uses, sized by
    ``spool_max_bytes``)."""
    from errorkit.capturing.spool import default_spool_dir
    from errorkit.config import get_settings

    if not isinstance(spool, Spool):
        settings = get_settings()
        directory = spool or settings.spool_dir or default_spool_dir(store.url)
        spool = Spool(directory, settings.spool_max_bytes)
    ingest = IngestApp(
        store,
        ProjectStore(store, cache_ttl=0),  # IngestApp caches keys itself, off the event loop
        spool=spool,
        limits=limits,
        rate_limit=rate_limit,
        scrubber=scrubber,
    )
    # Outside every middleware of the app (add_middleware would put it inside Starlette's
    # error middleware and the app's own): an ingest request goes straight to the ingest,
    # which answers every failure itself.
    build_stack = app.build_middleware_stack

    def build_middleware_stack() -> ASGIApp:
        return IngestMiddleware(build_stack(), ingest)

    app.build_middleware_stack = build_middleware_stack
    app.state.errorkit_ingest = ingest
    # Before the store is closed: the drain still writes to it.
    app.router.on_shutdown.insert(0, ingest.aclose)
    build = app.openapi

    def openapi() -> dict[str, Any]:
        return document_ingest(build())

    app.openapi = openapi
    return ingest
