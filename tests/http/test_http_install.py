"""Installing errorkit: clear errors for bad options, missing extras, OpenAPI, context."""

from __future__ import annotations

import importlib
import subprocess
import sys
from typing import Any, ClassVar

import httpx
import pytest
from _apps import make_app

from errorkit._extras import MissingExtraError
from errorkit.config import ConfigError
from errorkit.context import current_context
from errorkit.http.request_id import (
    accept_request_id,
    is_valid_request_id,
    parse_traceparent,
)


@pytest.mark.parametrize(
    ("module", "framework", "extra"),
    [
        ("errorkit.fastapi", "fastapi", "fastapi"),
        ("errorkit.starlette", "starlette", "starlette"),
        ("errorkit.flask", "flask", "flask"),
    ],
)
def test_integration_without_its_framework_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, module: str, framework: str, extra: str
) -> None:
    """Importing an integration without its framework says which extra to install."""
    monkeypatch.setitem(sys.modules, framework, None)
    monkeypatch.delitem(sys.modules, module, raising=False)
    with pytest.raises(MissingExtraError, match=rf"pip install 'errorkit\[{extra}\]'"):
        importlib.import_module(module)


def test_core_and_http_import_no_web_framework() -> None:
    """errorkit and errorkit.http import neither Starlette, FastAPI nor Flask."""
    code = (
        "import sys, errorkit, errorkit.http, errorkit.http.sse, errorkit.http.openapi;"
        "print(sorted(m for m in ('starlette', 'fastapi', 'flask', 'werkzeug') "
        "if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("framework", ["fastapi", "starlette", "flask"])
def test_unknown_format_says_which_are_known(framework: str) -> None:
    """An unknown format fails at install time and lists the valid ones."""
    with pytest.raises(ConfigError, match="'default', 'problem', 'wrapped' or a callable"):
        make_app(framework, "xml")


@pytest.mark.parametrize("framework", ["fastapi", "starlette", "flask"])
@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("request_id_header", "X Request", "not a usable header name"),
        ("body_limit", -1, "must be a whole number of bytes >= 0"),
    ],
)
def test_bad_install_option_says_the_fix(
    framework: str, option: str, value: Any, message: str
) -> None:
    """Bad install() options fail with a message that says what to pass."""
    app = _bare(framework)
    module = importlib.import_module(f"errorkit.{framework}")
    with pytest.raises(ValueError, match=message):
        module.install(app, **{option: value})


@pytest.mark.parametrize("framework", ["fastapi", "starlette", "flask"])
def test_installing_twice_is_refused(framework: str) -> None:
    """A second install() on the same app fails instead of answering twice."""
    app = make_app(framework)
    module = importlib.import_module(f"errorkit.{framework}")
    with pytest.raises(RuntimeError, match="already installed"):
        module.install(app)


def _bare(framework: str) -> Any:
    if framework == "flask":
        from flask import Flask

        return Flask("bare")
    if framework == "fastapi":
        from fastapi import FastAPI

        return FastAPI()
    from starlette.applications import Starlette

    return Starlette()


@pytest.mark.parametrize("framework", ["fastapi", "starlette"])
def test_custom_request_id_header(framework: str) -> None:
    """request_id_header= reads and returns another header name."""
    from starlette.testclient import TestClient

    app = _bare(framework)
    importlib.import_module(f"errorkit.{framework}").install(app, request_id_header="X-Trace")
    answer = TestClient(app).get("/missing", headers={"X-Trace": "t-1"})
    assert answer.headers["x-trace"] == "t-1"
    assert answer.json()["error"]["request_id"] == "t-1"


def test_untrusted_request_id_is_replaced() -> None:
    """trust_request_id=False ignores even a well-formed incoming id."""
    import errorkit.flask

    app = _bare("flask")
    errorkit.flask.install(app, trust_request_id=False)
    answer = app.test_client().get("/missing", headers={"X-Request-ID": "mine"})
    assert answer.headers["X-Request-ID"] != "mine"


@pytest.mark.parametrize("framework", ["fastapi", "starlette"])
async def test_asgi_context_is_restored_after_the_request(framework: str) -> None:
    """The request's context is bound only while it runs, then restored."""
    app = make_app(framework)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        answer = await client.get("/context", headers={"X-Request-ID": "inside"})
    assert answer.json()["request_id"] == "inside"
    assert current_context().request_id is None


def test_wsgi_context_is_restored_after_the_request() -> None:
    """Flask requests run in their own context copy; the caller's stays untouched."""
    client = make_app("flask").test_client()
    assert client.get("/context", headers={"X-Request-ID": "inside"}).json["request_id"] == (
        "inside"
    )
    assert current_context().request_id is None


# --- request ids and traceparent -----------------------------------------------------------


@pytest.mark.parametrize("value", ["a", "req-1", "A.b_c:d-9", "x" * 128])
def test_request_id_shapes_that_are_kept(value: str) -> None:
    """1-128 characters of letters, digits and . _ : - are kept."""
    assert is_valid_request_id(value)
    assert accept_request_id(value) == value


@pytest.mark.parametrize("value", [None, "", "x" * 129, "a b", "a\r\nb", "é", "a/b"])
def test_request_id_shapes_that_are_replaced(value: Any) -> None:
    """Anything else is replaced by a new 32-hex id."""
    assert not is_valid_request_id(value)
    new = accept_request_id(value)
    assert new != value
    assert len(new) == 32


def test_traceparent_is_parsed() -> None:
    """A valid traceparent gives trace id, parent span id and the sampled flag."""
    tp = parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
    assert tp is not None
    assert (tp.trace_id, tp.span_id, tp.sampled) == (
        "4bf92f3577b34da6a3ce929d0e0e4736",
        "00f067aa0ba902b7",
        True,
    )


@pytest.mark.parametrize(
    "value",
    [
        "",
        "garbage",
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
    ],
    ids=["empty", "garbage", "version-ff", "zero-trace", "zero-span", "uppercase", "v00-extra"],
)
def test_invalid_traceparent_is_ignored(value: str) -> None:
    """Invalid traceparent headers are ignored (W3C Trace Context rules)."""
    assert parse_traceparent(value) is None


def test_future_traceparent_version_may_carry_more_fields() -> None:
    """A later version's extra fields are allowed and ignored."""
    tp = parse_traceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-more")
    assert tp is not None
    assert not tp.sampled


# --- OpenAPI -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "media"),
    [
        ("default", "application/json"),
        ("wrapped", "application/json"),
        ("problem", "application/problem+json"),
    ],
)
def test_openapi_documents_errorkit_shapes(fmt: str, media: str) -> None:
    """422, 4XX and 5XX use errorkit's schema; FastAPI's {"detail"} shape is gone."""
    schema = make_app("fastapi", fmt).openapi()
    responses = schema["paths"]["/items"]["post"]["responses"]
    assert responses["422"]["content"][media]["schema"]["$ref"].endswith("ErrorkitValidationError")
    for key in ("4XX", "5XX"):
        assert responses[key]["content"][media]["schema"]["$ref"].endswith("ErrorkitError")
    components = schema["components"]["schemas"]
    assert "HTTPValidationError" not in components
    assert "ErrorkitFieldError" in components


def test_openapi_operations_without_validation_get_4xx_and_5xx() -> None:
    """Operations without parameters still document 4XX and 5XX, and no 422."""
    responses = make_app("fastapi").openapi()["paths"]["/only-get"]["get"]["responses"]
    assert {"4XX", "5XX"} <= set(responses)
    assert "422" not in responses


def test_openapi_schema_is_documented_once_per_build(monkeypatch: pytest.MonkeyPatch) -> None:
    """Serving the cached schema again does not document it again; a rebuilt one is."""
    import errorkit.fastapi

    calls: list[object] = []
    document = errorkit.fastapi.document_errors

    def counting(schema: dict[str, Any], *args: Any, **kwargs: Any) -> dict[str, Any]:
        calls.append(schema)
        return document(schema, *args, **kwargs)

    monkeypatch.setattr(errorkit.fastapi, "document_errors", counting)
    app = make_app("fastapi")
    first = app.openapi()
    assert app.openapi() is first
    assert len(calls) == 1
    app.openapi_schema = None
    rebuilt = app.openapi()
    assert rebuilt is not first
    assert "4XX" in rebuilt["paths"]["/only-get"]["get"]["responses"]
    assert len(calls) == 2


def test_openapi_schema_describes_the_answer_actually_sent() -> None:
    """The documented default error requires exactly the keys the answer carries."""
    from fastapi.testclient import TestClient

    app = make_app("fastapi")
    body = TestClient(app).post("/items", json={}).json()
    component = app.openapi()["components"]["schemas"]["ErrorkitValidationError"]
    required = set(component["properties"]["error"]["required"])
    assert required <= set(body["error"])
    assert set(body["error"]) <= set(component["properties"]["error"]["properties"])


def test_openapi_custom_renderer_uses_the_given_schema() -> None:
    """A custom renderer's schema is documented as given."""
    from fastapi import FastAPI

    import errorkit.fastapi

    app = FastAPI()

    @app.get("/x/{n}")
    def x(n: int) -> int:
        return n

    flat = {"type": "object", "properties": {"error": {"type": "string"}}}
    errorkit.fastapi.install(
        app, format=lambda c, m: ({"error": c.code}, c.status), openapi_schema=flat
    )
    components = app.openapi()["components"]["schemas"]
    assert components["ErrorkitError"] == flat


# --- what an answer may show ---------------------------------------------------------------


def _classification(**details: Any) -> Any:
    from errorkit import ConflictError
    from errorkit.classification import classify

    return classify(ConflictError(details=details))


@pytest.mark.parametrize(
    ("details", "secret"),
    [
        ({"password": "hunter2"}, "hunter2"),
        ({"note": "Authorization: Bearer abcdef123456"}, "abcdef123456"),
        ({"card": 4111111111111111}, "4111111111111111"),
        ({"nested": {"api_key": "sk-proj-abcdefghijklmnopqrstu"}}, "sk-proj-abcdef"),
        ({"dsn": "postgres://app:s3cr3t@db/app"}, "s3cr3t"),
    ],
    ids=["sensitive-key", "bearer-in-text", "card-number", "nested", "url-password"],
)
def test_details_are_scrubbed_before_answering(details: dict[str, Any], secret: str) -> None:
    """Secrets in an error's details never reach the answer body."""
    import json

    from errorkit.http.envelope import safe_for_client

    safe = safe_for_client(_classification(**details))
    assert secret not in json.dumps(safe.details)


def test_scrubbing_follows_a_new_default_scrubber() -> None:
    """Replacing the process-wide scrubber applies to the next answer."""
    from errorkit.http.envelope import safe_for_client
    from errorkit.scrubbing import Scrubber, default_scrubber, set_default_scrubber

    c = _classification(tenant="acme")
    assert safe_for_client(c).details == {"tenant": "acme"}
    previous = default_scrubber()
    set_default_scrubber(Scrubber(extra_keys=["tenant"]))
    try:
        assert safe_for_client(c).details == {"tenant": "[Filtered]"}
    finally:
        set_default_scrubber(previous)


# --- middleware around errorkit's ------------------------------------------------------------


def _asgi_app_with(framework: str, before: Any = None, after: Any = None) -> Any:
    from starlette.responses import JSONResponse

    app = _bare(framework)

    async def context(request: Any) -> Any:
        return JSONResponse(current_context().as_dict())

    async def boom(request: Any) -> Any:
        raise RuntimeError("boom")

    app.add_route("/context", context)
    app.add_route("/boom", boom)
    if before is not None:
        app.add_middleware(before)
    importlib.import_module(f"errorkit.{framework}").install(app)
    if after is not None:
        app.add_middleware(after)
    return app


class _SeesContext:
    """A user middleware that records the request id it sees."""

    seen: ClassVar[list[str | None]] = []

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        _SeesContext.seen.append(current_context().request_id)
        await self.app(scope, receive, send)


class _Breaks:
    """A user middleware that fails before calling the app."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            raise RuntimeError("middleware bug")
        await self.app(scope, receive, send)


@pytest.mark.parametrize("framework", ["fastapi", "starlette"])
def test_middleware_added_before_install_sees_the_context(framework: str) -> None:
    """Middleware added before install() runs inside the request context."""
    from starlette.testclient import TestClient

    _SeesContext.seen.clear()
    app = _asgi_app_with(framework, before=_SeesContext)
    TestClient(app).get("/context", headers={"X-Request-ID": "mw-1"})
    assert _SeesContext.seen == ["mw-1"]


@pytest.mark.parametrize("framework", ["fastapi", "starlette"])
def test_failing_outer_middleware_still_gets_errorkit_answer(
    framework: str, reports: list[Any]
) -> None:
    """An exception from middleware outside errorkit's gets errorkit's 500 and request id."""
    from starlette.testclient import TestClient

    app = _asgi_app_with(framework, after=_Breaks)
    answer = TestClient(app, raise_server_exceptions=False).get(
        "/context", headers={"X-Request-ID": "outer-1"}
    )
    assert answer.status_code == 500
    assert answer.headers["x-request-id"] == "outer-1"
    assert answer.json()["error"]["code"] == "INTERNAL_ERROR"
    assert "middleware bug" not in answer.text
    assert len(reports) == 1
    assert reports[0].error_id == answer.json()["error"]["error_id"]


@pytest.mark.parametrize("framework", ["fastapi", "starlette", "flask"])
def test_install_options_come_from_the_settings_unless_given(
    framework: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """request_id_header, trust_request_id and body_limit default to the settings in force
    (ERRORKIT_REQUEST_ID_HEADER, ...), as every other errorkit default does."""
    from errorkit import config

    monkeypatch.setenv("ERRORKIT_REQUEST_ID_HEADER", "X-Trace-Ref")
    monkeypatch.setenv("ERRORKIT_TRUST_REQUEST_ID", "false")
    monkeypatch.setattr(config, "_settings", None)

    def request(app: Any, header: str) -> Any:
        if framework == "flask":
            return app.test_client().get("/items/2", headers={header: "given-by-client"})
        from starlette.testclient import TestClient

        return TestClient(app).get("/items/2", headers={header: "given-by-client"})

    answer = request(make_app(framework), "X-Trace-Ref")
    assert answer.status_code == 404
    assert "X-Trace-Ref" in answer.headers
    assert answer.headers["X-Trace-Ref"] != "given-by-client"  # not trusted, by the setting
