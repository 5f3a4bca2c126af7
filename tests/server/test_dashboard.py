"""The dashboard without a browser: login and its cookie, CSRF, login limiting, read-only
viewers, and the pages on a seeded store of each backend."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient
from tests.server.conftest import Seeded, Tokens, breakers, make_tokens, seed

from errorkit.cli import cli
from errorkit.observe.health import HealthRegistry
from errorkit.resilience.registry import BreakerRegistry
from errorkit.server import create_app
from errorkit.server.sessions import LoginLimiter
from errorkit.store import ErrorStore, open_store
from errorkit.store.tokens import TokenStore
from errorkit.store.users import UserStore

PASSWORD = "correct horse battery"


@dataclass
class Board:
    app: Any
    store: ErrorStore
    seeded: Seeded
    tokens: Tokens
    breakers: BreakerRegistry
    events: list[tuple[str, dict[str, Any]]]

    def client(self, https: bool = False) -> TestClient:
        base = "https://testserver" if https else "http://testserver"
        return TestClient(self.app, base_url=base, raise_server_exceptions=True)


@pytest.fixture
def board(store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Board]:
    events: list[tuple[str, dict[str, Any]]] = []

    def record(event_type: str, message: str, **fields: Any) -> None:
        events.append((event_type, fields))

    monkeypatch.setattr("errorkit.server.dashboard.log_security_event", record)
    seeded = seed(store_url, tmp_path / "spool")
    store = open_store(store_url)
    tokens = make_tokens(store)
    users = UserStore(store)
    users.add("ana", PASSWORD, role="admin")
    users.add("vic", PASSWORD, role="read")
    registry = breakers()
    health = HealthRegistry(breaker_source=registry.statuses, error_source=None)
    app = create_app(store=store, breakers=registry, health=health, login_limiter=LoginLimiter())
    yield Board(app, store, seeded, tokens, registry, events)
    store.close()


def nonce(client: TestClient) -> str:
    page = client.get("/admin/login")
    assert page.status_code == 200
    found = re.search(r'name="nonce" value="([^"]+)"', page.text)
    assert found is not None
    return found.group(1)


def login(client: TestClient, **fields: str) -> Any:
    return client.post(
        "/admin/login", data={"nonce": nonce(client), **fields}, follow_redirects=False
    )


def csrf(client: TestClient, path: str = "/admin/") -> str:
    page = client.get(path)
    assert page.status_code == 200, page.text
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found is not None
    return found.group(1)


def boom_group(board: Board) -> int:
    found = board.store.get(board.seeded.boom_ids[0])
    assert found is not None
    group = board.store.group(found.fingerprint)
    assert group is not None
    return group.id


def test_pages_need_a_session(board: Board) -> None:
    with board.client() as client:
        pages = ("/admin/", "/admin/stats", "/admin/breakers", "/admin/health", "/admin/find")
        for path in (*pages, "/admin/alerts"):
            answer = client.get(path, follow_redirects=False)
            assert answer.status_code == 303, path
            assert answer.headers["location"].startswith("/admin/login?next=")
        assert client.get("/admin/fragments/issues").status_code == 401
        assert client.post("/admin/breakers/reset-all").status_code == 401


def test_user_login_sets_a_signed_httponly_lax_cookie(board: Board) -> None:
    with board.client() as client:
        answer = login(client, username="ana", password=PASSWORD, next="/admin/stats")
        assert answer.status_code == 303
        assert answer.headers["location"] == "/admin/stats"
        cookie = next(
            c for c in answer.headers.get_list("set-cookie") if c.startswith("errorkit_session=")
        )
        flags = [part.strip().lower() for part in cookie.split(";")]
        assert "httponly" in flags
        assert "samesite=lax" in flags
        assert "secure" not in flags  # plain http: a Secure cookie would never come back
        page = client.get("/admin/")
        assert page.status_code == 200
        assert "boom 2" in page.text or "Boom" in page.text


def test_cookie_is_secure_under_https(board: Board) -> None:
    with board.client(https=True) as client:
        answer = login(client, username="ana", password=PASSWORD)
        cookie = next(
            c for c in answer.headers.get_list("set-cookie") if c.startswith("errorkit_session=")
        )
        assert "secure" in [part.strip().lower() for part in cookie.split(";")]


def test_a_forged_or_tampered_cookie_is_no_session(board: Board) -> None:
    with board.client() as client:
        login(client, username="ana", password=PASSWORD)
        value = client.cookies["errorkit_session"]
        body, mac = value.split(".")
        client.cookies.set("errorkit_session", body + "." + mac[::-1], path="/admin/")
        assert client.get("/admin/", follow_redirects=False).status_code == 303


def test_token_login_and_revoking_the_token_ends_the_session(board: Board) -> None:
    with board.client() as client:
        assert login(client, token=board.tokens.admin).status_code == 303
        assert client.get("/admin/").status_code == 200
        tokens = TokenStore(board.store)
        made = next(t for t in tokens.list() if t.name == "ops")
        tokens.revoke(made.id)
        assert client.get("/admin/", follow_redirects=False).status_code == 303


def test_removing_a_user_ends_their_session(board: Board) -> None:
    with board.client() as client:
        login(client, username="vic", password=PASSWORD)
        assert client.get("/admin/").status_code == 200
        UserStore(board.store).remove("vic")
        assert client.get("/admin/", follow_redirects=False).status_code == 303


@pytest.mark.parametrize("which", ["expired", "revoked"])
def test_refused_tokens_do_not_log_in(board: Board, which: str) -> None:
    with board.client() as client:
        answer = login(client, token=getattr(board.tokens, which))
        assert answer.status_code == 401
        assert "errorkit_session" not in client.cookies
    assert board.events[-1][0] == "dashboard_login_failed"
    assert board.events[-1][1]["reason"] == f"token {which}"


def test_login_without_its_form_nonce_is_refused(board: Board) -> None:
    with board.client() as client:
        answer = client.post(
            "/admin/login", data={"username": "ana", "password": PASSWORD}, follow_redirects=False
        )
        assert answer.status_code == 403
        assert "errorkit_session" not in client.cookies


def test_failed_logins_are_limited_and_each_is_logged(board: Board) -> None:
    with board.client() as client:
        for _ in range(5):
            assert login(client, username="ana", password="wrong password").status_code == 401
        # The sixth try is refused even with the right password.
        limited = login(client, username="ana", password=PASSWORD)
        assert limited.status_code == 429
        assert "errorkit_session" not in client.cookies
        # Another user from the same address is not held back.
        assert login(client, username="vic", password=PASSWORD).status_code == 303
    failed = [fields for kind, fields in board.events if kind == "dashboard_login_failed"]
    assert len(failed) == 5
    assert all(f["who"] == "user:ana" and f["ip_address"] for f in failed)
    assert [f["failures"] for f in failed] == [1, 2, 3, 4, 5]
    assert any(kind == "dashboard_login_limited" for kind, _ in board.events)
    assert all(PASSWORD not in repr(fields) for _, fields in board.events)


def test_state_changing_forms_are_refused_without_their_csrf_token(board: Board) -> None:
    group_id = boom_group(board)
    with board.client() as client:
        login(client, username="ana", password=PASSWORD)
        token = csrf(client)
        for data in ({}, {"csrf": "not-the-token"}):
            refused = client.post(f"/admin/issues/{group_id}/resolve", data=data)
            assert refused.status_code == 403
            assert client.post("/admin/breakers/payments/reset", data=data).status_code == 403
            assert (
                client.post("/admin/issues/bulk", data={**data, "ids": [str(group_id)]}).status_code
                == 403
            )
        group = board.store.group(group_id)
        assert group is not None
        assert group.status == "unresolved"
        assert str(board.breakers.get("payments").status().state) == "open"  # type: ignore[union-attr]
        done = client.post(
            f"/admin/issues/{group_id}/resolve",
            data={"csrf": token, "notes": "fixed in 1.0.1"},
            follow_redirects=False,
        )
        assert done.status_code == 303
    group = board.store.group(group_id)
    assert group is not None
    assert group.status == "resolved"
    assert group.notes == "fixed in 1.0.1"
    assert any(kind == "dashboard_csrf_refused" for kind, _ in board.events)


@pytest.mark.parametrize("how", ["user", "token"])
def test_read_only_viewers_cannot_change_anything(board: Board, how: str) -> None:
    group_id = boom_group(board)
    with board.client() as client:
        if how == "user":
            login(client, username="vic", password=PASSWORD)
        else:
            login(client, token=board.tokens.read)
        listing = client.get("/admin/")
        assert listing.status_code == 200
        assert "Resolve selected" not in listing.text
        issue = client.get(f"/admin/issues/{group_id}")
        assert ">Resolve</button>" not in issue.text
        assert "Reset" not in client.get("/admin/breakers").text
        token = csrf(client)
        posts = [
            (f"/admin/issues/{group_id}/resolve", {}),
            (f"/admin/issues/{group_id}/ignore", {}),
            ("/admin/issues/bulk", {"ids": [str(group_id)], "action": "resolve"}),
            ("/admin/breakers/payments/reset", {}),
            ("/admin/breakers/reset-all", {}),
        ]
        for path, data in posts:
            assert client.post(path, data={"csrf": token, **data}).status_code == 403, path
    group = board.store.group(group_id)
    assert group is not None
    assert group.status == "unresolved"
    assert str(board.breakers.get("payments").status().state) == "open"  # type: ignore[union-attr]


def test_lists_filters_and_escapes_messages(board: Board) -> None:
    with board.client() as client:
        login(client, username="ana", password=PASSWORD)
        page = client.get("/admin/")
        assert "database is down: &lt;script&gt;alert(" in page.text
        assert "<script>alert" not in page.text
        assert page.text.count('class="issue ') == 3
        assert '<svg class="spark"' in page.text
        only_worker = client.get("/admin/", params={"service": "worker"})
        assert only_worker.text.count('class="issue ') == 1
        assert "KeyError" in only_worker.text
        searched = client.get("/admin/fragments/issues", params={"q": "database"})
        assert searched.text.count('class="issue ') == 1
        assert page.headers["content-security-policy"].startswith("default-src 'none'")


def test_issue_page_shows_the_trace_with_app_frames_first(board: Board) -> None:
    group_id = boom_group(board)
    with board.client() as client:
        login(client, username="ana", password=PASSWORD)
        page = client.get(f"/admin/issues/{group_id}")
        assert page.status_code == 200
        assert '<ol class="frames app">' in page.text
        assert "_raise" in page.text
        assert "/api/chat" in page.text
        assert '<svg class="columns"' in page.text
        assert page.text.count("<tr") >= 4  # the three occurrences and a header


def test_find_an_error_id(board: Board) -> None:
    wanted = board.seeded.db_ids[1]
    with board.client() as client:
        login(client, username="ana", password=PASSWORD)
        found = client.get("/admin/find", params={"error_id": f" {wanted} "})
        assert found.status_code == 200
        shown = rf'class="current">\s*<td><a href="/admin/issues/\d+\?error_id={wanted}"'
        assert re.search(shown, found.text)
        assert f"Event <code>{wanted}</code>" in found.text
        missing = client.get("/admin/find", params={"error_id": "<img src=x onerror=alert(1)>"})
        assert missing.status_code == 404
        assert "<img src=x" not in missing.text
        assert "&lt;img src=x onerror=alert(1)&gt;" in missing.text


def test_bulk_resolve_and_breaker_reset(board: Board) -> None:
    with board.client() as client:
        login(client, username="ana", password=PASSWORD)
        token = csrf(client)
        ids = [str(g.id) for g in board.store.groups(service="api").items]
        done = client.post(
            "/admin/issues/bulk",
            data={"csrf": token, "ids": ids, "action": "resolve", "next": "/admin/?status=all"},
            follow_redirects=False,
        )
        assert done.status_code == 303
        assert done.headers["location"] == "/admin/?status=all"
        reset = client.post(
            "/admin/breakers/payments/reset", data={"csrf": token}, follow_redirects=False
        )
        assert reset.status_code == 303
    assert {g.status for g in board.store.groups(service="api").items} == {"resolved"}
    assert str(board.breakers.get("payments").status().state) == "closed"  # type: ignore[union-attr]


def test_a_redirect_after_login_stays_on_the_dashboard(board: Board) -> None:
    with board.client() as client:
        answer = login(client, username="ana", password=PASSWORD, next="https://evil.example/")
        assert answer.headers["location"] == "/admin/"


def test_stats_and_health_pages(board: Board) -> None:
    with board.client() as client:
        login(client, username="ana", password=PASSWORD)
        stats = client.get("/admin/stats", params={"window": "7d"})
        assert stats.status_code == 200
        assert "6</strong> stored errors" in stats.text
        health = client.get("/admin/health")
        assert health.status_code == 200
        assert "payments" in health.text


# -- users --------------------------------------------------------------------------


def test_users_commands(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'users.db'}"
    runner = CliRunner()
    added = runner.invoke(
        cli, ["users", "add", "ana", "--role", "admin", "--password-stdin", "--store", url],
        input=PASSWORD + "\n",
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    short = runner.invoke(
        cli, ["users", "add", "bob", "--password-stdin", "--store", url], input="short\n"
    )
    assert short.exit_code == 2
    assert "at least" in short.output
    again = runner.invoke(
        cli, ["users", "add", "ana", "--password-stdin", "--store", url], input=PASSWORD + "\n"
    )
    assert again.exit_code == 2
    listed = runner.invoke(cli, ["users", "list", "--json", "--store", url])
    assert listed.exit_code == 0
    assert '"name": "ana"' in listed.output
    assert "password" not in listed.output
    with open_store(url) as store:
        assert UserStore(store).verify("ana", PASSWORD) is not None
        assert UserStore(store).verify("ana", "wrong password") is None
        hashed = store.engine.connect().exec_driver_sql("SELECT password_hash FROM users")
        assert next(iter(hashed))[0].startswith("$argon2id$")
    removed = runner.invoke(cli, ["users", "remove", "ana", "--store", url])
    assert removed.exit_code == 0
    assert runner.invoke(cli, ["users", "remove", "ana", "--store", url]).exit_code == 1


def test_opening_the_user_store_hashes_nothing_until_a_login_is_checked(tmp_path: Path) -> None:
    """The decoy hash (checked against for an unknown name, so both answers take as long)
    is made at the first check, known name or not: every server process opens a user
    store, and an argon2 hash takes 64 MiB while it runs."""
    with open_store(f"sqlite:///{tmp_path / 'users.db'}") as store:
        users = UserStore(store)
        assert users._decoy_hash is None
        made: list[str] = []
        hasher = users._hash

        class Counting:
            def hash(self, password: str) -> str:
                made.append(password)
                return str(hasher.hash(password))

            def __getattr__(self, name: str) -> object:
                return getattr(hasher, name)

        users._hash = Counting()
        assert made == []
        assert users.verify("nobody", "whatever password") is None
        assert made == ["errorkit decoy password"]
        assert users.verify("nobody", "whatever password") is None
        assert made == ["errorkit decoy password"]  # made once
