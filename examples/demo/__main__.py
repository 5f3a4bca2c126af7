"""``python -m examples.demo``: start the demo service and print curl lines for each kind
of error answer, for the breaker in front of the flaky upstream, for the health and metrics
endpoints, and the CLI lines that show what was captured into the store (a SQLite file,
``.errorkit/demo.db`` by default). Beside it the tracker (``errorkit.server``) runs on the
same store, on another port of 127.0.0.1; a bounded traffic generator sends a few hundred
requests (successes, 4xx and 5xx) so that its dashboard has something to show, and the
dashboard's address and an admin token to log in with are printed.

``--check`` (or ``ERRORKIT_DEMO_CHECK=1``) runs every line itself against the live server,
then checks that each 5xx answer's error id is in the store and that ``/metrics`` counted
it, runs the traffic, and checks the tracker: the token logs in, the generated errors are
listed as groups and the dashboard's login page loads. It exits 0 only if all of it holds."""

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
from click.testing import CliRunner

import errorkit
from errorkit.capturing import current_store, shutdown
from errorkit.cli import cli
from errorkit.observe import default_health
from errorkit.server import create_app as create_tracker

from .app import BREAKER_SECONDS, create_app

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
        "A flaky upstream (503 twice, then fine): retries hide it",
        "POST",
        "/v1/chat/completions",
        200,
        body={"model": "demo-flaky", "messages": HI},
    ),
    Case(
        "The upstream is down: a local model answers, marked degraded with the steps taken",
        "POST",
        "/v1/chat/completions",
        200,
        body={"model": "demo-fallback", "messages": HI},
        checks=(lambda r: None if r.json().get("degraded") is True else "not degraded",),
    ),
    Case(
        "Breaker walk-through 1/4: take demo-switch's upstream down",
        "POST",
        "/demo/upstream",
        200,
        body={"healthy": False},
    ),
    Case(
        "Breaker 2/4: retries fail, the answer is the upstream's 503",
        "POST",
        "/v1/chat/completions",
        503,
        body={"model": "demo-switch", "messages": HI},
        code="UPSTREAM_UNAVAILABLE",
    ),
    Case(
        "Breaker 3/4: the breaker opened; calls are refused at once with Retry-After",
        "POST",
        "/v1/chat/completions",
        503,
        body={"model": "demo-switch", "messages": HI},
        code="CIRCUIT_OPEN",
        checks=(lambda r: None if r.headers.get("retry-after") else "no Retry-After",),
    ),
    Case(
        "Breaker 4/4: its state, failures and next probe time",
        "GET",
        "/demo/breakers",
        200,
        checks=(
            lambda r: (
                None
                if {b["name"]: b["state"] for b in r.json()["breakers"]}.get(
                    "llm-upstream.demo-switch"
                )
                == "open"
                else "demo-switch's breaker is not open"
            ),
        ),
    ),
    Case(
        "Liveness",
        "GET",
        "/health",
        200,
    ),
    Case(
        "Readiness (the store is a critical component)",
        "GET",
        "/health/ready",
        200,
        checks=(lambda r: None if "store" in r.text else "the store is not checked",),
    ),
    Case(
        "Detailed health without the token: the status of each component and breaker only",
        "GET",
        "/health/detailed",
        200,
        checks=(
            lambda r: None if "breakers" in r.json() else "no breakers section",
            lambda r: "error texts shown without the token" if "errors" in r.json() else None,
        ),
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


def start(
    sock: socket.socket, log_level: str, app: Any = None
) -> tuple[uvicorn.Server, threading.Thread]:
    """Serve ``app`` (default: the demo service) on ``sock`` from a daemon thread."""
    config = uvicorn.Config(app if app is not None else create_app(), log_level=log_level)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            msg = "the demo server could not start"
            raise SystemExit(msg)
        time.sleep(0.05)
    return server, thread


DEFAULT_STORE = "sqlite:///.errorkit/demo.db"


def _cli_prefix() -> str:
    local = os.path.join(os.path.dirname(sys.executable), "errorkit")
    if os.path.exists(local):
        return os.path.relpath(local) if not os.path.relpath(local).startswith("..") else local
    return "errorkit"


def configure_capture(store_url: str) -> None:
    """Capture into ``store_url`` and check the store from /health/ready."""
    if store_url.startswith("sqlite:///") and not store_url.startswith("sqlite:////"):
        os.makedirs(os.path.dirname(store_url.removeprefix("sqlite:///")) or ".", exist_ok=True)
    errorkit.configure(store_url, service="demo", environment="demo")

    def store() -> None:
        current = current_store()
        if current is None:
            msg = "capture is not configured"
            raise RuntimeError(msg)
        current.ping()

    health = default_health()
    if "store" not in {c.name for c in health.checks}:
        health.add("store", store, timeout=2.0, critical=True, component_type="datastore")


def print_lines(base: str, store_url: str) -> None:
    print(f"\nerrorkit demo on {base}  (OpenAPI docs: {base}/docs)\n")
    for case in CASES:
        print(f"# {case.title}  -> {case.status}")
        print(case.curl(base) + "\n")
    chat = shlex.quote(json.dumps({"model": "demo-switch", "messages": HI}))
    print(
        "# Watch the breaker close again: bring the upstream back, wait for the probe\n"
        f"curl -s -X POST {base}/demo/upstream -H 'Content-Type: application/json' "
        "-d '{\"healthy\": true}'\n"
        f"sleep {BREAKER_SECONDS:g}; curl -s -X POST {base}/v1/chat/completions "
        f"-H 'Content-Type: application/json' -d {chat}\n"
        f"curl -s {base}/demo/breakers   # llm-upstream.demo-switch is closed again\n"
    )
    print(
        "# Prometheus metrics: errors by type, code and severity; breakers; capture queue\n"
        f"curl -s {base}/metrics | grep '^errorkit_'\n"
    )
    prefix, store = _cli_prefix(), shlex.quote(store_url)
    print("# What was captured (every 5xx; the answer's error_id finds its row):")
    for line in (
        f"{prefix} errors list --store {store}",
        f"{prefix} errors show ERROR_ID --store {store}",
        f"{prefix} groups list --store {store}",
        f"{prefix} errors stats --store {store}",
        f"{prefix} errors export --format jsonl --store {store}",
    ):
        print(line)
    print()


def _error_id(r: httpx.Response) -> str | None:
    if r.headers.get("content-type", "").startswith("text/event-stream"):
        for event in reversed(r.text.split("\n\n")):
            if event.startswith("data: {") and '"error"' in event:
                return str(json.loads(event.removeprefix("data: "))["error"]["error_id"])
        return None
    if r.status_code < 500:
        return None
    body = r.json()
    found = body.get("error_id") or body.get("error", {}).get("error_id")
    return str(found) if found else None


def check_captured(base: str, store_url: str, error_ids: list[str]) -> bool:
    """Every 5xx answer's error id is a stored row, and /metrics counted the errors."""
    ok = errorkit.flush(30)
    print(f"\n{'PASS' if ok else 'FAIL'}  captured events flushed to {store_url}")
    runner = CliRunner()
    for error_id in error_ids:
        result = runner.invoke(cli, ["errors", "show", error_id, "--store", store_url])
        found = result.exit_code == 0 and error_id in result.output
        ok = ok and found
        print(f"{'PASS' if found else 'FAIL'}  errorkit errors show {error_id}")
    listing = runner.invoke(cli, ["errors", "list", "--store", store_url, "--limit", "5"])
    print(f"      $ errorkit errors list --store {store_url} --limit 5")
    for line in listing.output.rstrip().splitlines():
        print(f"      {line}")
    metrics = httpx.get(f"{base}/metrics", timeout=10).text
    counted = any(
        line.startswith("errorkit_errors_total{") and not line.rstrip().endswith(" 0.0")
        for line in metrics.splitlines()
    )
    ok = ok and counted
    print(f"{'PASS' if counted else 'FAIL'}  /metrics counts the captured errors")
    return ok


def check(base: str, store_url: str) -> bool:
    ok = True
    error_ids: list[str] = []
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
            error_id = _error_id(r) if not problems else None
            if error_id:
                error_ids.append(error_id)
            print(f"{'PASS' if not problems else 'FAIL'}  {case.title}")
            print(f"      $ {case.curl(base)}")
            print(f"      {r.status_code} {r.headers.get('content-type')}")
            for line in r.text.strip().splitlines():
                print(f"      {line}")
            for problem in problems:
                print(f"      !! {problem}")
    print(f"\n{'all answers match' if ok else 'some answers do not match'}")
    return check_captured(base, store_url, error_ids) and ok


# The traffic generator's round: one request per line, over the demo's own routes, every
# answer fast (no retries with back-off, no timeouts, the breaker walk-through left alone).
TRAFFIC: tuple[tuple[str, str, Any, int], ...] = (
    ("GET", "/v1/models", None, 200),
    ("POST", "/v1/chat/completions", {"model": "demo-echo", "messages": HI}, 200),
    ("GET", "/items/42", None, 404),
    ("GET", "/nope", None, 404),
    ("POST", "/items", {"name": "", "price": -1}, 422),
    ("POST", "/items", {"name": "teapot", "price": 3}, 409),
    ("GET", "/limited", None, 429),
    ("POST", "/v1/chat/completions", {"model": "gpt-nope", "messages": HI}, 404),
    ("GET", "/crash", None, 500),
    ("GET", "/problem/items/42", None, 404),
)
TRAFFIC_ROUNDS = 30  # 300 requests, then the generator stops by itself


def generate_traffic(base: str, rounds: int = TRAFFIC_ROUNDS) -> dict[int, int]:
    """Send ``rounds`` rounds of :data:`TRAFFIC` to ``base``; how many answers had each
    status. Stops early, quietly, when the service goes away (Ctrl-C)."""
    statuses: dict[int, int] = {}
    limits = httpx.Limits(max_keepalive_connections=0)
    with httpx.Client(base_url=base, timeout=30, limits=limits) as client:
        for n in range(rounds):
            for method, path, body, _ in TRAFFIC:
                try:
                    r = client.request(
                        method, path, json=body, headers={"X-Request-ID": f"traffic-{n}"}
                    )
                except httpx.HTTPError:
                    return statuses
                statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
    return statuses


def _summary(statuses: dict[int, int]) -> str:
    return ", ".join(f"{count} x {status}" for status, count in sorted(statuses.items()))


def create_token(store_url: str) -> str:
    """An admin API token for the tracker, made with ``errorkit tokens create``."""
    result = CliRunner().invoke(
        cli,
        ["tokens", "create", "--role", "admin", "--name", "demo", "--json", "--store", store_url],
    )
    if result.exit_code != 0:
        msg = f"errorkit tokens create failed: {result.output}"
        raise SystemExit(msg)
    return str(json.loads(result.stdout)["token"])


def print_tracker(tracker: str, token: str) -> None:
    print("# The tracker on the same store: the captured errors, grouped, with their breakers")
    print(f"Dashboard: {tracker}/admin/   (log in with the token below)")
    print(f"Token:     {token}")
    print(f"curl -s {tracker}/admin/api/groups -H 'Authorization: Bearer {token}'\n")


def check_tracker(tracker: str, token: str, statuses: dict[int, int]) -> bool:
    """The tracker answers, the token logs in, the traffic's errors are listed as groups
    and the dashboard's login page loads."""
    ok = True

    def report(passed: bool, title: str, detail: str = "") -> None:
        nonlocal ok
        ok = ok and passed
        print(f"{'PASS' if passed else 'FAIL'}  {title}")
        if detail:
            print(f"      {detail}")

    expected = sum(1 for *_, status in TRAFFIC for _ in range(TRAFFIC_ROUNDS))
    got = sum(statuses.values())
    mismatched = {s: c for s, c in statuses.items() if s not in {status for *_, status in TRAFFIC}}
    report(
        got == expected and not mismatched,
        f"traffic: {got} requests sent, the documented statuses only",
        _summary(statuses),
    )
    auth = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=tracker, timeout=30) as client:
        live = client.get("/admin/api/health/live")
        report(
            live.status_code == 200,
            "the tracker answers",
            f"GET /admin/api/health/live -> {live.status_code}",
        )
        me = client.get("/admin/api/auth/me", headers=auth)
        report(
            me.status_code == 200,
            "the token logs in",
            f"GET /admin/api/auth/me -> {me.status_code}",
        )
        anonymous = client.get("/admin/api/groups")
        report(
            anonymous.status_code == 401,
            "without the token the groups are refused",
            f"GET /admin/api/groups -> {anonymous.status_code}",
        )
        groups = client.get("/admin/api/groups", headers=auth, params={"limit": 200})
        items = groups.json().get("items", []) if groups.status_code == 200 else []
        crashes = statuses.get(500, 0)
        crash_groups = [g for g in items if g["title"].startswith("RuntimeError")]
        listed = bool(crash_groups) and max(g["count"] for g in crash_groups) >= crashes > 0
        report(
            listed,
            f"the generated errors are listed as groups ({crashes} x /crash counted)",
            "; ".join(f"{g['count']} x {g['error_type']}: {g['title']}" for g in items[:5]),
        )
        login = client.get("/admin/login")
        report(
            login.status_code == 200 and 'name="token"' in login.text,
            "the dashboard's login page loads",
            f"GET /admin/login -> {login.status_code}",
        )
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
    parser.add_argument(
        "--store",
        default=os.environ.get("ERRORKIT_STORE_URL", DEFAULT_STORE),
        help=f"where captured errors go (default {DEFAULT_STORE})",
    )
    args = parser.parse_args(argv)
    configure_capture(args.store)
    sock = bind(args.port)
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    log_level = "critical" if args.check else "warning"
    server, thread = start(sock, log_level)
    tracker_sock = bind(0)
    tracker = f"http://127.0.0.1:{tracker_sock.getsockname()[1]}"
    tracker_server, tracker_thread = start(tracker_sock, log_level, create_tracker(args.store))
    try:
        token = create_token(args.store)
        if args.check:
            answers = check(base, args.store)
            statuses = generate_traffic(base)
            errorkit.flush(30)
            print(f"\n# The tracker on {tracker}/admin/")
            return 0 if check_tracker(tracker, token, statuses) and answers else 1
        print_lines(base, args.store)
        print_tracker(tracker, token)

        def traffic() -> None:
            statuses = generate_traffic(base)
            print(f"traffic generator done: {_summary(statuses)}", flush=True)

        threading.Thread(target=traffic, name="demo-traffic", daemon=True).start()
        print(
            f"A traffic generator sends {TRAFFIC_ROUNDS * len(TRAFFIC)} requests, then stops.",
            flush=True,
        )
        print("Ctrl-C stops the demo.", flush=True)
        while thread.is_alive():
            thread.join(timeout=0.5)
        return 0
    except KeyboardInterrupt:
        return 0
    finally:
        server.should_exit = True
        tracker_server.should_exit = True
        thread.join(timeout=10)
        tracker_thread.join(timeout=10)
        sock.close()
        tracker_sock.close()
        shutdown(10)


if __name__ == "__main__":
    sys.exit(main())
