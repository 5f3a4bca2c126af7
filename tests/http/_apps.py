"""One small app per framework, exposing the same routes, and a client that speaks to each
the same way."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from errorkit import DatabaseError, NotFoundError, RateLimitError, ServiceUnavailableError
from errorkit.context import current_context
from errorkit.http.envelope import Renderer
from errorkit.http.sse import sse_event, stream_errors

FRAMEWORKS = ("fastapi", "starlette", "flask")
FORMATS = ("default", "problem", "wrapped")
STATUSES = (400, 401, 403, 404, 405, 409, 413, 415, 422, 429, 500, 502, 503)
SECRET = "sk_live_51HqLyjWDarjtT1zdp7dc"
ORIGIN = "https://app.example"


class Item(BaseModel):
    name: str
    price: float


def _fail_stream_chunks(fail_after: int) -> Iterator[str]:
    for i in range(fail_after):
        yield sse_event({"n": i})
    raise ConnectionResetError("upstream reset the stream")


async def _fail_stream_chunks_async(fail_after: int) -> AsyncIterator[str]:
    for i in range(fail_after):
        await asyncio.sleep(0)
        yield sse_event({"n": i})
    raise ConnectionResetError("upstream reset the stream")


DB_FAILURE = "Database query failed: password authentication failed for user app"


class ExposedUnavailableError(ServiceUnavailableError):
    """A 5xx whose instance text is meant for the client."""

    expose_message = True


def _server_error(kind: str) -> Exception:
    """A 5xx errorkit error: "db" with internals in its text, "exposed" opting in."""
    if kind == "exposed":
        return ExposedUnavailableError("Back at 14:00 UTC.")
    return DatabaseError(DB_FAILURE, details={"table": "users"})


def _context_dict() -> dict[str, Any]:
    return current_context().as_dict()


# --- apps --------------------------------------------------------------------------------


def make_starlette(fmt: str | Renderer, *, cors: str = "", fastapi: bool = False) -> Any:
    from starlette.exceptions import HTTPException
    from starlette.middleware.cors import CORSMiddleware
    from starlette.requests import Request
    from starlette.responses import JSONResponse, StreamingResponse

    def http_error(code: int) -> HTTPException:
        headers = {"Retry-After": "30"} if code in (429, 503) else None
        if code == 405:
            headers = {"Allow": "GET, POST"}
        return HTTPException(code, headers=headers)

    async def status(request: Request) -> JSONResponse:
        raise http_error(int(request.path_params["code"]))

    async def item(request: Request) -> JSONResponse:
        item_id = int(request.path_params["item_id"])
        if item_id != 1:
            raise NotFoundError(details={"item_id": item_id})
        return JSONResponse({"id": 1})

    async def rate(request: Request) -> JSONResponse:
        raise RateLimitError(retry_after=30)

    async def boom(request: Request) -> JSONResponse:
        raise RuntimeError(f"cannot reach db with password={SECRET}")

    async def boom_after_read(request: Request) -> JSONResponse:
        await request.body()
        raise RuntimeError("failed after reading the body")

    async def ok(request: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    async def server_error(request: Request) -> JSONResponse:
        raise _server_error(request.path_params["kind"])

    async def context(request: Request) -> JSONResponse:
        return JSONResponse(_context_dict())

    async def stream(request: Request) -> StreamingResponse:
        fail_after = int(request.query_params.get("fail_after", "2"))
        source: Any = (
            _fail_stream_chunks_async(fail_after)
            if request.query_params.get("async") == "1"
            else _fail_stream_chunks(fail_after)
        )
        return StreamingResponse(stream_errors(source), media_type="text/event-stream")

    if fastapi:
        from fastapi import FastAPI

        app: Any = FastAPI()

        @app.get("/status/{code}")
        async def fa_status(code: int) -> None:
            raise http_error(code)

        @app.post("/items")
        async def fa_create(payload: Item) -> Item:
            return payload

        @app.get("/only-get")
        async def fa_only_get() -> dict[str, bool]:
            return {"ok": True}

        app.add_route("/items/{item_id}", item)
        for path, view in (("/rate", rate), ("/boom", boom), ("/ok", ok), ("/context", context)):
            app.add_route(path, view)
        app.add_route("/boom-after-read", boom_after_read, methods=["POST"])
        app.add_route("/stream", stream)
        app.add_route("/server-error/{kind}", server_error)
    else:
        from starlette.applications import Starlette
        from starlette.routing import Route

        async def create(request: Request) -> JSONResponse:
            payload = Item.model_validate(await request.json())
            return JSONResponse(payload.model_dump())

        async def only_get(request: Request) -> JSONResponse:
            return JSONResponse({"ok": True})

        app = Starlette(
            routes=[
                Route("/status/{code}", status),
                Route("/items/{item_id}", item),
                Route("/items", create, methods=["POST"]),
                Route("/only-get", only_get, methods=["GET"]),
                Route("/rate", rate),
                Route("/boom", boom),
                Route("/boom-after-read", boom_after_read, methods=["POST"]),
                Route("/ok", ok),
                Route("/context", context),
                Route("/stream", stream),
                Route("/server-error/{kind}", server_error),
            ]
        )
    if cors == "before":
        app.add_middleware(CORSMiddleware, allow_origins=[ORIGIN], allow_methods=["*"])
    if fastapi:
        import errorkit.fastapi

        errorkit.fastapi.install(app, format=fmt)
    else:
        import errorkit.starlette

        errorkit.starlette.install(app, format=fmt)
    if cors == "after":
        app.add_middleware(CORSMiddleware, allow_origins=[ORIGIN], allow_methods=["*"])
    return app


def make_flask(fmt: str | Renderer, *, cors: str = "") -> Any:
    from flask import Flask, Response, abort, request
    from werkzeug.exceptions import MethodNotAllowed, ServiceUnavailable, TooManyRequests

    import errorkit.flask

    app = Flask(__name__)

    @app.get("/status/<int:code>")
    def status(code: int) -> Any:
        if code == 429:
            raise TooManyRequests(retry_after=30)
        if code == 503:
            raise ServiceUnavailable(retry_after=30)
        if code == 405:
            raise MethodNotAllowed(valid_methods=["GET", "POST"])
        abort(code)

    @app.get("/items/<int:item_id>")
    def item(item_id: int) -> Any:
        if item_id != 1:
            raise NotFoundError(details={"item_id": item_id})
        return {"id": 1}

    @app.post("/items")
    def create() -> Any:
        return Item.model_validate(request.get_json()).model_dump()

    @app.get("/only-get")
    def only_get() -> Any:
        return {"ok": True}

    @app.get("/rate")
    def rate() -> Any:
        raise RateLimitError(retry_after=30)

    @app.get("/boom")
    def boom() -> Any:
        raise RuntimeError(f"cannot reach db with password={SECRET}")

    @app.post("/boom-after-read")
    def boom_after_read() -> Any:
        request.get_data()
        raise RuntimeError("failed after reading the body")

    @app.get("/ok")
    def ok() -> Any:
        return {"ok": True}

    @app.get("/server-error/<kind>")
    def server_error(kind: str) -> Any:
        raise _server_error(kind)

    @app.get("/context")
    def context() -> Any:
        return _context_dict()

    @app.get("/stream")
    def stream() -> Any:
        fail_after = int(request.args.get("fail_after", "2"))
        return Response(
            stream_errors(_fail_stream_chunks(fail_after)), mimetype="text/event-stream"
        )

    if cors:

        @app.after_request
        def allow_origin(response: Response) -> Response:
            if request.headers.get("Origin") == ORIGIN:
                response.headers["Access-Control-Allow-Origin"] = ORIGIN
            return response

    errorkit.flask.install(app, format=fmt)
    return app


def make_app(framework: str, fmt: str | Renderer = "default", *, cors: str = "") -> Any:
    """The test app; ``cors`` is "", "before" or "after" (added before/after install)."""
    if framework == "flask":
        return make_flask(fmt, cors=cors)
    return make_starlette(fmt, cors=cors, fastapi=framework == "fastapi")


# --- one client for all ------------------------------------------------------------------


@dataclass
class Answer:
    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode()


@dataclass
class Client:
    framework: str
    app: Any
    raise_server_exceptions: bool = False
    _client: Any = field(init=False)

    def __post_init__(self) -> None:
        if self.framework == "flask":
            self._client = self.app.test_client()
        else:
            from starlette.testclient import TestClient

            self._client = TestClient(
                self.app, raise_server_exceptions=self.raise_server_exceptions
            )

    def request(
        self,
        method: str,
        path: str,
        *,
        headers: Mapping[str, str] | None = None,
        json_body: Any = None,
        content: bytes | None = None,
    ) -> Answer:
        if self.framework == "flask":
            kwargs: dict[str, Any] = {"headers": dict(headers or {})}
            if json_body is not None:
                kwargs["json"] = json_body
            if content is not None:
                kwargs["data"] = content
            r = self._client.open(path, method=method, **kwargs)
            return Answer(r.status_code, _ci(r.headers.items()), r.get_data())
        kwargs = {"headers": {k: v.encode("latin-1") for k, v in (headers or {}).items()}}
        if json_body is not None:
            kwargs["json"] = json_body
        if content is not None:
            kwargs["content"] = content
        r = self._client.request(method, path, **kwargs)
        return Answer(r.status_code, _ci(r.headers.items()), r.content)

    def get(self, path: str, **kwargs: Any) -> Answer:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> Answer:
        return self.request("POST", path, **kwargs)


class _CIDict(dict[str, str]):
    def __getitem__(self, key: str) -> str:
        return super().__getitem__(key.lower())

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        return super().get(key.lower(), default)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and super().__contains__(key.lower())


def _ci(items: Any) -> _CIDict:
    out = _CIDict()
    for k, v in items:
        out[k.lower()] = v
    return out


def error_of(fmt: str, body: Any) -> dict[str, Any]:
    """The error in ``body`` as one flat dict, whatever the format (message, code, ids,
    retriable, retry_after, field errors)."""
    if fmt == "problem":
        out = dict(body)
        out["message"] = body["detail"]
        out["field_errors"] = body.get("errors", [])
        return out
    if fmt == "wrapped":
        assert body["success"] is False
        assert body["data"] is None
    error = dict(body["error"])
    error["field_errors"] = error["details"].get("errors", [])
    return error
