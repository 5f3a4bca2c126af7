"""``python -m examples.demo``: start the demo service and print curl lines for each kind
of error answer. ``--check`` (or ``ERRORKIT_DEMO_CHECK=1``) runs every line itself against
the live server and exits 0 only if each answer is the documented one."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import uvicorn

from .app import create_app

Check = Callable[[httpx.Response], str | None]


@dataclass(frozen=True)
class Case:
    """One documented request and the answer it must get."""

    title: str
    method: str
    path: str
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    media: str = "application/json"
    code: str | None = None
    expect_headers: dict[str, str] = field(default_factory=dict)
    checks: tuple[Check, ...] = ()

    def curl(self, base: str) -> str:
        parts = ["curl", "-s", "-i"]
        if self.media == "text/event-stream":
            parts.append("-N")
        if self.method != "GET":
            parts += ["-X", self.method]
        parts.append(base + self.path)
        for name, value in self.headers.items():
            parts += ["-H", f"{name}: {value}"]
        if self.body is not None:
            parts += ["-H", "Content-Type: application/json", "-d", json.dumps(self.body)]
        return " ".join(shlex.quote(p) for p in parts)


def _fields(*names: str) -> Check:
    def check(r: httpx.Response) -> str | None:
        got = sorted(e["loc"][-1] for e in r.json()["error"]["details"]["errors"])
        return None if got == sorted(names) else f"invalid fields {got}, expected {sorted(names)}"

    return check


def _absent(*words: str) -> Check:
    def check(r: httpx.Response) -> str | None:
        leaked = [w for w in words if w in r.text]
        return f"the answer shows {leaked}" if leaked else None

    return check


def _sse(ends_with_error: bool) -> Check:
    def check(r: httpx.Response) -> str | None:
        events = [e for e in r.text.split("\n\n") if e]
        if not events or events[-1] != "data: [DONE]":
            return "the stream does not end with data: [DONE]"
        has_error = '"error"' in events[-2]
        if has_error != ends_with_error:
            return "the error event is missing" if ends_with_error else "unexpected error event"
        if ends_with_error and "error_id" not in events[-2]:
            return "the error event has no error_id"
        return None

    return check


def _problem(r: httpx.Response) -> str | None:
    body = r.json()
    missing = {"type", "title", "status", "detail", "instance", "error_id"} - set(body)
    return f"problem+json lacks {sorted(missing)}" if missing else None


def _code_of(r: httpx.Response) -> str | None:
    body = r.json()
    code = body.get("code") if "code" in body else body.get("error", {}).get("code")
    return str(code) if code is not None else None


HI = [{"role": "user", "content": "hello there from curl"}]

CASES: tuple[Case, ...] = (
    Case("An ordinary answer (X-Request-ID is always returned)", "GET", "/v1/models", 200),
    Case(
        "404 from an errorkit error, your request id echoed",
        "GET",
        "/items/42",
        404,
        headers={"X-Request-ID": "demo-req-42"},
        code="DEMO_ITEM_NOT_FOUND",
        expect_headers={"x-request-id": "demo-req-42"},
    ),
    Case("404 for a route that does not exist", "GET", "/nope", 404, code="NOT_FOUND"),
    Case(
        "405 keeps the Allow header",
        "DELETE",
        "/v1/models",
        405,
        code="METHOD_NOT_ALLOWED",
        expect_headers={"allow": "GET"},
    ),
    Case(
        "422: one entry per invalid field",
        "POST",
        "/items",
        422,
        body={"name": "", "price": -1},
        code="VALIDATION_ERROR",
        checks=(_fields("name", "price"),),
    ),
    Case(
        "409 conflict",
        "POST",
        "/items",
        409,
        body={"name": "teapot", "price": 3},
        code="DEMO_ITEM_CONFLICT",
    ),
    Case(
        "429 with Retry-After",
        "GET",
        "/limited",
        429,
        code="RATE_LIMIT_EXCEEDED",
        expect_headers={"retry-after": "30"},
    ),
    Case(
        "500: a generic message and an error id, never the exception's text",
        "GET",
        "/crash",
        500,
        code="INTERNAL_ERROR",
        checks=(_absent("hunter2", "postgres://", "Traceback", "RuntimeError"),),
    ),
    Case(
        "A chat completion that works",
        "POST",
        "/v1/chat/completions",
        200,
        body={"model": "demo-echo", "messages": HI},
    ),
    Case(
        "422 for a chat request without messages",
        "POST",
        "/v1/chat/completions",
        422,
        body={"model": "demo-echo", "messages": []},
        code="VALIDATION_ERROR",
        checks=(_fields("messages"),),
    ),
    Case(
        "404 for an unknown model",
        "POST",
        "/v1/chat/completions",
        404,
        body={"model": "gpt-nope", "messages": HI},
        code="CHAT_MODEL_NOT_FOUND",
    ),
    Case(
        "Upstream 429: passed on with its Retry-After",
        "POST",
        "/v1/chat/completions",
        429,
        body={"model": "demo-ratelimited", "messages": HI},
        code="UPSTREAM_RATE_LIMITED",
        expect_headers={"retry-after": "20"},
    ),
    Case(
        "Upstream 503",
        "POST",
        "/v1/chat/completions",
        503,
        body={"model": "demo-unavailable", "messages": HI},
        code="UPSTREAM_UNAVAILABLE",
    ),
    Case(
        "Upstream timeout: 504",
        "POST",
        "/v1/chat/completions",
        504,
        body={"model": "demo-timeout", "messages": HI},
        code="UPSTREAM_TIMEOUT",
    ),
    Case(
        "A streamed completion (SSE) ending in [DONE]",
        "POST",
        "/v1/chat/completions",
        200,
        body={"model": "demo-echo", "messages": HI, "stream": True},
        media="text/event-stream",
        checks=(_sse(ends_with_error=False),),
    ),
    Case(
        "Upstream drops mid-stream: an SSE error event with its error id, then [DONE]",
        "POST",
        "/v1/chat/completions",
        200,
        body={"model": "demo-broken-stream", "messages": HI, "stream": True},
        media="text/event-stream",
        checks=(_sse(ends_with_error=True),),
    ),
    Case(
        "Upstream 429 on a streamed request: a normal answer, nothing was sent yet",
        "POST",
        "/v1/chat/completions",
        429,
        body={"model": "demo-ratelimited", "messages": HI, "stream": True},
        code="UPSTREAM_RATE_LIMITED",
        expect_headers={"retry-after": "20"},
    ),
    Case(
        "The same service answering RFC 9457 problem+json",
        "GET",
        "/problem/items/42",
        404,
        media="application/problem+json",
        code="DEMO_ITEM_NOT_FOUND",
        checks=(_problem,),
    ),
)


def verify(case: Case, r: httpx.Response) -> list[str]:
    """What is wrong with ``r`` for ``case`` (empty when it is the documented answer)."""
    problems: list[str] = []
    if r.status_code != case.status:
        problems.append(f"status {r.status_code}, expected {case.status}")
    if not r.headers.get("content-type", "").startswith(case.media):
        problems.append(f"content-type {r.headers.get('content-type')!r}, expected {case.media}")
    if "x-request-id" not in r.headers:
        problems.append("no X-Request-ID header")
    for name, value in case.expect_headers.items():
        if r.headers.get(name) != value:
            problems.append(f"header {name}: {r.headers.get(name)!r}, expected {value!r}")
    if problems:
        return problems
    if case.code is not None and _code_of(r) != case.code:
        problems.append(f"code {_code_of(r)!r}, expected {case.code!r}")
    problems += [p for p in (check(r) for check in case.checks) if p]
    return problems


def bind(preferred: int | None) -> socket.socket:
    """A listening socket on 127.0.0.1: ``preferred`` (0 = any free port), else 8000 when
    free, else any free port."""
    candidates = (preferred,) if preferred is not None else (8000, 0)
    for port in candidates:
        sock = socket.socket()
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            sock.close()
            continue
        sock.listen(128)
        return sock
    msg = f"port {preferred} on 127.0.0.1 is in use; pick another with --port, or --port 0"
    raise SystemExit(msg)


def start(sock: socket.socket, log_level: str) -> tuple[uvicorn.Server, threading.Thread]:
    config = uvicorn.Config(create_app(), log_level=log_level)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            msg = "the demo server could not start"
            raise SystemExit(msg)
        time.sleep(0.05)
    return server, thread


def print_lines(base: str) -> None:
    print(f"\nerrorkit demo on {base}  (OpenAPI docs: {base}/docs)\n")
    for case in CASES:
        print(f"# {case.title}  -> {case.status}")
        print(case.curl(base) + "\n")


def check(base: str) -> bool:
    ok = True
    # One connection per request, like the curl lines: after an unexpected 5xx the server
    # logs the exception and closes that connection (as it does without errorkit).
    limits = httpx.Limits(max_keepalive_connections=0)
    with httpx.Client(base_url=base, timeout=30, limits=limits) as client:
        for case in CASES:
            r = client.request(
                case.method,
                case.path,
                headers=case.headers,
                json=case.body if case.body is not None else None,
            )
            problems = verify(case, r)
            ok = ok and not problems
            print(f"{'PASS' if not problems else 'FAIL'}  {case.title}")
            print(f"      $ {case.curl(base)}")
            print(f"      {r.status_code} {r.headers.get('content-type')}")
            for line in r.text.strip().splitlines():
                print(f"      {line}")
            for problem in problems:
                print(f"      !! {problem}")
    print(f"\n{'all answers match' if ok else 'some answers do not match'}")
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m examples.demo", description=__doc__)
    parser.add_argument(
        "--port", type=int, default=None, help="default: 8000 if free, else any; 0 = any"
    )
    parser.add_argument(
        "--check",
        action="store_true",
        default=os.environ.get("ERRORKIT_DEMO_CHECK", "") in ("1", "true", "yes"),
        help="run every printed request, compare with the documented answer, exit",
    )
    args = parser.parse_args(argv)
    sock = bind(args.port)
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server, thread = start(sock, "critical" if args.check else "warning")
    try:
        if args.check:
            return 0 if check(base) else 1
        print_lines(base)
        print("Ctrl-C stops the demo.", flush=True)
        while thread.is_alive():
            thread.join(timeout=0.5)
        return 0
    except KeyboardInterrupt:
        return 0
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


if __name__ == "__main__":
    sys.exit(main())
