"""The demo service: an OpenAI-style chat proxy plus a couple of ordinary resources.

``create_app()`` builds it with errorkit's default format and mounts the same routes at
``/problem`` with RFC 9457 ``application/problem+json``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Literal

from fastapi import FastAPI
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

import errorkit.fastapi
from errorkit import ConflictError, NotFoundError, RateLimitError
from errorkit.http import DONE, sse_event, stream_errors

from .upstream import MODEL_IDS, MODELS, FakeUpstream


class ItemNotFoundError(NotFoundError):
    code = "DEMO_ITEM_NOT_FOUND"
    message = "No item with id {item_id}."


class ItemConflictError(ConflictError):
    code = "DEMO_ITEM_CONFLICT"
    message = "An item named {name!r} already exists."


class ModelNotFoundError(NotFoundError):
    code = "CHAT_MODEL_NOT_FOUND"
    message = "The model {model!r} does not exist; GET /v1/models lists them."


class Item(BaseModel):
    name: str = Field(min_length=1, max_length=50)
    price: float = Field(gt=0)


class Message(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: str


class ChatRequest(BaseModel):
    model: str
    messages: list[Message] = Field(min_length=1)
    stream: bool = False


ITEMS: dict[int, dict[str, Any]] = {1: {"id": 1, "name": "teapot", "price": 18.0}}


def _routes(app: FastAPI, upstream: FakeUpstream) -> None:
    @app.get("/v1/models")
    async def list_models() -> dict[str, Any]:
        return {
            "object": "list",
            "data": [{"id": m.id, "object": "model", "behaviour": m.behaviour} for m in MODELS],
        }

    @app.post("/v1/chat/completions", response_model=None)
    async def chat(request: ChatRequest) -> dict[str, Any] | StreamingResponse:
        if request.model not in MODEL_IDS:
            raise ModelNotFoundError(model=request.model)
        if not request.stream:
            return await upstream.complete(request.model, request.messages)
        chunks = upstream.stream(request.model, request.messages)
        # Failures while connecting surface here, before any byte is sent: a normal answer.
        first = await anext(chunks)

        async def events() -> AsyncIterator[str]:
            yield sse_event(first)
            async for chunk in chunks:
                yield sse_event(chunk)
            yield DONE

        # Failures after the first byte become an SSE error event, then [DONE].
        return StreamingResponse(stream_errors(events()), media_type="text/event-stream")

    @app.get("/items/{item_id}")
    async def get_item(item_id: int) -> dict[str, Any]:
        if item_id not in ITEMS:
            raise ItemNotFoundError(item_id=item_id)
        return ITEMS[item_id]

    @app.post("/items", status_code=201)
    async def create_item(item: Item) -> dict[str, Any]:
        if item.name == "teapot" or any(i["name"] == item.name for i in ITEMS.values()):
            raise ItemConflictError(name=item.name)
        return {"id": 0, **item.model_dump()}

    @app.get("/limited")
    async def limited() -> dict[str, Any]:
        raise RateLimitError(retry_after=30, limit=10, window="1m")

    @app.get("/crash")
    async def crash() -> dict[str, Any]:
        password = "hunter2-not-for-clients"
        raise RuntimeError(f"could not connect to postgres://app:{password}@db/app")


def create_app(format: str = "default", *, mount_problem: bool = True) -> FastAPI:
    """The demo app; with ``mount_problem`` the same routes answer problem+json under
    ``/problem``."""
    upstream = FakeUpstream()
    app = FastAPI(title="errorkit demo", version="1")
    _routes(app, upstream)
    errorkit.fastapi.install(app, format=format)
    if mount_problem:
        app.mount("/problem", create_app("problem", mount_problem=False))
    return app
