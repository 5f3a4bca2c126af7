"""The errors, error_groups and applied_deltas tables.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _when() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "errors",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("error_id", sa.String(length=36), nullable=False),
        sa.Column("timestamp", _when(), nullable=False),
        sa.Column("error_type", sa.String(), nullable=False),
        sa.Column("error_code", sa.String(), nullable=False),
        sa.Column("error_message", sa.Text(), nullable=False),
        sa.Column("stack_trace", sa.Text(), nullable=True),
        sa.Column("exception_type", sa.String(), nullable=True),
        sa.Column("status", sa.Integer(), nullable=True),
        sa.Column("session_id", sa.String(), nullable=True),
        sa.Column("request_id", sa.String(), nullable=True),
        sa.Column("correlation_id", sa.String(), nullable=True),
        sa.Column("trace_id", sa.String(), nullable=True),
        sa.Column("user_id", sa.String(), nullable=True),
        sa.Column("endpoint", sa.String(), nullable=True),
        sa.Column("method", sa.String(), nullable=True),
        sa.Column("user_agent", sa.Text(), nullable=True),
        sa.Column("request_payload", sa.Text(), nullable=True),
        sa.Column("response_payload", sa.Text(), nullable=True),
        sa.Column("severity", sa.String(), nullable=False),
        sa.Column("resolved", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column(
            "created_at", _when(), server_default=sa.func.current_timestamp(), nullable=False
        ),
        sa.Column("fingerprint", sa.String(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("service", sa.String(), nullable=True),
        sa.Column("environment", sa.String(), nullable=True),
        sa.Column("release", sa.String(), nullable=True),
        sa.Column("data", _JSON, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_errors"),
        sa.UniqueConstraint("error_id", name="uq_errors_error_id"),
        sqlite_autoincrement=True,
    )
    for name, columns in (
        ("ix_errors_timestamp", ["timestamp"]),
        ("ix_errors_error_type_timestamp", ["error_type", "timestamp"]),
        ("ix_errors_severity_timestamp", ["severity", "timestamp"]),
        ("ix_errors_fingerprint_timestamp", ["fingerprint", "timestamp"]),
        ("ix_errors_session_id", ["session_id"]),
        ("ix_errors_request_id", ["request_id"]),
        ("ix_errors_resolved_timestamp", ["resolved", "timestamp"]),
    ):
        op.create_index(name, "errors", columns)

    op.create_table(
        "error_groups",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("fingerprint", sa.String(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("error_type", sa.String(), nullable=False),
        sa.Column("error_code", sa.String(), nullable=False),
        sa.Column("severity", sa.String(), nullable=False),
        sa.Column("first_seen", _when(), nullable=False),
        sa.Column("last_seen", _when(), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="unresolved", nullable=False),
        sa.Column("resolved_at", _when(), nullable=True),
        sa.Column("regressed_at", _when(), nullable=True),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("last_error_id", sa.String(length=36), nullable=True),
        sa.Column("service", sa.String(), nullable=True),
        sa.Column("environment", sa.String(), nullable=True),
        sa.CheckConstraint(
            "status IN ('unresolved', 'resolved', 'ignored', 'regressed')",
            name="ck_error_groups_status",
        ),
        sa.CheckConstraint("count >= 0", name="ck_error_groups_count"),
        sa.PrimaryKeyConstraint("id", name="pk_error_groups"),
        sa.UniqueConstraint("fingerprint", name="uq_error_groups_fingerprint"),
    )
    op.create_index("ix_error_groups_status_last_seen", "error_groups", ["status", "last_seen"])
    op.create_index("ix_error_groups_last_seen", "error_groups", ["last_seen"])

    op.create_table(
        "applied_deltas",
        sa.Column("delta_id", sa.String(), nullable=False),
        sa.Column("applied_at", _when(), nullable=False),
        sa.PrimaryKeyConstraint("delta_id", name="pk_applied_deltas"),
    )


def downgrade() -> None:
    op.drop_table("applied_deltas")
    op.drop_index("ix_error_groups_last_seen", table_name="error_groups")
    op.drop_index("ix_error_groups_status_last_seen", table_name="error_groups")
    op.drop_table("error_groups")
    for name in (
        "ix_errors_resolved_timestamp",
        "ix_errors_request_id",
        "ix_errors_session_id",
        "ix_errors_fingerprint_timestamp",
        "ix_errors_severity_timestamp",
        "ix_errors_error_type_timestamp",
        "ix_errors_timestamp",
    ):
        op.drop_index(name, table_name="errors")
    op.drop_table("errors")
