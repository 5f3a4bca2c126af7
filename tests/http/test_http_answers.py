"""The one HTTP error answer, the same in FastAPI, Starlette and Flask, in every format."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from _apps import DB_FAILURE, ORIGIN, SECRET, STATUSES, Client, error_of

from errorkit.classification import Classification, code_for_status
from errorkit.http.envelope import ErrorAnswer, ErrorMeta

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
MEDIA = {"default": "application/json", "wrapped": "application/json"}
MEDIA["problem"] = "application/problem+json"


def _assert_envelope(fmt: str, answer: Any, status: int) -> dict[str, Any]:
    assert answer.status == status
    assert answer.headers["content-type"].startswith(MEDIA[fmt])
    error = error_of(fmt, answer.json())
    assert UUID_RE.match(error["error_id"])
    assert error["request_id"] == answer.headers["x-request-id"]
    if fmt == "problem":
        assert error["status"] == status
    return error


@pytest.mark.parametrize("status", STATUSES)
def test_framework_http_exception_answers_with_its_status(
    client: Client, fmt: str, status: int
) -> None:
    """A framework HTTP exception of any status becomes errorkit's answer with that status."""
    answer = client.get(f"/status/{status}")
    error = _assert_envelope(fmt, answer, status)
    assert error["code"] == code_for_status(status)
    assert error["retriable"] is (status in (429, 502, 503))


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_from_framework_exception(client: Client, fmt: str, status: int) -> None:
    """429 and 503 keep Retry-After as a header and show it in the body."""
    answer = client.get(f"/status/{status}")
    assert answer.headers["retry-after"] == "30"
    assert error_of(fmt, answer.json())["retry_after"] == 30


def test_retry_after_from_rate_limit_error(client: Client, fmt: str) -> None:
    """RateLimitError(retry_after=30) answers 429 with Retry-After: 30."""
    answer = client.get("/rate")
    error = _assert_envelope(fmt, answer, 429)
    assert answer.headers["retry-after"] == "30"
    assert error["code"] == "RATE_LIMIT_EXCEEDED"
    assert error["retry_after"] == 30


def test_method_not_allowed_keeps_allow(client: Client, fmt: str) -> None:
    """The router's own 405 keeps its Allow header."""
    answer = client.post("/only-get")
    _assert_envelope(fmt, answer, 405)
    assert "GET" in answer.headers["allow"]


def test_unknown_route_is_not_found(client: Client, fmt: str) -> None:
    """A path no route matches answers 404 NOT_FOUND."""
    error = _assert_envelope(fmt, client.get("/no/such/route"), 404)
    assert error["code"] == "NOT_FOUND"


def test_app_error_answers_with_its_code_and_details(client: Client, fmt: str) -> None:
    """An errorkit error keeps its code, message and details."""
    error = _assert_envelope(fmt, client.get("/items/7"), 404)
    assert error["code"] == "NOT_FOUND"
    assert error["message"] == "The resource was not found."
    assert error["details"] == {"item_id": 7}


def test_validation_gives_one_entry_per_field(client: Client, fmt: str) -> None:
    """Invalid fields each get an entry with location, message and type."""
    answer = client.post("/items", json_body={"name": 42})
    error = _assert_envelope(fmt, answer, 422)
    assert error["code"] == "VALIDATION_ERROR"
    by_field = {e["loc"][-1]: e for e in error["field_errors"]}
    assert set(by_field) == {"name", "price"}
    assert by_field["price"]["type"] == "missing"
    assert by_field["name"]["type"] == "string_type"
    assert all(e["message"] for e in by_field.values())


def test_unexpected_error_hides_text_and_stack(client: Client, fmt: str) -> None:
    """A crash answers 500 with a generic message and an error id, never its text or stack."""
    answer = client.get("/boom")
    error = _assert_envelope(fmt, answer, 500)
    assert error["code"] == "INTERNAL_ERROR"
    assert error["message"] == "An internal error occurred."
    for leak in (SECRET, "password", "cannot reach db", "Traceback", "RuntimeError", ".py"):
        assert leak not in answer.text


def test_server_error_answers_its_public_message_not_its_text(
    client: Client, fmt: str, reports: list[Any]
) -> None:
    """A 5xx errorkit error answers its class's message; its own text (internals) only goes
    to the report, that is to the store and the logs."""
    answer = client.get("/server-error/db")
    error = _assert_envelope(fmt, answer, 500)
    assert error["code"] == "DATABASE_ERROR"
    assert error["message"] == "A database operation failed."
    assert "password" not in answer.text
    assert [str(r.exc) for r in reports] == [DB_FAILURE]


def test_server_error_class_may_expose_its_message(client: Client, fmt: str) -> None:
    """A class with ``expose_message = True`` answers the instance's own text."""
    error = _assert_envelope(fmt, client.get("/server-error/exposed"), 503)
    assert error["message"] == "Back at 14:00 UTC."


def test_success_carries_request_id(client: Client) -> None:
    """An ordinary answer carries a generated X-Request-ID too."""
    answer = client.get("/ok")
    assert answer.status == 200
    assert re.fullmatch(r"[0-9a-f]{32}", answer.headers["x-request-id"])


@pytest.mark.parametrize("path", ["/ok", "/items/7", "/boom"])
def test_valid_request_id_is_accepted(client: Client, fmt: str, path: str) -> None:
    """A well-formed X-Request-ID is echoed on every answer, errors included."""
    answer = client.get(path, headers={"X-Request-ID": "req-7f8a:9b2c.1_x"})
    assert answer.headers["x-request-id"] == "req-7f8a:9b2c.1_x"
    if answer.status >= 400:
        assert error_of(fmt, answer.json())["request_id"] == "req-7f8a:9b2c.1_x"


@pytest.mark.parametrize(
    "bad",
    ["has space", "<script>alert(1)</script>", 'quote"d', "x" * 129, "semi;colon", "ü-nicode"],
    ids=["space", "html", "quote", "oversized", "semicolon", "non-ascii"],
)
def test_malformed_request_id_is_replaced_never_echoed(client: Client, fmt: str, bad: str) -> None:
    """A malformed or oversized X-Request-ID is replaced by a new id and never echoed."""
    answer = client.get("/items/7", headers={"X-Request-ID": bad})
    assert re.fullmatch(r"[0-9a-f]{32}", answer.headers["x-request-id"])
    assert bad not in answer.text
    assert error_of(fmt, answer.json())["request_id"] == answer.headers["x-request-id"]


def test_request_context_is_bound_during_the_request(client: Client) -> None:
    """Request id, correlation id, trace ids, endpoint and method are in the context."""
    answer = client.get(
        "/context",
        headers={
            "X-Request-ID": "req-1",
            "X-Correlation-ID": "corr-9",
            "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        },
    )
    assert answer.json() == {
        "request_id": "req-1",
        "correlation_id": "corr-9",
        "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
        "span_id": "00f067aa0ba902b7",
        "endpoint": "/context",
        "method": "GET",
    }


def test_correlation_id_defaults_to_request_id(client: Client) -> None:
    """Without a valid X-Correlation-ID the correlation id is the request id."""
    answer = client.get("/context", headers={"X-Correlation-ID": "bad value"})
    body = answer.json()
    assert body["correlation_id"] == body["request_id"] == answer.headers["x-request-id"]
    assert "trace_id" not in body


def test_error_is_reported_once_with_the_answers_id(
    client: Client, fmt: str, reports: list[Any]
) -> None:
    """A crash is reported exactly once, under the error id the answer shows."""
    answer = client.get("/boom", headers={"User-Agent": "probe/1.0"})
    assert len(reports) == 1
    report = reports[0]
    assert isinstance(report.exc, RuntimeError)
    assert report.error_id == error_of(fmt, answer.json())["error_id"]
    assert report.context["request_id"] == answer.headers["x-request-id"]
    assert report.context["error_type"] == "unknown_error"
    assert report.context["status"] == 500
    assert report.context["severity"] == "error"
    assert report.context["method"] == "GET"
    assert report.context["endpoint"] == "/boom"
    assert report.context["user_agent"] == "probe/1.0"


@pytest.mark.parametrize(
    ("path", "asgi_template", "flask_template"),
    [
        ("/items/7", "/items/{item_id}", "/items/<int:item_id>"),
        ("/status/404", "/status/{code}", "/status/<int:code>"),
    ],
)
def test_handled_errors_are_reported_once_with_route_template(
    client: Client,
    framework: str,
    reports: list[Any],
    path: str,
    asgi_template: str,
    flask_template: str,
) -> None:
    """Handled errors are reported once, with the route's template as the endpoint."""
    answer = client.get(path)
    assert len(reports) == 1
    assert reports[0].context["error_type"] == "http_error"
    assert reports[0].context["status"] == answer.status == 404
    template = flask_template if framework == "flask" else asgi_template
    assert reports[0].context["endpoint"] == template


def test_validation_error_is_reported_as_validation(client: Client, reports: list[Any]) -> None:
    """A request validation error is reported once as validation_error with its payload."""
    client.post("/items", json_body={"name": 42})
    assert len(reports) == 1
    assert reports[0].context["error_type"] == "validation_error"
    assert reports[0].context["request_payload"] == {"name": 42}


def test_reported_payload_is_what_the_app_read(client: Client, reports: list[Any]) -> None:
    """The body the app read is handed to the reporter, parsed when it is JSON."""
    client.post("/boom-after-read", json_body={"prompt": "hi", "n": 2})
    assert reports[0].context["request_payload"] == {"prompt": "hi", "n": 2}


def test_reported_payload_is_bounded(
    framework: str, client_for: Callable[..., Client], reports: list[Any]
) -> None:
    """At most body_limit bytes of the body are kept for the report (64 KiB by default)."""
    client = client_for(framework)
    client.post("/boom-after-read", content=b"x" * 200_000)
    payload = reports[0].context["request_payload"]
    assert payload == b"x" * 65_536


def test_unread_body_is_not_read_for_the_report(client: Client, reports: list[Any]) -> None:
    """errorkit never reads a body the app did not read."""
    client.request("GET", "/boom", content=b'{"unread": true}')
    assert reports[0].context["request_payload"] is None


@pytest.mark.parametrize("cors", ["before", "after"])
def test_cors_headers_survive_a_500(
    framework: str, client_for: Callable[..., Client], cors: str
) -> None:
    """The 500 answer still carries the CORS headers and the request id, whether CORS was
    added before or after install()."""
    client = client_for(framework, cors=cors)
    answer = client.get("/boom", headers={"Origin": ORIGIN, "X-Request-ID": "cors-1"})
    assert answer.status == 500
    assert answer.headers["access-control-allow-origin"] == ORIGIN
    assert answer.headers["x-request-id"] == "cors-1"


@pytest.mark.parametrize("framework", ["fastapi", "starlette"])
def test_unexpected_error_is_reraised_for_the_server_log_but_reported_once(
    framework: str, client_for: Callable[..., Client], reports: list[Any]
) -> None:
    """On ASGI an unexpected error still reaches the server (to be logged), reported once."""
    client = client_for(framework, raise_server_exceptions=True)
    with pytest.raises(RuntimeError, match="cannot reach db"):
        client.get("/boom")
    assert len(reports) == 1


def test_flask_logs_unexpected_error_once(
    client_for: Callable[..., Client], reports: list[Any], caplog: pytest.LogCaptureFixture
) -> None:
    """On Flask an unexpected error is logged with its traceback, as without errorkit."""
    client = client_for("flask")
    client.get("/boom")
    logged = [r for r in caplog.records if r.exc_info and r.exc_info[0] is RuntimeError]
    assert len(logged) == 1
    assert len(reports) == 1


def test_default_format_shape(client: Client, fmt: str) -> None:
    """Each format has exactly its documented keys."""
    body = client.get("/rate", headers={"X-Request-ID": "r-1"}).json()
    common = {"code", "timestamp", "request_id", "error_id", "retriable", "retry_after"}
    if fmt == "default":
        assert set(body) == {"error"}
        assert set(body["error"]) == common | {"message", "details"}
    elif fmt == "wrapped":
        assert set(body) == {"success", "data", "error"}
        assert set(body["error"]) == common | {"message", "details", "correlation_id"}
        assert body["error"]["correlation_id"] == "r-1"
    else:
        assert set(body) == common | {"type", "title", "status", "detail", "instance"}
        assert body["type"] == "about:blank"
        assert body["title"] == "Too Many Requests"
        assert body["instance"] == "/rate"
    error = error_of(fmt, body)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", error["timestamp"])


def flat_renderer(c: Classification, meta: ErrorMeta) -> ErrorAnswer:
    """The flat shape of an agent platform: {"error": CODE, "message", "details", ...}."""
    body: dict[str, Any] = {"error": c.code, "message": c.message, "details": dict(c.details)}
    if c.retry_after is not None:
        body["retry_after"] = int(c.retry_after)
    return ErrorAnswer(body, c.status)


def test_custom_renderer_gives_the_flat_shape(
    framework: str, client_for: Callable[..., Client]
) -> None:
    """A one-function renderer gives any shape; errorkit still sets the headers."""
    client = client_for(framework, flat_renderer)
    answer = client.get("/rate")
    assert answer.status == 429
    assert answer.json() == {
        "error": "RATE_LIMIT_EXCEEDED",
        "message": "Too many requests.",
        "details": {},
        "retry_after": 30,
    }
    assert answer.headers["retry-after"] == "30"
    assert "x-request-id" in answer.headers


def test_renderer_may_return_a_plain_tuple(
    framework: str, client_for: Callable[..., Client]
) -> None:
    """A renderer can return (body, status) or (body, status, headers)."""

    def tuple_renderer(c: Classification, meta: ErrorMeta) -> tuple[Any, int, dict[str, str]]:
        return {"oops": c.code, "id": meta.error_id}, c.status, {"X-Error-Code": c.code}

    answer = client_for(framework, tuple_renderer).get("/items/7")
    assert answer.status == 404
    assert answer.json()["oops"] == "NOT_FOUND"
    assert answer.headers["x-error-code"] == "NOT_FOUND"


def test_failing_renderer_falls_back_to_default(
    framework: str, client_for: Callable[..., Client], capsys: pytest.CaptureFixture[str]
) -> None:
    """A renderer that raises never breaks the answer: the default format is used."""

    def broken(c: Classification, meta: ErrorMeta) -> ErrorAnswer:
        raise KeyError("oops")

    answer = client_for(framework, broken).get("/items/7")
    assert answer.status == 404
    assert answer.json()["error"]["code"] == "NOT_FOUND"


def test_secret_in_error_details_is_scrubbed(
    framework: str, client_for: Callable[..., Client]
) -> None:
    """Details an error carries go through the scrubber before they are shown."""
    from errorkit import ConflictError

    app_client = client_for(framework)
    app = app_client.app
    if framework == "flask":
        app.add_url_rule(
            "/leaky",
            "leaky",
            lambda: (_ for _ in ()).throw(ConflictError(details={"api_key": SECRET})),
        )
    else:

        async def leaky(request: Any) -> Any:
            raise ConflictError(
                details={"api_key": SECRET, "note": f"Authorization: Bearer {SECRET}"}
            )

        app.add_route("/leaky", leaky)
    answer = app_client.get("/leaky")
    assert answer.status == 409
    assert SECRET not in answer.text
    assert uuid.UUID(answer.json()["error"]["error_id"])


def _keepalive_app(framework: str) -> Any:
    import httpx
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def upstream_timeout(request: Any) -> Any:
        raise httpx.ReadTimeout("")

    async def upstream_down(request: Any) -> Any:
        request = httpx.Request("GET", "https://llm.example/v1")
        httpx.Response(502, request=request).raise_for_status()

    async def ok(request: Any) -> Any:
        return PlainTextResponse("ok")

    routes = [
        Route("/timeout", upstream_timeout),
        Route("/bad-gateway", upstream_down),
        Route("/ok", ok),
    ]
    if framework == "fastapi":
        from fastapi import FastAPI

        import errorkit.fastapi

        app: Any = FastAPI(routes=routes)
        errorkit.fastapi.install(app)
    else:
        import errorkit.starlette

        app = Starlette(routes=routes)
        errorkit.starlette.install(app)
    return app


@pytest.mark.parametrize("framework", ["fastapi", "starlette"])
def test_classified_5xx_keeps_the_keep_alive_connection_through_uvicorn(
    framework: str, reports: list[Any]
) -> None:
    """A 504/502 that errorkit classified (httpx errors) is answered and not re-raised as
    unexpected: a real uvicorn server keeps the connection, so a second request on it is
    answered too."""
    import http.client
    import socket
    import threading

    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    port = sock.getsockname()[1]
    config = uvicorn.Config(_keepalive_app(framework), log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        answers = []
        for path in ("/timeout", "/bad-gateway", "/ok"):
            conn.request("GET", path)
            response = conn.getresponse()
            answers.append((response.status, response.getheader("connection"), response.read()))
        conn.close()
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()
    assert [(status, connection) for status, connection, _ in answers] == [
        (504, None),
        (502, None),
        (200, None),
    ]
    assert b"UPSTREAM_TIMEOUT" in answers[0][2]
    assert answers[2][2] == b"ok"
    assert len(reports) == 2
