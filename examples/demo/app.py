"""The demo service: an OpenAI-style chat proxy plus a couple of ordinary resources.

``create_app()`` builds it with errorkit's default format and mounts the same routes at
``/problem`` with RFC 9457 ``application/problem+json``. Calls to the flaky upstream go
through a retry, a circuit breaker per model and, for ``demo-fallback``, a local fallback;
``/metrics`` and ``/health*`` come with ``errorkit.fastapi.install``.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Sequence
from typing import Any, Literal

from fastapi import FastAPI
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

import errorkit.fastapi
from errorkit import ConflictError, NotFoundError, RateLimitError
from errorkit.http import DONE, sse_event, stream_errors
from errorkit.resilience import breaker_statuses, circuit_breaker, fallback_chain, retry

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


class UpstreamSwitch(BaseModel):
    healthy: bool


ITEMS: dict[int, dict[str, Any]] = {1: {"id": 1, "name": "teapot", "price": 18.0}}

BREAKER_SECONDS = float(os.environ.get("ERRORKIT_DEMO_BREAKER_SECONDS", "10"))
"""How long a model's breaker stays open before it lets one probe through."""
BREAKER_FAILURES = 4

# Retries hide short upstream hiccups; a Retry-After longer than a second is passed on to
# the client instead of holding the request (the 429 and open-breaker cases).
UPSTREAM_RETRY = retry(
    attempts=3, wait_initial=0.05, wait_max=0.2, retry_after_max=1.0, name="llm.chat"
)


def local_model(model: str, messages: Sequence[Message]) -> dict[str, Any]:
    """The degraded answer when the upstream is down."""
    last = messages[-1].content if messages else ""
    return {
        "object": "chat.completion",
        "model": "local-fallback",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": f"(offline) You said: {last}"},
                "finish_reason": "stop",
            }
        ],
    }


def _through_breaker(upstream: FakeUpstream) -> Any:
    async def call(model: str, messages: Sequence[Message]) -> dict[str, Any]:
        breaker = circuit_breaker(
            f"llm-upstream.{model}",
            failure_threshold=BREAKER_FAILURES,
            recovery_timeout=BREAKER_SECONDS,
        )
        return await UPSTREAM_RETRY.call_async(
            breaker.call_async, upstream.complete, model, messages
        )

    return call


def _routes(app: FastAPI, upstream: FakeUpstream) -> None:
    complete = _through_breaker(upstream)
    degraded = fallback_chain(complete, local_model, operation="chat.complete")

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
            if request.model != "demo-fallback":
                return await complete(request.model, request.messages)
            result = await degraded.run_async(request.model, request.messages)
            steps = [s.as_dict() for s in result.steps]
            return {**result.value, "degraded": result.degraded, "steps": steps}
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

    @app.post("/demo/upstream")
    async def switch_upstream(switch: UpstreamSwitch) -> dict[str, Any]:
        """Take demo-switch's upstream down or bring it back."""
        upstream.healthy = switch.healthy
        return {"healthy": upstream.healthy}

    @app.get("/demo/breakers")
    async def breakers() -> dict[str, Any]:
        """Every breaker's state, counts and next probe time."""
        return {"breakers": [s.as_dict() for s in breaker_statuses()]}

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
