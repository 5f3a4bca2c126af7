"""Indexes for evaluating alert rules: request counts by service and time (covering the
error-rate and error-budget sums), groups by first seen (new-group rules).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COUNTS = "ix_request_counts_service_bucket_start_status_class_count"


def upgrade() -> None:
    op.create_index(_COUNTS, "request_counts", ["service", "bucket_start", "status_class", "count"])
    op.create_index("ix_error_groups_first_seen", "error_groups", ["first_seen"])


def downgrade() -> None:
    op.drop_index("ix_error_groups_first_seen", table_name="error_groups")
    op.drop_index(_COUNTS, table_name="request_counts")
