"""A fake, in-process language-model provider that fails on demand.

The failures are the real exceptions an httpx client raises (``HTTPStatusError`` with a
429 and ``Retry-After``, a 503, a read timeout, a connection dropped mid-stream), so the
demo shows how errorkit classifies what a real upstream does. Which one happens depends
only on the model name: the demo is deterministic.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

UPSTREAM_URL = "https://llm.upstream.example/v1/chat/completions"


@dataclass(frozen=True)
class Model:
    id: str
    behaviour: str


MODELS: tuple[Model, ...] = (
    Model("demo-echo", "answers by echoing the last message"),
    Model("demo-ratelimited", "the upstream answers 429 with Retry-After: 20"),
    Model("demo-unavailable", "the upstream answers 503"),
    Model("demo-timeout", "the upstream does not answer in time"),
    Model("demo-broken-stream", "the upstream drops the connection mid-stream"),
    Model("demo-flaky", "the upstream answers 503 twice, then works: retries hide it"),
    Model("demo-fallback", "the upstream is down: a local model answers, marked degraded"),
    Model("demo-switch", "up or down as POST /demo/upstream says: watch its breaker"),
)
MODEL_IDS = frozenset(m.id for m in MODELS)


def _request() -> httpx.Request:
    return httpx.Request("POST", UPSTREAM_URL)


def _status_error(status: int, headers: dict[str, str] | None = None) -> httpx.HTTPStatusError:
    request = _request()
    response = httpx.Response(status, headers=headers, request=request)
    return httpx.HTTPStatusError(f"upstream answered {status}", request=request, response=response)


class FakeUpstream:
    """What a provider client would do, minus the network."""

    def __init__(self) -> None:
        self.healthy = True  # what demo-switch does; POST /demo/upstream flips it
        self._flaky_calls = 0

    def _fail_on_connect(self, model: str) -> None:
        if model == "demo-flaky":
            self._flaky_calls += 1
            if self._flaky_calls % 3 != 0:
                raise _status_error(503)
        if model == "demo-fallback" or (model == "demo-switch" and not self.healthy):
            raise httpx.ConnectError("connection refused", request=_request())
        if model == "demo-ratelimited":
            raise _status_error(429, {"Retry-After": "20"})
        if model == "demo-unavailable":
            raise _status_error(503)
        if model == "demo-timeout":
            raise httpx.ReadTimeout("upstream read timed out", request=_request())

    @staticmethod
    def _reply(messages: Sequence[Any]) -> str:
        last = messages[-1].content if messages else ""
        return f"You said: {last}"

    async def complete(self, model: str, messages: Sequence[Any]) -> dict[str, Any]:
        await asyncio.sleep(0)
        self._fail_on_connect(model)
        return {
            "id": "chatcmpl-demo",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": self._reply(messages)},
                    "finish_reason": "stop",
                }
            ],
        }

    async def stream(self, model: str, messages: Sequence[Any]) -> AsyncIterator[dict[str, Any]]:
        """Chunks in the OpenAI streaming shape; connection failures raise on the first."""
        self._fail_on_connect(model)
        words = self._reply(messages).split()
        for i, word in enumerate(words):
            if model == "demo-broken-stream" and i == 2:
                raise httpx.RemoteProtocolError(
                    "peer closed connection without sending complete message body",
                    request=_request(),
                )
            await asyncio.sleep(0)
            yield {
                "id": "chatcmpl-demo",
                "object": "chat.completion.chunk",
                "model": model,
                "choices": [{"index": 0, "delta": {"content": word + " "}}],
            }
