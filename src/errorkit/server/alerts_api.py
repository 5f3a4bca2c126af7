"""The tracker's alert routes: rules (list, add, replace, delete), "send a test" to a
channel, and the alert history, under ``{prefix}/api/alerts``.

Rules live in the TOML file given to :func:`errorkit.server.create_app` as
``alerts_config`` (``errorkit serve --alerts FILE``), checked exactly as
:func:`errorkit.alerts.load_config` checks it and written back atomically after each
change; without a file they are kept in memory. An :class:`AlertManager` started with
:func:`run_alerts` evaluates them on its own thread and sees each change at once.
"""

from __future__ import annotations

import base64
import binascii
import re
import threading
import tomllib
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, FastAPI, Query

from errorkit.alerts import (
    AlertConfig,
    AlertConfigError,
    AlertManager,
    parse_config,
    rule_to_dict,
    write_config,
)
from errorkit.errors import ConflictError, InvalidInputError, NotFoundError
from errorkit.server.auth import Admin, Reader
from errorkit.store import ErrorStore
from errorkit.store.repository import MAX_LIMIT

__all__ = ["AlertRules", "mount", "run_alerts"]

EventKind = Literal["fired", "resolved", "delivery", "test"]

_FIELD = re.compile(r"field '([^']+)'")
_LEADING = re.compile(r"^rule [^:]*: (\w+) ")


def _field(message: str) -> str | None:
    """The field an :class:`AlertConfigError` message names."""
    found = _FIELD.search(message) or _LEADING.search(message)
    if found is not None:
        return found.group(1)
    return "name" if message.startswith("rule name") else None


def _refused(exc: AlertConfigError) -> InvalidInputError:
    message = str(exc)
    field = _field(message)
    if field is None:
        return InvalidInputError(message)
    return InvalidInputError(message, field=field, reason=message)


class AlertRules:
    """The alert configuration the tracker serves: a TOML file written back atomically on
    each change, or (``path=None``) a document kept in memory.

    Every change is checked by :func:`errorkit.alerts.parse_config`, so a rule the file
    would refuse is refused here with the same message. Managers given to :meth:`attach`
    get the new rules and channels after each change.
    """

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = None if path is None else Path(path)
        self._lock = threading.Lock()
        self._managers: list[AlertManager] = []
        data: dict[str, Any] = {}
        if self.path is not None and self.path.exists():
            try:
                data = tomllib.loads(self.path.read_text(encoding="utf-8"))
            except tomllib.TOMLDecodeError as exc:
                message = f"{self.path} is not valid TOML: {exc}"
                raise AlertConfigError(message) from None
        self._data = data
        self._config = parse_config(data, source=self._source)

    @property
    def _source(self) -> str:
        return "the configuration" if self.path is None else str(self.path)

    @property
    def config(self) -> AlertConfig:
        return self._config

    def rules(self) -> list[dict[str, Any]]:
        return [rule_to_dict(rule) for rule in self._config.rules]

    def rule(self, name: str) -> dict[str, Any]:
        for rule in self._config.rules:
            if rule.name == name:
                return rule_to_dict(rule)
        raise NotFoundError(f"no alert rule {name!r}")

    def put(self, rule: Mapping[str, Any], *, replace: bool) -> bool:
        """Add ``rule`` (or, with ``replace``, replace one of its name); True when new."""
        name = rule.get("name")
        with self._lock:
            kept = [r for r in self._data.get("rules", []) if r.get("name") != name]
            existed = len(kept) != len(self._data.get("rules", []))
            if existed and not replace:
                message = f"an alert rule called {name!r} exists already; PUT it to replace it"
                raise ConflictError(message)
            self._change({**self._data, "rules": [*kept, dict(rule)]})
        return not existed

    def delete(self, name: str) -> None:
        with self._lock:
            rules = list(self._data.get("rules", []))
            kept = [r for r in rules if r.get("name") != name]
            if len(kept) == len(rules):
                raise NotFoundError(f"no alert rule {name!r}")
            self._change({**self._data, "rules": kept})

    def _change(self, data: dict[str, Any]) -> None:
        try:
            config = parse_config(data, source=self._source)
            if self.path is not None:
                write_config(self.path, data)
        except AlertConfigError as exc:
            raise _refused(exc) from None
        self._data, self._config = data, config
        for manager in self._managers:
            _apply(manager, config)

    def send_test(self, store: ErrorStore, channel: str | None = None) -> list[Any]:
        """Send a test notification to ``channel`` (or every channel, or the log when there
        is none), one attempt each; a channel not configured is a NotFoundError."""
        manager = self._config.manager(store, attempts=1)
        try:
            return list(manager.send_test(channel))
        except KeyError as exc:
            raise NotFoundError(str(exc.args[0])) from None

    def manager(self, store: ErrorStore, **options: Any) -> AlertManager:
        """An :class:`AlertManager` on ``store`` that follows every change made here."""
        manager = self._config.manager(store, **options)
        with self._lock:
            _apply(manager, self._config)
            self._managers.append(manager)
        return manager

    def detach(self, manager: AlertManager) -> None:
        with self._lock:
            if manager in self._managers:
                self._managers.remove(manager)


def _apply(manager: AlertManager, config: AlertConfig) -> None:
    # Whole dicts swapped in one assignment: an evaluation under way keeps the old ones.
    manager.rules = {rule.name: rule for rule in config.rules}
    manager.channels = {channel.name: channel for channel in config.channels}


def _encode_cursor(at: datetime, event_id: int) -> str:
    return base64.urlsafe_b64encode(f"{at.isoformat()}|{event_id}".encode()).decode()


def _decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        at, _, event_id = base64.urlsafe_b64decode(cursor.encode()).decode().partition("|")
        return datetime.fromisoformat(at), int(event_id)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidInputError(
            f"cursor={cursor!r} is not a cursor this API gave", field="cursor"
        ) from None


def mount(
    app: FastAPI, store: ErrorStore, *, prefix: str, config: str | Path | None = None
) -> AlertRules:
    """Add the alert routes to ``app`` under ``{prefix}/api/alerts``; the rules are kept in
    ``config`` (a TOML file) or in memory. Kept as ``app.state.errorkit_alerts``."""
    from errorkit.server.app import _StoreRoute

    book = AlertRules(config)
    app.state.errorkit_alerts = book
    router = APIRouter(prefix=f"{prefix}/api/alerts", tags=["alerts"], route_class=_StoreRoute)

    @router.get("/rules", summary="Alert rules and channels")
    def list_rules(_: Reader) -> dict[str, Any]:
        """Every rule (the fields its kind accepts) and every channel (name, type, where it
        sends, without secrets); ``source`` is the file they are kept in, or ``memory``."""
        current = book.config
        return {
            "source": "memory" if book.path is None else str(book.path),
            "rules": book.rules(),
            "channels": [
                {"name": c.name, "type": c.type, "target": c.describe()} for c in current.channels
            ],
        }

    @router.post("/rules", summary="Add an alert rule", status_code=201)
    def add_rule(_: Admin, body: Annotated[dict[str, Any], Body()]) -> dict[str, Any]:
        """Add a rule: the fields of a ``[[rules]]`` table, checked as the TOML file is
        (an unknown field, a negative window or an unknown channel is a 400 naming the
        field); a rule of the same name is a 409."""
        book.put(body, replace=False)
        return book.rule(str(body["name"]))

    @router.put("/rules/{rule}", summary="Add or replace an alert rule")
    def put_rule(_: Admin, rule: str, body: Annotated[dict[str, Any], Body()]) -> dict[str, Any]:
        """Add the rule called ``rule`` or replace it; ``name`` in the body may be left out
        and must otherwise be ``rule``."""
        if body.get("name", rule) != rule:
            message = f"the body names rule {body['name']!r} but the path names {rule!r}"
            raise InvalidInputError(message, field="name", reason=message)
        created = book.put({"name": rule, **body}, replace=True)
        return {"created": created, "rule": book.rule(rule)}

    @router.delete("/rules/{rule}", summary="Delete an alert rule")
    def delete_rule(_: Admin, rule: str) -> dict[str, Any]:
        """Remove the rule called ``rule`` (its history stays)."""
        book.delete(rule)
        return {"deleted": rule}

    @router.post("/test", summary="Send a test notification")
    def send_test(
        _: Admin, body: Annotated[dict[str, Any] | None, Body()] = None
    ) -> dict[str, Any]:
        """Send a test notification to ``{"channel": NAME}`` (or every channel, or the log
        when there is none); each attempt is recorded in the history."""
        channel = None if body is None else body.get("channel")
        if channel is not None and not isinstance(channel, str):
            raise InvalidInputError("channel is the name of a channel", field="channel")
        deliveries = book.send_test(store, channel)
        return {
            "ok": all(d.ok for d in deliveries),
            "deliveries": [
                {"channel": d.channel, "ok": d.ok, "attempts": d.attempts, "detail": d.detail}
                for d in deliveries
            ],
        }

    @router.get("/history", summary="Alert history (firings, resolutions, deliveries)")
    def history(
        _: Reader,
        rule: str | None = None,
        kind: Annotated[list[EventKind] | None, Query()] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
        cursor: str | None = None,
    ) -> dict[str, Any]:
        """``alert_events`` newest first, one page: firings, resolutions, every delivery
        attempt and test sends; filters ``rule`` and ``kind`` (repeatable). Pass
        ``next_cursor`` as ``cursor`` for the next page."""
        before = None if cursor is None else _decode_cursor(cursor)
        events = list(store.alert_events(rule=rule, kinds=kind, limit=limit + 1, before=before))
        more = len(events) > limit
        events = events[:limit]
        last = events[-1] if more else None
        return {
            "items": [event.as_dict() for event in events],
            "limit": limit,
            "next_cursor": None if last is None else _encode_cursor(last.at, last.id),
        }

    app.include_router(router)
    return book


def run_alerts(app: FastAPI, store: ErrorStore, **options: Any) -> AlertManager:
    """Evaluate the app's alert rules on ``store`` on a thread of their own, every
    ``interval`` of the configuration, from the app's startup to its shutdown."""
    book: AlertRules = app.state.errorkit_alerts
    manager = book.manager(store, **options)
    interval = book.config.interval.total_seconds()

    def start() -> None:
        manager.start(interval)

    def stop() -> None:
        manager.stop()

    app.router.add_event_handler("startup", start)
    app.router.add_event_handler("shutdown", stop)
    app.state.errorkit_alert_manager = manager
    return manager
