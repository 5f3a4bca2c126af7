"""The slim_errors table: a slim row for each answered occurrence sampled out.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "slim_errors",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("error_id", sa.String(length=36), nullable=False),
        sa.Column("timestamp", sa.DateTime(timezone=True), nullable=False),
        sa.Column("fingerprint", sa.String(), nullable=False),
        sa.Column("request_id", sa.String(), nullable=True),
        sa.Column("session_id", sa.String(), nullable=True),
        sa.Column("endpoint", sa.String(), nullable=True),
        sa.Column("status", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_slim_errors"),
        sa.UniqueConstraint("error_id", name="uq_slim_errors_error_id"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_slim_errors_timestamp", "slim_errors", ["timestamp"])
    op.create_index(
        "ix_slim_errors_fingerprint_timestamp", "slim_errors", ["fingerprint", "timestamp"]
    )


def downgrade() -> None:
    op.drop_index("ix_slim_errors_fingerprint_timestamp", table_name="slim_errors")
    op.drop_index("ix_slim_errors_timestamp", table_name="slim_errors")
    op.drop_table("slim_errors")
