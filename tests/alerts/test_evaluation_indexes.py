"""The indexes alert evaluation relies on (docs/decisions/0013-alert-evaluation.md): the
planner answers a service's request-count sum from the covering index alone, and finds new
groups by first seen without scanning every group."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlalchemy import text
from tests.alerts._support import T0

from errorkit.store import ErrorStore
from errorkit.store.schema import error_groups, request_counts


def _plan(store: ErrorStore, statement: str, values: dict[str, object]) -> str:
    with store.engine.connect() as connection:
        rows = connection.execute(text(f"EXPLAIN QUERY PLAN {statement}"), values).all()
    return " | ".join(str(row[-1]) for row in rows)


def test_sqlite_plans_use_the_alert_indexes(tmp_path: Path) -> None:
    with ErrorStore(f"sqlite:///{tmp_path / 'e.db'}") as store:
        store.ping()
        window = {"since": str(T0 - timedelta(days=30)), "until": str(T0), "service": "api"}
        counts = _plan(
            store,
            f"SELECT status_class, sum(count) FROM {request_counts.name} "
            "WHERE service = :service AND bucket_start >= :since AND bucket_start < :until "
            "GROUP BY status_class",
            window,
        )
        assert "COVERING INDEX ix_request_counts_service_bucket_start" in counts
        groups = _plan(
            store,
            f"SELECT id FROM {error_groups.name} WHERE first_seen >= :since "
            "AND first_seen < :until ORDER BY first_seen, id LIMIT 100",
            window,
        )
        assert "ix_error_groups_first_seen" in groups
