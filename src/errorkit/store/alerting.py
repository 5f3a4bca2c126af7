"""The store's queries for alert rules, and its record of alerts (``alert_events``).

:class:`errorkit.store.ErrorStore` exposes these as methods (``window_counts``,
``new_groups``, ``regressed_groups``, ``claim_alert``, ``add_alert_event``,
``alert_events``); this module holds what they return and how they query.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import ColumnElement, Table, func, or_, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Row

from errorkit.store.errors import InvalidQuery
from errorkit.store.schema import alert_events, error_groups, errors, slim_errors

__all__ = [
    "SCOPE_FIELDS",
    "AlertClaim",
    "AlertEvent",
    "AlertEventKind",
    "WindowCount",
]

AlertEventKind = Literal["fired", "resolved", "delivery", "test"]

#: The scope filters a rule may set, as the columns of ``errors`` they compare.
SCOPE_FIELDS = ("service", "environment", "endpoint", "error_code", "error_type", "severity")
_ANY_OF_FIELDS = ("severity", "error_code", "error_type")


@dataclass(frozen=True, slots=True)
class WindowCount:
    """How often one group (or endpoint) occurred within a window."""

    key: str
    count: int
    last_seen: datetime
    title: str | None = None
    error_code: str | None = None
    severity: str | None = None
    fingerprint: str | None = None


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """One row of ``alert_events``: a firing, a resolution, a test or a delivery attempt."""

    id: int
    at: datetime
    rule: str
    scope: str
    kind: str
    status: str
    window_start: datetime | None
    claim: str | None
    firing_id: int | None
    channel: str | None
    attempt: int | None
    summary: str | None
    detail: str | None
    data: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        values = {name: getattr(self, name) for name in self.__slots__}
        for name in ("at", "window_start"):
            if values[name] is not None:
                values[name] = values[name].isoformat()
        return values


@dataclass(frozen=True, slots=True)
class AlertClaim:
    """What :meth:`ErrorStore.claim_alert` inserts when its ``decide`` callback says so."""

    kind: Literal["fired", "resolved"]
    at: datetime
    claim: str
    window_start: datetime | None = None
    firing_id: int | None = None
    summary: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)


# -- queries ----------------------------------------------------------------------------


def scope_conditions(
    table: Table, scope: Mapping[str, str | None], any_of: Mapping[str, Sequence[str]] | None
) -> list[ColumnElement[bool]]:
    unknown = sorted(set(scope) - {*SCOPE_FIELDS, "fingerprint"})
    if unknown:
        message = f"unknown scope field {unknown[0]!r}; accepted: {', '.join(SCOPE_FIELDS)}"
        raise InvalidQuery(message)
    conditions: list[ColumnElement[bool]] = []
    for name, value in scope.items():
        if value is not None:
            conditions.append(table.c[name] == value)
    if any_of:
        bad = sorted(set(any_of) - set(_ANY_OF_FIELDS))
        if bad:
            message = f"any_of takes {', '.join(_ANY_OF_FIELDS)}; got {bad[0]!r}"
            raise InvalidQuery(message)
        alternatives = [
            table.c[name].in_(list(values)) for name, values in any_of.items() if values
        ]
        if alternatives:
            conditions.append(or_(*alternatives))
    return conditions


def window_counts(
    connection: Connection,
    since: datetime,
    until: datetime,
    *,
    by: Literal["group", "endpoint"],
    scope: Mapping[str, str | None],
    any_of: Mapping[str, Sequence[str]] | None,
    min_count: int,
) -> list[WindowCount]:
    """Occurrences per group (or endpoint) in ``[since, until)``: stored rows plus the slim
    rows of sampled-out occurrences (whose group supplies the scope columns)."""
    key_column = errors.c.fingerprint if by == "group" else errors.c.endpoint
    full = (
        select(
            key_column.label("key"),
            func.count().label("n"),
            func.max(errors.c.timestamp).label("last"),
        )
        .where(
            errors.c.timestamp >= since,
            errors.c.timestamp < until,
            key_column.is_not(None),
            *scope_conditions(errors, scope, any_of),
        )
        .group_by(key_column)
    )
    totals: dict[str, list[Any]] = {}
    for key, n, last in connection.execute(full):
        totals[key] = [int(n), last]
    group_scope = {k: v for k, v in scope.items() if k != "endpoint"}
    slim_key = slim_errors.c.fingerprint if by == "group" else slim_errors.c.endpoint
    slim_conditions = [
        slim_errors.c.timestamp >= since,
        slim_errors.c.timestamp < until,
        slim_key.is_not(None),
        *scope_conditions(error_groups, group_scope, any_of),
    ]
    if scope.get("endpoint") is not None:
        slim_conditions.append(slim_errors.c.endpoint == scope["endpoint"])
    slim = (
        select(slim_key.label("key"), func.count(), func.max(slim_errors.c.timestamp))
        .select_from(
            slim_errors.join(error_groups, error_groups.c.fingerprint == slim_errors.c.fingerprint)
        )
        .where(*slim_conditions)
        .group_by(slim_key)
    )
    for key, n, last in connection.execute(slim):
        entry = totals.setdefault(key, [0, last])
        entry[0] += int(n)
        entry[1] = max(entry[1], last)
    found = {key: value for key, value in totals.items() if value[0] >= min_count}
    if not found:
        return []
    details: dict[str, Any] = {}
    if by == "group":
        query = select(
            error_groups.c.fingerprint,
            error_groups.c.title,
            error_groups.c.error_code,
            error_groups.c.severity,
        ).where(error_groups.c.fingerprint.in_(list(found)))
        details = {row.fingerprint: row for row in connection.execute(query)}
    result = []
    for key, (n, last) in sorted(found.items(), key=lambda item: (-item[1][0], item[0])):
        row = details.get(key)
        result.append(
            WindowCount(
                key=key,
                count=n,
                last_seen=last,
                title=None if row is None else row.title,
                error_code=None if row is None else row.error_code,
                severity=None if row is None else row.severity,
                fingerprint=key if by == "group" else None,
            )
        )
    return result


def group_conditions(
    scope: Mapping[str, str | None], any_of: Mapping[str, Sequence[str]] | None
) -> list[ColumnElement[bool]]:
    """Scope conditions on ``error_groups`` (which has no endpoint column)."""
    if scope.get("endpoint") is not None:
        message = "groups have no endpoint; a group rule cannot be scoped to one"
        raise InvalidQuery(message)
    return scope_conditions(
        error_groups, {k: v for k, v in scope.items() if k != "endpoint"}, any_of
    )


# -- alert events ---------------------------------------------------------------------


def alert_event(row: Row[Any]) -> AlertEvent:
    values = row._asdict()
    values["data"] = values["data"] or {}
    values["id"] = int(values["id"])
    return AlertEvent(**values)


def last_transition(connection: Connection, rule: str, scope: str) -> AlertEvent | None:
    query = (
        select(alert_events)
        .where(
            alert_events.c.rule == rule,
            alert_events.c.scope == scope,
            alert_events.c.kind.in_(["fired", "resolved"]),
        )
        .order_by(alert_events.c.at.desc(), alert_events.c.id.desc())
        .limit(1)
    )
    row = connection.execute(query).one_or_none()
    return None if row is None else alert_event(row)


def lock_scope(connection: Connection, rule: str, scope: str) -> None:
    """Serialise deciders of one rule and scope across processes (SQLite's write
    transaction already holds the database lock)."""
    if connection.dialect.name == "postgresql":
        digest = hashlib.blake2b(f"{rule}\0{scope}".encode(), digest_size=8).digest()
        key = int.from_bytes(digest, "big", signed=True)
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


def insert_event(connection: Connection, values: dict[str, Any]) -> int | None:
    """Insert one alert event; None when its claim is taken already."""
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(alert_events).values(**values)
    if values.get("claim") is not None:
        statement = statement.on_conflict_do_nothing(index_elements=["claim"])
    inserted = connection.execute(statement.returning(alert_events.c.id)).scalar_one_or_none()
    return None if inserted is None else int(inserted)


def claim(
    connection: Connection,
    rule: str,
    scope: str,
    decide: Callable[[AlertEvent | None], AlertClaim | None],
) -> AlertEvent | None:
    lock_scope(connection, rule, scope)
    wanted = decide(last_transition(connection, rule, scope))
    if wanted is None:
        return None
    values = {
        "at": wanted.at,
        "rule": rule,
        "scope": scope,
        "kind": wanted.kind,
        "status": wanted.kind,
        "window_start": wanted.window_start,
        "claim": wanted.claim,
        "firing_id": wanted.firing_id,
        "summary": wanted.summary,
        "data": dict(wanted.data),
    }
    inserted = insert_event(connection, values)
    if inserted is None:
        return None
    row = connection.execute(select(alert_events).where(alert_events.c.id == inserted)).one()
    return alert_event(row)


def events_query(
    *,
    rule: str | None,
    kinds: Sequence[str] | None,
    since: datetime | None,
    limit: int,
    before: tuple[datetime, int] | None = None,
) -> Any:
    conditions: list[ColumnElement[bool]] = []
    if before is not None:
        at, event_id = before
        conditions.append(
            or_(
                alert_events.c.at < at,
                (alert_events.c.at == at) & (alert_events.c.id < event_id),
            )
        )
    if rule is not None:
        conditions.append(alert_events.c.rule == rule)
    if kinds:
        conditions.append(alert_events.c.kind.in_(list(kinds)))
    if since is not None:
        conditions.append(alert_events.c.at >= since)
    return (
        select(alert_events)
        .where(*conditions)
        .order_by(alert_events.c.at.desc(), alert_events.c.id.desc())
        .limit(limit)
    )


def open_alerts(connection: Connection, rule: str) -> list[AlertEvent]:
    """The firings of ``rule`` not resolved yet: per scope, the last transition if fired."""
    transitions = (
        select(func.max(alert_events.c.id).label("id"))
        .where(alert_events.c.rule == rule, alert_events.c.kind.in_(["fired", "resolved"]))
        .group_by(alert_events.c.scope)
        .subquery()
    )
    query = (
        select(alert_events)
        .join(transitions, transitions.c.id == alert_events.c.id)
        .where(alert_events.c.kind == "fired")
        .order_by(alert_events.c.id)
    )
    return [alert_event(row) for row in connection.execute(query)]
