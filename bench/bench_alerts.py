"""Alert evaluation: 50 rules of every kind on a store of 1,000,000 errors in ~10,000 groups,
SQLite and then PostgreSQL, against the same queries written by hand on the raw driver.

The store is built once per backend with ``ErrorStore.write_batch`` (10,000-row batches):
errors over the last 7 days, spread over 10,000 groups (4 services, 2 environments, 40
endpoints, 30 codes, 2 % of groups critical), plus a burst in the last 10 minutes, 30 groups
first seen in the last hour, 20 resolved groups that regressed, and request counts (minute
buckets for a day, hour buckets for 30 days). Every round then evaluates the same data at
the same instant.

Three numbers per backend, over ``ERRORKIT_BENCH_ALERT_ROUNDS`` rounds (default 15) after
one warm-up:

* ``evaluate``: ``AlertManager.evaluate`` of the 50 rules, whole (queries, the claim
  transaction per finding, deliveries to a channel that does nothing);
* ``queries``: the rules' store queries alone (what the manager asks the store, per rule);
* ``raw``: the same questions as hand-written SQL on the driver (sqlite3, psycopg 3), one
  statement per question, results fetched; ``queries/raw`` is the ratio.

    python -m bench alerts      # ERRORKIT_BENCH_ALERT_ROWS=1000000 by default

PostgreSQL is reached on 127.0.0.1 (ERRORKIT_BENCH_POSTGRES_URL); the benchmark creates its
own database and drops it at the end.
"""

from __future__ import annotations

import os
import re
import sqlite3
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.bench_store import scratch_postgres
from errorkit.alerts import AlertManager, Channel, Notification, Rule, Scope
from errorkit.alerts.rules import BurnWindow
from errorkit.store import ErrorRecord, ErrorStore, open_store, upgrade
from errorkit.store.records import RequestCountRow

ROWS = int(os.environ.get("ERRORKIT_BENCH_ALERT_ROWS", "1000000"))
GROUPS = 10_000
ROUNDS = int(os.environ.get("ERRORKIT_BENCH_ALERT_ROUNDS", "15"))
BATCH = 10_000
SPAN = timedelta(days=7)
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
SERVICES = ("api", "worker", "web", "billing")
ENVIRONMENTS = ("prod", "staging")
ENDPOINTS = tuple(f"/v1/resource{n}/{{id}}" for n in range(40))
CODES = (
    "DISK_FULL",
    "OUT_OF_MEMORY",
    "ENCRYPTION_FAILED",
    *(f"UPSTREAM_{n:02d}" for n in range(27)),
)
NEW_GROUPS = 30
REGRESSED = 20
BURST_GROUPS = 20
BURST_EACH = 40


# -- the data ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GroupShape:
    fingerprint: str
    service: str
    environment: str
    endpoint: str
    code: str
    severity: str
    error_type: str


def group(n: int) -> GroupShape:
    """Group ``n``'s fixed attributes (a group's errors share them, as real ones do)."""
    critical = n % 50 == 0
    return GroupShape(
        fingerprint=f"fp-{n:05d}",
        service=SERVICES[n % len(SERVICES)],
        environment=ENVIRONMENTS[(n // 4) % 2],
        endpoint=ENDPOINTS[(n * 7) % len(ENDPOINTS)],
        code=CODES[(n * 13) % len(CODES)],
        severity="critical" if critical else ("warning" if n % 3 == 0 else "error"),
        error_type="resource" if n % 17 == 0 else "upstream",
    )


SHAPES = [group(n) for n in range(GROUPS + NEW_GROUPS)]
_IDS = iter(range(1, 1 << 62))


def record(shape: GroupShape, moment: datetime) -> ErrorRecord:
    return ErrorRecord(
        error_id=str(uuid.UUID(int=next(_IDS))),
        timestamp=moment,
        error_type=shape.error_type,
        error_code=shape.code,
        error_message="upstream did not answer within 30s",
        severity=shape.severity,
        fingerprint=shape.fingerprint,
        title=f"{shape.code}: upstream did not answer ({shape.fingerprint})",
        endpoint=shape.endpoint,
        method="POST",
        status=503,
        service=shape.service,
        environment=shape.environment,
    )


def history(count: int) -> Iterator[list[ErrorRecord]]:
    """``count`` errors over SPAN before NOW, oldest first, in batches; then the recent
    burst and the new groups."""
    start = NOW - SPAN
    step = SPAN / count
    batch: list[ErrorRecord] = []
    for i in range(count):
        batch.append(record(SHAPES[(i * 7919) % GROUPS], start + step * i))
        if len(batch) == BATCH:
            yield batch
            batch = []
    if batch:
        yield batch
    recent = [
        record(SHAPES[n * 97 + 1], NOW - timedelta(minutes=9) + timedelta(seconds=k))
        for n in range(BURST_GROUPS)
        for k in range(BURST_EACH)
    ]
    recent += [
        record(SHAPES[GROUPS + n], NOW - timedelta(minutes=50) + timedelta(minutes=n))
        for n in range(NEW_GROUPS)
    ]
    yield sorted(recent, key=lambda r: r.timestamp)


def request_rows() -> list[RequestCountRow]:
    """Minute buckets for the last day, hour buckets for the 29 days before it; about 6 %
    failing, 20 % in the last 10 minutes on one service (so rate and budget rules fire)."""
    rows: list[RequestCountRow] = []
    pairs = [(s, e) for s in SERVICES for e in ENDPOINTS[:8]]
    for minute in range(24 * 60):
        start = NOW - timedelta(minutes=minute + 1)
        for service, endpoint in pairs:
            hot = minute < 10 and service == "api"
            rows.append(RequestCountRow(start, service, endpoint, "2xx", 80, "minute", "prod"))
            rows.append(
                RequestCountRow(start, service, endpoint, "5xx", 20 if hot else 5, "minute", "prod")
            )
    first_hour = (NOW - timedelta(days=1)).replace(minute=0)
    for hour in range(1, 29 * 24):
        start = first_hour - timedelta(hours=hour)
        for service, endpoint in pairs:
            rows.append(RequestCountRow(start, service, endpoint, "2xx", 4800, "hour", "prod"))
            rows.append(RequestCountRow(start, service, endpoint, "5xx", 300, "hour", "prod"))
    return rows


def build(store: ErrorStore) -> float:
    """Fill ``store``; returns the seconds it took."""
    started = time.perf_counter()
    for batch in history(ROWS):
        store.write_batch(batch)
    for n in range(REGRESSED):  # resolved, then seen again: regressed
        shape = SHAPES[n * 311 + 5]
        store.resolve_group(shape.fingerprint)
        store.write_batch([record(shape, NOW - timedelta(minutes=3))])
    rows = request_rows()
    for first in range(0, len(rows), 20_000):
        store.write_request_counts(rows[first : first + 20_000])
    return time.perf_counter() - started


# -- the rules --------------------------------------------------------------------------


def rules() -> list[Rule]:
    """50 rules: every kind, several scopes and windows each."""
    out: list[Rule] = []

    def add(name: str, kind: Any, **fields: Any) -> None:
        out.append(Rule(name=name, kind=kind, **fields))

    add("rate-all-5m", "error_rate", window=timedelta(minutes=5))
    add("rate-all-1h", "error_rate", window=timedelta(hours=1))
    for service in SERVICES:
        add(f"rate-{service}-5m", "error_rate", scope=Scope(service=service))
    add(
        "rate-api-endpoint",
        "error_rate",
        scope=Scope(service="api", endpoint=ENDPOINTS[0]),
        min_requests=10,
    )
    add("budget-all", "error_budget")
    for service in SERVICES:
        add(f"budget-{service}", "error_budget", scope=Scope(service=service))
    add(
        "budget-prod-slow",
        "error_budget",
        scope=Scope(environment="prod"),
        burn_windows=(BurnWindow(timedelta(days=3), timedelta(hours=6), 1.0),),
    )
    for n, (window, count) in enumerate([("10m", 10), ("1h", 20), ("6h", 50), ("10m", 30)]):
        add(f"repeat-group-{n}", "repeat", window=_span(window), count=count)
    for service in SERVICES:
        add(f"repeat-{service}", "repeat", scope=Scope(service=service), count=15)
    for n, window in enumerate(["5m", "1h", "1h", "24h"]):
        scope = Scope(service=SERVICES[n]) if n else Scope()
        add(f"repeat-endpoint-{n}", "repeat", by="endpoint", window=_span(window), count=100,
            scope=scope)  # fmt: skip
    add("critical-any", "critical")
    add("critical-api", "critical", scope=Scope(service="api"))
    add("critical-prod-1h", "critical", scope=Scope(environment="prod"), window=_span("1h"))
    add("resources", "critical", codes=("DISK_FULL", "OUT_OF_MEMORY"), severities=())
    add("resources-1h", "critical", codes=("DISK_FULL", "OUT_OF_MEMORY"), window=_span("1h"))
    add("encryption", "critical", codes=("ENCRYPTION_FAILED",), severities=())
    add("resource-type", "critical", types=("resource",), severities=())
    add("resource-type-web", "critical", types=("resource",), scope=Scope(service="web"))
    add("new-any", "new_group", window=_span("1h"))
    add("new-day", "new_group", window=_span("24h"))
    for service in SERVICES:
        add(f"new-{service}", "new_group", window=_span("1h"), scope=Scope(service=service))
    add("regressed-any", "regression")
    for service in SERVICES:
        add(f"regressed-{service}", "regression", scope=Scope(service=service))
    for n in range(6):
        add(f"breaker-{n}", "breaker", breakers=(f"upstream-{n}",) if n else ())
    assert len(out) == 50, len(out)
    assert {rule.kind for rule in out} == {
        "error_rate", "error_budget", "repeat", "critical", "new_group", "regression", "breaker"
    }  # fmt: skip
    return out


def _span(text: str) -> timedelta:
    from errorkit.alerts import parse_duration

    return parse_duration(text, "bench")


class Quiet(Channel):
    """Accepts every notification and does nothing with it."""

    type = "quiet"

    def send(self, notification: Notification) -> None:
        return None


# -- the raw peer ---------------------------------------------------------------------

_SCOPE_COLUMNS = {
    "service": "service",
    "environment": "environment",
    "endpoint": "endpoint",
    "code": "error_code",
    "type": "error_type",
    "severity": "severity",
    "group": "fingerprint",
}


def _conditions(
    scope: Scope, prefix: str, skip: tuple[str, ...] = ()
) -> tuple[str, dict[str, Any]]:
    parts: list[str] = []
    values: dict[str, Any] = {}
    for name, column in _SCOPE_COLUMNS.items():
        value = getattr(scope, name)
        if value is not None and name not in skip:
            parts.append(f" AND {prefix}{column} = :s_{name}")
            values[f"s_{name}"] = value
    return "".join(parts), values


def _in(name: str, column: str, values: tuple[str, ...]) -> tuple[str, dict[str, Any]]:
    names = {f"{name}{i}": value for i, value in enumerate(values)}
    return f"{column} IN ({', '.join(':' + key for key in names)})", names


def raw_questions(rule: Rule, now: datetime) -> list[tuple[str, dict[str, Any]]]:
    """The SQL a person would write for the rule's questions, with named parameters."""
    scope = rule.scope
    if rule.kind in ("error_rate", "error_budget"):
        where, values = _conditions(scope, "")
        spans = [rule.window] if rule.kind == "error_rate" else [rule.period]
        if rule.kind == "error_budget":
            spans += [span for burn in rule.burn_windows for span in (burn.long, burn.short)]
        sql = (
            "SELECT status_class, SUM(count) FROM request_counts "
            f"WHERE bucket_start >= :since AND bucket_start < :until{where} GROUP BY status_class"
        )
        return [(sql, {**values, "since": now - span, "until": now}) for span in spans]
    if rule.kind in ("repeat", "critical"):
        key = "endpoint" if rule.kind == "repeat" and rule.by == "endpoint" else "fingerprint"
        where, values = _conditions(scope, "e.")
        slim_where, slim_values = _conditions(scope, "g.", skip=("endpoint", "group"))
        if scope.endpoint is not None:
            slim_where += " AND s.endpoint = :s_endpoint"
        if scope.group is not None:
            slim_where += " AND s.fingerprint = :s_group"
        any_of = ""
        if rule.kind == "critical":
            alternatives = []
            for name, column, listed in (
                ("sev", "severity", rule.severities),
                ("code", "error_code", rule.codes),
                ("type", "error_type", rule.types),
            ):
                if listed:
                    text, named = _in(name, column, listed)
                    alternatives.append(text)
                    values.update(named)
            any_of = f" AND ({' OR '.join(alternatives)})"
        minimum = rule.count if rule.kind == "repeat" else 1
        sql = f"""
            SELECT k.key, SUM(k.n) AS n, MAX(k.last) AS last, g.title, g.error_code, g.severity
            FROM (
                SELECT e.{key} AS key, COUNT(*) AS n, MAX(e.timestamp) AS last FROM errors e
                WHERE e.timestamp >= :since AND e.timestamp < :until
                  AND e.{key} IS NOT NULL{where}{any_of}
                GROUP BY e.{key}
                UNION ALL
                SELECT s.{key}, COUNT(*), MAX(s.timestamp) FROM slim_errors s
                JOIN error_groups g ON g.fingerprint = s.fingerprint
                WHERE s.timestamp >= :since AND s.timestamp < :until
                  AND s.{key} IS NOT NULL{slim_where}{any_of.replace(" (", " (g.", 1)}
                GROUP BY s.{key}
            ) k LEFT JOIN error_groups g ON g.fingerprint = k.key
            GROUP BY k.key, g.title, g.error_code, g.severity
            HAVING SUM(k.n) >= :minimum
            ORDER BY n DESC, k.key
        """
        return [
            (sql, {**values, **slim_values, "since": now - rule.window, "until": now,
                   "minimum": minimum})
        ]  # fmt: skip
    where, values = _conditions(scope, "", skip=("endpoint",))
    columns = (
        "id, fingerprint, title, error_type, error_code, severity, first_seen, last_seen, "
        "count, status"
    )
    if rule.kind == "new_group":
        sql = (
            f"SELECT {columns} FROM error_groups WHERE first_seen >= :since AND first_seen < :until"
            f"{where} ORDER BY first_seen, id LIMIT 100"
        )
        return [(sql, {**values, "since": now - rule.window, "until": now})]
    if rule.kind == "regression":
        sql = (
            f"SELECT {columns} FROM error_groups WHERE status = 'regressed'{where} "
            "ORDER BY regressed_at, id LIMIT 100"
        )
        return [(sql, values)]
    return []  # breaker rules ask the store nothing


def _sqlite_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")
    return value


def _fetch_all(
    run: Callable[[str, dict[str, Any]], list[Any]], questions: list[tuple[str, dict[str, Any]]]
) -> int:
    return sum(len(run(sql, values)) for sql, values in questions)


# -- timing -----------------------------------------------------------------------------


@dataclass
class Outcome:
    backend: str
    build_s: float
    evaluate: list[float]
    queries: list[float]
    raw: list[float]
    findings: int
    raw_rows: int


def _ms(seconds: list[float]) -> tuple[float, float]:
    ordered = sorted(seconds)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return statistics.median(ordered) * 1000, p95 * 1000


def measure(
    backend: str,
    store: ErrorStore,
    build_s: float,
    raw_run: Callable[[str, dict[str, Any]], list[Any]],
) -> Outcome:
    all_rules = rules()
    questions = [q for rule in all_rules for q in raw_questions(rule, NOW)]
    manager = AlertManager(store, all_rules, [Quiet("quiet")], now=lambda: NOW)
    for n in range(6):
        manager.on_breaker_transition(f"upstream-{n}", "closed", "open")  # type: ignore[arg-type]
    manager.evaluate(NOW)  # the warm-up records the first firings; later rounds claim none
    evaluate, queries, raw = [], [], []
    findings = raw_rows = 0
    for _ in range(ROUNDS):
        started = time.perf_counter()
        manager.evaluate(NOW)
        evaluate.append(time.perf_counter() - started)

        started = time.perf_counter()
        findings = sum(len(manager._findings(rule, NOW) or ()) for rule in all_rules)
        queries.append(time.perf_counter() - started)

        started = time.perf_counter()
        raw_rows = _fetch_all(raw_run, questions)
        raw.append(time.perf_counter() - started)
    return Outcome(backend, build_s, evaluate, queries, raw, findings, raw_rows)


def bench_sqlite(folder: Path) -> Outcome:
    url = f"sqlite:///{folder / 'alerts.db'}"
    with open_store(url) as store:
        build_s = build(store)
        connection = sqlite3.connect(folder / "alerts.db")

        def run(sql: str, values: dict[str, Any]) -> list[Any]:
            params = {k: _sqlite_value(v) for k, v in values.items()}
            return connection.execute(sql, params).fetchall()

        outcome = measure("SQLite", store, build_s, run)
        connection.close()
    return outcome


def bench_postgres() -> Outcome | None:
    import psycopg

    with scratch_postgres() as url:
        if url is None:
            return None
        upgrade(url)
        with open_store(url) as store, psycopg.connect(url.replace("+psycopg", "")) as connection:
            build_s = build(store)
            connection.execute("ANALYZE")
            connection.commit()
            cache: dict[str, str] = {}

            def run(sql: str, values: dict[str, Any]) -> list[Any]:
                text = cache.get(sql)
                if text is None:
                    text = cache[sql] = re.sub(r":(\w+)", r"%(\1)s", sql)
                with connection.cursor() as cursor:
                    cursor.execute(text, values)  # type: ignore[arg-type]
                    rows = cursor.fetchall()
                connection.commit()
                return rows

            return measure("PostgreSQL", store, build_s, run)


def main() -> None:
    print(
        f"{ROWS:,} errors in ~{GROUPS:,} groups over {SPAN.days} days; 50 rules of 7 kinds; "
        f"{ROUNDS} rounds after a warm-up; ms per evaluation of all 50"
    )
    outcomes = []
    with tempfile.TemporaryDirectory(prefix="errorkit-bench-") as folder:
        outcomes.append(bench_sqlite(Path(folder)))
        _report(outcomes[-1])
    postgres = bench_postgres()
    if postgres is not None:
        outcomes.append(postgres)
        _report(postgres)


def _report(o: Outcome) -> None:
    ev, ev95 = _ms(o.evaluate)
    q, q95 = _ms(o.queries)
    r, r95 = _ms(o.raw)
    print(
        f"{o.backend}: built in {o.build_s:.1f}s; {o.findings} findings, raw rows {o.raw_rows}\n"
        f"  evaluate      p50 {ev:8.1f} ms  p95 {ev95:8.1f} ms\n"
        f"  queries       p50 {q:8.1f} ms  p95 {q95:8.1f} ms\n"
        f"  raw driver    p50 {r:8.1f} ms  p95 {r95:8.1f} ms\n"
        f"  queries/raw   {q / r:.2f}",
        flush=True,
    )
