"""Ingest: events stored per second by one ``errorkit serve``, against the same rows raw.

Two ways in, each on SQLite and then on PostgreSQL, each with a fresh store:

- **sentry**: the Sentry-compatible route (``POST /api/<project>/envelope/``), fed by wrk
  (8 keep-alive connections, one thread) whose Lua script cycles through pre-built
  gzip'd envelopes, each holding a distinct event: the shape sentry-python sends for an
  exception (25 frames with context lines, request, tags, user, contexts, breadcrumbs;
  ~6.7 KB of JSON, its size is printed), spread over 50 groups;
- **transport**: errorkit's own HTTP transport: an app process that captures N errors
  (25 frames deep, 50 exception classes) with ``errorkit.configure(store_url=<DSN>)``.

Each is timed end to end, from the first request (the first capture) until every event is
a row of ``errors`` (the driver polls the count); a run also stops sending after
``ERRORKIT_BENCH_INGEST_SECONDS`` (30), so a slow server ends in bounded time and is timed
on what it stored. The server's peak RSS is its VmHWM, its CPU time is read from /proc.
Beside each, **raw** is the same rows (read back from the store) written by the driver into
a table of the same shape: ``executemany`` (sqlite3) or ``COPY`` (psycopg 3) in 1000-row
transactions, the write path with nothing else around it. The last column compares with
Bugsink's published 42.8 events/s stored.

The server runs on core 0, wrk (or the app) on core 1, the polling driver wherever the OS
puts it.

    python -m bench ingest

Environment: ``ERRORKIT_BENCH_INGEST_EVENTS`` (default 20000),
``ERRORKIT_BENCH_TRANSPORT_EVENTS`` (default 10000), ``ERRORKIT_BENCH_INGEST_WORKERS``
(default 1: ``errorkit serve --workers``; with more, the workers are not pinned and their
CPU time and peak RSS are added up), ``ERRORKIT_BENCH_INGEST_BACKENDS``
(default ``sqlite,postgres``), ``ERRORKIT_BENCH_INGEST_PATHS`` (default
``sentry,transport``), ``ERRORKIT_BENCH_POSTGRES_URL`` (a database of its own is
created on it and dropped at the end).
"""

from __future__ import annotations

import gzip
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.bench_http import _free_port, _pin, _wait_for, ensure_wrk
from bench.bench_store import BATCH, scratch_postgres
from errorkit.store import upgrade

ROOT = Path(__file__).resolve().parents[1]
EVENTS = int(os.environ.get("ERRORKIT_BENCH_INGEST_EVENTS", "20000"))
TRANSPORT_EVENTS = int(os.environ.get("ERRORKIT_BENCH_TRANSPORT_EVENTS", "10000"))
#: ``errorkit serve --workers``: 1 runs on core 0; more share both cores with the load.
WORKERS = int(os.environ.get("ERRORKIT_BENCH_INGEST_WORKERS", "1"))
BACKENDS = os.environ.get("ERRORKIT_BENCH_INGEST_BACKENDS", "sqlite,postgres").split(",")
#: Each run stops sending after this long, so a slow server still ends in bounded time.
SECONDS = int(os.environ.get("ERRORKIT_BENCH_INGEST_SECONDS", "30"))
PATHS = os.environ.get("ERRORKIT_BENCH_INGEST_PATHS", "sentry,transport").split(",")
CONNECTIONS = 8
GROUPS = 50
FRAMES = 25
#: Bugsink's own measurement: events stored per second on one machine.
BUGSINK = 42.8
#: A run that stores nothing new for this long has stalled (it is reported, not waited).
STALL_SECONDS = 20.0
PROJECT = "bench"

LUA = r"""
local bodies, count, sent, answered, limit = {}, 0, 0, 0, 0
local statuses = {}
local path, auth

function init(args)
  path, auth, limit = args[1], args[2], tonumber(args[3])
  local data = assert(io.open(args[4], "rb"))
  local index = assert(io.open(args[5], "r"))
  for line in index:lines() do
    count = count + 1
    bodies[count] = data:read(tonumber(line))
  end
  data:close()
  index:close()
  io.write("EK_READY\n")
  io.stdout:flush()
end

function request()
  sent = sent + 1
  local headers = {
    ["Content-Type"] = "application/x-sentry-envelope",
    ["Content-Encoding"] = "gzip",
    ["X-Sentry-Auth"] = auth,
  }
  return wrk.format("POST", path, headers, bodies[((sent - 1) % count) + 1])
end

function response(status, headers, body)
  answered = answered + 1
  statuses[status] = (statuses[status] or 0) + 1
  if answered == limit then
    local parts = {}
    for code, n in pairs(statuses) do
      parts[#parts + 1] = code .. "=" .. n
    end
    io.write("EK_STATUS " .. table.concat(parts, " ") .. "\n")
    io.stdout:flush()
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  io.write("EK_DONE requests=" .. summary.requests .. " failed=" .. summary.errors.status .. "\n")
  io.stdout:flush()
end
"""

APP = r"""
import sys, time
import errorkit
from errorkit.capturing import shutdown

url, n, spool = sys.argv[1], int(sys.argv[2]), sys.argv[3]
errorkit.configure(
    store_url=url, service="checkout", flood_per_minute=n, queue_size=n, spool_dir=spool
)
kinds = [type(f"CheckoutError{g}", (RuntimeError,), {}) for g in range(50)]

def step(depth, i):
    if depth == 0:
        raise kinds[i % 50](f"cart {i} has an item out of stock: sku {i % 977}")
    return step(depth - 1, i)

print("EK_START", flush=True)
started = time.perf_counter()
for i in range(n):
    try:
        step(24, i)
    except RuntimeError as exc:
        errorkit.capture(
            exc, endpoint="/api/checkout", method="POST", user_id=f"user-{i % 300}",
            tags={"region": "eu-west-1", "flow": "checkout"},
        )
print(f"EK_CAPTURED seconds={time.perf_counter() - started:.3f}", flush=True)
flushed = errorkit.flush(timeout=180)
print(f"EK_DONE flushed={flushed}", flush=True)
shutdown()
"""


@dataclass
class Run:
    """One measured run: what was sent, how long until stored, the server's peak RSS."""

    path: str
    backend: str
    events: int
    stored: int
    seconds: float
    rss_mib: float
    cpu: float = 0.0
    app_seconds: float | None = None  # transport: how long the app's capture loop took
    answered_seconds: float | None = None
    statuses: dict[str, int] = field(default_factory=dict)
    raw: float = 0.0

    @property
    def rate(self) -> float:
        return self.stored / self.seconds


# -- the event ------------------------------------------------------------------------------


def sentry_event(i: int, at: datetime) -> dict[str, Any]:
    """Event ``i``, in the shape sentry-python 2.x sends for a caught exception in a web
    request (its integrations' request, contexts and breadcrumbs)."""
    group = i % GROUPS
    frames = []
    for depth in range(FRAMES):
        module = ("starlette.routing", "app.cart", "app.orders")[depth % 3]
        path = module.replace(".", "/") + ".py"
        frame = {
            "filename": path,
            "abs_path": "/srv/" + path,
            "function": f"step_{depth}",
            "module": module,
            "lineno": 40 + depth,
            "context_line": f"        return self.step_{depth + 1}(cart)",
            "in_app": module.startswith("app"),
        }
        if frame["in_app"]:
            frame["pre_context"] = [f"    def step_{depth}(self, cart):"]
        frames.append(frame)
    breadcrumbs = [
        {
            "type": "http",
            "category": "httplib",
            "level": "info",
            "timestamp": (at - timedelta(seconds=5 - n)).isoformat(),
            "data": {"url": f"http://inventory:8000/sku/{i % 977}", "method": "GET"},
        }
        for n in range(2)
    ]
    return {
        "event_id": uuid.uuid4().hex,
        "timestamp": at.isoformat(),
        "platform": "python",
        "level": "error",
        "server_name": "web-3",
        "release": "shop@1.4.2",
        "environment": "production",
        "transaction": "/api/checkout",
        "transaction_info": {"source": "route"},
        "exception": {
            "values": [
                {
                    "type": f"CheckoutError{group}",
                    "value": f"cart {i} has an item out of stock: sku {i % 977}",
                    "module": "shop.errors",
                    "mechanism": {"type": "starlette", "handled": False},
                    "stacktrace": {"frames": frames},
                }
            ]
        },
        "request": {
            "url": "https://shop.example.com/api/checkout",
            "method": "POST",
            "query_string": "step=pay",
            "headers": {
                "Host": "shop.example.com",
                "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0",
                "Content-Type": "application/json",
            },
            "data": {"cart_id": i, "coupon": None},
            "env": {"REMOTE_ADDR": "203.0.113.7"},
        },
        "tags": {"region": "eu-west-1", "flow": "checkout"},
        "user": {"id": f"user-{i % 300}", "ip_address": "203.0.113.7"},
        "contexts": {
            "runtime": {"name": "CPython", "version": "3.11.7"},
            "os": {"name": "Linux", "version": "6.1.0"},
            "trace": {
                "trace_id": uuid.uuid4().hex,
                "span_id": uuid.uuid4().hex[:16],
                "op": "http.server",
                "status": "internal_error",
            },
        },
        "breadcrumbs": {"values": breadcrumbs},
        "sdk": {
            "name": "sentry.python.starlette",
            "version": "2.75.0",
            "integrations": ["asyncio", "starlette", "fastapi", "logging", "stdlib"],
        },
    }


def envelope(event: dict[str, Any]) -> bytes:
    """The gzip'd envelope sentry-python's transport posts for one event."""
    payload = json.dumps(event, separators=(",", ":")).encode()
    header = {"event_id": event["event_id"], "sent_at": event["timestamp"]}
    item = {"type": "event", "length": len(payload), "content_type": "application/json"}
    lines = [json.dumps(header).encode(), json.dumps(item).encode(), payload]
    return gzip.compress(b"\n".join(lines) + b"\n")


def write_bodies(folder: Path, count: int) -> tuple[Path, Path, int, int]:
    """``count`` envelopes in one file and their lengths in another, for the Lua script;
    returns both paths, the JSON size of one event and the mean gzip'd body size."""
    at = datetime.now(UTC)
    data, index = folder / "bodies.bin", folder / "bodies.idx"
    total = 0
    with data.open("wb") as out, index.open("w") as lengths:
        for i in range(count):
            body = envelope(sentry_event(i, at))
            out.write(body)
            lengths.write(f"{len(body)}\n")
            total += len(body)
    size = len(json.dumps(sentry_event(0, at), separators=(",", ":")))
    return data, index, size, total // count


# -- the harness ----------------------------------------------------------------------------


def _env(folder: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT)])
    env["ERRORKIT_SPOOL_DIR"] = str(folder / "spool")
    return env


@contextmanager
def tracker(store_url: str, folder: Path) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """``errorkit serve`` on the store, on core 0; yields its port and process."""
    port = _free_port()
    # One worker runs on core 0 beside the load on core 1; several share both cores.
    pin = _pin(0) if WORKERS == 1 else []
    command = [*pin, sys.executable, "-m", "errorkit", "serve", "--store", store_url]
    command += ["--host", "127.0.0.1", "--port", str(port), "--workers", str(WORKERS)]
    log = (folder / f"serve-{port}.log").open("wb")
    process = subprocess.Popen(
        command, cwd=ROOT, env=_env(folder), stdout=log, stderr=subprocess.STDOUT
    )
    try:
        _wait_for(port, process)
        yield port, process
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def make_key(store_url: str) -> tuple[str, int]:
    """A project and a key with no practical rate limit: (public key, project id)."""
    from errorkit.store import open_store
    from errorkit.store.projects import ProjectStore

    with open_store(store_url) as store:
        projects = ProjectStore(store)
        project = projects.create_project(PROJECT)
        key = projects.create_key(project.id, label="bench", rate_limit=1_000_000_000)
    return key.public_key, project.id


class Counter:
    """``SELECT count(*) FROM errors`` on the store, through the plain driver."""

    def __init__(self, store_url: str) -> None:
        self._sqlite: sqlite3.Connection | None = None
        self._pg: Any = None
        if store_url.startswith("sqlite"):
            self._sqlite = sqlite3.connect(store_url.split("///", 1)[1])
        else:
            import psycopg

            self._pg = psycopg.connect(_driver_url(store_url), autocommit=True)

    def __call__(self) -> int:
        if self._sqlite is not None:
            return int(self._sqlite.execute("SELECT count(*) FROM errors").fetchone()[0])
        return int(self._pg.execute("SELECT count(*) FROM errors").fetchone()[0])

    def close(self) -> None:
        if self._sqlite is not None:
            self._sqlite.close()
        if self._pg is not None:
            self._pg.close()


def wait_stored(count: Counter, target: int, until: float = float("inf")) -> tuple[int, float]:
    """Poll until ``target`` rows are stored (or the monotonic time ``until``, or nothing
    new came for STALL_SECONDS); returns the count and the monotonic time it was seen."""
    last, last_change = -1, time.monotonic()
    while True:
        now_count = count()
        now = time.monotonic()
        if now_count >= target or now >= until:
            return now_count, now
        if now_count != last:
            last, last_change = now_count, now
        elif now - last_change > STALL_SECONDS:
            return now_count, last_change
        time.sleep(0.02)


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants (uvicorn's workers under ``--workers``)."""
    found = [pid]
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        found += _tree(int(child))
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process and its workers have used so far."""
    total = 0
    for one in _tree(pid):
        fields = Path(f"/proc/{one}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def peak_rss_mib(pid: int) -> float:
    """The peak RSS of the process and its workers, added up."""
    total = 0
    for one in _tree(pid):
        for line in Path(f"/proc/{one}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                total += int(line.split()[1])
    return total / 1024


def _driver_url(store_url: str) -> str:
    return store_url.replace("postgresql+psycopg://", "postgresql://")


def _read_until(stream: Any, *markers: str) -> str:
    while True:
        line = stream.readline()
        if not line:
            message = f"the load generator ended before printing {' or '.join(markers)}"
            raise RuntimeError(message)
        if line.startswith(markers):
            return str(line)


def run_sentry(store_url: str, backend: str, folder: Path, bodies: tuple[Path, Path]) -> Run:
    """wrk sends EVENTS envelopes (or for SECONDS, whichever ends first); timed until
    every event answered 200 is stored."""
    wrk = ensure_wrk()
    if wrk is None:
        message = "wrk is missing and could not be installed (apt-get install wrk)"
        raise RuntimeError(message)
    public_key, project_id = make_key(store_url)
    script = folder / "envelopes.lua"
    script.write_text(LUA)
    auth = f"Sentry sentry_version=7, sentry_key={public_key}, sentry_client=sentry.python/2.75.0"
    count = Counter(store_url)
    try:
        with tracker(store_url, folder) as (port, server):
            command = [*_pin(1), wrk, "-t1", f"-c{CONNECTIONS}", f"-d{SECONDS}s"]
            command += ["-s", str(script), f"http://127.0.0.1:{port}", "--"]
            command += [f"/api/{project_id}/envelope/", auth, str(EVENTS)]
            command += [str(bodies[0]), str(bodies[1])]
            load = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
            try:
                _read_until(load.stdout, "EK_READY")
                started, cpu = time.monotonic(), cpu_seconds(server.pid)
                line = _read_until(load.stdout, "EK_STATUS", "EK_DONE")
                answered = time.monotonic() - started
                # wrk's main thread sleeps for -d even once its threads stopped: SIGINT ends it.
                load.send_signal(signal.SIGINT)
                statuses = dict(part.split("=") for part in line.split()[1:])
                if line.startswith("EK_DONE"):  # the time bound came first
                    sent = int(statuses.pop("requests"))
                    statuses = {
                        "200": sent - int(statuses["failed"]),
                        "4xx/5xx": statuses["failed"],
                    }
                stored, at = wait_stored(count, int(statuses.get("200", 0)))
                cpu = cpu_seconds(server.pid) - cpu
                load.wait(timeout=60)
            finally:
                if load.poll() is None:
                    load.kill()
                    load.wait()
            rss = peak_rss_mib(server.pid)
    finally:
        count.close()
    return Run(
        "sentry envelope",
        backend,
        sum(int(n) for n in statuses.values()),
        stored,
        at - started,
        rss,
        cpu,
        answered_seconds=answered,
        statuses={code: int(n) for code, n in statuses.items()},
    )


def run_transport(store_url: str, backend: str, folder: Path) -> Run:
    """An app captures TRANSPORT_EVENTS errors; timed until all are stored (or SECONDS)."""
    public_key, project_id = make_key(store_url)
    count = Counter(store_url)
    try:
        with tracker(store_url, folder) as (port, server):
            dsn = f"http://{public_key}@127.0.0.1:{port}/{project_id}"
            command = [*_pin(1), sys.executable, "-c", APP, dsn, str(TRANSPORT_EVENTS)]
            command.append(str(folder / "app-spool"))
            app = subprocess.Popen(
                command, cwd=ROOT, env=_env(folder), stdout=subprocess.PIPE, text=True
            )
            try:
                _read_until(app.stdout, "EK_START")
                started, cpu = time.monotonic(), cpu_seconds(server.pid)
                stored, at = wait_stored(count, TRANSPORT_EVENTS, started + SECONDS)
                cpu = cpu_seconds(server.pid) - cpu
                captured = _read_until(app.stdout, "EK_CAPTURED").split("=")[1]
            finally:
                app.kill()
                app.wait()
            rss = peak_rss_mib(server.pid)
    finally:
        count.close()
    return Run(
        "errorkit transport",
        backend,
        TRANSPORT_EVENTS,
        stored,
        at - started,
        rss,
        cpu,
        app_seconds=float(captured),
    )


# -- raw: the same rows through the driver --------------------------------------------------


def _columns(store_url: str) -> list[str]:
    from sqlalchemy import create_engine, inspect

    engine = create_engine(store_url)
    try:
        names = [c["name"] for c in inspect(engine).get_columns("errors")]
    finally:
        engine.dispose()
    return [name for name in names if name != "id"]


def raw_rate(store_url: str, folder: Path) -> float:
    """rows/s of writing the stored rows again, raw, in BATCH-row transactions."""
    columns = _columns(store_url)
    listed = ", ".join(columns)
    if store_url.startswith("sqlite"):
        source = sqlite3.connect(store_url.split("///", 1)[1])
        rows = source.execute(f"SELECT {listed} FROM errors").fetchall()
        source.close()
        target = folder / f"raw-{uuid.uuid4().hex[:8]}.db"
        upgrade(f"sqlite:///{target}")
        connection = sqlite3.connect(target, isolation_level=None)
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("PRAGMA synchronous = NORMAL")
        insert = f"INSERT INTO errors ({listed}) VALUES ({', '.join('?' * len(columns))})"
        started = time.perf_counter()
        for first in range(0, len(rows), BATCH):
            connection.execute("BEGIN")
            connection.executemany(insert, rows[first : first + BATCH])
            connection.execute("COMMIT")
        elapsed = time.perf_counter() - started
        connection.close()
        return len(rows) / elapsed
    import psycopg
    from psycopg.types.json import Jsonb

    with psycopg.connect(_driver_url(store_url)) as connection:
        fetched = connection.execute(f"SELECT {listed} FROM errors").fetchall()
        rows = [
            tuple(Jsonb(v) if isinstance(v, dict | list) else v for v in row) for row in fetched
        ]
        connection.execute("CREATE TABLE raw_errors (LIKE errors INCLUDING ALL)")
        connection.commit()
        started = time.perf_counter()
        for first in range(0, len(rows), BATCH):
            with (
                connection.transaction(),
                connection.cursor() as cursor,
                cursor.copy(f"COPY raw_errors ({listed}) FROM STDIN") as copy,
            ):
                for row in rows[first : first + BATCH]:
                    copy.write_row(row)
        elapsed = time.perf_counter() - started
    return len(rows) / elapsed


# -- main -----------------------------------------------------------------------------------


@contextmanager
def fresh_store(backend: str, folder: Path, name: str) -> Iterator[str | None]:
    """A new, migrated store of ``backend``; None when PostgreSQL is not reachable."""
    if backend == "sqlite":
        url = f"sqlite:///{folder / (name + '.db')}"
        upgrade(url)
        yield url
        return
    with scratch_postgres() as url:
        if url is None:
            yield None
            return
        url = url.replace("postgresql://", "postgresql+psycopg://", 1)
        upgrade(url)
        yield url


def print_table(runs: list[Run]) -> None:
    print(
        f"\n{'path':20}{'backend':10}{'events':>8}{'stored':>8}{'seconds':>9}{'stored/s':>10}"
        f"{'raw/s':>10}{'ours/raw':>10}{'vs Bugsink':>12}{'CPU ms/ev':>11}{'peak RSS':>11}"
    )
    for r in runs:
        ratio = f"{r.rate / r.raw:.3f}" if r.raw else "-"
        per_event = f"{r.cpu * 1000 / r.stored:.2f}" if r.stored else "-"
        print(
            f"{r.path:20}{r.backend:10}{r.events:>8}{r.stored:>8}{r.seconds:>9.2f}"
            f"{r.rate:>10,.0f}{r.raw:>10,.0f}{ratio:>10}{r.rate / BUGSINK:>11.1f}x"
            f"{per_event:>11}{r.rss_mib:>7.0f} MiB"
        )
    for r in runs:
        if r.answered_seconds is not None:
            answers = ", ".join(f"{code}: {n}" for code, n in sorted(r.statuses.items()))
            print(
                f"{r.path}, {r.backend}: {r.events} answered in {r.answered_seconds:.2f}s "
                f"({r.events / r.answered_seconds:,.0f}/s); answers {answers}"
            )
        if r.app_seconds is not None:
            print(
                f"{r.path}, {r.backend}: the app's {r.events} capture() calls took "
                f"{r.app_seconds:.2f}s ({r.events / r.app_seconds:,.0f}/s)"
            )
        if r.stored < r.events:
            print(f"{r.path}, {r.backend}: {r.stored} of {r.events} stored within the bound")


def main() -> None:
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="errorkit-bench-ingest-") as name:
        folder = Path(name)
        data, index, size, gzipped = write_bodies(folder, EVENTS)
        print(
            f"sentry: {EVENTS:,} distinct events in {GROUPS} groups, one event "
            f"{size:,} B of JSON ({FRAMES} frames), {gzipped:,} B gzip'd envelope; wrk "
            f"{CONNECTIONS} keep-alive connections on core 1, errorkit serve "
            + ("on core 0" if WORKERS == 1 else f"with {WORKERS} workers on both cores")
            + f" ({os.cpu_count()} cores)"
        )
        print(
            f"transport: {TRANSPORT_EVENTS:,} captures ({FRAMES} frames, {GROUPS} groups) "
            "from an app process on core 1",
            flush=True,
        )
        for backend in BACKENDS:
            for path in PATHS:
                with fresh_store(backend, folder, f"{backend}-{path}") as url:
                    if url is None:
                        continue
                    work = folder / f"{backend}-{path}"
                    work.mkdir()
                    if path == "sentry":
                        run = run_sentry(url, backend, work, (data, index))
                    else:
                        run = run_transport(url, backend, work)
                    run.raw = raw_rate(url, work)
                    runs.append(run)
                    print(
                        f"{run.path:20}{backend:12}{run.stored:>7} stored in "
                        f"{run.seconds:6.2f}s = {run.rate:8,.0f}/s (raw {run.raw:,.0f}/s, "
                        f"peak RSS {run.rss_mib:.0f} MiB)",
                        flush=True,
                    )
    print_table(runs)
    print(
        "\nstored/s: end to end, first request until the last row is in `errors`; raw/s: "
        "the same rows by executemany (SQLite) / COPY (PostgreSQL), 1000 a transaction; "
        f"vs Bugsink: stored/s / {BUGSINK} events/s; CPU ms/ev: the server's CPU time "
        "(user + system) per stored event"
    )


if __name__ == "__main__":
    main()
