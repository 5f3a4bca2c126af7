"""Store writes: errorkit's ``write_batch`` against the raw driver, SQLite and PostgreSQL.

Rows have the shape of a captured error: a uuid, six short columns, a 2 KB stack trace and
a 500 B request payload. Both sides write into tables of the migrated ``errors`` shape (same
columns and indexes) in 1000-row transactions, taking turns over five rounds; the raw side
is ``executemany`` of a plain INSERT on the driver (sqlite3, psycopg 3) and does nothing
else, while ``write_batch`` also validates, inserts idempotently, learns which rows were new
and upserts the group counts.

    python -m bench store          # ERRORKIT_BENCH_ROWS=50000 by default

Then the same SQLite writes while another thread of the process runs Python (as an app's
request threads do). ``executemany`` gives up the GIL around every row and waits for the
interpreter's switch interval (5 ms) to get it back; ``write_batch`` uses a few multi-row
INSERTs per batch. Each side takes five turns (the median is shown); the raw side writes
only 200 rows a turn: at its pace more would take minutes.

PostgreSQL is reached on 127.0.0.1 (ERRORKIT_BENCH_POSTGRES_URL); the benchmark creates
its own database and drops it at the end.
"""

from __future__ import annotations

import os
import sqlite3
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from errorkit.store import ErrorRecord, ErrorStore, open_store, upgrade

ROWS = int(os.environ.get("ERRORKIT_BENCH_ROWS", "50000"))
BATCH = 1000
ROUNDS = 5
POSTGRES_URL = os.environ.get(
    "ERRORKIT_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
STACK = (
    'Traceback (most recent call last):\n  File "/srv/app/handlers/chat.py", line 88, in post\n'
    "    answer = await client.complete(prompt)\n"
) * 20
PAYLOAD = '{"model": "qwen", "messages": [{"role": "user", "content": "' + "x" * 440 + '"}]}'
COLUMNS = (
    "error_id",
    "timestamp",
    "error_type",
    "error_code",
    "severity",
    "session_id",
    "endpoint",
    "method",
    "error_message",
    "fingerprint",
    "title",
    "stack_trace",
    "request_payload",
    "created_at",
)


@dataclass
class Outcome:
    backend: str
    raw: float
    ours: float
    replay: float


def make_records(count: int) -> list[ErrorRecord]:
    start = datetime.now(UTC)
    return [
        ErrorRecord(
            error_id=str(uuid.uuid4()),
            timestamp=start + timedelta(microseconds=i),
            error_type="api_error",
            error_code="UPSTREAM_TIMEOUT",
            severity="error",
            session_id=f"session-{i % 500}",
            endpoint="/v1/chat/completions",
            method="POST",
            error_message="upstream did not answer within 30s",
            fingerprint=f"fp-{i % 50:02d}",
            title="UpstreamTimeout: upstream did not answer",
            stack_trace=STACK[:2048],
            request_payload=PAYLOAD[:500],
        )
        for i in range(count)
    ]


def raw_rows(records: Sequence[ErrorRecord], text_times: bool) -> list[tuple[Any, ...]]:
    """The same values as plain tuples, prepared before timing (the raw side's best case)."""
    now = datetime.now(UTC)
    rows = []
    for r in records:
        stamp: Any = r.timestamp.replace(tzinfo=None).isoformat(" ") if text_times else r.timestamp
        created: Any = now.replace(tzinfo=None).isoformat(" ") if text_times else now
        rows.append(
            (
                r.error_id,
                stamp,
                r.error_type,
                r.error_code,
                r.severity,
                r.session_id,
                r.endpoint,
                r.method,
                r.error_message,
                r.fingerprint,
                r.title,
                r.stack_trace,
                r.request_payload,
                created,
            )
        )
    return rows


def median_rate(
    raw: Callable[[int, int], None], ours: Callable[[int, int], None], rows: int
) -> tuple[float, float]:
    """Median rows/s of each side over ROUNDS rounds, the two sides taking turns.

    Alternating keeps a slow spell of a shared machine from landing on one side only.
    """
    step = rows // ROUNDS
    raw_rates: list[float] = []
    our_rates: list[float] = []
    for round_ in range(ROUNDS):
        start, stop = round_ * step, (round_ + 1) * step
        for write, rates in ((raw, raw_rates), (ours, our_rates)):
            started = time.perf_counter()
            write(start, stop)
            rates.append((stop - start) / (time.perf_counter() - started))
    return statistics.median(raw_rates), statistics.median(our_rates)


def batches(start: int, stop: int) -> Iterator[tuple[int, int]]:
    for first in range(start, stop, BATCH):
        yield first, min(first + BATCH, stop)


def our_writer(store: ErrorStore, records: list[ErrorRecord]) -> Callable[[int, int], None]:
    def write(start: int, stop: int) -> None:
        for first, last in batches(start, stop):
            store.write_batch(records[first:last])

    return write


def replay_rate(store: ErrorStore, records: list[ErrorRecord]) -> float:
    """rows/s of writing every record again (all duplicates), checking counts stay exact."""
    started = time.perf_counter()
    our_writer(store, records)(0, len(records))
    elapsed = time.perf_counter() - started
    group = store.group("fp-00")
    expected = len(records) // 50 + (1 if len(records) % 50 else 0)
    if group is None or group.count != expected:
        message = f"group count is {group and group.count}, expected {expected}"
        raise RuntimeError(message)
    return len(records) / elapsed


def bench_sqlite(records: list[ErrorRecord], folder: Path) -> Outcome:
    raw_path = folder / "raw.db"
    upgrade(f"sqlite:///{raw_path}")
    rows = raw_rows(records, text_times=True)
    connection = sqlite3.connect(raw_path, isolation_level=None)
    connection.execute("PRAGMA journal_mode = WAL")
    connection.execute("PRAGMA synchronous = NORMAL")
    insert = f"INSERT INTO errors ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"

    def raw(start: int, stop: int) -> None:
        for first, last in batches(start, stop):
            connection.execute("BEGIN")
            connection.executemany(insert, rows[first:last])
            connection.execute("COMMIT")

    with open_store(f"sqlite:///{folder / 'errorkit.db'}") as store:
        raw_rate, our_rate = median_rate(raw, our_writer(store, records), len(records))
        replay = replay_rate(store, records)
    connection.close()
    return Outcome("SQLite (WAL, synchronous=NORMAL)", raw_rate, our_rate, replay)


CONTENDED_RAW_ROWS = 200
CONTENDED_TURNS = 5


@contextmanager
def busy_thread() -> Iterator[None]:
    """Another thread running pure Python for as long as the block lasts."""
    stop = threading.Event()

    def spin() -> None:
        while not stop.is_set():
            sum(range(1000))

    thread = threading.Thread(target=spin, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def bench_sqlite_contended(
    records: list[ErrorRecord], folder: Path
) -> tuple[list[float], list[float]]:
    """rows/s of each raw and write_batch turn while another thread runs Python.

    Whether a thread waits for the GIL after each statement depends on where the OS runs
    the two threads (on one core it rarely does; on two it does), so every turn is kept."""
    insert = f"INSERT INTO errors ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
    ours_per_turn = min(2 * BATCH, len(records) // CONTENDED_TURNS)
    raw_rates: list[float] = []
    our_rates: list[float] = []
    with open_store(f"sqlite:///{folder / 'contended.db'}") as store:
        for turn in range(CONTENDED_TURNS):
            raw_path = folder / f"raw-contended-{turn}.db"
            upgrade(f"sqlite:///{raw_path}")
            rows = raw_rows(records[:CONTENDED_RAW_ROWS], text_times=True)
            connection = sqlite3.connect(raw_path, isolation_level=None)
            connection.execute("PRAGMA journal_mode = WAL")
            connection.execute("PRAGMA synchronous = NORMAL")
            ours = records[turn * ours_per_turn : (turn + 1) * ours_per_turn]
            with busy_thread():
                started = time.perf_counter()
                connection.execute("BEGIN")
                connection.executemany(insert, rows)
                connection.execute("COMMIT")
                raw_rates.append(len(rows) / (time.perf_counter() - started))
                started = time.perf_counter()
                our_writer(store, ours)(0, len(ours))
                our_rates.append(len(ours) / (time.perf_counter() - started))
            connection.close()
    return raw_rates, our_rates


@contextmanager
def scratch_postgres() -> Iterator[str | None]:
    """A new database on 127.0.0.1, dropped afterwards; None when PostgreSQL is not there."""
    import psycopg
    from sqlalchemy.engine import make_url

    base = make_url(POSTGRES_URL)
    if base.host not in {"127.0.0.1", "localhost"}:
        message = f"the benchmark only talks to 127.0.0.1, not {base.host}"
        raise RuntimeError(message)
    name = f"errorkit_bench_{uuid.uuid4().hex[:10]}"
    admin_url = base.set(drivername="postgresql").render_as_string(hide_password=False)
    try:
        admin = psycopg.connect(admin_url, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        print(f"PostgreSQL skipped: not reachable at {base.host}:{base.port} ({exc})")
        yield None
        return
    try:
        admin.execute(f'CREATE DATABASE "{name}"')
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        )
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.close()


def bench_postgres(records: list[ErrorRecord]) -> Outcome | None:
    import psycopg

    with scratch_postgres() as url:
        if url is None:
            return None
        upgrade(url)
        rows = raw_rows(records, text_times=False)
        insert = (
            f"INSERT INTO raw_errors ({', '.join(COLUMNS)}) "
            f"VALUES ({', '.join(['%s'] * len(COLUMNS))})"
        )
        with psycopg.connect(url.replace("+psycopg", "")) as connection:
            # The raw side gets a table of its own with the same columns and indexes.
            connection.execute("CREATE TABLE raw_errors (LIKE errors INCLUDING ALL)")
            connection.commit()

            def raw(start: int, stop: int) -> None:
                for first, last in batches(start, stop):
                    with connection.transaction(), connection.cursor() as cursor:
                        cursor.executemany(insert, rows[first:last])

            with open_store(url) as store:
                raw_rate, our_rate = median_rate(raw, our_writer(store, records), len(records))
                replay = replay_rate(store, records)
        return Outcome("PostgreSQL (psycopg 3)", raw_rate, our_rate, replay)


def main() -> None:
    records = make_records(ROWS)
    print(
        f"{ROWS:,} rows (uuid, 6 short columns, 2 KB stack, 500 B payload) "
        f"in {BATCH}-row transactions"
    )
    outcomes = []
    with tempfile.TemporaryDirectory(prefix="errorkit-bench-") as folder:
        outcomes.append(bench_sqlite(records, Path(folder)))
        contended = bench_sqlite_contended(records, Path(folder))
    postgres = bench_postgres(records)
    if postgres is not None:
        outcomes.append(postgres)
    print(f"median of {ROUNDS} alternating rounds; replay = every row written again")
    print(
        f"{'backend':34} {'raw executemany':>16} {'write_batch':>12} {'ours/raw':>9} "
        f"{'replay (dups)':>14}"
    )
    for o in outcomes:
        print(
            f"{o.backend:34} {o.raw:>12,.0f} r/s {o.ours:>8,.0f} r/s {o.ours / o.raw:>9.2f} "
            f"{o.replay:>10,.0f} r/s"
        )
    raw_rates, our_rates = contended
    raw_rate, our_rate = statistics.median(raw_rates), statistics.median(our_rates)
    print(
        f"{'SQLite, another thread busy':34} {raw_rate:>12,.0f} r/s {our_rate:>8,.0f} r/s "
        f"{our_rate / raw_rate:>9.2f}   (raw: {CONTENDED_RAW_ROWS} rows a turn)"
    )
    print(
        f"{'  slowest of the five turns':34} {min(raw_rates):>12,.0f} r/s "
        f"{min(our_rates):>8,.0f} r/s {min(our_rates) / min(raw_rates):>9.2f}"
    )


if __name__ == "__main__":
    main()
