"""errorkit's own HTTP transport, the tracker's side: ``POST /api/<project_id>/errorkit/batch/``.

Apps configured with ``store_url="http://<key>@host:port/<project_id>"`` send their
batches here (:mod:`errorkit.store.http` is the client). The route is mounted at the root of
:func:`errorkit.server.create_app`, beside the Sentry-compatible ingest, whatever the API's
prefix. In order:

1. the project key (``X-Sentry-Auth: Sentry sentry_key=...``, ``Authorization: Sentry
   sentry_key=...`` or ``?sentry_key=``) is checked with
   :meth:`~errorkit.store.projects.ProjectStore.authenticate` before the body is read:
   401 for a missing or unknown key, 403 for a revoked one or one of another project;
2. the body is read up to :data:`MAX_BODY_BYTES` (413 past it), inflated (``gzip``,
   ``deflate`` or none; 415 for another encoding) up to :data:`MAX_BATCH_BYTES`, never
   further, so a small bomb costs no more than that (413);
3. it is decoded (:func:`errorkit.store.wire.decode_message`), every field's type checked;
   a record the store's contract refuses (an empty ``error_id`` or ``fingerprint``, a bad
   status, ...) makes the batch a 400, and nothing of it is written;
4. it is written on a worker thread with the store's ``write_batch`` (then ``write_slim``,
   ``write_request_counts``), idempotently by ``error_id``/``delta_id``/batch id;
5. 200 with the :class:`~errorkit.store.WriteResult` (plus ``slim_written`` and
   ``requests_added``) only once that returned; a store failure is a 503 with
   ``Retry-After`` (the client spools and retries; a retry never counts twice).

Records keep the ``service`` the app gave them: one project may hold several services.
"""

from __future__ import annotations

import re
import zlib
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from errorkit.errors import (
    AuthenticationError,
    AuthorizationError,
    DatabaseUnavailableError,
    InvalidInputError,
    NotFoundError,
    PayloadTooLargeError,
    UnsupportedMediaTypeError,
)
from errorkit.server.auth import log_security_event
from errorkit.store import ErrorStore, InvalidRecord, StoreError
from errorkit.store.projects import KeyRefused, ProjectStore
from errorkit.store.wire import Message, decode_message

__all__ = ["BATCH_PATH", "MAX_BATCH_BYTES", "MAX_BODY_BYTES", "RETRY_AFTER", "mount_transport"]

#: The route, at the root of the app.
BATCH_PATH = "/api/{project_id}/errorkit/batch/"
#: The largest request body accepted, as sent (gzip'd): 16 MiB.
MAX_BODY_BYTES = 16 * 1024 * 1024
#: The largest batch accepted once inflated: 64 MiB (500 records of the largest size the
#: capture pipeline builds fit several times over).
MAX_BATCH_BYTES = 64 * 1024 * 1024
#: Seconds a 503 asks the client to wait before retrying.
RETRY_AFTER = 5

_KEY_IN_HEADER = re.compile(r"(?:^|[\s,])sentry_key\s*=\s*([^\s,]+)", re.IGNORECASE)


def _public_key(request: Request) -> str | None:
    """The key from ``X-Sentry-Auth``, ``Authorization: Sentry ...`` or ``?sentry_key=``."""
    for header in ("x-sentry-auth", "authorization"):
        value = request.headers.get(header)
        if value and value.lstrip().lower().startswith("sentry "):
            match = _KEY_IN_HEADER.search(value.lstrip()[7:])
            if match is not None:
                return match.group(1)
    return request.query_params.get("sentry_key") or None


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length", "")
    too_large = f"the batch is larger than {limit} bytes as sent; send smaller batches"
    if declared.isdigit() and int(declared) > limit:
        raise PayloadTooLargeError(too_large)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLargeError(too_large)
        chunks.append(chunk)
    return b"".join(chunks)


def inflate(body: bytes, encoding: str | None, limit: int = MAX_BATCH_BYTES) -> bytes:
    """``body`` decoded from its ``Content-Encoding``, never past ``limit`` bytes."""
    name = (encoding or "identity").strip().lower()
    too_large = f"the batch is larger than {limit} bytes once inflated; send smaller batches"
    if name == "identity":
        if len(body) > limit:
            raise PayloadTooLargeError(too_large)
        return body
    if name not in ("gzip", "deflate"):
        message = f"Content-Encoding {name!r} is not accepted; send gzip, deflate or none"
        raise UnsupportedMediaTypeError(message)
    # gzip framing for gzip; zlib framing (or raw, as some clients send) for deflate.
    wbits = 31 if name == "gzip" else (15 if body[:1] == b"\x78" else -15)
    inflater = zlib.decompressobj(wbits=wbits)
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        message = f"the body is not valid {name} data ({exc})"
        raise InvalidInputError(message) from None
    if len(out) > limit or inflater.unconsumed_tail:
        raise PayloadTooLargeError(too_large)
    if not inflater.eof:
        message = f"the {name} data ends before its end marker (cut short)"
        raise InvalidInputError(message)
    if inflater.unused_data:
        message = f"the body has data after its {name} stream; send one stream"
        raise InvalidInputError(message)
    return out


def _decode(body: bytes, encoding: str | None) -> Message:
    data = inflate(body, encoding)
    try:
        return decode_message(data)
    except ValueError as exc:
        raise InvalidInputError(f"the batch cannot be read: {exc}") from None


def _write(store: ErrorStore, message: Message) -> dict[str, Any]:
    """Write every part of ``message``; the answer's body."""
    answer: dict[str, Any] = {
        "inserted": 0,
        "duplicates": 0,
        "deltas_applied": 0,
        "deltas_skipped": 0,
        "occurrences": 0,
        "new_groups": [],
        "regressed_groups": [],
        "slim_written": 0,
        "requests_added": 0,
    }
    if message.records or message.deltas:
        result = store.write_batch(message.records, message.deltas)
        answer.update(
            inserted=result.inserted,
            duplicates=result.duplicates,
            deltas_applied=result.deltas_applied,
            deltas_skipped=result.deltas_skipped,
            occurrences=result.occurrences,
            new_groups=list(result.new_groups),
            regressed_groups=list(result.regressed_groups),
        )
    if message.slim:
        answer["slim_written"] = store.write_slim(message.slim)
    if message.request_counts:
        answer["requests_added"] = store.write_request_counts(
            message.request_counts, batch_id=message.counts_batch_id
        )
    return answer


def mount_transport(app: FastAPI, store: ErrorStore, projects: ProjectStore) -> None:
    """Add ``POST /api/<project_id>/errorkit/batch/`` to ``app``, writing into ``store``
    for the projects and keys of ``projects``."""

    async def receive_batch(project_id: str, request: Request) -> JSONResponse:
        if not project_id.isascii() or not project_id.isdigit():
            unknown = f"no project has the id {project_id[:40]!r}; a project id is a number"
            raise NotFoundError(unknown)
        key = _public_key(request)
        try:
            await run_in_threadpool(projects.authenticate, int(project_id), key)
        except KeyRefused as exc:
            log_security_event(
                "project_key_refused",
                "errorkit transport: project key refused",
                reason=exc.reason,
                status=exc.status,
                project_id=int(project_id),
                client=None if request.client is None else request.client.host,
            )
            refused = f"the project key was refused: {exc}"
            if exc.status == 403:
                raise AuthorizationError(refused) from None
            raise AuthenticationError(refused) from None
        except StoreError as exc:
            raise DatabaseUnavailableError(retry_after=RETRY_AFTER) from exc
        body = await _read_body(request, MAX_BODY_BYTES)
        message = await run_in_threadpool(_decode, body, request.headers.get("content-encoding"))
        try:
            answer = await run_in_threadpool(_write, store, message)
        except InvalidRecord as exc:
            raise InvalidInputError(f"the batch breaks the store's contract: {exc}") from None
        except StoreError as exc:
            raise DatabaseUnavailableError(retry_after=RETRY_AFTER) from exc
        return JSONResponse(answer)

    app.add_api_route(
        BATCH_PATH,
        receive_batch,
        methods=["POST"],
        tags=["transport"],
        summary="Receive a batch from errorkit's HTTP transport",
        description=(
            "A gzip'd batch (records, count deltas, slim rows, request counts) from an app "
            "whose store_url is this tracker. Authenticated by a project key, not a token."
        ),
        response_model=None,
    )
