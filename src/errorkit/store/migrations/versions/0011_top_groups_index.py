"""A covering index for the top groups of a time range.

``ErrorStore.stats`` counts the errors of its window per fingerprint (the top groups);
with ``errors (timestamp, fingerprint)`` that count is an index-only range scan of the
window instead of one table row read per error (see docs/decisions/0020-stats-one-pass.md).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_errors_timestamp_fingerprint", "errors", ["timestamp", "fingerprint"])


def downgrade() -> None:
    op.drop_index("ix_errors_timestamp_fingerprint", table_name="errors")
