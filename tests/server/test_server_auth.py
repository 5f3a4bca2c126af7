"""The auth matrix: every route of the OpenAPI schema with every kind of credential."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.routing import APIRoute
from tests.server.conftest import Tracker

from errorkit.store.projects import ProjectStore

OPEN = {("get", "/admin/api/health/live")}
# The Sentry-compatible ingest takes no tracker token: SDKs authenticate with a project's
# DSN key, so it has a matrix of its own (tests/ingest/test_ingest_http.py).
INGEST = {("post", "/api/{project_id}/envelope/"), ("post", "/api/{project_id}/store/")}
#: Routes authenticated by a project key, not an API token: their own key matrix is in
#: tests/transport/test_transport_route.py.
PROJECT_KEY = {("post", "/api/{project_id}/errorkit/batch/")}
STATE_CHANGING = {"post", "put", "patch", "delete"}
AUTH_CODES = {"AUTH_REQUIRED", "AUTH_TOKEN_INVALID", "AUTH_TOKEN_EXPIRED"}


def _routes(tracker: Tracker) -> list[tuple[str, str]]:
    schema = tracker.get("/openapi.json").json()
    return sorted(
        (method, path)
        for path, operations in schema["paths"].items()
        for method in operations
        if method in {"get", "post", "put", "patch", "delete"}
        and (method, path) not in INGEST | PROJECT_KEY
    )


def _api_routes(routes: list[Any]) -> list[APIRoute]:
    """Every APIRoute, looking inside included routers."""
    found: list[APIRoute] = []
    for route in routes:
        if isinstance(route, APIRoute):
            found.append(route)
        inner = getattr(route, "original_router", None) or getattr(route, "routes", None)
        if inner is not None:
            found.extend(_api_routes(getattr(inner, "routes", inner)))
    return found


def _request(tracker: Tracker, method: str, path: str) -> tuple[str, dict[str, Any] | None]:
    """A concrete URL (path parameters filled with things that exist) and a valid body."""
    group = tracker.store.groups(limit=1).items[0]
    projects = ProjectStore(tracker.store)
    project = projects.project("matrix-project") or projects.create_project("matrix-project")
    keys = projects.list_keys(project.id) or [projects.create_key(project.id)]
    values = {
        "project": str(project.id),
        "key": str(keys[0].id),
        "group_id": str(group.id),
        "error_id": tracker.seeded.boom_ids[0],
        "name": "payments",
        "rule": "api-repeats",
    }
    url = re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], path)
    bodies: dict[str, dict[str, Any]] = {
        "/admin/api/groups/bulk": {"ids": [group.id]},
        "/admin/api/retention/cleanup": {"older_than": "3650d", "dry_run": True},
        "/admin/api/alerts/rules": {"name": "matrix-new", "kind": "new_group"},
        "/admin/api/alerts/rules/{rule}": {"kind": "critical", "window": "5m"},
        "/admin/api/alerts/test": {"channel": "ops-log"},
        "/admin/api/projects": {"name": "matrix-made"},
    }
    return url, bodies.get(path, {} if method in STATE_CHANGING else None)


def _call(tracker: Tracker, method: str, url: str, body: Any, headers: dict[str, str]) -> Any:
    return tracker.client.request(method.upper(), url, json=body, headers=headers)


def test_every_route_is_in_the_schema(tracker: Tracker) -> None:
    """Nothing escapes the matrix: the only API route left out of the schema is the schema.
    (The dashboard's pages beside the API are HTML, covered by the dashboard's tests.)"""
    hidden = [
        route.path
        for route in _api_routes(tracker.client.app.routes)
        if not route.include_in_schema and route.path.startswith("/admin/api/")
    ]
    assert hidden == ["/admin/api/openapi.json"]
    routes = _routes(tracker)
    assert len(routes) >= 20
    assert ("post", "/admin/api/breakers/reset-all") in routes
    assert ("delete", "/admin/api/alerts/rules/{rule}") in routes
    assert ("post", "/admin/api/keys/{key}/revoke") in routes
    assert ("get", "/admin/api/projects/{project}/outcomes") in routes
    schema = tracker.get("/openapi.json").json()
    assert {(m, p) for p, ops in schema["paths"].items() for m in ops} >= INGEST


CREDENTIALS = ["none", "read", "admin", "expired", "revoked", "expired_admin", "garbage", "basic"]


@pytest.mark.parametrize("credential", CREDENTIALS)
def test_auth_matrix(tracker: Tracker, credential: str) -> None:
    headers = {
        "none": {},
        "read": tracker.headers(tracker.tokens.read),
        "admin": tracker.headers(tracker.tokens.admin),
        "expired": tracker.headers(tracker.tokens.expired),
        "revoked": tracker.headers(tracker.tokens.revoked),
        "expired_admin": tracker.headers(tracker.tokens.expired_admin),
        "garbage": tracker.headers("ekt_not-a-real-token"),
        "basic": {"Authorization": "Basic YWRtaW46YWRtaW4="},
    }[credential]
    failures = []
    for method, path in _routes(tracker):
        url, body = _request(tracker, method, path)
        answer = _call(tracker, method, url, body, headers)
        if (method, path) in OPEN:
            expected = "2xx"
        elif credential in {"read", "admin"}:
            changing = method in STATE_CHANGING
            expected = "403" if credential == "read" and changing else "2xx"
        else:
            expected = "401"
        got = answer.status_code
        ok = 200 <= got < 300 if expected == "2xx" else got == int(expected)
        if ok and expected == "401":
            error = answer.json()["error"]
            ok = error["code"] in AUTH_CODES and "error_id" in error
            ok = ok and answer.headers.get("www-authenticate", "").startswith("Bearer")
        if ok and expected == "403":
            ok = answer.json()["error"]["code"] == "PERMISSION_DENIED"
        if not ok:
            failures.append(f"{method.upper()} {url}: expected {expected}, got {got} {answer.text}")
    assert failures == []


def test_schema_itself_needs_a_token(tracker: Tracker) -> None:
    assert tracker.client.get("/admin/api/openapi.json").status_code == 401
    assert tracker.get("/openapi.json", token=tracker.tokens.read).status_code == 200


def test_expired_token_says_expired(tracker: Tracker) -> None:
    answer = tracker.get("/groups", token=tracker.tokens.expired)
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "AUTH_TOKEN_EXPIRED"
    revoked = tracker.get("/groups", token=tracker.tokens.revoked)
    assert revoked.json()["error"]["code"] == "AUTH_TOKEN_INVALID"


def test_read_only_token_changes_nothing(tracker: Tracker) -> None:
    """A refused resolve leaves the group as it was."""
    group = tracker.store.groups(limit=1).items[0]
    refused = tracker.post(f"/groups/{group.id}/resolve", token=tracker.tokens.read, json={})
    assert refused.status_code == 403
    assert tracker.store.group(group.id).status == "unresolved"  # type: ignore[union-attr]


def test_schema_documents_bearer_auth(tracker: Tracker) -> None:
    schema = tracker.get("/openapi.json").json()
    assert schema["components"]["securitySchemes"]["token"]["scheme"] == "bearer"
    groups = schema["paths"]["/admin/api/groups"]["get"]
    assert {"token": []} in groups["security"]


def test_credentials_are_checked_before_the_body(tracker: Tracker) -> None:
    """A request with a bad body learns nothing about the schema without the right role."""
    bad = {"action": "explode", "ids": "not a list"}
    anonymous = tracker.client.post("/admin/api/groups/bulk", json=bad)
    assert anonymous.status_code == 401
    read = tracker.post("/groups/bulk", token=tracker.tokens.read, json=bad)
    assert read.status_code == 403
    admin = tracker.post("/groups/bulk", json=bad)
    assert admin.status_code == 422
    assert admin.json()["error"]["code"] == "VALIDATION_ERROR"


def test_each_refusal_is_a_security_event(
    tracker: Tracker, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errorkit.server.auth

    events: list[tuple[str, dict[str, Any]]] = []

    def record(event_type: str, message: str, **fields: Any) -> None:
        events.append((event_type, fields))

    monkeypatch.setattr(errorkit.server.auth, "log_security_event", record)
    tracker.get("/groups", token=tracker.tokens.expired)
    tracker.get("/groups", token=tracker.tokens.revoked)
    tracker.get("/groups", token="ekt_guess")
    tracker.post("/breakers/reset-all", token=tracker.tokens.read)
    tracker.get("/groups", token=tracker.tokens.admin)  # accepted: no event
    assert [(kind, f.get("reason")) for kind, f in events] == [
        ("api_token_refused", "expired"),
        ("api_token_refused", "revoked"),
        ("api_token_refused", "unknown"),
        ("api_permission_denied", None),
    ]
    assert events[3][1]["path"] == "/admin/api/breakers/reset-all"
    assert events[3][1]["token_name"] == "viewer"
    assert all(tracker.tokens.expired not in str(f) for _, f in events)


def test_security_event_without_structlog_goes_to_the_stdlib_logger(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Without the logging extra the event still reaches the ``errorkit.security`` logger."""
    import sys

    from errorkit.server.auth import log_security_event

    monkeypatch.setitem(sys.modules, "errorkit.observe.logging", None)
    with caplog.at_level("WARNING", logger="errorkit.security"):
        log_security_event("api_token_refused", "tracker API token refused", reason="expired")
    (record,) = [r for r in caplog.records if r.name == "errorkit.security"]
    assert record.security_event == "api_token_refused"  # type: ignore[attr-defined]
    assert record.reason == "expired"  # type: ignore[attr-defined]
    assert "tracker API token refused" in record.getMessage()


def test_last_use_is_recorded_and_a_failed_record_refuses_nothing(
    tracker: Tracker, monkeypatch: pytest.MonkeyPatch
) -> None:
    from errorkit.store import StoreError
    from errorkit.store.tokens import TokenStore

    def named(name: str) -> Any:
        return next(t for t in TokenStore(tracker.store).list() if t.name == name)

    assert named("viewer").last_used_at is None
    assert tracker.get("/groups", token=tracker.tokens.read).status_code == 200
    assert named("viewer").last_used_at is not None

    def busy(self: TokenStore, token_id: int) -> None:
        raise StoreError("database is locked")

    monkeypatch.setattr(TokenStore, "touch", busy)
    fresh = TokenStore(tracker.store).create(role="read", name="fresh").secret
    assert tracker.get("/groups", token=fresh).status_code == 200
