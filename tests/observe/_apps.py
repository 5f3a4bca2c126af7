"""One small client over Starlette, FastAPI and Flask apps, so endpoint tests run on each."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

FRAMEWORKS = ("starlette", "fastapi", "flask")


@dataclass
class Reply:
    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        import json

        return json.loads(self.body)


Get = Callable[..., Reply]


@contextmanager
def app_client(
    framework: str, mount: Callable[..., list[str]] | None = None, **kwargs: Any
) -> Iterator[Get]:
    """An app of ``framework`` with errorkit's endpoints mounted by ``mount(app, **kwargs)``;
    yields ``get(path, headers=None) -> Reply``."""
    from errorkit.observe.endpoints import mount_asgi, mount_flask

    if framework == "flask":
        import flask

        app = flask.Flask("observe-tests")
        (mount or mount_flask)(app, **kwargs)
        client = app.test_client()

        def get_flask(path: str, headers: Mapping[str, str] | None = None) -> Reply:
            response = client.get(path, headers=dict(headers or {}))
            return Reply(
                response.status_code,
                {k.lower(): v for k, v in response.headers.items()},
                response.get_data(),
            )

        yield get_flask
        return

    import asyncio

    import httpx

    if framework == "fastapi":
        from fastapi import FastAPI

        asgi_app: Any = FastAPI()
    else:
        from starlette.applications import Starlette

        asgi_app = Starlette()
    (mount or mount_asgi)(asgi_app, **kwargs)

    async def fetch(path: str, headers: Mapping[str, str] | None) -> Reply:
        transport = httpx.ASGITransport(app=asgi_app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            response = await client.get(path, headers=dict(headers or {}))
        return Reply(response.status_code, dict(response.headers), response.content)

    def get_asgi(path: str, headers: Mapping[str, str] | None = None) -> Reply:
        return asyncio.run(fetch(path, headers))

    yield get_asgi
