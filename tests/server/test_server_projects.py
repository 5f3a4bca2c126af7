"""The project routes: projects and DSN keys made and listed, a key revoked, outcome
counters read, and bad input answered in errorkit's envelope."""

from __future__ import annotations

import pytest
from tests.server.conftest import Tracker

from errorkit.store.projects import KeyRefused, Outcome, ProjectStore


def test_project_keys_and_revocation(tracker: Tracker) -> None:
    """A key made through the API has a DSN on the request's address, or the one given."""
    made = tracker.post("/projects", json={"name": "shop"})
    assert made.status_code == 201, made.text
    project = made.json()
    assert tracker.get("/projects", token=tracker.tokens.read).json()["items"] == [project]

    key = tracker.post(f"/projects/{project['id']}/keys", json={"label": "prod"})
    assert key.status_code == 201, key.text
    answer = key.json()
    assert answer["dsn"] == f"http://{answer['public_key']}@testserver/{project['id']}"
    assert (answer["label"], answer["state"], answer["rate_limit"]) == ("prod", "active", None)
    given = tracker.post(
        "/projects/shop/keys",
        json={"rate_limit": 120, "base_url": "https://errors.example.com/t"},
    ).json()
    assert given["dsn"].startswith(f"https://{given['public_key']}@errors.example.com/t/")
    assert given["rate_limit"] == 120

    listed = tracker.get("/projects/shop/keys", token=tracker.tokens.read).json()["items"]
    assert [k["id"] for k in listed] == [answer["id"], given["id"]]
    revoked = tracker.post(f"/keys/{answer['public_key']}/revoke")
    assert revoked.status_code == 200
    assert revoked.json()["state"] == "revoked"
    with pytest.raises(KeyRefused) as refused:
        ProjectStore(tracker.store).authenticate(project["id"], answer["public_key"])
    assert refused.value.status == 403
    assert tracker.client.app.state.errorkit_projects.list_keys("shop")[0].state() == "revoked"


def test_a_key_revoked_through_the_api_is_refused_by_this_nodes_ingest_at_once(
    tracker: Tracker,
) -> None:
    """The ingest caches what each key is for a few seconds; a revocation through the same
    node's API empties that cache, so the next event with the key is a 403."""
    project = tracker.post("/projects", json={"name": "shop"}).json()
    key = tracker.post(f"/projects/{project['id']}/keys", json={}).json()
    auth = {"X-Sentry-Auth": f"Sentry sentry_key={key['public_key']}, sentry_version=7"}
    event = {"message": "cart abandoned", "level": "error"}
    path = f"/api/{project['id']}/store/"
    assert tracker.client.post(path, json=event, headers=auth).status_code == 200  # cached
    assert tracker.post(f"/keys/{key['id']}/revoke").status_code == 200
    assert tracker.client.post(path, json=event, headers=auth).status_code == 403


def test_outcomes_are_listed_per_project(tracker: Tracker) -> None:
    projects = ProjectStore(tracker.store)
    shop = projects.create_project("shop")
    projects.add_outcomes(
        [
            Outcome(shop.id, "dropped", "transaction", "unsupported_item", 4),
            Outcome(shop.id, "client_report", "error", "queue_overflow", 2),
        ]
    )
    answer = tracker.get("/projects/shop/outcomes", token=tracker.tokens.read).json()
    assert answer["project"]["name"] == "shop"
    assert answer["outcomes"] == [
        {"source": "client_report", "category": "error", "reason": "queue_overflow", "quantity": 2},
        {
            "source": "dropped",
            "category": "transaction",
            "reason": "unsupported_item",
            "quantity": 4,
        },
    ]


def test_bad_input_is_answered_in_the_envelope(tracker: Tracker) -> None:
    """A taken name is 409, a bad name or rate limit 400, an unknown project or key 404."""
    assert tracker.post("/projects", json={"name": "shop"}).status_code == 201
    taken = tracker.post("/projects", json={"name": "shop"})
    assert taken.status_code == 409
    assert "already a project named 'shop'" in taken.json()["error"]["message"]
    bad = tracker.post("/projects", json={"name": "has space"})
    assert bad.status_code == 400
    assert "a project name is 1 to 64" in bad.json()["error"]["message"]
    zero = tracker.post("/projects/shop/keys", json={"rate_limit": 0})
    assert zero.status_code == 400
    assert "rate_limit is events per minute" in zero.json()["error"]["message"]
    url = tracker.post("/projects/shop/keys", json={"base_url": "ftp://x"})
    assert url.status_code == 400
    assert tracker.get("/projects/shop/keys").json()["items"] == []
    for path in ("/projects/ghost/keys", "/projects/ghost/outcomes"):
        missing = tracker.get(path)
        assert missing.status_code == 404
        assert "in the store at" not in missing.json()["error"]["message"]
    assert tracker.post("/keys/999/revoke").status_code == 404
    assert tracker.post("/keys/ghost/revoke").status_code == 400
