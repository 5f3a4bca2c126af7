"""What counting requests costs per request: CPU per request of the same app, bare, with
errorkit but its request counter switched off, and with errorkit as installed (counting).

Apps are called in-process (no server, no sockets): a FastAPI app through ASGI and a Flask
app through WSGI, one ``GET /items/7`` (a route with a path parameter, answered 200) per
call. CPU time is counted for the calling thread, best of ``ERRORKIT_BENCH_BATCHES`` batches
(default 7) of ``ERRORKIT_BENCH_REQUESTS`` requests (default 3000), variants interleaved
batch by batch so drift hits them alike. ``RequestCounter.count`` alone is timed too.

Ratios are bare / variant (1.00: as fast as the bare app); "counter" is the difference
between errorkit counting and errorkit not counting, in microseconds and as a share of the
bare app's time.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

from errorkit.capturing import request_counts

REQUESTS = int(os.environ.get("ERRORKIT_BENCH_REQUESTS", "3000"))
BATCHES = int(os.environ.get("ERRORKIT_BENCH_BATCHES", "7"))
VARIANTS = ("bare", "errorkit, not counting", "errorkit")


class _NotCounting(request_counts.RequestCounter):
    def count(self, service: str, endpoint: str | None, status: int) -> None:
        return


@contextlib.contextmanager
def counting(on: bool) -> Iterator[None]:
    counter = request_counts.RequestCounter() if on else _NotCounting()
    previous = request_counts.set_default_request_counter(counter)
    try:
        yield
    finally:
        request_counts.set_default_request_counter(previous)


def fastapi_app(with_errorkit: bool) -> Any:
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    if with_errorkit:
        import errorkit.fastapi

        errorkit.fastapi.install(app)
    return app


def flask_app(with_errorkit: bool) -> Any:
    from flask import Flask

    app = Flask("bench")

    @app.get("/items/<int:item_id>")
    def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    if with_errorkit:
        import errorkit.flask

        errorkit.flask.install(app)
    return app


def asgi_caller(app: Any) -> Callable[[int], float]:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/items/7",
        "raw_path": b"/items/7",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"bench"), (b"user-agent", b"bench")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        return

    async def batch(n: int) -> float:
        started = time.thread_time()
        for _ in range(n):
            await app(dict(scope), receive, send)
        return (time.thread_time() - started) / n

    loop = asyncio.new_event_loop()
    return lambda n: loop.run_until_complete(batch(n))


def wsgi_caller(app: Any) -> Callable[[int], float]:
    base = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/items/7",
        "SCRIPT_NAME": "",
        "QUERY_STRING": "",
        "SERVER_NAME": "bench",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "bench",
        "wsgi.url_scheme": "http",
        "wsgi.errors": io.StringIO(),
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        return None

    def batch(n: int) -> float:
        started = time.thread_time()
        for _ in range(n):
            environ = dict(base)
            environ["wsgi.input"] = io.BytesIO(b"")
            result = app(environ, start_response)
            for _ in result:
                pass
            close = getattr(result, "close", None)
            if close is not None:
                close()
        return (time.thread_time() - started) / n

    return batch


def measure(framework: str) -> dict[str, float]:
    """Best CPU seconds per request of each variant, batches interleaved."""
    build = fastapi_app if framework == "fastapi" else flask_app
    caller = asgi_caller if framework == "fastapi" else wsgi_caller
    bare = caller(build(False))
    with_errorkit = caller(build(True))
    runs: dict[str, Callable[[int], float]] = {
        "bare": bare,
        "errorkit, not counting": with_errorkit,
        "errorkit": with_errorkit,
    }
    best = dict.fromkeys(VARIANTS, float("inf"))
    for round_ in range(BATCHES + 1):
        for variant in VARIANTS:
            with counting(variant == "errorkit"):
                seconds = runs[variant](REQUESTS if round_ else max(REQUESTS // 10, 1))
            if round_:  # the first round warms up
                best[variant] = min(best[variant], seconds)
    return best


def counter_alone() -> float:
    """Best CPU seconds of one ``RequestCounter.count`` call."""
    counter = request_counts.RequestCounter()
    count = counter.count
    endpoints = [f"/e{i}/{{id}}" for i in range(20)]
    statuses = (200, 200, 200, 404, 503)
    best = float("inf")
    n = REQUESTS * 10
    for _ in range(BATCHES):
        started = time.thread_time()
        for i in range(n):
            count("app", endpoints[i % 20], statuses[i % 5])
        best = min(best, (time.thread_time() - started) / n)
    return best


def main() -> None:
    print(
        f"CPU microseconds per GET /items/7 in-process, best of {BATCHES} batches of "
        f"{REQUESTS} (lower is better; ratio = bare / variant)"
    )
    print(
        f"{'app':10}"
        + "".join(f"{v:>24}" for v in VARIANTS)
        + "".join(f"{v + '/bare':>29}" for v in VARIANTS[1:])
        + f"{'counter us':>12}{'counter/bare':>14}"
    )
    for framework in ("fastapi", "flask"):
        best = measure(framework)
        us = [best[v] * 1e6 for v in VARIANTS]
        cost = us[2] - us[1]
        print(
            f"{framework:10}"
            + "".join(f"{u:24.2f}" for u in us)
            + "".join(f"{us[0] / u:29.2f}" for u in us[1:])
            + f"{cost:12.2f}{cost / us[0]:14.3f}"
        )
    print(f"\nRequestCounter.count alone: {counter_alone() * 1e9:.0f} ns per call")


if __name__ == "__main__":
    main()
