"""A covering index for the stats counts over a time range.

``ErrorStore.stats`` counts the errors of a window by type, severity, code, endpoint,
service and resolved; with this index each count is an index-only scan of the window
instead of reading every error's row (see docs/decisions/0014-tracker-queries.md).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = [
    "timestamp",
    "error_type",
    "severity",
    "error_code",
    "endpoint",
    "service",
    "resolved",
]


def upgrade() -> None:
    op.create_index("ix_errors_timestamp_facets", "errors", _COLUMNS)


def downgrade() -> None:
    op.drop_index("ix_errors_timestamp_facets", table_name="errors")
