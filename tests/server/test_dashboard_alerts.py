"""The dashboard's alerts page: rules listed, added and deleted through the same code as the
alerts API, CSRF and the admin role on every change, escaping, and the group link alert
notifications carry."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient
from tests.server.conftest import Seeded, seed

from errorkit.alerts import AlertManager
from errorkit.server import create_app
from errorkit.server.sessions import LoginLimiter
from errorkit.store import ErrorStore, open_store
from errorkit.store.tokens import TokenStore
from errorkit.store.users import UserStore

PASSWORD = "correct horse battery"
RULE = 'name = "disk-full"\nkind = "critical"\ncodes = ["DISK_FULL"]\nwindow = "5m"\n'


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'errors.db'}"


@pytest.fixture
def setup(store_url: str, tmp_path: Path) -> Iterator[tuple[TestClient, ErrorStore, Seeded, str]]:
    seeded = seed(store_url, tmp_path / "spool")
    store = open_store(store_url)
    users = UserStore(store)
    users.add("ana", PASSWORD, role="admin")
    users.add("vic", PASSWORD, role="read")
    admin = TokenStore(store).create(role="admin", name="ops").secret
    app = create_app(store=store, login_limiter=LoginLimiter())
    with TestClient(app) as client:
        yield client, store, seeded, admin
    store.close()


def login(client: TestClient, name: str) -> str:
    page = client.get("/admin/login")
    found = re.search(r'name="nonce" value="([^"]+)"', page.text)
    assert found is not None
    answer = client.post(
        "/admin/login",
        data={"nonce": found.group(1), "username": name, "password": PASSWORD},
        follow_redirects=False,
    )
    assert answer.status_code == 303
    page = client.get("/admin/alerts")
    assert page.status_code == 200
    token = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert token is not None
    return token.group(1)


def api_rules(client: TestClient, admin: str) -> list[str]:
    answer = client.get("/admin/api/alerts/rules", headers={"Authorization": f"Bearer {admin}"})
    assert answer.status_code == 200
    return [rule["name"] for rule in answer.json()["rules"]]


def test_admin_adds_lists_and_deletes_a_rule(
    setup: tuple[TestClient, ErrorStore, Seeded, str],
) -> None:
    client, _store, _seeded, admin = setup
    csrf = login(client, "ana")
    assert 'href="/admin/alerts"' in client.get("/admin/").text
    added = client.post(
        "/admin/alerts/rules", data={"csrf": csrf, "rule": RULE}, follow_redirects=False
    )
    assert added.status_code == 303
    assert api_rules(client, admin) == ["disk-full"]
    page = client.get("/admin/alerts")
    assert 'data-name="disk-full"' in page.text
    deleted = client.post(
        "/admin/alerts/rules/disk-full/delete", data={"csrf": csrf}, follow_redirects=False
    )
    assert deleted.status_code == 303
    assert api_rules(client, admin) == []


def test_a_form_without_csrf_is_refused(setup: tuple[TestClient, ErrorStore, Seeded, str]) -> None:
    client, _store, _seeded, admin = setup
    login(client, "ana")
    answer = client.post("/admin/alerts/rules", data={"rule": RULE})
    assert answer.status_code == 403
    assert api_rules(client, admin) == []


def test_a_bad_rule_shows_the_field(setup: tuple[TestClient, ErrorStore, Seeded, str]) -> None:
    client, _store, _seeded, admin = setup
    csrf = login(client, "ana")
    bad = 'name = "r"\nkind = "repeat"\nwindow = "-5m"\n'
    answer = client.post("/admin/alerts/rules", data={"csrf": csrf, "rule": bad})
    assert answer.status_code == 400
    assert re.search(r'class="error"[^>]*>[^<]*window', answer.text)
    assert api_rules(client, admin) == []


def test_a_read_only_user_sees_no_forms_and_cannot_post(
    setup: tuple[TestClient, ErrorStore, Seeded, str],
) -> None:
    client, _store, _seeded, admin = setup
    csrf = login(client, "vic")
    page = client.get("/admin/alerts")
    assert 'action="/admin/alerts/rules"' not in page.text
    answer = client.post("/admin/alerts/rules", data={"csrf": csrf, "rule": RULE})
    assert answer.status_code == 403
    assert client.post("/admin/alerts/test", data={"csrf": csrf}).status_code == 403
    assert api_rules(client, admin) == []


def test_a_rule_name_is_escaped(setup: tuple[TestClient, ErrorStore, Seeded, str]) -> None:
    # The parser refuses such a name; the page echoes it in the error and the form.
    client, _store, _seeded, admin = setup
    csrf = login(client, "ana")
    rule = 'name = "<script>alert(1)</script>"\nkind = "new_group"\n'
    page = client.post("/admin/alerts/rules", data={"csrf": csrf, "rule": rule})
    assert page.status_code == 400
    assert "<script>alert(1)</script>" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert "rule name" in page.text
    assert api_rules(client, admin) == []


def test_send_a_test_lands_in_the_history(
    setup: tuple[TestClient, ErrorStore, Seeded, str],
) -> None:
    client, _store, _seeded, _admin = setup
    csrf = login(client, "ana")
    answer = client.post("/admin/alerts/test", data={"csrf": csrf})
    assert answer.status_code == 200
    assert "Test sent" in answer.text
    assert "<td>test</td>" in client.get("/admin/alerts").text


def test_the_notification_link_opens_the_issue_page(
    setup: tuple[TestClient, ErrorStore, Seeded, str],
) -> None:
    client, store, seeded, _admin = setup
    login(client, "ana")
    found = store.get(seeded.boom_ids[0])
    assert found is not None
    group = store.group(found.fingerprint)
    assert group is not None
    link = AlertManager(store, [], [], base_url="http://testserver/admin")._link(found.fingerprint)
    assert link == f"http://testserver/admin/groups/{found.fingerprint}"
    answer = client.get(link, follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == f"/admin/issues/{group.id}"
    assert client.get(link).status_code == 200
    assert client.get("/admin/groups/nope").status_code == 404
