"""Errors in streamed answers (Server-Sent Events and other chunked bodies).

Once a stream has started, its status and headers are on the wire: an error can no longer
become a 500. :func:`stream_errors` wraps the generator that produces the chunks; when it
fails mid-stream, the wrapper reports the error (``error_type="stream_error"``), sends one
error event and ``data: [DONE]``, and ends the stream cleanly::

    return StreamingResponse(stream_errors(chunks()), media_type="text/event-stream")

The stored event carries what the client already received: the first
:data:`MAX_RESPONSE_KEPT` bytes of the stream (then scrubbed and cut to the capture's
``max_payload_bytes`` like every payload) in ``response_payload``. The failure is logged on
the ``errorkit.stream`` logger with its error id, the id the error event shows.

A client that goes away (the server closes the generator, or cancels the task that awaits
it) stops the generator quietly: that is not an error of the app.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from typing import Any, TypeVar, cast, overload

from errorkit._reporting import report
from errorkit.classification import classify
from errorkit.context import current_context
from errorkit.errors import ErrorType
from errorkit.http._common import current_request
from errorkit.http.envelope import _retry_after_seconds, safe_for_client

__all__ = ["DONE", "MAX_RESPONSE_KEPT", "error_event", "sse_event", "stream_errors"]

DONE = "data: [DONE]\n\n"
#: How much of a failed stream's answer (bytes already sent) is kept for its stored event.
MAX_RESPONSE_KEPT = 65_536

logger = logging.getLogger("errorkit.stream")

Chunk = TypeVar("Chunk", str, bytes)


def sse_event(data: Any, *, event: str | None = None) -> str:
    """One SSE event whose ``data`` is ``data`` as compact JSON (a ``str`` as it is)."""
    text = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    lines = "".join(f"data: {line}\n" for line in text.split("\n"))
    return (f"event: {event}\n" if event else "") + lines + "\n"


def error_event(
    exc: BaseException,
    *,
    endpoint: str | None = None,
    response_payload: str | None = None,
    bytes_sent: int | None = None,
) -> str:
    """Report ``exc`` as a stream error, log it with its error id, and return its SSE error
    event: ``data: {"error": {"message", "type", "code", "error_id", "request_id",
    "retriable"}}``. ``response_payload`` is what the client already received (stored,
    scrubbed and capped, with the event); ``bytes_sent`` how much that was."""
    c = classify(exc)
    ctx = current_context()
    state = current_request()
    where = endpoint or ctx.endpoint or (state.path if state else None)
    error_id = report(
        exc,
        error_type=str(ErrorType.STREAM),
        endpoint=where,
        method=ctx.method,
        user_agent=state.user_agent if state else None,
        request_id=ctx.request_id,
        session_id=ctx.session_id,
        request_payload=state.payload() if state else None,
        response_payload=response_payload,
        status=c.status,
        severity=str(c.severity),
    )
    logger.error(
        "stream %s failed%s: %s (%s, error_id=%s)",
        where or "-",
        "" if bytes_sent is None else f" after {bytes_sent} bytes sent",
        type(exc).__name__,
        c.code,
        error_id,
        exc_info=exc,
        extra={
            "error_id": error_id,
            "error_code": c.code,
            "error_type": str(ErrorType.STREAM),
            "endpoint": where,
            "bytes_sent": bytes_sent,
        },
    )
    safe = safe_for_client(c)
    error: dict[str, Any] = {
        "message": safe.message,
        "type": str(ErrorType.STREAM),
        "code": safe.code,
        "error_id": error_id,
        "request_id": ctx.request_id,
        "retriable": safe.retriable,
    }
    retry_after = _retry_after_seconds(safe)
    if retry_after is not None:
        error["retry_after"] = retry_after
    return sse_event({"error": error})


class _Sent:
    """The start of what a stream sent (at most :data:`MAX_RESPONSE_KEPT` bytes) and how
    much it sent in all."""

    __slots__ = ("chunks", "kept", "total")

    def __init__(self) -> None:
        self.chunks: list[str | bytes] = []
        self.kept = 0
        self.total = 0

    def add(self, chunk: str | bytes) -> None:
        size = len(chunk)  # characters for str: close enough for a bound
        self.total += size
        if self.kept < MAX_RESPONSE_KEPT:
            self.chunks.append(chunk)
            self.kept += size

    def text(self) -> str | None:
        if not self.chunks:
            return None
        parts = [c.decode("utf-8", "replace") if isinstance(c, bytes) else c for c in self.chunks]
        text = "".join(parts)[:MAX_RESPONSE_KEPT]
        if self.total > len(text):
            text += f"...[{self.total - len(text)} more bytes sent]"
        return text


def _ending(
    exc: Exception, as_bytes: bool, done: bool, endpoint: str | None, sent: _Sent
) -> list[Any]:
    """The chunks that end a failed stream (its error event, then ``[DONE]`` unless
    ``done`` is false), as ``bytes`` when the source's chunks were."""
    chunks = [
        error_event(exc, endpoint=endpoint, response_payload=sent.text(), bytes_sent=sent.total)
    ]
    if done:
        chunks.append(DONE)
    return [c.encode() for c in chunks] if as_bytes else chunks


@overload
def stream_errors(
    source: AsyncIterable[Chunk], *, done: bool = True, endpoint: str | None = None
) -> AsyncIterator[Chunk]: ...


@overload
def stream_errors(
    source: Iterable[Chunk], *, done: bool = True, endpoint: str | None = None
) -> Iterator[Chunk]: ...


def stream_errors(
    source: AsyncIterable[Chunk] | Iterable[Chunk],
    *,
    done: bool = True,
    endpoint: str | None = None,
) -> AsyncIterator[Chunk] | Iterator[Chunk]:
    """Pass ``source``'s chunks through; on failure send the error event (and ``[DONE]``
    unless ``done=False``) and stop. Sync sources give a sync iterator, async ones an
    async iterator; error events are ``bytes`` when the source's chunks were."""
    if isinstance(source, AsyncIterable):
        return _async_stream(source, done, endpoint)
    if isinstance(source, Iterable):
        return _sync_stream(source, done, endpoint)
    msg = (
        f"stream_errors() needs an iterable or async iterable of str or bytes chunks, "
        f"not {type(source).__name__}"
    )
    raise TypeError(msg)


async def _async_stream(
    source: AsyncIterable[Chunk], done: bool, endpoint: str | None
) -> AsyncIterator[Chunk]:
    iterator = aiter(source)
    as_bytes = False
    sent = _Sent()
    try:
        while True:
            try:
                chunk = await anext(iterator)
            except StopAsyncIteration:
                return
            except Exception as exc:  # noqa: BLE001 - every failure of the source ends the stream
                for ending in _ending(exc, as_bytes, done, endpoint, sent):
                    yield cast(Chunk, ending)
                return
            as_bytes = isinstance(chunk, bytes)
            sent.add(chunk)
            yield chunk
    finally:
        # GeneratorExit / CancelledError (the client went away) land here too: close the
        # source so its own cleanup runs, and report nothing.
        aclose = getattr(iterator, "aclose", None)
        if aclose is not None:
            await aclose()


def _sync_stream(source: Iterable[Chunk], done: bool, endpoint: str | None) -> Iterator[Chunk]:
    iterator = iter(source)
    as_bytes = False
    sent = _Sent()
    try:
        while True:
            try:
                chunk = next(iterator)
            except StopIteration:
                return
            except Exception as exc:  # noqa: BLE001 - every failure of the source ends the stream
                for ending in _ending(exc, as_bytes, done, endpoint, sent):
                    yield cast(Chunk, ending)
                return
            as_bytes = isinstance(chunk, bytes)
            sent.add(chunk)
            yield chunk
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            close()
