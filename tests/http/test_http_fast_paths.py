"""The fast paths of the HTTP answer give exactly what the plain paths give.

errorkit's own renderers answer repeated errors from templates (rendered once, then only
the ids, the time and the details' values are filled in). These tests compare those
answers byte for byte with rendering, and pin the request-context details the middleware's
cheaper bookkeeping must keep.
"""

from __future__ import annotations

import importlib
import json
import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from errorkit import NotFoundError, RateLimitError
from errorkit.classification import Classification, classify, for_status
from errorkit.http import envelope
from errorkit.http.envelope import (
    EncodedAnswer,
    ErrorAnswer,
    ErrorMeta,
    Renderer,
    encode_answer,
    problem_renderer,
    render_default,
    render_problem,
    render_wrapped,
)
from errorkit.scrubbing import Scrubber, default_scrubber, set_default_scrubber

BUILTIN: dict[str, Renderer] = {
    "default": render_default,
    "problem": render_problem,
    "wrapped": render_wrapped,
    "problem+type": problem_renderer("https://errors.example/"),
}


@pytest.fixture(autouse=True)
def fresh_templates(monkeypatch: pytest.MonkeyPatch) -> envelope._Templates:
    """Each test starts without templates."""
    templates = envelope._Templates()
    monkeypatch.setattr(envelope, "_templates", templates)
    return templates


def _meta(**changes: Any) -> ErrorMeta:
    values: dict[str, Any] = {
        "error_id": "b541a849-703d-447b-8982-619c52b0f26b",
        "request_id": "d3b07384d113edec49eaa6238ad5ff00",
        "timestamp": datetime(2025, 10, 21, 23, 15, 0, 123456, tzinfo=UTC),
        "correlation_id": "corr-1",
        "instance": "/items/42",
    }
    values.update(changes)
    return ErrorMeta(**values)


def _rendered(c: Classification, meta: ErrorMeta, renderer: Renderer) -> EncodedAnswer:
    """The answer without any template: what rendering gives."""
    return envelope._encode(c, meta, renderer, shared=False)


def _templated(c: Classification, meta: ErrorMeta, renderer: Renderer) -> EncodedAnswer:
    """The answer once a template for it exists (the second sighting builds it)."""
    encode_answer(c, meta, renderer)
    encode_answer(c, meta, renderer)
    return encode_answer(c, meta, renderer)


def _uses_template(templates: envelope._Templates) -> bool:
    return any(t.answer is not None for t in templates._entries.values())


CASES: dict[str, Classification] = {
    "unexpected": classify(RuntimeError("secret text")),
    "scalars": classify(
        NotFoundError(
            details={"item_id": 7, "ratio": 0.5, "flag": True, "none": None, "name": "box"}
        )
    ),
    "secret value": classify(
        NotFoundError(details={"note": "Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig"})
    ),
    "sensitive key": classify(NotFoundError(details={"password": "hunter2", "item_id": 1})),
    "retry after": classify(RateLimitError(retry_after=30)),
    "status": for_status(404),
    "allow header": for_status(405, headers={"Allow": "GET, POST"}),
    "awkward text": classify(NotFoundError(details={"name": 'quo"te \\ back é \n line {x} %s'})),
    "floats": classify(
        NotFoundError(details={"a": math.inf, "b": -math.inf, "c": math.nan, "d": 1e-7})
    ),
}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("fmt", BUILTIN)
def test_template_answer_is_the_rendered_answer(
    case: str, fmt: str, fresh_templates: envelope._Templates
) -> None:
    """For errorkit's formats, an answer from a template has the bytes rendering gives."""
    c, renderer, meta = CASES[case], BUILTIN[fmt], _meta()
    assert _templated(c, meta, renderer) == _rendered(c, meta, renderer)
    assert _uses_template(fresh_templates)


@pytest.mark.parametrize("fmt", BUILTIN)
@pytest.mark.parametrize(
    "meta",
    [
        _meta(instance='/a"b\\c/é/\x01'),
        _meta(error_id='custom "id"'),
        _meta(timestamp=datetime(2025, 1, 1, 0, 0, 0, tzinfo=UTC)),
    ],
    ids=["awkward path", "awkward error id", "whole second"],
)
def test_template_escapes_values_as_the_encoder_does(fmt: str, meta: ErrorMeta) -> None:
    """Values filled into a template are escaped exactly as the JSON encoder escapes them."""
    c = CASES["scalars"]
    first = _meta()
    encode_answer(c, first, BUILTIN[fmt])
    encode_answer(c, first, BUILTIN[fmt])
    assert encode_answer(c, meta, BUILTIN[fmt]) == _rendered(c, meta, BUILTIN[fmt])


@pytest.mark.parametrize("missing", ["request_id", "correlation_id", "instance"])
@pytest.mark.parametrize("fmt", BUILTIN)
def test_missing_meta_value_is_rendered(fmt: str, missing: str) -> None:
    """A meta value that is absent renders as the renderer decides (null or a fallback)."""
    c, meta = CASES["scalars"], _meta(**{missing: None})
    assert _templated(c, meta, BUILTIN[fmt]) == _rendered(c, meta, BUILTIN[fmt])


def test_field_errors_are_never_templated(fresh_templates: envelope._Templates) -> None:
    """Validation answers (one entry per field) are always rendered."""
    from errorkit import ValidationError

    c = classify(ValidationError(field="email", reason="not an email"))
    assert _templated(c, _meta(), render_problem) == _rendered(c, _meta(), render_problem)
    assert not _uses_template(fresh_templates)


_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**14), max_value=10**14)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40)
    | st.sampled_from(["sk_live_51HqLyjWDarjtT1zdp7dc", "4111 1111 1111 1111", "a\nb"])
)
_keys = st.text(min_size=1, max_size=12) | st.sampled_from(["password", "Api-Key", "item_id"])


@settings(max_examples=150, deadline=None)
@given(
    keys=st.lists(_keys, min_size=1, max_size=5, unique=True),
    first=st.data(),
    fmt=st.sampled_from(sorted(BUILTIN)),
    path=st.text(min_size=1, max_size=30),
)
def test_template_matches_rendering_for_any_flat_details(
    keys: list[str], first: st.DataObject, fmt: str, path: str
) -> None:
    """Whatever values a template is filled with, the answer equals the rendered one."""
    envelope._templates = envelope._Templates()
    renderer = BUILTIN[fmt]
    before = classify(NotFoundError(details={k: first.draw(_scalars) for k in keys}))
    encode_answer(before, _meta(), renderer)
    encode_answer(before, _meta(), renderer)
    after = classify(NotFoundError(details={k: first.draw(_scalars) for k in keys}))
    meta = _meta(instance=path)
    answer = encode_answer(after, meta, renderer)
    assert answer == _rendered(after, meta, renderer)
    json.loads(answer.body)  # still one JSON document


def test_templates_stay_bounded(fresh_templates: envelope._Templates) -> None:
    """Errors whose message changes every time never grow the template store past its bound."""
    for i in range(fresh_templates.max_entries * 3):
        c = classify(NotFoundError(f"item {i} is gone"))
        encode_answer(c, _meta(), render_default)
        encode_answer(c, _meta(), render_default)
    assert len(fresh_templates._entries) <= fresh_templates.max_entries
    assert len(fresh_templates._seen) <= fresh_templates.max_entries


def test_template_follows_a_new_default_scrubber() -> None:
    """Replacing the process-wide scrubber applies to answers made from templates too."""
    c = classify(NotFoundError(details={"tenant": "acme"}))
    assert json.loads(_templated(c, _meta(), render_default).body)["error"]["details"] == {
        "tenant": "acme"
    }
    previous = default_scrubber()
    set_default_scrubber(Scrubber(extra_keys=["tenant"]))
    try:
        body = json.loads(_templated(c, _meta(), render_default).body)
    finally:
        set_default_scrubber(previous)
    assert body["error"]["details"] == {"tenant": "[Filtered]"}


def test_custom_renderer_cannot_change_the_error() -> None:
    """A renderer of one's own gets its own copy of the details, never the error's."""
    err = NotFoundError(details={"item_id": 7})

    def meddling(c: Classification, meta: ErrorMeta) -> ErrorAnswer:
        c.details["item_id"] = "changed"  # type: ignore[index]
        return ErrorAnswer({"ok": False}, c.status)

    encode_answer(classify(err), _meta(), meddling)
    assert err.details == {"item_id": 7}


# --- the timestamp -------------------------------------------------------------------------


def _slow_text(ts: datetime) -> str:
    ts = ts if ts.tzinfo else ts.replace(tzinfo=UTC)
    return ts.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@given(
    st.datetimes(
        min_value=datetime(1, 1, 2),
        max_value=datetime(9999, 12, 30),
        timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30)), None]),
    )
)
def test_timestamp_text_is_iso_utc_with_milliseconds(ts: datetime) -> None:
    """timestamp_text is ISO 8601 in UTC with milliseconds and a Z, for any datetime."""
    assert ErrorMeta("e", "r", ts).timestamp_text == _slow_text(ts)


def test_timestamp_text_of_consecutive_seconds() -> None:
    """Two timestamps a moment apart across a second boundary each get their own second."""
    a = datetime(2025, 5, 5, 10, 0, 0, 999999, tzinfo=UTC)
    b = a + timedelta(microseconds=2)
    assert ErrorMeta("e", "r", a).timestamp_text == "2025-05-05T10:00:00.999Z"
    assert ErrorMeta("e", "r", b).timestamp_text == "2025-05-05T10:00:01.000Z"
    assert ErrorMeta("e", "r", a).timestamp_text == "2025-05-05T10:00:00.999Z"


# --- request context -----------------------------------------------------------------------


class _SwallowsThenFails:
    """A middleware outside errorkit's that lets the app run, keeps its answer to itself,
    then fails."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def swallow(message: Any) -> None:
            return

        await self.app(scope, receive, swallow)
        raise RuntimeError("middleware bug after the app")


@pytest.mark.parametrize("framework", ["fastapi", "starlette"])
def test_failure_outside_after_the_app_keeps_the_request_id(framework: str) -> None:
    """A middleware outside errorkit's that fails after the app ran gets errorkit's answer
    with the request's id."""
    from starlette.responses import JSONResponse
    from starlette.testclient import TestClient

    if framework == "fastapi":
        from fastapi import FastAPI

        app: Any = FastAPI()
    else:
        from starlette.applications import Starlette

        app = Starlette()

    async def ok(request: Any) -> Any:
        return JSONResponse({"ok": True})

    app.add_route("/ok", ok)
    importlib.import_module(f"errorkit.{framework}").install(app, endpoints=None)
    app.add_middleware(_SwallowsThenFails)
    answer = TestClient(app, raise_server_exceptions=False).get(
        "/ok", headers={"X-Request-ID": "kept-1"}
    )
    assert answer.status_code == 500
    assert answer.headers["x-request-id"] == "kept-1"
    assert answer.json()["error"]["request_id"] == "kept-1"


class _ServerCycle:
    """Like a server's request cycle: its send and receive are bound methods of an object
    that holds the scope (uvicorn's RequestResponseCycle does)."""

    def __init__(self, path: str) -> None:
        self.scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "root_path": "",
            "query_string": b"",
            "headers": [(b"host", b"test")],
            "client": ("127.0.0.1", 1),
            "server": ("127.0.0.1", 80),
        }
        self.sent: list[Any] = []

    async def receive(self) -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(self, message: Any) -> None:
        self.sent.append(message)


@pytest.mark.parametrize("framework", ["fastapi", "starlette"])
@pytest.mark.parametrize("path", ["/ok", "/missing"])
async def test_requests_leave_no_reference_cycles(framework: str, path: str) -> None:
    """A request, answered or failed with a handled error, leaves nothing for the garbage
    collector: no reference cycle through the scope the server's send holds."""
    import gc

    from starlette.responses import JSONResponse

    if framework == "fastapi":
        from fastapi import FastAPI

        app: Any = FastAPI()
    else:
        from starlette.applications import Starlette

        app = Starlette()

    async def ok(request: Any) -> Any:
        return JSONResponse({"ok": True})

    app.add_route("/ok", ok)
    importlib.import_module(f"errorkit.{framework}").install(app, endpoints=None)

    async def one() -> None:
        cycle = _ServerCycle(path)
        await app(cycle.scope, cycle.receive, cycle.send)
        assert cycle.sent[0]["status"] == (200 if path == "/ok" else 404)

    await one()  # first-request set-up (middleware stack, templates) is not per request
    await one()
    gc.collect()
    gc.disable()
    try:
        for _ in range(20):
            await one()
        found = gc.collect()
    finally:
        gc.enable()
    assert found == 0
