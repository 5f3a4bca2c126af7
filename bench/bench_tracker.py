"""The tracker's API on a big store: list, detail and stats, against the same SQL raw.

A store of 1,000,000 errors in 10,000 groups (ERRORKIT_BENCH_TRACKER_ROWS and
ERRORKIT_BENCH_TRACKER_GROUPS change that), spread over the last 30 days, is built once per
backend with ``ErrorStore.write_batch`` in 10,000-row batches (how long that takes is
printed). Then each call is made through the ASGI app in-process (``httpx.ASGITransport``,
an admin token, JSON decoded, as a client sees it) and the same queries run raw through the
driver (sqlite3, psycopg 3), and the p50 and p95 in ms of each are printed with the ratio:

- list: ``GET /admin/api/groups`` (unresolved first page, newest first, with the total);
- detail: ``GET /admin/api/groups/{id}`` (the group and its newest occurrence), random ids;
- stats: ``GET /admin/api/stats?since=24h`` (totals, counts by type, severity, code,
  endpoint, service, the hourly series, the top, new and regressed groups, the request
  counts), what the dashboard's stats page asks for; raw, the statements ``stats()`` runs
  (the hourly rollup summed with the edge hours, the top groups, ...), one after another.

    python -m bench tracker     # ERRORKIT_BENCH_TRACKER_BACKENDS=sqlite for one backend

PostgreSQL is reached on 127.0.0.1 (ERRORKIT_BENCH_POSTGRES_URL); the benchmark creates a
database of its own and drops it at the end.
"""

from __future__ import annotations

import asyncio
import os
import random
import sqlite3
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from bench.bench_store import scratch_postgres
from errorkit.store import ErrorRecord, ErrorStore, open_store, upgrade
from errorkit.store.tokens import TokenStore

ROWS = int(os.environ.get("ERRORKIT_BENCH_TRACKER_ROWS", "1000000"))
GROUPS = int(os.environ.get("ERRORKIT_BENCH_TRACKER_GROUPS", "10000"))
BATCH = 10_000
CALLS = int(os.environ.get("ERRORKIT_BENCH_TRACKER_CALLS", "60"))
DAYS = 30
AIM_MS = 50.0
BACKENDS = os.environ.get("ERRORKIT_BENCH_TRACKER_BACKENDS", "sqlite,postgres").split(",")

TYPES = ("api_error", "network_error", "validation_error", "database_error", "unknown_error")
SEVERITIES = ("warning", "error", "critical")
ENDPOINTS = tuple(f"/v1/route{n}" for n in range(20))
SERVICES = ("chat", "billing", "search")
STACK = (
    'Traceback (most recent call last):\n  File "/srv/app/handlers/chat.py", line 88, in post\n'
    "    answer = await client.complete(prompt)\n"
) * 4


def records(start: int, stop: int, now: datetime) -> list[ErrorRecord]:
    """Rows ``start``..``stop`` of the store: row i is in group ``i % GROUPS`` (so each group
    has ROWS / GROUPS occurrences), times spread evenly over the last DAYS days."""
    span = DAYS * 86400 / ROWS
    out = []
    for i in range(start, stop):
        g = i % GROUPS
        out.append(
            ErrorRecord(
                error_id=str(uuid.UUID(int=i + 1)),
                timestamp=now - timedelta(seconds=(ROWS - i) * span),
                error_type=TYPES[g % len(TYPES)],
                error_code=f"CODE_{g % 40:02d}",
                error_message=f"failure number {g} in the bench",
                severity=SEVERITIES[g % len(SEVERITIES)],
                fingerprint=f"fp-{g:05d}",
                title=f"BenchError: failure number {g}",
                stack_trace=STACK,
                status=500,
                endpoint=ENDPOINTS[g % len(ENDPOINTS)],
                method="POST",
                service=SERVICES[g % len(SERVICES)],
                environment="prod",
                request_id=f"req-{i}",
            )
        )
    return out


def build(store: ErrorStore, label: str) -> float:
    """Fill ``store`` with ROWS errors; seconds it took."""
    now = datetime.now(UTC)
    started = time.perf_counter()
    for first in range(0, ROWS, BATCH):
        store.write_batch(records(first, min(first + BATCH, ROWS), now))
        if first and first % 200_000 == 0:
            print(f"  {label}: {first:,} rows in {time.perf_counter() - started:.0f}s", flush=True)
    return time.perf_counter() - started


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return statistics.median(ordered), p95


def timed(call: Callable[[int], Any], warmup: int = 5) -> tuple[float, float]:
    """p50, p95 in ms of ``call(n)`` for n in 0..CALLS (after a few warm-up calls)."""
    for n in range(warmup):
        call(n)
    samples = []
    for n in range(CALLS):
        started = time.perf_counter()
        call(n)
        samples.append((time.perf_counter() - started) * 1000)
    return percentiles(samples)


def group_ids(count: int) -> list[int]:
    chooser = random.Random(7)
    return [chooser.randint(1, GROUPS) for _ in range(count)]


# -- through the API --------------------------------------------------------------------


def api_calls(store: ErrorStore) -> Iterator[tuple[str, Callable[[int], Any]]]:
    from errorkit.server import create_app

    app = create_app(store=store, dashboard=False)
    token = TokenStore(store).create(role="admin", name="bench").secret
    transport = httpx.ASGITransport(app=app)
    client = httpx.AsyncClient(
        transport=transport,
        base_url="http://bench",
        headers={"Authorization": f"Bearer {token}"},
    )
    loop = asyncio.new_event_loop()
    ids = group_ids(CALLS + 10)

    def get(path: str, **params: Any) -> Any:
        r = loop.run_until_complete(client.get(path, params=params))
        if r.status_code != 200:
            message = f"GET {path} -> {r.status_code}: {r.text[:300]}"
            raise RuntimeError(message)
        return r.json()

    try:
        yield "list", lambda n: get("/admin/api/groups", status="unresolved", limit=50)
        yield "detail", lambda n: get(f"/admin/api/groups/{ids[n]}")
        yield "stats", lambda n: get("/admin/api/stats", since="24h")
    finally:
        loop.run_until_complete(client.aclose())
        loop.close()


# -- the same queries raw ---------------------------------------------------------------

GROUP_COLUMNS = (
    "id, fingerprint, title, error_type, error_code, severity, first_seen, last_seen, count, "
    "status, resolved_at, regressed_at, notes, last_error_id, service, environment"
)
LIST_SQL = (
    f"SELECT {GROUP_COLUMNS} FROM error_groups WHERE status = {{p}} "
    "ORDER BY last_seen DESC, id DESC LIMIT 51"
)
LIST_TOTAL_SQL = "SELECT count(*) FROM error_groups WHERE status = {p}"
GROUP_SQL = f"SELECT {GROUP_COLUMNS} FROM error_groups WHERE id = {{p}}"
LATEST_SQL = "SELECT * FROM errors WHERE fingerprint = {p} ORDER BY timestamp DESC, id DESC LIMIT 1"
DIMS = "error_type, severity, error_code, endpoint, service"
ROLLUP_WINDOW = "FROM error_counts_hourly WHERE total > 0 AND hour >= {p} AND hour < {p}"
EDGE_COUNTS = "count(*), sum(CASE WHEN resolved THEN 0 ELSE 1 END) FROM errors"
EDGE_WINDOW = "WHERE timestamp >= {p} AND timestamp < {p}"
#: The window's facts as stats() reads them on PostgreSQL: the rollup's whole hours, then
#: the two partial hours at the edges counted per combination, summed by grouping sets.
FACTS_SQL = (
    f"SELECT {DIMS}, hour AS at, total AS n, total - resolved AS open {ROLLUP_WINDOW}"
    + f" UNION ALL SELECT {DIMS}, {{p}} AS at, {EDGE_COUNTS} {EDGE_WINDOW} GROUP BY {DIMS}" * 2
)
POSTGRES_SUMS_SQL = (
    "SELECT GROUPING(error_type, severity, error_code, endpoint, service, {slot}) AS g, "
    f"{DIMS}, {{slot}}, coalesce(sum(n), 0), coalesce(sum(open), 0) FROM ({FACTS_SQL}) AS facts "
    "GROUP BY GROUPING SETS ((error_type), (severity), (error_code), (endpoint), (service), "
    f"({{slot}}), ()) ORDER BY g, sum(n) DESC, {DIMS}, {{slot}}"
)
#: On SQLite each part is summed on its own, per combination and per hour ({k}: the
#: dimensions as SQLite groups them); stats() adds the few rows up in Python.
SQLITE_SUMS_SQL = (
    f"SELECT {DIMS}, sum(total), sum(total - resolved) {ROLLUP_WINDOW} GROUP BY dims"
    + f" UNION ALL SELECT {DIMS}, {EDGE_COUNTS} {EDGE_WINDOW} GROUP BY {{k}}" * 2,
    f"SELECT hour, sum(total) {ROLLUP_WINDOW} GROUP BY hour"
    + f" UNION ALL SELECT {{p}}, count(*) FROM errors {EDGE_WINDOW}" * 2,
)
QUALIFIED = ", ".join(f"error_groups.{c.strip()}" for c in GROUP_COLUMNS.split(","))
TOP_SQL = (
    f"SELECT {QUALIFIED}, top.occurrences FROM error_groups JOIN (SELECT fingerprint, "
    "count(*) AS occurrences FROM errors WHERE timestamp >= {p} GROUP BY {key} "
    "ORDER BY occurrences DESC, fingerprint LIMIT 10) AS top "
    "ON top.fingerprint = error_groups.fingerprint "
    "ORDER BY top.occurrences DESC, error_groups.fingerprint"
)
NEW_SQL = (
    f"SELECT {GROUP_COLUMNS} FROM error_groups WHERE first_seen >= {{p}} "
    "ORDER BY first_seen DESC, id DESC LIMIT 10"
)
REGRESSED_SQL = (
    f"SELECT {GROUP_COLUMNS} FROM error_groups WHERE status = 'regressed' AND "
    "last_seen >= {p} ORDER BY last_seen DESC, id DESC LIMIT 10"
)
REQUESTS_SQL = (
    "SELECT status_class, sum(count) FROM request_counts WHERE bucket_start >= {p} "
    "AND bucket_start < {p} GROUP BY status_class"
)


def raw_calls(
    execute: Callable[[str, tuple[Any, ...]], list[Any]],
    p: str,
    slot: str,
    when: Callable[[datetime], Any],
    sqlite: bool = False,
) -> Iterator[tuple[str, Callable[[int], Any]]]:
    """The SQL each API call runs, through ``execute(sql, params)``; ``p`` is the driver's
    placeholder, ``slot`` the hour-bucket expression of ``at``, ``when`` a time as the driver
    takes it; ``sqlite`` picks that dialect's statements (as ``ErrorStore.stats`` does), one
    after the other on one connection."""
    ids = group_ids(CALLS + 10)
    statuses = ("unresolved",)
    keys = ", ".join(f"+{c}" for c in DIMS.split(", "))
    if sqlite:  # the statements' times: (low, high, since, low, high, now) and per hour
        sums = list(
            zip(
                (sql.format(p=p, k=keys) for sql in SQLITE_SUMS_SQL),
                ((0, 1, 2, 0, 1, 3), (0, 1, 2, 2, 0, 1, 1, 3)),
                strict=True,
            )
        )
    else:
        sums = [(POSTGRES_SUMS_SQL.format(p=p, slot=slot), (0, 1, 2, 2, 0, 1, 1, 3))]
    top = TOP_SQL.format(p=p, key="+fingerprint" if sqlite else "fingerprint")

    def list_(n: int) -> Any:
        return (
            execute(LIST_SQL.format(p=p), statuses),
            execute(LIST_TOTAL_SQL.format(p=p), statuses),
        )

    def detail(n: int) -> Any:
        group = execute(GROUP_SQL.format(p=p), (ids[n],))
        return group, execute(LATEST_SQL.format(p=p), (group[0][1],))

    def stats(n: int) -> Any:
        now = datetime.now(UTC)
        since = now - timedelta(hours=24)
        low = since.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
        high = now.replace(minute=0, second=0, microsecond=0)
        times = (when(low), when(high), when(since), when(now))
        out = [execute(sql, tuple(times[i] for i in order)) for sql, order in sums]
        out.append(execute(top, (when(since),)))
        out.append(execute(NEW_SQL.format(p=p), (when(since),)))
        out.append(execute(REGRESSED_SQL.format(p=p), (when(since),)))
        out.append(execute(REQUESTS_SQL.format(p=p), (when(since), when(now))))
        return out

    yield "list", list_
    yield "detail", detail
    yield "stats", stats


Figures = dict[str, tuple[float, float]]


def measure(
    store: ErrorStore, raw: Iterator[tuple[str, Callable[[int], Any]]]
) -> tuple[Figures, Figures]:
    ours = {name: timed(call) for name, call in api_calls(store)}
    theirs = {name: timed(call) for name, call in raw}
    return ours, theirs


def bench_sqlite(folder: Path) -> tuple[str, float, Figures, Figures]:
    url = f"sqlite:///{folder / 'tracker.db'}"
    upgrade(url)
    with open_store(url) as store:
        built = build(store, "SQLite")
        connection = sqlite3.connect(folder / "tracker.db")

        def execute(sql: str, params: tuple[Any, ...]) -> list[Any]:
            return connection.execute(sql, params).fetchall()

        def when(moment: datetime) -> str:  # as the store keeps times: UTC text
            return moment.replace(tzinfo=None).isoformat(" ", timespec="microseconds")

        slot = "substr(at, 1, 13) || ':00:00'"
        ours, theirs = measure(store, raw_calls(execute, "?", slot, when, sqlite=True))
        connection.close()
    return "SQLite", built, ours, theirs


def bench_postgres() -> tuple[str, float, Figures, Figures] | None:
    import psycopg

    with scratch_postgres() as url:
        if url is None:
            return None
        upgrade(url)
        with open_store(url) as store:
            built = build(store, "PostgreSQL")
            with psycopg.connect(url.replace("+psycopg", ""), autocommit=True) as connection:
                # What autovacuum does to a live store: the group upserts leave dead rows
                # behind, and index-only scans need the visibility map.
                connection.execute("VACUUM ANALYZE")

                def execute(sql: str, params: tuple[Any, ...]) -> list[Any]:
                    return connection.execute(sql, params).fetchall()  # type: ignore[arg-type]

                def when(moment: datetime) -> datetime:
                    return moment

                slot = "date_trunc('hour', timezone('UTC', at))"
                ours, theirs = measure(store, raw_calls(execute, "%s", slot, when))
            store.close()
        return "PostgreSQL", built, ours, theirs


def main() -> None:
    print(
        f"{ROWS:,} errors in {GROUPS:,} groups over {DAYS} days, built with write_batch in "
        f"{BATCH:,}-row batches; {CALLS} calls each; aim p95 <= {AIM_MS:g} ms"
    )
    results = []
    if "sqlite" in BACKENDS:
        with tempfile.TemporaryDirectory(prefix="errorkit-bench-") as folder:
            results.append(bench_sqlite(Path(folder)))
            report(*results[-1])
    postgres = bench_postgres() if "postgres" in BACKENDS else None
    if postgres is not None:
        report(*postgres)
        results.append(postgres)
    missed = [
        f"{backend} {name}"
        for backend, _, ours, _ in results
        for name, (_, p95) in ours.items()
        if p95 > AIM_MS
    ]
    print(f"over the aim: {', '.join(missed)}" if missed else "every call is within the aim")


def report(backend: str, built: float, ours: Figures, theirs: Figures) -> None:
    print(f"\n{backend}: built in {built:.0f}s ({ROWS / built:,.0f} rows/s)")
    print(
        f"{'call':8} {'API p50':>9} {'API p95':>9} {'raw p50':>9} {'raw p95':>9} "
        f"{'p95 API/raw':>12}"
    )
    for name, (p50, p95) in ours.items():
        raw50, raw95 = theirs[name]
        print(
            f"{name:8} {p50:>6.1f} ms {p95:>6.1f} ms {raw50:>6.1f} ms {raw95:>6.1f} ms "
            f"{p95 / raw95 if raw95 else float('inf'):>12.1f}"
        )


if __name__ == "__main__":
    main()
