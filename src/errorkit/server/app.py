"""The tracker's FastAPI app: groups, errors, stats, export, retention, breakers, health."""

from __future__ import annotations

import os
import queue
import re
import threading
from collections.abc import Callable, Coroutine, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, cast

from fastapi import APIRouter, FastAPI, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field

import errorkit.fastapi
from errorkit.errors import (
    DatabaseUnavailableError,
    InvalidInputError,
    NotFoundError,
)
from errorkit.observe.health import HealthRegistry, HealthReport, store_error_summary
from errorkit.server import alerts_api, projects_api
from errorkit.server.auth import Admin, Reader
from errorkit.server.breakers import BreakerSource, breaker_source
from errorkit.server.schemas import (
    ErrorAnswer,
    ErrorPage,
    Group,
    GroupDetail,
    GroupPage,
    StatsAnswer,
    StoredErrorOut,
    ok,
)
from errorkit.server.sessions import LoginLimiter
from errorkit.server.transport import mount_transport
from errorkit.store import (
    ErrorFilters,
    ErrorGroup,
    ErrorStore,
    InvalidQuery,
    NotFound,
    Page,
    StoredError,
    StoreUnavailable,
)
from errorkit.store.repository import MAX_LIMIT, StatsFilters
from errorkit.store.tokens import TokenStore

if TYPE_CHECKING:
    from errorkit.ingest.limits import IngestLimits
    from errorkit.scrubbing import Scrubber

__all__ = ["create_app", "tracker_health"]

GroupStatusName = Literal["unresolved", "resolved", "ignored", "regressed"]
SortName = Literal["last_seen", "first_seen", "count", "trend"]

_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_EXPORT_CHUNK = 64 * 1024
_BULK_MAX = MAX_LIMIT


# -- request bodies ---------------------------------------------------------------------


class Notes(BaseModel):
    """Optional notes kept with the change (why it was resolved or ignored)."""

    notes: str | None = Field(default=None, max_length=10_000)


class GroupFilter(BaseModel):
    """The same filters as ``GET /groups``."""

    status: list[GroupStatusName] | None = None
    type: str | None = None
    severity: str | None = None
    service: str | None = None
    environment: str | None = None
    release: str | None = None
    code: str | None = None
    endpoint: str | None = None
    q: str | None = None
    since: str | None = None
    until: str | None = None


class BulkAction(BaseModel):
    """Resolve, unresolve or ignore the groups named by ``ids`` or matching ``filter``."""

    action: Literal["resolve", "unresolve", "ignore"] = "resolve"
    ids: list[int | str] | None = Field(default=None, max_length=_BULK_MAX)
    filter: GroupFilter | None = None
    notes: str | None = Field(default=None, max_length=10_000)


class Cleanup(BaseModel):
    """Delete stored errors older than ``older_than`` (``30d``, ``12h`` or an ISO time)."""

    older_than: str = Field(examples=["30d"])
    dry_run: bool = False


# -- input helpers ----------------------------------------------------------------------


def _moment(value: str | None, name: str) -> datetime | None:
    """A duration ago (``24h``) or an ISO 8601 time (UTC when it has no offset)."""
    if value is None or value == "":
        return None
    match = _DURATION.match(value)
    if match is not None:
        return datetime.now(UTC) - timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        message = (
            f"{name}={value!r} is neither a duration ago (24h, 7d) nor an ISO date/time "
            "(2025-03-01 or 2025-03-01T12:00+00:00)"
        )
        raise InvalidInputError(message) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _page(page: Page[Any]) -> dict[str, Any]:
    return {
        "items": [item.as_dict() for item in page.items],
        "total": page.total,
        "limit": page.limit,
        "next_cursor": page.next_cursor,
    }


def _group_arguments(f: GroupFilter) -> dict[str, Any]:
    return {
        "status": f.status,
        "error_type": f.type,
        "severity": f.severity,
        "service": f.service,
        "environment": f.environment,
        "release": f.release,
        "error_code": f.code,
        "endpoint": f.endpoint,
        "search": f.q,
        "since": _moment(f.since, "since"),
        "until": _moment(f.until, "until"),
    }


# -- store failures in errorkit's envelope ----------------------------------------------


class _StoreRoute(APIRoute):
    """Turns the store's own errors into errorkit errors the envelope answers: an unknown
    id is a 404, a bad query a 400, an unreachable database a 503."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def translated(request: Request) -> Response:
            try:
                return await handler(request)
            except NotFound as exc:
                # The store names itself for operators; API callers need not see where it is.
                raise NotFoundError(str(exc).split(" in the store at ")[0]) from exc
            except InvalidQuery as exc:
                raise InvalidInputError(str(exc)) from exc
            except StoreUnavailable as exc:
                raise DatabaseUnavailableError() from exc

        return translated


# -- export streaming -------------------------------------------------------------------


class _Stopped(Exception):
    """The client went away: the export stops writing."""


def _stream_export(
    store: ErrorStore, fmt: Literal["csv", "jsonl"], filters: ErrorFilters
) -> Iterator[str]:
    """Run ``store.export`` on a thread and hand its text on in chunks as it comes, with a
    small bounded queue between them so memory stays flat however many rows match."""
    chunks: queue.Queue[str | BaseException | None] = queue.Queue(maxsize=8)
    stop = threading.Event()

    def put(item: str | BaseException | None) -> None:
        while not stop.is_set():
            try:
                chunks.put(item, timeout=0.5)
                return
            except queue.Full:
                continue
        raise _Stopped

    class Sink:
        def __init__(self) -> None:
            self.parts: list[str] = []
            self.size = 0

        def write(self, text: str, /) -> int:
            self.parts.append(text)
            self.size += len(text)
            if self.size >= _EXPORT_CHUNK:
                self.flush()
            return len(text)

        def flush(self) -> None:
            if self.parts:
                put("".join(self.parts))
                self.parts.clear()
                self.size = 0

    def produce() -> None:
        sink = Sink()
        try:
            store.export(sink, fmt=fmt, **filters)
            sink.flush()
            put(None)
        except _Stopped:
            return
        except BaseException as exc:  # noqa: BLE001 - handed to the reading side
            try:
                put(exc)
            except _Stopped:
                return

    worker = threading.Thread(target=produce, name="errorkit-export", daemon=True)
    worker.start()
    try:
        while True:
            item = chunks.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()


# -- the app ----------------------------------------------------------------------------


def _report(report: HealthReport, *, details: bool = True) -> JSONResponse:
    return JSONResponse(report.as_dict(details=details), status_code=report.http_status)


def tracker_health(store: ErrorStore, breakers: BreakerSource) -> HealthRegistry:
    """The health a tracker reports by default: a critical ``store`` check (the database
    answers), errors counted in that store, and the breakers it shows."""
    registry = HealthRegistry(
        error_source=lambda window: store_error_summary(store, window),
        breaker_source=lambda: {str(b["name"]): b for b in breakers.list()},
    )
    registry.add("store", store.ping, critical=True, component_type="datastore")
    return registry


def create_app(
    store_url: str | None = None,
    *,
    store: ErrorStore | None = None,
    breakers: object = None,
    health: HealthRegistry | None = None,
    prefix: str = "/admin",
    title: str = "errorkit tracker",
    dashboard: bool = True,
    session_secret: str | bytes | None = None,
    login_limiter: LoginLimiter | None = None,
    alerts_config: str | Path | None = None,
    ingest: bool = True,
    ingest_rate_limit: int | None = None,
    ingest_limits: IngestLimits | None = None,
    ingest_spool: str | os.PathLike[str] | None = None,
    scrubber: Scrubber | None = None,
) -> FastAPI:
    """The tracker's API as an ASGI app, on the store at ``store_url`` (or ``store``).

    ``breakers`` is where breakers are read and reset: None for this process's registry, a
    ``BreakerRegistry``, a ``RedisBackend`` or a ``redis://`` URL (state shared by apps).
    ``health`` is the registry the health routes answer from (default: the tracker's own,
    see :func:`tracker_health`). ``alerts_config`` is the TOML file the alert rules are
    read from and written back to (default: kept in memory). Routes live under
    ``{prefix}/api/``.

    With ``dashboard`` (the default) the server-rendered dashboard is served under
    ``{prefix}/``; its session cookies are signed with ``session_secret`` (default:
    ``ERRORKIT_SESSION_SECRET``, else a random key, so sessions end on restart and each
    worker process has its own). ``login_limiter`` bounds failed logins (default: 5 per
    user and address in 15 minutes).

    With ``ingest`` (the default) the Sentry-compatible ingest is served at the root:
    ``POST /api/<project_id>/envelope/`` and ``POST /api/<project_id>/store/``,
    authenticated by a project's DSN key (``errorkit projects create``, ``errorkit keys
    create``), not by a token. ``ingest_rate_limit`` is the events per minute a key may
    send unless it has a limit of its own (default 6000; 0 for none; counted per server
    process), ``ingest_limits`` bounds the bodies (see ``docs/ingest.md``),
    ``ingest_spool`` is where events wait while the store is down (default: the store's
    spool directory) and ``scrubber`` scrubs them (default: errorkit's default scrubber).
    """
    if (store is None) == (store_url is None):
        if store is None:
            from errorkit.config import load_settings

            store_url = load_settings().store_url
        else:
            message = "pass store_url or store, not both"
            raise TypeError(message)
    prefix = prefix.rstrip("/")
    if prefix and not prefix.startswith("/"):
        message = f"prefix={prefix!r}: use a path starting with '/' (or '' for none)"
        raise ValueError(message)
    owned = store is None
    the_store = store if store is not None else ErrorStore(str(store_url))
    source: BreakerSource = breaker_source(breakers)
    registry = health if health is not None else tracker_health(the_store, source)

    def health_registry() -> HealthRegistry:
        return registry

    app = FastAPI(
        title=title,
        description=(
            "errorkit's tracker: the errors the app stored, grouped into issues, with the "
            "circuit breakers and health beside them. Every route but liveness needs "
            "`Authorization: Bearer <token>` (`errorkit tokens create`); read-only tokens "
            "cannot change anything."
        ),
        # The schema is served below, behind a token like every route; no Swagger page,
        # which would load its assets from a CDN.
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    app.state.errorkit_store = the_store
    app.state.errorkit_tokens = TokenStore(the_store)
    app.state.errorkit_breakers = source
    errorkit.fastapi.install(app, endpoints=None)
    if owned:
        app.router.add_event_handler("shutdown", the_store.close)

    api = APIRouter(prefix=f"{prefix}/api", route_class=_StoreRoute)

    # -- groups -----------------------------------------------------------------------

    @api.get(
        "/groups",
        tags=["groups"],
        summary="List groups (issues)",
        response_model=None,
        responses=ok(GroupPage),
    )
    def list_groups(
        _: Reader,
        status: Annotated[list[GroupStatusName] | None, Query()] = None,
        type: str | None = None,
        severity: str | None = None,
        service: str | None = None,
        environment: str | None = None,
        release: str | None = None,
        code: str | None = None,
        endpoint: str | None = None,
        q: Annotated[str | None, Query(description="Text in title, code, type")] = None,
        since: Annotated[str | None, Query(description="24h, 7d or an ISO time")] = None,
        until: str | None = None,
        sort: SortName = "last_seen",
        order: Literal["desc", "asc"] = "desc",
        limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
        cursor: str | None = None,
    ) -> dict[str, Any]:
        """Groups matching every given filter, ``sort``-ed, one page; pass ``next_cursor``
        as ``cursor`` for the next page. ``sort=trend`` ranks by occurrences in the window
        (``since`` to ``until``, or the last 24 h) minus those in the window before it."""
        filters = GroupFilter(
            status=status,
            type=type,
            severity=severity,
            service=service,
            environment=environment,
            release=release,
            code=code,
            endpoint=endpoint,
            q=q,
            since=since,
            until=until,
        )
        page = the_store.groups(
            **_group_arguments(filters),
            sort=sort,
            descending=order == "desc",
            limit=limit,
            cursor=cursor,
        )
        return _page(page)

    def find_group(group_id: str) -> ErrorGroup:
        group = the_store.group(group_id)
        if group is None:
            raise NotFoundError(f"no group {group_id!r} (give its id or fingerprint)")
        return group

    @api.get(
        "/groups/{group_id}",
        tags=["groups"],
        summary="One group and its latest occurrence",
        response_model=None,
        responses=ok(GroupDetail),
    )
    def get_group(_: Reader, group_id: str) -> dict[str, Any]:
        """The group (by id or fingerprint) with its newest stored occurrence."""
        group = find_group(group_id)
        latest = the_store.list(fingerprint=group.fingerprint, limit=1, with_total=False)
        return {
            "group": group.as_dict(),
            "latest": latest.items[0].as_dict() if latest.items else None,
        }

    @api.get(
        "/groups/{group_id}/occurrences",
        tags=["groups"],
        summary="A group's occurrences",
        response_model=None,
        responses=ok(ErrorPage),
    )
    def group_occurrences(
        _: Reader,
        group_id: str,
        limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
        cursor: str | None = None,
    ) -> dict[str, Any]:
        """The group's stored occurrences, newest first."""
        group = find_group(group_id)
        return _page(the_store.list(fingerprint=group.fingerprint, limit=limit, cursor=cursor))

    @api.post(
        "/groups/{group_id}/resolve",
        tags=["groups"],
        summary="Resolve a group",
        response_model=None,
        responses=ok(Group),
    )
    def resolve_group(_: Admin, group_id: str, body: Notes | None = None) -> dict[str, Any]:
        """Mark the group and its stored errors resolved; a new occurrence reopens it as
        regressed."""
        key = find_group(group_id).id
        return the_store.resolve_group(key, None if body is None else body.notes).as_dict()

    @api.post(
        "/groups/{group_id}/unresolve",
        tags=["groups"],
        summary="Reopen a group",
        response_model=None,
        responses=ok(Group),
    )
    def unresolve_group(_: Admin, group_id: str) -> dict[str, Any]:
        """Reopen the group and its stored errors."""
        return the_store.unresolve_group(find_group(group_id).id).as_dict()

    @api.post(
        "/groups/{group_id}/ignore",
        tags=["groups"],
        summary="Ignore a group",
        response_model=None,
        responses=ok(Group),
    )
    def ignore_group(_: Admin, group_id: str, body: Notes | None = None) -> dict[str, Any]:
        """Keep counting the group but leave it out of the unresolved list."""
        key = find_group(group_id).id
        return the_store.ignore_group(key, None if body is None else body.notes).as_dict()

    @api.post("/groups/bulk", tags=["groups"], summary="Resolve, reopen or ignore many groups")
    def bulk_groups(_: Admin, body: BulkAction) -> dict[str, Any]:
        """Apply ``action`` to the groups named in ``ids`` or, with ``filter``, to every
        group matching it (up to 10,000 at once)."""
        if (body.ids is None) == (body.filter is None):
            raise InvalidInputError("give either ids or filter, not both and not neither")
        if body.ids is not None:
            keys: list[int | str] = list(body.ids)
        else:
            assert body.filter is not None
            page = the_store.groups(**_group_arguments(body.filter), limit=_BULK_MAX)
            keys = [group.id for group in page.items]
        changed: list[int] = []
        missing: list[str] = []
        for key in keys:
            group = the_store.group(key)
            if group is None:
                missing.append(str(key))
                continue
            if body.action == "resolve":
                the_store.resolve_group(group.id, body.notes)
            elif body.action == "ignore":
                the_store.ignore_group(group.id, body.notes)
            else:
                the_store.unresolve_group(group.id)
            changed.append(group.id)
        return {"action": body.action, "changed": changed, "not_found": missing}

    # -- errors -----------------------------------------------------------------------

    @api.get(
        "/errors",
        tags=["errors"],
        summary="List stored errors",
        response_model=None,
        responses=ok(ErrorPage),
    )
    def list_errors(
        _: Reader,
        type: str | None = None,
        severity: str | None = None,
        code: str | None = None,
        resolved: bool | None = None,
        fingerprint: str | None = None,
        session: str | None = None,
        request: str | None = None,
        service: str | None = None,
        environment: str | None = None,
        q: Annotated[str | None, Query(description="Text in message, title, code, ...")] = None,
        since: Annotated[str | None, Query(description="24h, 7d or an ISO time")] = None,
        until: str | None = None,
        limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
        cursor: str | None = None,
    ) -> dict[str, Any]:
        """Stored errors matching every given filter, newest first, one page."""
        filters = _error_filters(
            type, severity, code, resolved, fingerprint, session, request, service,
            environment, q, since, until,
        )  # fmt: skip
        return _page(the_store.list(limit=limit, cursor=cursor, **filters))

    def error_answer(found: StoredError) -> dict[str, Any]:
        group = the_store.group(found.fingerprint)
        return {
            "kind": "error",
            "error": found.as_dict(),
            "group": None if group is None else group.as_dict(),
        }

    @api.get(
        "/errors/{error_id}",
        tags=["errors"],
        summary="One stored error",
        response_model=None,
        responses=ok(ErrorAnswer),
    )
    def get_error(_: Reader, error_id: str) -> dict[str, Any]:
        """The stored error with this ``error_id``, with its group."""
        found = the_store.get(error_id)
        if found is None:
            raise NotFoundError(f"no stored error with error_id {error_id!r}")
        return error_answer(found)

    @api.get(
        "/lookup/{error_id}",
        tags=["errors"],
        summary="Find the error id a user quotes",
        response_model=None,
        responses=ok(ErrorAnswer),
    )
    def lookup(_: Reader, error_id: str) -> dict[str, Any]:
        """The error behind an ``error_id`` from an answer or a support ticket: the stored
        error (``kind: error``), or, when the flood limiter kept only a slim row of it, that
        row and its group (``kind: slim``)."""
        found = the_store.get(error_id.strip())
        if found is not None:
            return error_answer(found)
        slim = the_store.get_slim(error_id.strip())
        if slim is None:
            raise NotFoundError(f"no error with error_id {error_id!r} in this store")
        data = slim.as_dict()
        return {"kind": "slim", "error": data, "group": data.pop("group")}

    @api.post(
        "/errors/{error_id}/resolve",
        tags=["errors"],
        summary="Resolve one error",
        response_model=None,
        responses=ok(StoredErrorOut),
    )
    def resolve_error(_: Admin, error_id: str, body: Notes | None = None) -> dict[str, Any]:
        """Mark one stored error resolved, with optional notes."""
        return the_store.resolve(error_id, None if body is None else body.notes).as_dict()

    # -- stats, export, retention -----------------------------------------------------

    @api.get(
        "/stats",
        tags=["stats"],
        summary="Counts by type, severity, code, endpoint, ...",
        response_model=None,
        responses=ok(StatsAnswer),
    )
    def stats(
        _: Reader,
        since: Annotated[str | None, Query(description="24h, 7d or an ISO time")] = None,
        until: str | None = None,
        bucket: Literal["hour", "day"] = "hour",
        top: Annotated[int, Query(ge=1, le=100, description="How many groups each list")] = 10,
        type: str | None = None,
        severity: str | None = None,
        code: str | None = None,
        resolved: bool | None = None,
        fingerprint: str | None = None,
        service: str | None = None,
        environment: str | None = None,
        q: str | None = None,
    ) -> JSONResponse:
        """Stored errors in the window (narrowed by the error filters) counted by type,
        severity, code, endpoint and service, and a time series in hour or day buckets;
        the ``top`` groups by occurrences in the window, groups first seen in it (new) and
        regressed groups last seen in it; the requests answered and the error rate (5xx
        share), null until request counts are stored."""
        given = {
            "error_type": type,
            "severity": severity,
            "error_code": code,
            "resolved": resolved,
            "fingerprint": fingerprint,
            "service": service,
            "environment": environment,
            "search": q,
        }
        narrowing = cast(StatsFilters, {k: v for k, v in given.items() if v is not None})
        found = the_store.stats(
            _moment(since, "since"), _moment(until, "until"), bucket=bucket, top=top, **narrowing
        )
        # The answer is JSON already (strings, numbers, lists): sent as it is, without
        # walking its hundreds of values through FastAPI's encoder first.
        return JSONResponse(found.as_dict())

    @api.get("/groups/{group_id}/series", tags=["groups"], summary="A group's count over time")
    def group_series(
        _: Reader,
        group_id: str,
        since: Annotated[str | None, Query(description="24h, 7d or an ISO time")] = None,
        until: str | None = None,
        bucket: Literal["hour", "day"] = "hour",
    ) -> dict[str, Any]:
        """The group's stored occurrences per hour or day (empty buckets left out)."""
        group = find_group(group_id)
        found = the_store.stats(
            _moment(since, "since"),
            _moment(until, "until"),
            bucket=bucket,
            fingerprint=group.fingerprint,
        )
        return {
            "group_id": group.id,
            "bucket": bucket,
            "buckets": [[start.isoformat(), count] for start, count in found.buckets],
            "total": found.total,
        }

    @api.get(
        "/export",
        tags=["stats"],
        summary="Export stored errors as CSV or JSON lines (streamed)",
        response_class=StreamingResponse,
        responses={200: {"content": {"text/csv": {}, "application/x-ndjson": {}}}},
    )
    def export(
        _: Reader,
        format: Literal["jsonl", "csv"] = "jsonl",
        type: str | None = None,
        severity: str | None = None,
        code: str | None = None,
        resolved: bool | None = None,
        fingerprint: str | None = None,
        service: str | None = None,
        environment: str | None = None,
        q: str | None = None,
        since: str | None = None,
        until: str | None = None,
    ) -> StreamingResponse:
        """Matching errors oldest first, streamed as they are read."""
        filters = _error_filters(
            type, severity, code, resolved, fingerprint, None, None, service, environment,
            q, since, until,
        )  # fmt: skip
        the_store.ping()  # an unreachable store is a 503 before the answer starts
        media = "text/csv" if format == "csv" else "application/x-ndjson"
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        return StreamingResponse(
            _stream_export(the_store, format, filters),
            media_type=f"{media}; charset=utf-8",
            headers={"content-disposition": f'attachment; filename="errors-{stamp}.{format}"'},
        )

    @api.post("/retention/cleanup", tags=["stats"], summary="Delete old stored errors")
    def cleanup(_: Admin, body: Cleanup) -> dict[str, Any]:
        """Delete stored errors older than ``older_than`` (group counts stay exact); with
        ``dry_run`` only count them."""
        cutoff = _moment(body.older_than, "older_than")
        assert cutoff is not None
        if body.dry_run:
            matched = the_store.count(until=cutoff)
            return {"dry_run": True, "older_than": cutoff.isoformat(), "matched": matched}
        deleted = the_store.cleanup(cutoff)
        return {"dry_run": False, "older_than": cutoff.isoformat(), "deleted": deleted}

    # -- breakers ---------------------------------------------------------------------

    @api.get("/breakers", tags=["breakers"], summary="Circuit breakers and their state")
    def list_breakers(_: Reader) -> dict[str, Any]:
        """Every breaker: state, failures, last failure, when it opened and probes next."""
        return {"source": source.kind, "breakers": source.list()}

    @api.post("/breakers/reset-all", tags=["breakers"], summary="Reset every breaker")
    def reset_all(_: Admin) -> dict[str, Any]:
        """Close every breaker; answers each one's state before the reset."""
        return {"reset": source.reset_all()}

    @api.post("/breakers/{name}/reset", tags=["breakers"], summary="Reset one breaker")
    def reset_breaker(_: Admin, name: str) -> dict[str, Any]:
        """Close breaker ``name`` and clear its counters."""
        was = source.reset(name)
        if was is None:
            raise NotFoundError(f"no circuit breaker named {name!r}")
        return {"name": name, "was": was, "state": "closed"}

    # -- health -----------------------------------------------------------------------

    @api.get("/health/live", tags=["health"], summary="Liveness (open, no credentials)")
    async def live() -> JSONResponse:
        """The tracker is up; asks nothing else."""
        return _report(health_registry().liveness())

    @api.get("/health", tags=["health"], summary="Basic health check")
    async def basic_health(_: Reader) -> JSONResponse:
        """Every registered check run once: 200 when healthy or degraded, 503 when a
        critical one fails."""
        return _report(await health_registry().readiness())

    @api.get("/health/detailed", tags=["health"], summary="Services and components")
    async def detailed_health(_: Reader) -> JSONResponse:
        """Each component with its details, errors counted in the store, and breakers."""
        return _report(await health_registry().detailed())

    @api.get("/auth/me", tags=["auth"], summary="The token this request uses")
    def whoami(token: Reader) -> dict[str, Any]:
        """The calling token's id, name, role and expiry (never the token itself)."""
        return token.as_dict()

    @api.get("/openapi.json", include_in_schema=False)
    def openapi(_: Reader) -> dict[str, Any]:
        return app.openapi()

    app.include_router(api)
    alerts_api.mount(app, the_store, prefix=prefix, config=alerts_config)
    projects = projects_api.mount(app, the_store, prefix=prefix)
    if ingest:
        from errorkit.ingest.app import DEFAULT_RATE_LIMIT, mount_ingest

        mount_ingest(
            app,
            the_store,
            rate_limit=DEFAULT_RATE_LIMIT if ingest_rate_limit is None else ingest_rate_limit,
            limits=ingest_limits,
            spool=ingest_spool,
            scrubber=scrubber,
        )
    # errorkit's own HTTP transport, at the root whatever the prefix (apps' store_url); it
    # shares the project routes' ProjectStore, so a key revoked here is refused at once.
    mount_transport(app, the_store, projects)
    if dashboard:
        from errorkit.server.dashboard import mount_dashboard

        mount_dashboard(
            app,
            store=the_store,
            breakers=source,
            health=health_registry,
            prefix=prefix,
            session_secret=session_secret or os.environ.get("ERRORKIT_SESSION_SECRET") or None,
            login_limiter=login_limiter,
        )
    return app


def _error_filters(
    error_type: str | None,
    severity: str | None,
    error_code: str | None,
    resolved: bool | None,
    fingerprint: str | None,
    session_id: str | None,
    request_id: str | None,
    service: str | None,
    environment: str | None,
    search: str | None,
    since: str | None,
    until: str | None,
) -> ErrorFilters:
    values: dict[str, Any] = {
        "error_type": error_type,
        "severity": severity,
        "error_code": error_code,
        "resolved": resolved,
        "fingerprint": fingerprint,
        "session_id": session_id,
        "request_id": request_id,
        "service": service,
        "environment": environment,
        "search": search,
        "since": _moment(since, "since"),
        "until": _moment(until, "until"),
    }
    return {k: v for k, v in values.items() if v is not None}  # type: ignore[return-value]
