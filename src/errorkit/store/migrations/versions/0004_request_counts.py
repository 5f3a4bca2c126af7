"""The request_counts table: requests answered per time bucket, endpoint and status class.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "request_counts",
        sa.Column("bucket_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("granularity", sa.String(length=6), nullable=False),
        sa.Column("service", sa.String(), nullable=False),
        sa.Column("environment", sa.String(), server_default="", nullable=False),
        sa.Column("endpoint", sa.String(), nullable=False),
        sa.Column("status_class", sa.String(length=3), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.CheckConstraint(
            "granularity IN ('minute', 'hour')", name="ck_request_counts_granularity"
        ),
        sa.CheckConstraint("count >= 0", name="ck_request_counts_count"),
        sa.PrimaryKeyConstraint(
            "bucket_start",
            "granularity",
            "service",
            "environment",
            "endpoint",
            "status_class",
            name="pk_request_counts",
        ),
    )


def downgrade() -> None:
    op.drop_table("request_counts")
