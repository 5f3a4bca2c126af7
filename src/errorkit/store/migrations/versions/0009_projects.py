"""Projects, their DSN keys and the ingest outcome counters, for Sentry-compatible ingest.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "projects",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_projects"),
        sa.UniqueConstraint("name", name="uq_projects_name"),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "project_keys",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("project_id", _ID, nullable=False),
        sa.Column("public_key", sa.String(length=32), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=False),
        sa.Column("rate_limit", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "rate_limit IS NULL OR rate_limit >= 1", name="ck_project_keys_rate_limit"
        ),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name="fk_project_keys_project_id_projects"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_project_keys"),
        sa.UniqueConstraint("public_key", name="uq_project_keys_public_key"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_project_keys_project_id", "project_keys", ["project_id"])
    op.create_table(
        "ingest_outcomes",
        sa.Column("project_id", _ID, nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("category", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=False),
        sa.Column("quantity", sa.BigInteger(), nullable=False),
        sa.CheckConstraint(
            "source IN ('dropped', 'client_report')", name="ck_ingest_outcomes_source"
        ),
        sa.CheckConstraint("quantity >= 0", name="ck_ingest_outcomes_quantity"),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name="fk_ingest_outcomes_project_id_projects"
        ),
        sa.PrimaryKeyConstraint(
            "project_id", "source", "category", "reason", name="pk_ingest_outcomes"
        ),
    )


def downgrade() -> None:
    op.drop_table("ingest_outcomes")
    op.drop_index("ix_project_keys_project_id", table_name="project_keys")
    op.drop_table("project_keys")
    op.drop_table("projects")
