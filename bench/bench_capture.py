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
3. The writer: events queued, then ``flush()`` timed (the pipeline without its thread, so
   all the writing happens in the timed call): events/s persisted into SQLite and
   PostgreSQL (build, scrub, serialise, write, group counts), against the raw driver's
   ``executemany`` of pre-built rows of the same shape in 1,000-row transactions. The two
   sides take turns over three rounds and the median round is reported. Each event carries
   a 470 B JSON chat request whose text differs per event, as request bodies do. Then where
   the writer's time goes: building a record against writing it, per event.
4. A flood of 1,000,000 captures of 1,000 distinct errors: captures/s and resident memory.

PostgreSQL is reached on 127.0.0.1 only; the benchmark makes a scratch database and drops
it. ERRORKIT_BENCH_CAPTURE_EVENTS (default 21000) sets how many events the writer stores.
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
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.bench_store import BATCH, scratch_postgres
from errorkit.capturing import api as capture
from errorkit.store import ErrorRecord, ErrorStore, upgrade

EVENTS = int(os.environ.get("ERRORKIT_BENCH_CAPTURE_EVENTS", "21000"))
ROUNDS = 25
PER_ROUND = 200
WRITER_ROUNDS = 3
BURST = 5_000
FLOOD = 1_000_000
FLOOD_DISTINCT = 1_000


def chat_body(n: int) -> bytes:
    """A 470 B chat completion request; its text differs per event, as bodies do."""
    body = {
        "model": "qwen2.5-7b-instruct",
        "max_tokens": 512,
        "temperature": 0.2,
        "messages": [
            {"role": "system", "content": "You are a concise support assistant."},
            {
                "role": "user",
                "content": f"Summarise ticket {n} in three bullet points: the customer "
                "reports that the checkout page times out after 30 seconds when paying "
                "with a saved card; the order stays pending and the payment provider "
                "shows no charge. Suggest what to check first.",
            },
        ],
    }
    return json.dumps(body).encode()


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


def _capture_all(excs: list[BaseException], first: int) -> None:
    for n, exc in enumerate(excs, start=first):
        capture.capture(
            exc, endpoint="/v1/chat/completions", method="POST", request_payload=chat_body(n)
        )


def writer_round(url: str, folder: Path, first: int, count: int) -> float:
    """events/s of the writer's work (build, scrub, serialise, write_batch, group counts)
    for ``count`` queued events. The pipeline runs without its thread, so nothing is
    written before the clock starts and ``flush()`` does it all on this thread."""
    from errorkit.capturing.pipeline import Pipeline
    from errorkit.capturing.spool import Spool
    from errorkit.scrubbing import default_scrubber

    with ErrorStore(url) as store:
        store.ping()  # connected and migrated before the clock starts
        pipeline = Pipeline(
            store,
            scrubber=default_scrubber(),
            spool=Spool(folder / "spool", 2**26),
            queue_size=count + 1,
            batch_size=BATCH,
            flood_per_minute=10**9,
            start_writer=False,
        )
        for n in range(first, first + count):
            fields = {
                "endpoint": "/v1/chat/completions",
                "method": "POST",
                "request_payload": chat_body(n),
            }
            pipeline.submit(str(uuid.uuid4()), raise_one(f"n{n}"), fields)
        gc.collect()
        started = time.perf_counter()
        if not pipeline.flush(600):
            raise RuntimeError("flush did not store everything")
        rate = count / (time.perf_counter() - started)
        pipeline.shutdown()
    return rate


def end_to_end(url: str, folder: Path, first: int, count: int) -> float:
    """events/s of raising, capturing and storing ``count`` events, the writer awake."""
    capture.configure(
        store_url=url, spool_dir=folder / "spool", flood_per_minute=10**9, queue_size=count + 1
    )
    started = time.perf_counter()
    for n in range(first, first + count):
        try:
            _handler(f"e2e-{n}")
        except ValueError as exc:
            capture.capture(
                exc, endpoint="/v1/chat/completions", method="POST", request_payload=chat_body(n)
            )
    if not capture.flush(600):
        raise RuntimeError("flush did not store everything")
    rate = count / (time.perf_counter() - started)
    capture.shutdown()
    return rate


def writer_against_raw(
    url: str, folder: Path, raw: Callable[[int, int], None]
) -> tuple[float, float, float]:
    """(raw rows/s, writer events/s, end-to-end events/s): medians of rounds taken in turn."""
    upgrade(url)
    step = EVENTS // (WRITER_ROUNDS + 1)
    raw_rates, writer_rates = [], []
    for round_ in range(WRITER_ROUNDS):
        start, stop = round_ * step, (round_ + 1) * step
        started = time.perf_counter()
        raw(start, stop)
        raw_rates.append((stop - start) / (time.perf_counter() - started))
        writer_rates.append(writer_round(url, folder, start, stop - start))
    e2e = end_to_end(url, folder, WRITER_ROUNDS * step, step)
    with ErrorStore(url) as store:
        counted = sum(g.count for g in store.groups(limit=10_000).items)
    if counted != (WRITER_ROUNDS + 1) * step:
        message = f"stored {counted} occurrences, expected {(WRITER_ROUNDS + 1) * step}"
        raise RuntimeError(message)
    return statistics.median(raw_rates), statistics.median(writer_rates), e2e


def _shaped_records() -> list[ErrorRecord]:
    """Records of the same shape the pipeline writes here, for the raw driver."""
    from errorkit.testing import capture_events

    with capture_events() as events:
        _capture_all([raise_one(f"n{n}") for n in range(EVENTS)], 0)
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


@contextmanager
def raw_sqlite(path: Path, records: list[ErrorRecord]) -> Iterator[Callable[[int, int], None]]:
    """Writes rows[start:stop] with sqlite3's executemany in 1,000-row transactions."""
    upgrade(f"sqlite:///{path}")
    rows = full_rows(records, text_times=True)
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode = WAL")
    connection.execute("PRAGMA synchronous = NORMAL")
    marks = ", ".join("?" * len(RECORD_COLUMNS))
    insert = f"INSERT INTO errors ({', '.join(RECORD_COLUMNS)}) VALUES ({marks})"

    def write(start: int, stop: int) -> None:
        for first in range(start, stop, BATCH):
            connection.execute("BEGIN")
            connection.executemany(insert, rows[first : min(first + BATCH, stop)])
            connection.execute("COMMIT")

    try:
        yield write
    finally:
        connection.close()


@contextmanager
def raw_postgres(url: str, records: list[ErrorRecord]) -> Iterator[Callable[[int, int], None]]:
    """Writes rows[start:stop] with psycopg's executemany (pipeline mode), 1,000 a time,
    into a table of its own with the same columns and indexes."""
    import psycopg

    upgrade(url)
    rows = full_rows(records, text_times=False)
    marks = ", ".join("%s::jsonb" if name == "data" else "%s" for name in RECORD_COLUMNS)
    insert = f"INSERT INTO raw_errors ({', '.join(RECORD_COLUMNS)}) VALUES ({marks})"
    with psycopg.connect(url.replace("+psycopg", "")) as connection:
        connection.execute("CREATE TABLE raw_errors (LIKE errors INCLUDING ALL)")
        connection.commit()

        def write(start: int, stop: int) -> None:
            for first in range(start, stop, BATCH):
                with connection.transaction(), connection.cursor() as cursor:
                    cursor.executemany(insert, rows[first : min(first + BATCH, stop)])

        yield write


def time_split(url: str, count: int = 5000) -> tuple[float, float]:
    """(build, write_batch) microseconds per event for ``count`` fresh events."""
    from errorkit.capturing.event import ErrorEvent, RecordBuilder
    from errorkit.context import current_context
    from errorkit.scrubbing import default_scrubber

    builder = RecordBuilder(
        service="app",
        environment="production",
        release=None,
        max_payload_bytes=16_384,
        scrubber=default_scrubber(),
    )
    events = [
        ErrorEvent(
            str(uuid.uuid4()),
            raise_one(f"s{n}"),
            None,
            None,
            time.time(),
            current_context(),
            {"endpoint": "/v1/chat/completions", "method": "POST", "request_payload": chat_body(n)},
            "split",
            "ValueError: invalid literal",
        )
        for n in range(count)
    ]
    gc.collect()
    started = time.perf_counter()
    records = [builder.build(event) for event in events]
    build = time.perf_counter() - started
    del events
    with ErrorStore(url) as store:
        started = time.perf_counter()
        for first in range(0, count, BATCH):
            store.write_batch(records[first : first + BATCH])
        write = time.perf_counter() - started
    return build / count * 1e6, write / count * 1e6


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
        print(
            f"   (medians of {WRITER_ROUNDS} rounds taken in turn; raw: executemany of the "
            "same rows, every column, data JSON pre-serialised)"
        )
        records = _shaped_records()
        rows = []
        splits = []
        with raw_sqlite(folder / "raw.db", records) as raw:
            url = f"sqlite:///{folder / 'writer.db'}"
            rows.append(("SQLite (WAL, synchronous=NORMAL)", *writer_against_raw(url, folder, raw)))
            splits.append(("SQLite", *time_split(f"sqlite:///{folder / 'split.db'}")))
        with scratch_postgres() as pg:
            if pg is not None:
                with raw_postgres(pg, records) as raw:
                    rows.append(("PostgreSQL (psycopg 3)", *writer_against_raw(pg, folder, raw)))
                    splits.append(("PostgreSQL", *time_split(pg)))
        print(
            f"   {'backend':34} {'raw driver':>11} {'writer':>9} {'writer/raw':>10} "
            f"{'capture+flush':>13} {'e2e/raw':>8}"
        )
        for backend, raw_rate, writer, e2e in rows:
            print(
                f"   {backend:34} {raw_rate:>9,.0f}/s {writer:>7,.0f}/s {writer / raw_rate:>10.2f} "
                f"{e2e:>11,.0f}/s {e2e / raw_rate:>8.2f}"
            )
        print("   where the writer's time goes, per event (5,000 events, one run):")
        for backend, build, write in splits:
            print(f"   {backend:12} build {build:6.1f} us   write_batch {write:6.1f} us")

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
