"""The store's tables, in SQLAlchemy Core.

This module describes the *current* shape; ``migrations/versions`` holds the frozen steps
that build it, and a test checks that both agree.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    false,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeDecorator

__all__ = [
    "GROUP_STATUSES",
    "TOKEN_ROLES",
    "UTCDateTime",
    "alert_events",
    "api_tokens",
    "applied_deltas",
    "error_counts_hourly",
    "error_groups",
    "errors",
    "ingest_outcomes",
    "metadata",
    "project_keys",
    "projects",
    "request_counts",
    "slim_errors",
    "users",
]

GROUP_STATUSES = ("unresolved", "resolved", "ignored", "regressed")
TOKEN_ROLES = ("read", "admin")

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "pk": "pk_%(table_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    }
)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware datetime, always stored and returned in UTC.

    A naive value is taken to be UTC already. SQLite keeps the value as sortable text
    without an offset; PostgreSQL keeps a ``timestamptz``.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            message = f"expected a datetime, got {type(value).__name__}: {value!r}"
            raise TypeError(message)
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)  # type: ignore[no-any-return]
        return value.astimezone(UTC)  # type: ignore[no-any-return]


#: An integer key that is 64-bit on PostgreSQL and SQLite's rowid alias on SQLite.
BigID = BigInteger().with_variant(Integer(), "sqlite")

#: JSON everywhere, ``jsonb`` on PostgreSQL.
JSONData = JSON().with_variant(JSONB(), "postgresql")

errors = Table(
    "errors",
    metadata,
    Column("id", BigID, primary_key=True, autoincrement=True),
    Column("error_id", String(36), nullable=False, unique=True),
    Column("timestamp", UTCDateTime(), nullable=False),
    Column("error_type", String, nullable=False),
    Column("error_code", String, nullable=False),
    Column("error_message", Text, nullable=False),
    Column("stack_trace", Text),
    Column("exception_type", String),
    Column("status", Integer),
    Column("session_id", String),
    Column("request_id", String),
    Column("correlation_id", String),
    Column("trace_id", String),
    Column("user_id", String),
    Column("endpoint", String),
    Column("method", String),
    Column("user_agent", Text),
    Column("request_payload", Text),
    Column("response_payload", Text),
    Column("severity", String, nullable=False),
    Column("resolved", Boolean, nullable=False, default=False, server_default=false()),
    Column("notes", Text),
    Column("created_at", UTCDateTime(), nullable=False, server_default=func.current_timestamp()),
    Column("fingerprint", String, nullable=False),
    Column("title", Text, nullable=False),
    Column("service", String),
    Column("environment", String),
    Column("release", String),
    Column("data", JSONData),
    Index(None, "timestamp"),
    Index(None, "error_type", "timestamp"),
    Index(None, "severity", "timestamp"),
    Index(None, "fingerprint", "timestamp"),
    Index(None, "session_id"),
    Index(None, "request_id"),
    Index(None, "resolved", "timestamp"),
    # Covers the stats counts over a time range (by type, severity, code, endpoint,
    # service, resolved): an index-only range scan instead of one row read per error.
    Index(
        "ix_errors_timestamp_facets",
        "timestamp",
        "error_type",
        "severity",
        "error_code",
        "endpoint",
        "service",
        "resolved",
    ),
    # Covers the top groups of a time range (count per fingerprint): an index-only range
    # scan instead of one row read per error.
    Index(None, "timestamp", "fingerprint"),
    sqlite_autoincrement=True,
)

error_counts_hourly = Table(
    "error_counts_hourly",
    metadata,
    Column("hour", UTCDateTime(), nullable=False),
    Column("dims", String(32), nullable=False),
    Column("error_type", String, nullable=False),
    Column("severity", String, nullable=False),
    Column("error_code", String, nullable=False),
    Column("endpoint", String),
    Column("service", String),
    Column("environment", String),
    Column("total", BigInteger, nullable=False),
    Column("resolved", BigInteger, nullable=False),
    PrimaryKeyConstraint("hour", "dims"),
    CheckConstraint("resolved >= 0 AND resolved <= total", name="counts"),
    sqlite_with_rowid=False,
)
"""The rows of ``errors`` counted ahead of time, per hour (the hour a row's timestamp is
in) and combination of the dimensions stats counts by and filters on; ``dims`` names the
combination (a digest of its values, NULLs included), ``resolved`` how many of ``total``
are resolved. Kept in the same transaction as every change to ``errors``."""


error_groups = Table(
    "error_groups",
    metadata,
    Column("id", BigID, primary_key=True, autoincrement=True),
    Column("fingerprint", String, nullable=False, unique=True),
    Column("title", Text, nullable=False),
    Column("error_type", String, nullable=False),
    Column("error_code", String, nullable=False),
    Column("severity", String, nullable=False),
    Column("first_seen", UTCDateTime(), nullable=False),
    Column("last_seen", UTCDateTime(), nullable=False),
    Column("count", BigInteger, nullable=False),
    Column("status", String(16), nullable=False, server_default="unresolved"),
    Column("resolved_at", UTCDateTime()),
    Column("regressed_at", UTCDateTime()),
    Column("notes", Text),
    Column("last_error_id", String(36)),
    Column("service", String),
    Column("environment", String),
    CheckConstraint("status IN ('unresolved', 'resolved', 'ignored', 'regressed')", name="status"),
    CheckConstraint("count >= 0", name="count"),
    Index(None, "status", "last_seen"),
    Index(None, "last_seen"),
    Index(None, "first_seen"),
)

applied_deltas = Table(
    "applied_deltas",
    metadata,
    Column("delta_id", String, primary_key=True),
    Column("applied_at", UTCDateTime(), nullable=False),
)

slim_errors = Table(
    "slim_errors",
    metadata,
    Column("id", BigID, primary_key=True, autoincrement=True),
    Column("error_id", String(36), nullable=False, unique=True),
    Column("timestamp", UTCDateTime(), nullable=False),
    Column("fingerprint", String, nullable=False),
    Column("request_id", String),
    Column("session_id", String),
    Column("endpoint", String),
    Column("status", Integer),
    Index(None, "timestamp"),
    Index(None, "fingerprint", "timestamp"),
    sqlite_autoincrement=True,
)
"""Answered occurrences the flood limiter sampled out, one slim row each (bounded per
minute by the capture pipeline): their error id still finds their group."""

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", BigID, primary_key=True, autoincrement=True),
    Column("name", String, nullable=False),
    Column("role", String(16), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("prefix", String(16), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("expires_at", UTCDateTime()),
    Column("revoked_at", UTCDateTime()),
    Column("last_used_at", UTCDateTime()),
    CheckConstraint("role IN ('read', 'admin')", name="role"),
    sqlite_autoincrement=True,
)
"""The tracker's API tokens: only the SHA-256 of each token is kept (a token is 256 random
bits, so a plain hash is enough; people's passwords would need a slow KDF), with its role,
expiry and revocation."""


request_counts = Table(
    "request_counts",
    metadata,
    Column("bucket_start", UTCDateTime(), nullable=False),
    Column("granularity", String(6), nullable=False),
    Column("service", String, nullable=False),
    Column("environment", String, nullable=False, server_default=""),
    Column("endpoint", String, nullable=False),
    Column("status_class", String(3), nullable=False),
    Column("count", BigInteger, nullable=False),
    PrimaryKeyConstraint(
        "bucket_start", "granularity", "service", "environment", "endpoint", "status_class"
    ),
    CheckConstraint("granularity IN ('minute', 'hour')", name="granularity"),
    CheckConstraint("count >= 0", name="count"),
    # Covers the sums an error-rate or error-budget rule scoped to a service asks for.
    Index(None, "service", "bucket_start", "status_class", "count"),
)
"""HTTP requests answered, by time bucket (a minute, or an hour once rolled up), service,
environment (empty when none), route template and status class: what an error rate is
measured against."""


alert_events = Table(
    "alert_events",
    metadata,
    Column("id", BigID, primary_key=True, autoincrement=True),
    Column("at", UTCDateTime(), nullable=False),
    Column("rule", String, nullable=False),
    Column("scope", String, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("window_start", UTCDateTime()),
    Column("claim", String, unique=True),
    Column("firing_id", BigInteger),
    Column("channel", String),
    Column("attempt", Integer),
    Column("summary", Text),
    Column("detail", Text),
    Column("data", JSONData),
    CheckConstraint("kind IN ('fired', 'resolved', 'delivery', 'test')", name="kind"),
    Index(None, "rule", "scope", "at"),
    Index(None, "at"),
    sqlite_autoincrement=True,
)
"""Alerts: each firing and resolution (``claim`` is unique, so with several processes on
one database only one of them records, and sends, a given firing) and each delivery
attempt of a notification to a channel."""

users = Table(
    "users",
    metadata,
    Column("id", BigID, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("role", String(16), nullable=False),
    Column("password_hash", String, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("last_login_at", UTCDateTime()),
    CheckConstraint("role IN ('read', 'admin')", name="role"),
    sqlite_autoincrement=True,
)
"""The dashboard's people: each password is kept as an argon2id hash (a slow KDF), with
the person's role (``read`` or ``admin``, as for API tokens)."""

projects = Table(
    "projects",
    metadata,
    Column("id", BigID, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("created_at", UTCDateTime(), nullable=False),
    sqlite_autoincrement=True,
)
"""The projects a tracker ingests for (one per service that sends over HTTP): the integer
id is the last part of a DSN, the name becomes the ``service`` of what it sends."""

project_keys = Table(
    "project_keys",
    metadata,
    Column("id", BigID, primary_key=True, autoincrement=True),
    Column("project_id", BigID, ForeignKey("projects.id"), nullable=False),
    Column("public_key", String(32), nullable=False, unique=True),
    Column("label", String(200), nullable=False),
    Column("rate_limit", Integer),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("revoked_at", UTCDateTime()),
    CheckConstraint("rate_limit IS NULL OR rate_limit >= 1", name="rate_limit"),
    Index(None, "project_id"),
    sqlite_autoincrement=True,
)
"""A project's DSN keys: the public key (32 hex characters, the user part of a DSN, which
SDKs send in clear, so it is an identifier rather than a secret) with a label, an optional
per-key rate limit (events per minute) and revocation."""

ingest_outcomes = Table(
    "ingest_outcomes",
    metadata,
    Column("project_id", BigID, ForeignKey("projects.id"), nullable=False),
    Column("source", String(16), nullable=False),
    Column("category", String(64), nullable=False),
    Column("reason", String(64), nullable=False),
    Column("quantity", BigInteger, nullable=False),
    PrimaryKeyConstraint("project_id", "source", "category", "reason"),
    CheckConstraint("source IN ('dropped', 'client_report')", name="source"),
    CheckConstraint("quantity >= 0", name="quantity"),
)
"""What ingest did not store, counted: items the server dropped (an unsupported item type,
a rate limit) and events SDKs reported lost, by project, source, category and reason."""
