"""Streaming answers: an error mid-stream becomes an SSE error event then [DONE]; a client
that goes away stops the generator quietly."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from _apps import Client

from errorkit.http.sse import DONE, sse_event, stream_errors


def _events(body: str) -> list[str]:
    return [e for e in body.split("\n\n") if e]


def _error(event: str) -> dict[str, Any]:
    assert event.startswith("data: ")
    payload: dict[str, Any] = json.loads(event[len("data: ") :])["error"]
    return payload


@pytest.mark.parametrize(
    ("framework", "source"),
    [
        ("fastapi", "sync"),
        ("fastapi", "async"),
        ("starlette", "sync"),
        ("starlette", "async"),
        ("flask", "sync"),
    ],
)
def test_failure_mid_stream_sends_error_event_then_done(
    framework: str, client_for: Any, reports: list[Any], source: str
) -> None:
    """The chunks sent so far, then one error event with the error id, then [DONE]."""
    client: Client = client_for(framework)
    query = "?fail_after=2" + ("&async=1" if source == "async" else "")
    answer = client.get("/stream" + query, headers={"X-Request-ID": "s-1"})
    assert answer.status == 200
    events = _events(answer.text)
    assert events[:2] == ['data: {"n":0}', 'data: {"n":1}']
    assert events[3] == DONE.strip()
    assert len(events) == 4
    error = _error(events[2])
    assert error["type"] == "stream_error"
    assert error["code"] == "NETWORK_ERROR"
    assert error["request_id"] == "s-1"
    assert len(reports) == 1
    assert error["error_id"] == reports[0].error_id
    assert reports[0].context["error_type"] == "stream_error"
    assert reports[0].context["request_id"] == "s-1"


def test_stream_error_event_hides_exception_text(reports: list[Any]) -> None:
    """The error event carries a safe message, never the exception's own text."""

    def source() -> Iterator[str]:
        yield "data: 1\n\n"
        raise RuntimeError("token=sk_live_51HqLyjWDarjtT1zdp7dc leaked")

    events = list(stream_errors(source()))
    assert "sk_live" not in "".join(events)
    assert _error(events[1])["message"] == "An internal error occurred."


def test_bytes_chunks_give_bytes_error_events(reports: list[Any]) -> None:
    """A stream of bytes gets its error event and [DONE] as bytes too."""

    def source() -> Iterator[bytes]:
        yield b"data: 1\n\n"
        raise TimeoutError

    events = list(stream_errors(source()))
    assert all(isinstance(e, bytes) for e in events)
    assert events[-1] == DONE.encode()


def test_done_can_be_left_out(reports: list[Any]) -> None:
    """done=False sends the error event without [DONE]."""

    def source() -> Iterator[str]:
        raise TimeoutError
        yield ""

    events = list(stream_errors(source(), done=False))
    assert len(events) == 1
    assert _error(events[0])["code"] == "TIMEOUT_ERROR"


def test_stream_that_ends_normally_is_untouched(reports: list[Any]) -> None:
    """Without a failure the chunks pass through unchanged and nothing is reported."""
    assert list(stream_errors(iter(["a", "b"]))) == ["a", "b"]
    assert reports == []


def test_not_an_iterable_is_refused() -> None:
    """stream_errors() of something that is not iterable says what it needs."""
    with pytest.raises(TypeError, match="iterable or async iterable"):
        stream_errors(42)  # type: ignore[call-overload]


@pytest.mark.parametrize(
    ("data", "event", "expected"),
    [
        ({"a": 1}, None, 'data: {"a":1}\n\n'),
        ("line1\nline2", None, "data: line1\ndata: line2\n\n"),
        ("x", "ping", "event: ping\ndata: x\n\n"),
    ],
)
def test_sse_event_framing(data: Any, event: str | None, expected: str) -> None:
    """sse_event() frames JSON or text as one event, one data line per line."""
    assert sse_event(data, event=event) == expected


async def test_cancelled_stream_is_not_reported(reports: list[Any]) -> None:
    """Cancellation (the client went away) propagates and reports nothing."""
    closed = asyncio.Event()

    async def source() -> AsyncIterator[str]:
        try:
            yield "data: 1\n\n"
            raise asyncio.CancelledError
        finally:
            closed.set()

    stream = stream_errors(source())
    assert await anext(stream) == "data: 1\n\n"
    with pytest.raises(asyncio.CancelledError):
        await anext(stream)
    assert closed.is_set()
    assert reports == []


def _endless_app(closed: threading.Event) -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import StreamingResponse
    from starlette.routing import Route

    import errorkit.starlette

    async def endless() -> AsyncIterator[str]:
        try:
            n = 0
            while True:
                yield sse_event({"n": n})
                n += 1
                await asyncio.sleep(0.01)
        finally:
            closed.set()

    async def stream(request: Request) -> StreamingResponse:
        return StreamingResponse(stream_errors(endless()), media_type="text/event-stream")

    app = Starlette(routes=[Route("/endless", stream)])
    errorkit.starlette.install(app)
    return app


async def test_asgi_disconnect_stops_generator_quietly(reports: list[Any]) -> None:
    """An http.disconnect while streaming closes the generator and reports nothing."""
    closed = threading.Event()
    app = _endless_app(closed)
    first_chunk = asyncio.Event()
    sent: list[dict[str, Any]] = []
    requested = False

    async def receive() -> dict[str, Any]:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await first_chunk.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)
        if message["type"] == "http.response.body" and message.get("body"):
            first_chunk.set()

    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/endless",
        "raw_path": b"/endless",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"t")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    await app(scope, receive, send)
    assert closed.is_set()
    assert reports == []
    assert sent[0]["status"] == 200


def test_flask_client_close_stops_generator_quietly(reports: list[Any]) -> None:
    """When the WSGI server closes the response (client gone), the generator stops quietly."""
    from flask import Flask, Response

    import errorkit.flask

    closed = threading.Event()

    def endless() -> Iterator[str]:
        try:
            n = 0
            while True:
                yield sse_event({"n": n})
                n += 1
        finally:
            closed.set()

    app = Flask("stream")

    @app.get("/endless")
    def stream() -> Response:
        return Response(stream_errors(endless()), mimetype="text/event-stream")

    errorkit.flask.install(app)
    response = app.test_client().get("/endless", buffered=False)
    assert next(iter(response.response)) == b'data: {"n":0}\n\n'
    response.close()
    assert closed.is_set()
    assert reports == []


def test_real_client_disconnect_through_uvicorn(reports: list[Any]) -> None:
    """Through a real uvicorn server, a client that hangs up mid-stream is quiet."""
    import uvicorn

    closed = threading.Event()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    port = sock.getsockname()[1]
    config = uvicorn.Config(_endless_app(closed), log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
            conn.sendall(b"GET /endless HTTP/1.1\r\nHost: t\r\n\r\n")
            received = b""
            while b"data: " not in received:
                chunk = conn.recv(4096)
                assert chunk, "the server closed the stream before the first event"
                received += chunk
        assert b"200 OK" in received
        assert closed.wait(timeout=30), "the generator was not closed after the client left"
        assert reports == []
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


@pytest.mark.parametrize("source", ["sync", "async"])
def test_stream_error_stores_the_partial_answer_and_logs_its_error_id(
    source: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The stored event's response_payload is what the client already got (scrubbed), and
    the failure is logged with the error id the error event shows."""
    from errorkit.testing import capture_events

    secret = "sk_live_51HqLyjWDarjtT1zdp7dc"

    def chunks() -> Iterator[str]:
        yield sse_event({"delta": "Hello"})
        yield sse_event({"delta": f"key {secret}"})
        raise ConnectionResetError("upstream reset the stream")

    async def achunks() -> AsyncIterator[str]:
        for chunk in chunks():
            yield chunk

    async def collect() -> list[str]:
        return [c async for c in stream_errors(achunks(), endpoint="/v1/chat")]

    with capture_events() as records, caplog.at_level("ERROR", logger="errorkit.stream"):
        if source == "sync":
            events = list(stream_errors(chunks(), endpoint="/v1/chat"))
        else:
            events = asyncio.run(collect())
    error_id = _error(events[2])["error_id"]
    (record,) = records
    assert record.error_id == error_id
    assert record.error_type == "stream_error"
    assert record.response_payload is not None
    assert 'data: {"delta":"Hello"}' in record.response_payload
    assert secret not in record.response_payload
    (logged,) = [r for r in caplog.records if r.name == "errorkit.stream"]
    assert error_id in logged.getMessage()
    assert logged.__dict__["error_id"] == error_id
    assert logged.exc_info is not None and logged.exc_info[1] is not None


def test_stream_keeps_at_most_max_response_kept() -> None:
    """Only the start of a long stream is kept, with a note of how much more was sent."""
    from errorkit.http.sse import MAX_RESPONSE_KEPT
    from errorkit.testing import capture_events

    def chunks() -> Iterator[bytes]:
        for _ in range(40):
            yield b"x" * 4096
        raise ConnectionResetError("reset")

    with capture_events(max_payload_bytes=10 * MAX_RESPONSE_KEPT) as records:
        list(stream_errors(chunks()))
    (record,) = records
    payload = record.response_payload
    assert payload is not None
    assert payload.startswith("x" * MAX_RESPONSE_KEPT)
    assert payload.endswith(f"...[{40 * 4096 - MAX_RESPONSE_KEPT} more bytes sent]")
