"""The tracker's dashboard: server-rendered pages under ``{prefix}/`` on the same store.

Log in with an API token or a user (``errorkit users add``) into a signed session cookie;
every form that changes something carries the session's CSRF token and is refused without
it; read-only viewers see no buttons and are refused if they post anyway. Templates and
assets ship in the package (no CDN); the only script refreshes the issues list.
"""

from __future__ import annotations

import hmac
import json
import math
import tomllib
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, cast
from urllib.parse import parse_qs, urlencode

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from markupsafe import Markup
from sqlalchemy import func, select
from starlette.concurrency import run_in_threadpool
from starlette.staticfiles import StaticFiles

from errorkit._extras import require
from errorkit.errors import AppError
from errorkit.observe.health import HealthRegistry
from errorkit.server.auth import log_security_event
from errorkit.server.breakers import BreakerSource
from errorkit.server.sessions import (
    COOKIE,
    LOGIN_COOKIE,
    SESSION_SECONDS,
    LoginLimiter,
    SessionSigner,
    Viewer,
)
from errorkit.store import ErrorGroup, ErrorStore, StoredError, StoreError
from errorkit.store.repository import _bucket_time
from errorkit.store.schema import errors as errors_table
from errorkit.store.tokens import TokenRefused, TokenStore
from errorkit.store.users import UserStore

require("jinja2", extra="server", feature="the tracker's dashboard")

import jinja2  # noqa: E402 - after the extra check on purpose

__all__ = ["mount_dashboard"]

_HERE = Path(__file__).parent
_STATUSES = ("unresolved", "regressed", "resolved", "ignored")
_SORTS = ("last_seen", "first_seen", "count")
_BODY_MAX = 256 * 1024
_PAGE = 50
_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


# -- charts (numbers only: nothing user-controlled goes into these strings) ------------


def sparkline(counts: Sequence[int], width: int = 120, height: int = 24) -> Markup:
    """An inline SVG polyline of ``counts``."""
    top = max(counts, default=0) or 1
    step = width / max(len(counts) - 1, 1)
    points = " ".join(
        f"{i * step:.1f},{height - 1 - (c / top) * (height - 2):.1f}" for i, c in enumerate(counts)
    )
    return Markup(  # noqa: S704 - numbers only
        f'<svg class="spark" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'role="img" aria-label="{sum(counts)} in the last {len(counts)} hours">'
        f'<polyline fill="none" stroke="currentColor" stroke-width="1.5" points="{points}"/>'
        "</svg>"
    )


def columns(counts: Sequence[int], width: int = 720, height: int = 120) -> Markup:
    """An inline SVG column chart of ``counts`` (scales to its container)."""
    top = max(counts, default=0) or 1
    slot = width / max(len(counts), 1)
    bars = []
    for i, c in enumerate(counts):
        h = 0 if c == 0 else max(1.0, (c / top) * (height - 14))
        bars.append(
            f'<rect x="{i * slot + 0.5:.1f}" y="{height - h:.1f}" width="{max(slot - 1, 1):.1f}" '
            f'height="{h:.1f}"><title>{c}</title></rect>'
        )
    return Markup(  # noqa: S704 - numbers only
        f'<svg class="columns" viewBox="0 0 {width} {height}" preserveAspectRatio="none" '
        f'role="img" aria-label="{sum(counts)} in all, most {top}">'
        f'<text x="2" y="10" class="axis">{top}</text>{"".join(bars)}</svg>'
    )


def _slots(
    rows: Sequence[tuple[datetime, int]], start: datetime, n: int, step: timedelta
) -> list[int]:
    counts = [0] * n
    for moment, count in rows:
        index = math.floor((moment - start) / step)
        if 0 <= index < n:
            counts[index] += count
    return counts


def _hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def hourly(store: ErrorStore, fingerprints: Sequence[str], hours: int) -> dict[str, list[int]]:
    """Stored occurrences of each group per hour over the last ``hours`` (one query)."""
    if not fingerprints:
        return {}
    start = _hour(datetime.now(UTC)) - timedelta(hours=hours - 1)
    bucket = store._bucket("hour")
    query = (
        select(errors_table.c.fingerprint, bucket, func.count())
        .where(errors_table.c.fingerprint.in_(list(fingerprints)))
        .where(errors_table.c.timestamp >= start)
        .group_by(errors_table.c.fingerprint, bucket)
    )
    found: dict[str, list[tuple[datetime, int]]] = {fp: [] for fp in fingerprints}
    with store._read() as connection:
        for fingerprint, moment, count in connection.execute(query):
            found[fingerprint].append((_bucket_time(moment), int(count)))
    return {fp: _slots(rows, start, hours, timedelta(hours=1)) for fp, rows in found.items()}


# -- rendering --------------------------------------------------------------------------


def _pretty(value: Any) -> str:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return str(value)
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)


def _ago(value: datetime | str | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    seconds = int((datetime.now(UTC) - value).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{max(seconds, 0)}s ago"


def _when(value: datetime | str | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(_HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["pretty"] = _pretty
    env.filters["ago"] = _ago
    env.filters["when"] = _when
    env.globals["sparkline"] = sparkline
    env.globals["columns"] = columns
    return env


def _split_frames(data: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Each exception of the chain with its in-app frames and its library frames apart."""
    chain = data.get("exceptions") or []
    shown = []
    for item in chain if isinstance(chain, list) else []:
        if not isinstance(item, Mapping):
            continue
        frames = [f for f in item.get("frames") or [] if isinstance(f, Mapping)]
        shown.append(
            {
                "type": item.get("type", ""),
                "message": item.get("message", ""),
                "relation": item.get("relation"),
                "app": [f for f in frames if f.get("in_app")],
                "library": [f for f in frames if not f.get("in_app")],
                "all": frames,
            }
        )
    return shown


def _parse_form(body: bytes) -> dict[str, list[str]]:
    return parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)


def _one(form: Mapping[str, list[str]], name: str) -> str:
    values = form.get(name) or [""]
    return values[0]


class _Dashboard:
    def __init__(
        self,
        app: FastAPI,
        store: ErrorStore,
        breakers: BreakerSource,
        health: Callable[[], HealthRegistry],
        prefix: str,
        signer: SessionSigner,
        limiter: LoginLimiter,
    ) -> None:
        self.app = app
        self.store = store
        self.tokens = TokenStore(store)
        self.users = UserStore(store)
        self.breakers = breakers
        self.health = health
        self.prefix = prefix
        self.signer = signer
        self.limiter = limiter
        self.env = _environment()

    # -- plumbing ---------------------------------------------------------------------

    def base(self, request: Request) -> str:
        return str(request.scope.get("root_path", "")).rstrip("/") + self.prefix

    def page(
        self,
        request: Request,
        template: str,
        viewer: Viewer | None,
        status_code: int = 200,
        **values: Any,
    ) -> HTMLResponse:
        base = self.base(request)
        html = self.env.get_template(template).render(
            base=base,
            viewer=viewer,
            path=request.url.path,
            here=request.url.path + (f"?{request.url.query}" if request.url.query else ""),
            **values,
        )
        return HTMLResponse(html, status_code=status_code, headers=_HEADERS)

    def message(
        self, request: Request, viewer: Viewer | None, status_code: int, title: str, text: str
    ) -> HTMLResponse:
        return self.page(
            request, "message.html", viewer, status_code=status_code, title=title, text=text
        )

    def viewer(self, request: Request) -> Viewer | None:
        """Who the session cookie belongs to, if that token or user is still good."""
        session = self.signer.read(request.cookies.get(COOKIE))
        if session is None:
            return None
        try:
            if session.kind == "user":
                user = self.users.get(session.id)
                if user is None:
                    return None
                return Viewer("user", user.id, user.name, user.role, session.csrf)
            token = next((t for t in self.tokens.list() if t.id == session.id), None)
        except StoreError:
            return None
        if token is None or token.state() != "active":
            return None
        return Viewer("token", token.id, token.name, token.role, session.csrf)

    def to_login(self, request: Request) -> RedirectResponse:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        query = urlencode({"next": target})
        return RedirectResponse(f"{self.base(request)}/login?{query}", status_code=303)

    def cookie(self, request: Request, response: Response, name: str, value: str, age: int) -> None:
        response.set_cookie(
            name,
            value,
            max_age=age,
            path=self.base(request) + "/",
            httponly=True,
            samesite="lax",
            secure=request.url.scheme == "https",
        )

    async def change(
        self, request: Request
    ) -> tuple[Viewer | None, dict[str, list[str]], Response | None]:
        """The viewer and form of a state-changing post, or the answer refusing it: no
        session 401, a wrong CSRF token 403, a read-only viewer 403."""
        body = await request.body()
        if len(body) > _BODY_MAX:
            return None, {}, self.message(request, None, 413, "Too large", "The form is too large.")
        form = _parse_form(body)
        viewer = await run_in_threadpool(self.viewer, request)
        if viewer is None:
            return (
                None,
                form,
                self.message(
                    request, None, 401, "Logged out", "Your session is over; log in again."
                ),
            )
        if not hmac.compare_digest(_one(form, "csrf").encode(), viewer.csrf.encode()):
            log_security_event(
                "dashboard_csrf_refused",
                "a dashboard form came without its CSRF token",
                path=request.url.path,
                ip_address=None if request.client is None else request.client.host,
                viewer=viewer.name,
            )
            return (
                viewer,
                form,
                self.message(
                    request,
                    viewer,
                    403,
                    "Refused",
                    "This form's security token is missing or out of date; reload the page and "
                    "try again.",
                ),
            )
        if not viewer.is_admin:
            log_security_event(
                "dashboard_permission_denied",
                "a read-only dashboard viewer tried to change something",
                path=request.url.path,
                viewer=viewer.name,
                ip_address=None if request.client is None else request.client.host,
            )
            return (
                viewer,
                form,
                self.message(
                    request, viewer, 403, "Read-only", "You can look but not change anything."
                ),
            )
        return viewer, form, None

    def back(
        self, request: Request, form: Mapping[str, list[str]], default: str
    ) -> RedirectResponse:
        target = _one(form, "next")
        base = self.base(request)
        if not target.startswith(base + "/") or target.startswith("//"):
            target = default
        return RedirectResponse(target, status_code=303)

    # -- login ------------------------------------------------------------------------

    def login_page(
        self, request: Request, error: str | None = None, status_code: int = 200
    ) -> HTMLResponse:
        cookie, nonce = self.signer.login_nonce()
        response = self.page(
            request,
            "login.html",
            None,
            status_code=status_code,
            error=error,
            nonce=nonce,
            next=request.query_params.get("next", ""),
        )
        self.cookie(request, response, LOGIN_COOKIE, cookie, 3600)
        return response

    async def login(self, request: Request) -> Response:
        body = await request.body()
        form = _parse_form(body[:_BODY_MAX])
        address = "-" if request.client is None else request.client.host
        if not self.signer.check_login_nonce(
            request.cookies.get(LOGIN_COOKIE), _one(form, "nonce")
        ):
            return self.login_page(request, "The login form was out of date; try again.", 403)
        token_text = _one(form, "token").strip()
        name = _one(form, "username").strip()
        password = _one(form, "password")
        who = "token" if token_text else f"user:{name}"
        if self.limiter.blocked(who, address):
            log_security_event(
                "dashboard_login_limited",
                "dashboard login refused: too many failures",
                who=who,
                ip_address=address,
            )
            return self.login_page(
                request, "Too many failed logins; wait 15 minutes and try again.", 429
            )

        def check() -> tuple[Literal["token", "user"], int] | str:
            if token_text:
                try:
                    token = self.tokens.verify(token_text)
                except TokenRefused as refused:
                    return f"token {refused.reason}"
                with suppress(StoreError):
                    self.tokens.touch(token.id)
                return "token", token.id
            if not name or not password:
                return "no credentials"
            user = self.users.verify(name, password)
            return "wrong user or password" if user is None else ("user", user.id)

        try:
            outcome = await run_in_threadpool(check)
        except StoreError:
            return self.login_page(request, "The store is unreachable; try again soon.", 503)
        if isinstance(outcome, str):
            failures = self.limiter.failed(who, address)
            log_security_event(
                "dashboard_login_failed",
                f"dashboard login failed ({outcome})",
                reason=outcome,
                who=who,
                failures=failures,
                ip_address=address,
            )
            return self.login_page(request, "That did not work: check what you typed.", 401)
        self.limiter.succeeded(who, address)
        kind, ident = outcome
        value, _ = self.signer.sign(kind, ident)
        response = self.back(request, form, self.base(request) + "/")
        self.cookie(request, response, COOKIE, value, SESSION_SECONDS)
        response.delete_cookie(LOGIN_COOKIE, path=self.base(request) + "/")
        return response

    # -- pages ------------------------------------------------------------------------

    def filters(self, request: Request) -> dict[str, Any]:
        q = request.query_params
        status = q.get("status", "open")
        return {
            "status": status,
            "q": q.get("q", ""),
            "type": q.get("type", ""),
            "service": q.get("service", ""),
            "environment": q.get("environment", ""),
            "sort": q.get("sort", "last_seen") if q.get("sort") in _SORTS else "last_seen",
            "cursor": q.get("cursor") or None,
        }

    def issues(self, f: Mapping[str, Any]) -> dict[str, Any]:
        status: list[str] | None
        if f["status"] == "open":
            status = ["unresolved", "regressed"]
        elif f["status"] in _STATUSES:
            status = [f["status"]]
        else:
            status = None
        page = self.store.groups(
            status=cast(Any, status),
            search=f["q"] or None,
            error_type=f["type"] or None,
            service=f["service"] or None,
            environment=f["environment"] or None,
            sort=f["sort"],
            limit=_PAGE,
            cursor=f["cursor"],
        )
        series = hourly(self.store, [g.fingerprint for g in page.items], 24)
        keep = {k: v for k, v in f.items() if v and k != "cursor"}
        more = None
        if page.next_cursor:
            more = urlencode({**keep, "cursor": page.next_cursor})
        return {"page": page, "series": series, "more": more, "filters": f}


def mount_dashboard(
    app: FastAPI,
    *,
    store: ErrorStore,
    breakers: BreakerSource,
    health: Callable[[], HealthRegistry],
    prefix: str,
    session_secret: str | bytes | None = None,
    login_limiter: LoginLimiter | None = None,
) -> None:
    """Add the dashboard's pages under ``{prefix}/`` to the tracker ``app``."""
    board = _Dashboard(
        app,
        store,
        breakers,
        health,
        prefix,
        SessionSigner(session_secret),
        login_limiter or LoginLimiter(),
    )
    app.state.errorkit_dashboard = board
    app.mount(f"{prefix}/static", StaticFiles(directory=_HERE / "static"), name="dashboard-static")
    router = APIRouter(prefix=prefix, include_in_schema=False)

    @router.get("/login")
    def login_form(request: Request) -> Response:
        return board.login_page(request)

    @router.post("/login")
    async def login(request: Request) -> Response:
        return await board.login(request)

    @router.post("/logout")
    async def logout(request: Request) -> Response:
        form = _parse_form((await request.body())[:_BODY_MAX])
        viewer = await run_in_threadpool(board.viewer, request)
        response = RedirectResponse(f"{board.base(request)}/login", status_code=303)
        given = _one(form, "csrf").encode()
        if viewer is not None and hmac.compare_digest(given, viewer.csrf.encode()):
            response.delete_cookie(COOKIE, path=board.base(request) + "/")
        return response

    @router.get("/")
    def issues(request: Request) -> Response:
        viewer = board.viewer(request)
        if viewer is None:
            return board.to_login(request)
        return board.page(
            request,
            "issues.html",
            viewer,
            statuses=("open", *_STATUSES, "all"),
            sorts=_SORTS,
            **board.issues(board.filters(request)),
        )

    @router.get("/fragments/issues")
    def issue_rows(request: Request) -> Response:
        viewer = board.viewer(request)
        if viewer is None:
            return Response(status_code=401)
        return board.page(
            request, "_issue_rows.html", viewer, **board.issues(board.filters(request))
        )

    @router.post("/issues/bulk")
    async def bulk(request: Request) -> Response:
        _viewer, form, refused = await board.change(request)
        if refused is not None:
            return refused
        action = _one(form, "action")
        notes = _one(form, "notes") or None

        def apply() -> None:
            for key in form.get("ids", [])[: _PAGE * 4]:
                if not key.isdigit():
                    continue
                if action == "ignore":
                    board.store.ignore_group(int(key), notes)
                else:
                    board.store.resolve_group(int(key), notes)

        await run_in_threadpool(apply)
        return board.back(request, form, board.base(request) + "/")

    @router.get("/issues/{group_id}")
    def issue(request: Request, group_id: int, error_id: str | None = None) -> Response:
        viewer = board.viewer(request)
        if viewer is None:
            return board.to_login(request)
        group = board.store.group(group_id)
        if group is None:
            return board.message(request, viewer, 404, "Not found", f"No issue {group_id}.")
        return issue_page(request, viewer, group, error_id)

    def issue_page(
        request: Request, viewer: Viewer, group: ErrorGroup, error_id: str | None
    ) -> Response:
        occurrences = board.store.list(fingerprint=group.fingerprint, limit=20)
        shown: StoredError | None = None
        if error_id:
            shown = board.store.get(error_id)
            if shown is not None and shown.fingerprint != group.fingerprint:
                shown = None
        if shown is None and occurrences.items:
            shown = occurrences.items[0]
        week = hourly(board.store, [group.fingerprint], 24 * 7)[group.fingerprint]
        return board.page(
            request,
            "issue.html",
            viewer,
            group=group,
            occurrences=occurrences,
            shown=shown,
            chain=_split_frames(shown.data) if shown else [],
            week=week,
        )

    @router.post("/issues/{group_id}/{action}")
    async def act(request: Request, group_id: int, action: str) -> Response:
        viewer, form, refused = await board.change(request)
        if refused is not None:
            return refused
        notes = _one(form, "notes").strip() or None

        def apply() -> ErrorGroup | None:
            if board.store.group(group_id) is None:
                return None
            if action == "resolve":
                return board.store.resolve_group(group_id, notes)
            if action == "ignore":
                return board.store.ignore_group(group_id, notes)
            return board.store.unresolve_group(group_id)

        if action not in ("resolve", "ignore", "unresolve"):
            return board.message(request, viewer, 404, "Not found", "No such action.")
        if await run_in_threadpool(apply) is None:
            return board.message(request, viewer, 404, "Not found", f"No issue {group_id}.")
        return RedirectResponse(f"{board.base(request)}/issues/{group_id}", status_code=303)

    @router.get("/find")
    def find(request: Request, error_id: str = "") -> Response:
        viewer = board.viewer(request)
        if viewer is None:
            return board.to_login(request)
        wanted = error_id.strip()
        found = board.store.get(wanted) if wanted else None
        if found is not None:
            group = board.store.group(found.fingerprint)
            if group is not None:
                return issue_page(request, viewer, group, found.error_id)
        slim = board.store.get_slim(wanted) if wanted else None
        if slim is not None and slim.group is not None:
            return board.page(request, "slim.html", viewer, slim=slim)
        return board.message(
            request, viewer, 404, "Not found", f"No error with id {wanted!r} in this store."
        )

    @router.get("/stats")
    def stats(request: Request, window: str = "24h") -> Response:
        viewer = board.viewer(request)
        if viewer is None:
            return board.to_login(request)
        spans = {"24h": (timedelta(hours=24), "hour"), "7d": (timedelta(days=7), "day"),
                 "30d": (timedelta(days=30), "day")}  # fmt: skip
        span, bucket = spans.get(window, spans["24h"])
        window = window if window in spans else "24h"
        now = datetime.now(UTC)
        step = timedelta(hours=1) if bucket == "hour" else timedelta(days=1)
        n = int(span / step)
        start = _hour(now) - step * (n - 1)
        if bucket == "day":
            start = start.replace(hour=0)
        found = board.store.stats(start, None, bucket=cast(Any, bucket))
        series = _slots(found.buckets, start, n, step)
        top = board.store.groups(since=start, sort="count", limit=10, with_total=False)
        return board.page(
            request,
            "stats.html",
            viewer,
            stats=found,
            series=series,
            window=window,
            windows=tuple(spans),
            top=top.items,
        )

    @router.get("/breakers")
    def breakers_page(request: Request) -> Response:
        viewer = board.viewer(request)
        if viewer is None:
            return board.to_login(request)
        try:
            items = board.breakers.list()
            problem = None
        except Exception as exc:  # noqa: BLE001 - shown on the page, the rest still renders
            items, problem = [], getattr(exc, "message", None) or "the breakers are unreachable"
        return board.page(request, "breakers.html", viewer, breakers=items, problem=problem)

    @router.post("/breakers/reset-all")
    async def reset_all(request: Request) -> Response:
        _viewer, _form, refused = await board.change(request)
        if refused is not None:
            return refused
        await run_in_threadpool(board.breakers.reset_all)
        return RedirectResponse(f"{board.base(request)}/breakers", status_code=303)

    @router.post("/breakers/{name}/reset")
    async def reset(request: Request, name: str) -> Response:
        viewer, _form, refused = await board.change(request)
        if refused is not None:
            return refused
        if await run_in_threadpool(board.breakers.reset, name) is None:
            return board.message(request, viewer, 404, "Not found", f"No breaker named {name!r}.")
        return RedirectResponse(f"{board.base(request)}/breakers", status_code=303)

    @router.get("/groups/{fingerprint}")
    def group_link(request: Request, fingerprint: str) -> Response:
        # Alert notifications link to {base_url}/groups/{fingerprint}: a fingerprint never
        # changes, so the link stays good; it opens the issue page of that group.
        viewer = board.viewer(request)
        if viewer is None:
            return board.to_login(request)
        group = board.store.group(fingerprint)
        if group is None:
            return board.message(request, viewer, 404, "Not found", "No such issue.")
        return RedirectResponse(f"{board.base(request)}/issues/{group.id}", status_code=303)

    def alerts_view(
        request: Request,
        viewer: Viewer,
        status_code: int = 200,
        problem: str | None = None,
        snippet: str = "",
        note: str | None = None,
    ) -> Response:
        book = getattr(board.app.state, "errorkit_alerts", None)
        rules = [] if book is None else book.rules()
        channels = [] if book is None else [(c.name, c.type) for c in book.config.channels]
        history = [event.as_dict() for event in board.store.alert_events(limit=20)]
        return board.page(
            request,
            "alerts.html",
            viewer,
            status_code=status_code,
            rules=rules,
            channels=channels,
            history=history,
            problem=problem,
            snippet=snippet,
            note=note,
        )

    @router.get("/alerts")
    def alerts_page(request: Request) -> Response:
        viewer = board.viewer(request)
        if viewer is None:
            return board.to_login(request)
        return alerts_view(request, viewer)

    @router.post("/alerts/rules")
    async def alerts_add(request: Request) -> Response:
        viewer, form, refused = await board.change(request)
        if refused is not None or viewer is None:
            return refused or Response(status_code=401)
        snippet = _one(form, "rule")
        book = board.app.state.errorkit_alerts
        try:
            rule = tomllib.loads(snippet)
        except tomllib.TOMLDecodeError as exc:
            problem = f"the rule is not valid TOML: {exc}"
            return alerts_view(request, viewer, 400, problem, snippet)
        try:
            await run_in_threadpool(lambda: book.put(rule, replace=False))
        except AppError as exc:
            return alerts_view(request, viewer, 400, exc.message, snippet)
        return RedirectResponse(f"{board.base(request)}/alerts", status_code=303)

    @router.post("/alerts/rules/{name}/delete")
    async def alerts_delete(request: Request, name: str) -> Response:
        viewer, _form, refused = await board.change(request)
        if refused is not None or viewer is None:
            return refused or Response(status_code=401)
        try:
            await run_in_threadpool(board.app.state.errorkit_alerts.delete, name)
        except AppError as exc:
            return board.message(request, viewer, 404, "Not found", exc.message)
        return RedirectResponse(f"{board.base(request)}/alerts", status_code=303)

    @router.post("/alerts/test")
    async def alerts_test(request: Request) -> Response:
        viewer, form, refused = await board.change(request)
        if refused is not None or viewer is None:
            return refused or Response(status_code=401)
        channel = _one(form, "channel") or None
        book = board.app.state.errorkit_alerts
        try:
            sent = await run_in_threadpool(book.send_test, board.store, channel)
        except AppError as exc:
            return board.message(request, viewer, 404, "Not found", exc.message)
        note = "; ".join(f"{d.channel}: {'sent' if d.ok else d.detail}" for d in sent)
        return alerts_view(request, viewer, note=f"Test sent ({note}).")

    @router.get("/health")
    async def health_page(request: Request) -> Response:
        viewer = await run_in_threadpool(board.viewer, request)
        if viewer is None:
            return board.to_login(request)
        report = await board.health().detailed()
        return board.page(request, "health.html", viewer, report=report.as_dict())

    app.include_router(router)
