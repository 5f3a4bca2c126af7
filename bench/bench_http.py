"""Requests/s of one minimal FastAPI app: bare, with errorkit, with sentry-sdk.

Three uvicorn servers (one per variant) share CPU core 0; wrk runs on core 1, so the load
generator is not the bottleneck. Rounds are interleaved (every variant, every path, then
again) so drift on the machine hits all variants alike. Paths:

- ``/ok``: the happy path;
- ``/error``: a handled error (errorkit: ``NotFoundError``; bare and sentry: FastAPI's own
  ``HTTPException(404)``, their equivalent);
- ``/crash``: an unexpected ``RuntimeError`` (500; the server closes the connection after
  it, as uvicorn does for any exception that reaches it).

A fourth variant, ``basehttp``, is the bare app plus the same request-id logic written as
Starlette's ``BaseHTTPMiddleware``: the design errorkit's pure-ASGI middleware replaces.

wrk's numbers move with whatever else the machine runs; the second table is steadier: CPU
time per request of the same apps called in-process (no server, no sockets), counted for
the thread that serves the requests, best of 5 batches and of ``ERRORKIT_BENCH_CPU_ROUNDS``
interleaved rounds (one process per variant and round). That table has one more variant,
``errorkit+capture``: errorkit with ``errorkit.configure(store_url=<SQLite in a temporary
directory>)``, as in production, so each error is also handed to the capture pipeline (its
writer thread stores it; the table shows what the request's own thread pays).

uvicorn runs with ``--log-level critical`` for all three, so none pays for printing
tracebacks. Sentry's DSN points at a local sink that accepts and discards envelopes.
The ``errorkit`` server runs without a capture reporter (naming and answering only).

Environment: ``ERRORKIT_BENCH_SECONDS`` (default 3), ``ERRORKIT_BENCH_ROUNDS`` (default 3),
``ERRORKIT_BENCH_CONNECTIONS`` (default 32), ``ERRORKIT_BENCH_CPU_ROUNDS`` (default 3),
``ERRORKIT_BENCH_WRK`` (default 1; 0 prints the in-process table only).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = ("bare", "errorkit", "sentry", "basehttp")
CPU_VARIANTS = ("bare", "errorkit", "errorkit+capture", "sentry", "basehttp")
PATHS = ("/ok", "/error", "/crash")
EXPECTED_STATUS = {"/ok": 200, "/error": 404, "/crash": 500}


# --- the apps under test (run inside the server processes) --------------------------------


def build_app(variant: str, sink_port: int) -> Any:
    from fastapi import FastAPI, HTTPException

    app = FastAPI()

    @app.get("/ok")
    async def ok() -> dict[str, bool]:
        return {"ok": True}

    if variant.startswith("errorkit"):
        from errorkit import NotFoundError

        @app.get("/error")
        async def app_error() -> None:
            raise NotFoundError(details={"item_id": 7})

    else:

        @app.get("/error")
        async def http_error() -> None:
            raise HTTPException(404, "not found")

    @app.get("/crash")
    async def crash() -> None:
        raise RuntimeError("boom")

    if variant == "sentry":
        import sentry_sdk

        sentry_sdk.init(dsn=f"http://public@127.0.0.1:{sink_port}/1")

    if variant == "basehttp":
        from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
        from starlette.requests import Request
        from starlette.responses import Response

        from errorkit.http.request_id import accept_request_id

        class RequestIdMiddleware(BaseHTTPMiddleware):
            async def dispatch(
                self, request: Request, call_next: RequestResponseEndpoint
            ) -> Response:
                request_id = accept_request_id(request.headers.get("x-request-id"))
                response = await call_next(request)
                response.headers["X-Request-ID"] = request_id
                return response

        app.add_middleware(RequestIdMiddleware)

    if variant.startswith("errorkit"):
        import errorkit.fastapi

        # Last, as the guide says: after the routes (its /metrics and /health routes then
        # come after the app's own) and after any middleware (which then runs inside it).
        errorkit.fastapi.install(app)

    return app


def serve(variant: str, port: int, sink_port: int) -> None:
    import uvicorn

    uvicorn.run(
        build_app(variant, sink_port),
        host="127.0.0.1",
        port=port,
        log_level="critical",
        access_log=False,
    )


def in_process(variant: str, sink_port: int) -> None:
    """Print microseconds of CPU per request for each path (best of 5 batches)."""
    with contextlib.ExitStack() as stack:
        if variant == "errorkit+capture":
            import tempfile

            from errorkit.capturing import configure, shutdown

            folder = stack.enter_context(tempfile.TemporaryDirectory())
            configure(store_url=f"sqlite:///{folder}/errors.db")
            stack.callback(shutdown)
        print(" ".join(_cpu_per_path(build_app(variant, sink_port), variant)))


def _cpu_per_path(app: Any, variant: str) -> list[str]:
    import asyncio

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    statuses: list[int] = []

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    async def run() -> list[str]:
        results = []
        for path in PATHS:
            scope = {
                "type": "http",
                "asgi": {"version": "3.0", "spec_version": "2.4"},
                "http_version": "1.1",
                "method": "GET",
                "scheme": "http",
                "path": path,
                "raw_path": path.encode(),
                "root_path": "",
                "query_string": b"",
                "headers": [(b"host", b"bench"), (b"user-agent", b"bench")],
                "client": ("127.0.0.1", 1),
                "server": ("127.0.0.1", 80),
            }

            async def one(scope: dict[str, Any] = scope) -> None:
                # Crashes are re-raised for the server to log: expected here.
                with contextlib.suppress(Exception):
                    await app(dict(scope), receive, send)

            n = 100 if variant == "sentry" and path == "/crash" else 3000
            statuses.clear()
            for _ in range(min(n, 300)):
                await one()
            # A benchmark of the wrong answer measures nothing: check what was answered.
            expected = EXPECTED_STATUS[path]
            if set(statuses) != {expected}:
                msg = f"{variant} {path} answered {sorted(set(statuses))}, expected {expected}"
                raise RuntimeError(msg)
            best = float("inf")
            for _ in range(5):
                started = time.thread_time()
                for _ in range(n):
                    await one()
                best = min(best, (time.thread_time() - started) / n)
            results.append(f"{path}={best * 1e6:.1f}")
        return results

    return asyncio.run(run())


# --- the harness -----------------------------------------------------------------------------


class _Sink(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            msg = f"the server on port {port} exited with {proc.returncode}"
            raise RuntimeError(msg)
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    msg = f"the server on port {port} did not start"
    raise RuntimeError(msg)


def _pin(core: int) -> list[str]:
    if shutil.which("taskset") and (os.cpu_count() or 1) > 1:
        return ["taskset", "-c", str(core)]
    return []


def ensure_wrk() -> str | None:
    """wrk's path, installing Debian's package when it is missing and we may."""
    found = shutil.which("wrk")
    if found or not shutil.which("apt-get") or os.geteuid() != 0:
        return found
    print("wrk is missing: apt-get install -y wrk", flush=True)
    for cmd in (["apt-get", "install", "-y", "-q", "wrk"], ["apt-get", "update", "-q"]):
        subprocess.run(cmd, capture_output=True, check=False)
        if shutil.which("wrk"):
            break
    if not shutil.which("wrk"):
        subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], capture_output=True)
    return shutil.which("wrk")


@contextmanager
def sink() -> Iterator[int]:
    """A local HTTP server that accepts and discards Sentry's envelopes; yields its port."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()


@contextmanager
def servers(sink_port: int) -> Iterator[dict[str, int]]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT)])
    procs: list[subprocess.Popen[bytes]] = []
    ports: dict[str, int] = {}
    try:
        for variant in VARIANTS:
            port = _free_port()
            cmd = [
                *_pin(0),
                sys.executable,
                "-m",
                "bench.bench_http",
                "serve",
                variant,
                str(port),
                str(sink_port),
            ]
            procs.append(subprocess.Popen(cmd, cwd=ROOT, env=env))
            ports[variant] = port
        for proc, port in zip(procs, ports.values(), strict=True):
            _wait_for(port, proc)
        yield ports
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


_RPS = re.compile(r"Requests/sec:\s+([\d.]+)")


def run_wrk(wrk: str, url: str, seconds: int, connections: int) -> float:
    cmd = [*_pin(1), wrk, "-t1", f"-c{connections}", f"-d{seconds}s", url]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    match = _RPS.search(out)
    if match is None:
        msg = f"could not read wrk's output:\n{out}"
        raise RuntimeError(msg)
    return float(match.group(1))


def run_httpx(url: str, seconds: int, connections: int) -> float:
    """The fallback load generator (a separate process on core 1, asyncio + httpx)."""
    code = (
        "import asyncio, sys, time, httpx\n"
        "url, seconds, conns = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])\n"
        "async def worker(client, stop, counter):\n"
        "    while time.monotonic() < stop:\n"
        "        try:\n"
        "            await client.get(url)\n"
        "        except httpx.HTTPError:\n"
        "            pass\n"
        "        counter[0] += 1\n"
        "async def main():\n"
        "    counter = [0]\n"
        "    limits = httpx.Limits(max_connections=conns)\n"
        "    async with httpx.AsyncClient(limits=limits) as client:\n"
        "        start = time.monotonic()\n"
        "        stop = start + seconds\n"
        "        await asyncio.gather(*(worker(client, stop, counter) for _ in range(conns)))\n"
        "        print(counter[0] / (time.monotonic() - start))\n"
        "asyncio.run(main())\n"
    )
    cmd = [*_pin(1), sys.executable, "-c", code, url, str(seconds), str(connections)]
    return float(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)


def cpu_per_request(sink_port: int, rounds: int) -> dict[str, dict[str, float]]:
    """Best CPU microseconds per request, per variant and path, over interleaved rounds."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT)])
    out: dict[str, dict[str, float]] = {}
    for _ in range(rounds):
        for variant in CPU_VARIANTS:
            cmd = [*_pin(0), sys.executable, "-m", "bench.bench_http", "inproc", variant]
            cmd.append(str(sink_port))
            text = subprocess.run(
                cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=True
            ).stdout
            best = out.setdefault(variant, {})
            for part in text.split():
                path, value = part.split("=")
                best[path] = min(best.get(path, float("inf")), float(value))
    return out


def print_cpu_table(cpu: dict[str, dict[str, float]]) -> None:
    print("\nCPU microseconds per request, in-process (lower is better; ratio = bare / variant)")
    names = CPU_VARIANTS
    print(
        f"{'path':8}"
        + "".join(f"{v:>18}" for v in names)
        + "".join(f"{v + '/bare':>23}" for v in names[1:])
    )
    for path in PATHS:
        us = [cpu[v][path] for v in names]
        line = f"{path:8}" + "".join(f"{u:18.1f}" for u in us)
        line += "".join(f"{us[0] / u:23.2f}" for u in us[1:])
        print(line)


def main() -> None:
    cpu_rounds = int(os.environ.get("ERRORKIT_BENCH_CPU_ROUNDS", "3"))
    with sink() as sink_port:
        if os.environ.get("ERRORKIT_BENCH_WRK", "1") != "0":
            run_load(sink_port)
        print_cpu_table(cpu_per_request(sink_port, cpu_rounds))


def run_load(sink_port: int) -> None:
    """Requests/s through uvicorn with wrk, interleaved rounds; prints the tables."""
    seconds = int(os.environ.get("ERRORKIT_BENCH_SECONDS", "3"))
    rounds = int(os.environ.get("ERRORKIT_BENCH_ROUNDS", "3"))
    connections = int(os.environ.get("ERRORKIT_BENCH_CONNECTIONS", "32"))
    wrk = ensure_wrk()
    loader = "wrk" if wrk else "httpx fallback (wrk could not be installed)"
    print(
        f"load: {loader}, {connections} connections, {seconds}s x {rounds} interleaved rounds; "
        f"servers on core 0, load on core 1 ({os.cpu_count()} cores)",
        flush=True,
    )
    results: dict[tuple[str, str], list[float]] = {(v, p): [] for v in VARIANTS for p in PATHS}
    with servers(sink_port) as ports:
        for variant in VARIANTS:  # warm-up
            for path in PATHS:
                url = f"http://127.0.0.1:{ports[variant]}{path}"
                if wrk:
                    run_wrk(wrk, url, 1, connections)
                else:
                    run_httpx(url, 1, connections)
        for r in range(rounds):
            for path in PATHS:
                for variant in VARIANTS:
                    url = f"http://127.0.0.1:{ports[variant]}{path}"
                    if wrk:
                        rps = run_wrk(wrk, url, seconds, connections)
                    else:
                        rps = run_httpx(url, seconds, connections)
                    results[(variant, path)].append(rps)
                    print(f"round {r + 1} {path:7} {variant:9} {rps:10.0f} req/s", flush=True)
    print()
    header = (
        f"{'path':8}{'bare':>10}{'errorkit':>10}{'sentry':>10}{'basehttp':>10}"
        f"{'ek/bare':>10}{'ek/sentry':>11}{'sentry/bare':>13}{'basehttp/bare':>15}"
    )
    print("median req/s (wrk)\n" + header)
    for path in PATHS:
        bare, ours, sentry, base = (statistics.median(results[(v, path)]) for v in VARIANTS)
        print(
            f"{path:8}{bare:10.0f}{ours:10.0f}{sentry:10.0f}{base:10.0f}"
            f"{ours / bare:10.2f}{ours / sentry:11.2f}{sentry / bare:13.2f}{base / bare:15.2f}"
        )
    print("\nraw req/s per round")
    for (variant, path), values in results.items():
        print(f"{path:8}{variant:10}" + " ".join(f"{v:9.0f}" for v in values))


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "serve":
        serve(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    elif len(sys.argv) == 4 and sys.argv[1] == "inproc":
        in_process(sys.argv[2], int(sys.argv[3]))
    else:
        main()
