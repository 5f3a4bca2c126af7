"""``error_counts_hourly``: the errors counted per hour and dimensions, for stats.

``ErrorStore.stats`` sums the whole hours of its window from this table instead of
reading every error in it (see docs/decisions/0014-tracker-queries.md). The table is
filled here from the errors already stored, with one ``GROUP BY`` over them.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_DIMENSIONS = ("error_type", "severity", "error_code", "endpoint", "service", "environment")
_CHUNK = 5000


def upgrade() -> None:
    table = op.create_table(
        "error_counts_hourly",
        sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
        sa.Column("dims", sa.String(length=32), nullable=False),
        sa.Column("error_type", sa.String(), nullable=False),
        sa.Column("severity", sa.String(), nullable=False),
        sa.Column("error_code", sa.String(), nullable=False),
        sa.Column("endpoint", sa.String(), nullable=True),
        sa.Column("service", sa.String(), nullable=True),
        sa.Column("environment", sa.String(), nullable=True),
        sa.Column("total", sa.BigInteger(), nullable=False),
        sa.Column("resolved", sa.BigInteger(), nullable=False),
        sa.CheckConstraint(
            "resolved >= 0 AND resolved <= total", name="ck_error_counts_hourly_counts"
        ),
        sa.PrimaryKeyConstraint("hour", "dims", name="pk_error_counts_hourly"),
        sqlite_with_rowid=False,
    )
    _backfill(op.get_bind(), table)


def _backfill(connection: sa.Connection, table: sa.Table) -> None:
    """Count the stored errors per hour and combination (one GROUP BY in SQL)."""
    columns = ", ".join(_DIMENSIONS)
    if connection.dialect.name == "postgresql":
        hour = "date_trunc('hour', timezone('UTC', timestamp))"
    else:  # SQLite keeps times as 'YYYY-MM-DD HH:MM:SS.ffffff'
        hour = "substr(timestamp, 1, 13) || ':00:00'"
    result = connection.execute(
        sa.text(
            f"SELECT {hour} AS hour, {columns}, count(*), "
            "sum(CASE WHEN resolved THEN 1 ELSE 0 END) "
            f"FROM errors GROUP BY {hour}, {columns}"
        )
    ).all()
    rows: list[dict[str, object]] = []
    for found in result:
        values = tuple(found[1 : 1 + len(_DIMENSIONS)])
        text = json.dumps(values, separators=(",", ":"))
        row: dict[str, object] = dict(zip(_DIMENSIONS, values, strict=True))
        row.update(
            hour=_utc(found[0]),
            dims=hashlib.blake2b(text.encode(), digest_size=16).hexdigest(),
            total=int(found[-2]),
            resolved=int(found[-1]),
        )
        rows.append(row)
        if len(rows) == _CHUNK:
            _insert(connection, table, rows)
            rows = []
    if rows:
        _insert(connection, table, rows)


def _insert(connection: sa.Connection, table: sa.Table, rows: list[dict[str, object]]) -> None:
    if connection.dialect.name == "sqlite":  # the store's form: UTC without an offset
        for row in rows:
            hour = row["hour"]
            if isinstance(hour, datetime):
                row["hour"] = hour.replace(tzinfo=None)
    connection.execute(sa.insert(table), rows)


def _utc(value: object) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):
        message = f"unexpected hour {value!r} from the database"
        raise TypeError(message)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def downgrade() -> None:
    op.drop_table("error_counts_hourly")
