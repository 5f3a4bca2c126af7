"""Capture: the caller's cost against sentry-sdk, the writer against the raw driver, and a
flood.

    python -m bench capture

1. Caller's thread, per captured exception (the same exception, raised six frames deep in
   app code, captured from an ``except`` block): errorkit's ``capture()`` against
   ``sentry_sdk.capture_exception`` with a DSN pointing at a sink on 127.0.0.1 that
   discards, and with no DSN; ``traceback.format_exc()`` for scale. Medians of rounds of
   200 calls; between rounds both sides drain their queues untimed.
2. A burst of 5,000 events: what sentry-sdk's default transport queue drops, against
   errorkit (stored rows + counted occurrences).
3. The writer: N events queued, then ``flush()`` timed: events/s persisted into SQLite and
   PostgreSQL (build, scrub, serialise, write, group counts), against the raw driver's
   ``executemany`` of pre-built rows of the same shape in 1,000-row transactions.
4. A flood of 1,000,000 captures of 1,000 distinct errors: captures/s and resident memory.

PostgreSQL is reached on 127.0.0.1 only; the benchmark makes a scratch database and drops
it. ERRORKIT_BENCH_CAPTURE_EVENTS (default 20000) sets N for the writer.
"""

from __future__ import annotations

import gc
import gzip
import http.server
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.bench_store import BATCH, scratch_postgres
from errorkit.capture import api as capture
from errorkit.store import ErrorRecord, ErrorStore, upgrade

EVENTS = int(os.environ.get("ERRORKIT_BENCH_CAPTURE_EVENTS", "20000"))
ROUNDS = 25
PER_ROUND = 200
BURST = 5_000
FLOOD = 1_000_000
FLOOD_DISTINCT = 1_000
PAYLOAD = b'{"model": "qwen", "messages": [{"role": "user", "content": "' + b"x" * 440 + b'"}]}'


# --- the exception every contender captures ----------------------------------------------------


def _parse(raw: str) -> int:
    return int(raw)


def _validate(raw: str) -> int:
    return _parse(raw)


def _load(raw: str) -> int:
    return _validate(raw)


def _service(raw: str) -> int:
    return _load(raw)


def _handler(raw: str) -> int:
    return _service(raw)


def raise_one(raw: str = "abc") -> BaseException:
    """A ValueError raised six frames deep, as app code raises it."""
    try:
        _handler(raw)
    except ValueError as exc:
        return exc
    raise AssertionError("unreachable")


def per_call_us(run: Callable[[BaseException], object], drain: Callable[[], object]) -> float:
    """Median microseconds per call over rounds; fresh exceptions, queue drained between."""
    samples = []
    for _ in range(ROUNDS):
        excs = [raise_one() for _ in range(PER_ROUND)]
        gc.collect()
        started = time.perf_counter()
        for exc in excs:
            run(exc)
        samples.append((time.perf_counter() - started) / PER_ROUND * 1e6)
        drain()
    return statistics.median(samples)


# --- a sink for sentry-sdk on 127.0.0.1 ---------------------------------------------------------


class _Sink(http.server.BaseHTTPRequestHandler):
    events = 0
    lock = threading.Lock()

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        encoding = self.headers.get("content-encoding", "")
        if encoding == "gzip":
            body = gzip.decompress(body)
        elif encoding == "br":
            import brotli  # type: ignore[import-not-found]

            body = brotli.decompress(body)
        if b'"type":"event"' in body.replace(b" ", b""):
            with _Sink.lock:
                _Sink.events += 1
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return


@contextmanager
def sentry_sink() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://public@127.0.0.1:{server.server_address[1]}/1"
    finally:
        server.shutdown()
        server.server_close()


# --- 1 + 2: caller's cost and burst --------------------------------------------------------------


def caller_costs(folder: Path) -> dict[str, float]:
    import sentry_sdk

    out: dict[str, float] = {}
    out["traceback.format_exc()"] = per_call_us(_format_exc, lambda: None)

    capture.configure(
        store_url=f"sqlite:///{folder / 'caller.db'}",
        spool_dir=folder / "spool",
        flood_per_minute=10**9,
        flush_interval=30,
        batch_size=10_000,
        queue_size=100_000,
    )
    out["errorkit capture() (every event queued)"] = per_call_us(
        capture.capture, lambda: capture.flush(60)
    )
    capture.configure(
        store_url=f"sqlite:///{folder / 'caller.db'}",
        spool_dir=folder / "spool",
        flush_interval=30,
    )
    for _ in range(100):  # use up the minute's allowance: from here on occurrences are counted
        capture.capture(raise_one())
    out["errorkit capture() (flood: counted only)"] = per_call_us(
        capture.capture, lambda: capture.flush(60)
    )
    capture.shutdown()

    with sentry_sink() as dsn:
        sentry_sdk.init(dsn=dsn)
        out["sentry_sdk.capture_exception (DSN, local sink)"] = per_call_us(
            sentry_sdk.capture_exception, lambda: sentry_sdk.flush(30)
        )
        sentry_sdk.init()
        out["sentry_sdk.capture_exception (no DSN)"] = per_call_us(
            sentry_sdk.capture_exception, lambda: None
        )
        sentry_sdk.init(dsn=None)
    return out


def _format_exc(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc))


def burst(folder: Path) -> tuple[int, int, int, int]:
    """(sentry events received, sentry lost, errorkit occurrences counted, errorkit lost)."""
    import sentry_sdk

    excs = [raise_one(f"n{n}") for n in range(BURST)]
    with sentry_sink() as dsn:
        _Sink.events = 0
        sentry_sdk.init(dsn=dsn)
        for exc in excs:
            sentry_sdk.capture_exception(exc)
        sentry_sdk.flush(60)
        received = _Sink.events
        sentry_sdk.init(dsn=None)
    excs = [raise_one(f"n{n}") for n in range(BURST)]
    url = f"sqlite:///{folder / 'burst.db'}"
    capture.configure(store_url=url, spool_dir=folder / "spool", flood_per_minute=10**9)
    for exc in excs:
        capture.capture(exc)
    capture.flush(120)
    capture.shutdown()
    with ErrorStore(url) as store:
        counted = sum(g.count for g in store.groups(limit=10_000).items)
    return received, BURST - received, counted, BURST - counted


# --- 3: the writer against the raw driver -------------------------------------------------------


def writer_rate(url: str, folder: Path) -> tuple[float, float]:
    """(events/s of flush() alone with N queued, end-to-end events/s capture + flush)."""
    upgrade(url)
    capture.configure(
        store_url=url,
        spool_dir=folder / "spool",
        flood_per_minute=10**9,
        queue_size=EVENTS + 1,
        batch_size=1000,
        flush_interval=3600,  # the writer sleeps: the timed flush does all the writing
    )
    excs = [raise_one(f"n{n}") for n in range(EVENTS)]
    for exc in excs:
        capture.capture(
            exc, endpoint="/v1/chat/completions", method="POST", request_payload=PAYLOAD
        )
    del excs
    started = time.perf_counter()
    if not capture.flush(600):
        raise RuntimeError("flush did not store everything")
    writer = EVENTS / (time.perf_counter() - started)

    capture.configure(
        store_url=url,
        spool_dir=folder / "spool",
        flood_per_minute=10**9,
        queue_size=EVENTS + 1,
    )
    started = time.perf_counter()
    for n in range(EVENTS):
        try:
            _handler(f"e2e-{n}")
        except ValueError as exc:
            capture.capture(
                exc, endpoint="/v1/chat/completions", method="POST", request_payload=PAYLOAD
            )
    if not capture.flush(600):
        raise RuntimeError("flush did not store everything")
    end_to_end = EVENTS / (time.perf_counter() - started)
    store = capture.current_store()
    counted = sum(g.count for g in store.groups(limit=10_000).items)
    capture.shutdown()
    if counted != 2 * EVENTS:
        message = f"stored {counted} occurrences, expected {2 * EVENTS}"
        raise RuntimeError(message)
    return writer, end_to_end


def _shaped_records() -> list[ErrorRecord]:
    """Records of the same shape the pipeline writes here, for the raw driver."""
    from errorkit.testing import capture_events

    with capture_events() as events:
        for n in range(EVENTS):
            capture.capture(
                raise_one(f"n{n}"),
                endpoint="/v1/chat/completions",
                method="POST",
                request_payload=PAYLOAD,
            )
    return list(events)


RECORD_COLUMNS = (*(f.name for f in fields(ErrorRecord)), "created_at")


def full_rows(records: list[ErrorRecord], text_times: bool) -> list[tuple[Any, ...]]:
    """Every column the pipeline writes (the ``data`` JSON included), prepared before
    timing: the raw driver's best case for the same rows."""
    now = datetime.now(UTC)
    rows = []
    for record in records:
        values: list[Any] = [getattr(record, name) for name in RECORD_COLUMNS[:-1]]
        values.append(now)
        for index, name in enumerate(RECORD_COLUMNS):
            if name in ("timestamp", "created_at") and text_times:
                values[index] = values[index].replace(tzinfo=None).isoformat(" ")
            elif name == "data":
                values[index] = json.dumps(values[index], separators=(",", ":"))
        rows.append(tuple(values))
    return rows


def raw_sqlite(path: Path, records: list[ErrorRecord]) -> float:
    upgrade(f"sqlite:///{path}")
    rows = full_rows(records, text_times=True)
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode = WAL")
    connection.execute("PRAGMA synchronous = NORMAL")
    marks = ", ".join("?" * len(RECORD_COLUMNS))
    insert = f"INSERT INTO errors ({', '.join(RECORD_COLUMNS)}) VALUES ({marks})"
    started = time.perf_counter()
    for start in range(0, len(rows), BATCH):
        connection.execute("BEGIN")
        connection.executemany(insert, rows[start : start + BATCH])
        connection.execute("COMMIT")
    rate = len(rows) / (time.perf_counter() - started)
    connection.close()
    return rate


def raw_postgres(url: str, records: list[ErrorRecord]) -> float:
    import psycopg

    upgrade(url)
    rows = full_rows(records, text_times=False)
    marks = ", ".join("%s::jsonb" if name == "data" else "%s" for name in RECORD_COLUMNS)
    insert = f"INSERT INTO errors ({', '.join(RECORD_COLUMNS)}) VALUES ({marks})"
    with psycopg.connect(url.replace("+psycopg", "")) as connection:
        started = time.perf_counter()
        for start in range(0, len(rows), BATCH):
            with connection.transaction(), connection.cursor() as cursor:
                cursor.executemany(insert, rows[start : start + BATCH])
        rate = len(rows) / (time.perf_counter() - started)
        connection.execute("TRUNCATE errors, error_groups, applied_deltas")
        connection.commit()
    return rate


# --- 4: the flood -------------------------------------------------------------------------------


def _peak_mb() -> float:
    """The process's high-water mark of resident memory (VmHWM: unlike ru_maxrss it is not
    inherited from the parent across fork and exec)."""
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        pages = int(handle.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def flood_child(folder: str) -> None:
    """The flood, run in a fresh interpreter so that its memory is measured alone."""
    url = f"sqlite:///{Path(folder) / 'flood.db'}"
    capture.configure(store_url=url, spool_dir=Path(folder) / "spool")
    letters = "abcdefghijklmnopqrstuvwxyz"
    words = [
        "stage " + "".join(letters[(n // 26**k) % 26] for k in range(3)) + " failed"
        for n in range(FLOOD_DISTINCT)
    ]

    def fail(i: int) -> None:
        raise RuntimeError(words[i % FLOOD_DISTINCT])

    for i in range(FLOOD_DISTINCT):
        try:
            fail(i)
        except RuntimeError as exc:
            capture.capture(exc)
    capture.flush(120)
    gc.collect()
    baseline = _rss_mb()
    started = time.perf_counter()
    for i in range(FLOOD - FLOOD_DISTINCT):
        try:
            fail(i)
        except RuntimeError as exc:
            capture.capture(exc)
    elapsed = time.perf_counter() - started
    grown = _rss_mb() - baseline
    capture.flush(300)
    store = capture.current_store()
    counted = sum(g.count for g in store.groups(limit=10_000).items)
    capture.shutdown()
    peak = _peak_mb()
    print(
        json.dumps(
            {
                "rate": (FLOOD - FLOOD_DISTINCT) / elapsed,
                "grown": grown,
                "baseline": baseline,
                "peak": peak,
                "counted": counted,
            }
        )
    )


def flood(folder: Path) -> dict[str, float]:
    code = f"from bench.bench_capture import flood_child; flood_child({str(folder)!r})"
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=900,
        cwd=Path(__file__).parents[1],
    )
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# --- the report -----------------------------------------------------------------------------------


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="errorkit-bench-capture-") as name:
        folder = Path(name)
        print("1. Caller's thread: microseconds per captured exception (median of rounds)")
        costs = caller_costs(folder)
        ours = costs["errorkit capture() (every event queued)"]
        for label, value in costs.items():
            print(f"   {label:48} {value:9.1f} us   ours/this {ours / value:7.3f}")

        print(f"\n2. Burst of {BURST:,} events")
        received, lost, counted, our_lost = burst(folder)
        print(f"   sentry-sdk default transport queue: received {received:,}, lost {lost:,}")
        print(f"   errorkit: occurrences counted {counted:,}, lost {our_lost:,}")

        print(f"\n3. Writer: {EVENTS:,} events persisted (events/s), raw driver of the same rows")
        print("   (raw: executemany of the same rows, every column, data JSON pre-serialised)")
        records = _shaped_records()
        sqlite_raw = raw_sqlite(folder / "raw.db", records)
        sqlite_writer, sqlite_e2e = writer_rate(f"sqlite:///{folder / 'writer.db'}", folder)
        rows = [("SQLite (WAL, synchronous=NORMAL)", sqlite_raw, sqlite_writer, sqlite_e2e)]
        with scratch_postgres() as pg:
            if pg is not None:
                pg_raw = raw_postgres(pg, records)
                pg_writer, pg_e2e = writer_rate(pg, folder)
                rows.append(("PostgreSQL (psycopg 3)", pg_raw, pg_writer, pg_e2e))
        print(
            f"   {'backend':34} {'raw driver':>11} {'writer':>9} {'writer/raw':>10} "
            f"{'capture+flush':>13} {'e2e/raw':>8}"
        )
        for backend, raw, writer, e2e in rows:
            print(
                f"   {backend:34} {raw:>9,.0f}/s {writer:>7,.0f}/s {writer / raw:>10.2f} "
                f"{e2e:>11,.0f}/s {e2e / raw:>8.2f}"
            )

        print(f"\n4. Flood: {FLOOD:,} captures of {FLOOD_DISTINCT:,} distinct errors")
        result = flood(folder)
        print(
            f"   {result['rate']:,.0f} captures/s; RSS {result['baseline']:.0f} MB after warm-up, "
            f"grew {result['grown']:.1f} MB (peak {result['peak']:.0f} MB)"
        )
        counted = int(result["counted"])
        print(f"   occurrences counted in the store: {counted:,} (exact: {counted == FLOOD})")


if __name__ == "__main__":
    main()
