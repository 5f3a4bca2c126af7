"""The tracker's JSON API on SQLite and PostgreSQL, over errors written by capture."""

from __future__ import annotations

import csv
import io
import json

import pytest
from tests.server.conftest import Tracker

from errorkit.observe.health import HealthRegistry


def test_groups_list_filters_and_sorts(tracker: Tracker) -> None:
    answer = tracker.get("/groups")
    assert answer.status_code == 200
    body = answer.json()
    assert body["total"] == 3
    titles = {g["title"].split(":")[0]: g for g in body["items"]}
    assert set(titles) == {"Boom", "DbDown", "KeyError"}
    assert titles["Boom"]["count"] == 3

    def fingerprints(**params: object) -> list[str]:
        page = tracker.get("/groups", params=params).json()
        return sorted(g["title"].split(":")[0] for g in page["items"])

    assert fingerprints(severity="critical") == ["DbDown"]
    assert fingerprints(service="worker") == ["KeyError"]
    assert fingerprints(release="1.0.0") == ["Boom", "DbDown"]
    assert fingerprints(endpoint="/api/orders") == ["DbDown"]
    assert fingerprints(q="boom") == ["Boom"]
    assert fingerprints(environment="prod") == ["Boom", "DbDown", "KeyError"]
    assert fingerprints(environment="staging") == []
    assert fingerprints(status="unresolved") == ["Boom", "DbDown", "KeyError"]
    assert fingerprints(since="1h") == ["Boom", "DbDown", "KeyError"]
    assert fingerprints(until="2000-01-01") == []
    code = titles["DbDown"]["error_code"]
    assert fingerprints(code=code) == ["DbDown"] or code == titles["Boom"]["error_code"]
    by_count = tracker.get("/groups", params={"sort": "count"}).json()["items"]
    assert by_count[0]["title"].startswith("Boom")
    ascending = tracker.get("/groups", params={"sort": "count", "order": "asc"}).json()
    assert [g["count"] for g in ascending["items"]] == [1, 2, 3]


def test_groups_page_by_cursor(tracker: Tracker) -> None:
    seen: list[int] = []
    cursor = None
    while True:
        params: dict[str, object] = {"limit": 1, "sort": "first_seen"}
        if cursor:
            params["cursor"] = cursor
        page = tracker.get("/groups", params=params).json()
        seen.extend(g["id"] for g in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    everything = tracker.get("/groups", params={"sort": "first_seen"}).json()["items"]
    assert seen == [g["id"] for g in everything]
    assert len(seen) == 3


def test_group_detail_occurrences_and_triage(tracker: Tracker) -> None:
    group = tracker.get("/groups", params={"q": "boom"}).json()["items"][0]
    detail = tracker.get(f"/groups/{group['id']}").json()
    assert detail["group"]["fingerprint"] == group["fingerprint"]
    assert detail["latest"]["error_id"] == tracker.seeded.boom_ids[-1]
    by_fingerprint = tracker.get(f"/groups/{group['fingerprint']}").json()
    assert by_fingerprint["group"]["id"] == group["id"]
    occurrences = tracker.get(f"/groups/{group['id']}/occurrences", params={"limit": 2}).json()
    assert [o["error_id"] for o in occurrences["items"]] == tracker.seeded.boom_ids[:0:-1]
    assert occurrences["total"] == 3
    rest = tracker.get(
        f"/groups/{group['id']}/occurrences", params={"cursor": occurrences["next_cursor"]}
    ).json()
    assert [o["error_id"] for o in rest["items"]] == tracker.seeded.boom_ids[:1]

    resolved = tracker.post(f"/groups/{group['id']}/resolve", json={"notes": "fixed in 1.0.1"})
    assert resolved.status_code == 200
    assert resolved.json()["status"] == "resolved"
    assert resolved.json()["notes"] == "fixed in 1.0.1"
    assert tracker.store.get(tracker.seeded.boom_ids[0]).resolved  # type: ignore[union-attr]
    reopened = tracker.post(f"/groups/{group['id']}/unresolve").json()
    assert reopened["status"] == "unresolved"
    ignored = tracker.post(f"/groups/{group['id']}/ignore", json={"notes": "noise"}).json()
    assert ignored["status"] == "ignored"
    assert tracker.store.group(group["id"]).status == "ignored"  # type: ignore[union-attr]
    missing = tracker.get("/groups/999999")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "NOT_FOUND"


def test_bulk_resolve_by_ids_and_by_filter(tracker: Tracker) -> None:
    groups = tracker.get("/groups").json()["items"]
    ids = {g["title"].split(":")[0]: g["id"] for g in groups}
    by_ids = tracker.post(
        "/groups/bulk", json={"ids": [ids["Boom"], 424242], "notes": "release 1.1"}
    ).json()
    assert by_ids == {"action": "resolve", "changed": [ids["Boom"]], "not_found": ["424242"]}
    by_filter = tracker.post(
        "/groups/bulk", json={"action": "ignore", "filter": {"service": "worker"}}
    ).json()
    assert by_filter["changed"] == [ids["KeyError"]]
    statuses = {g["id"]: g["status"] for g in tracker.get("/groups").json()["items"]}
    assert statuses == {
        ids["Boom"]: "resolved",
        ids["DbDown"]: "unresolved",
        ids["KeyError"]: "ignored",
    }
    neither = tracker.post("/groups/bulk", json={"action": "resolve"})
    assert neither.status_code == 400
    assert "either ids or filter" in neither.json()["error"]["message"]


def test_errors_list_detail_lookup_and_resolve(tracker: Tracker) -> None:
    listed = tracker.get("/errors", params={"severity": "critical"}).json()
    assert {e["error_id"] for e in listed["items"]} == set(tracker.seeded.db_ids)
    assert listed["total"] == 2
    by_request = tracker.get("/errors", params={"request": "req-boom-1"}).json()["items"]
    assert [e["error_id"] for e in by_request] == [tracker.seeded.boom_ids[1]]
    assert tracker.get("/errors", params={"service": "worker"}).json()["total"] == 1
    assert tracker.get("/errors", params={"q": "database is down"}).json()["total"] == 2

    error_id = tracker.seeded.db_ids[0]
    detail = tracker.get(f"/errors/{error_id}").json()
    assert detail["kind"] == "error"
    assert detail["error"]["error_id"] == error_id
    assert detail["error"]["endpoint"] == "/api/orders"
    assert detail["group"]["count"] == 2
    # the message is returned as data, never rendered: JSON keeps it as it was stored
    assert "<script>" in detail["error"]["error_message"]
    looked_up = tracker.get(f"/lookup/{error_id}").json()
    assert looked_up["error"]["error_id"] == error_id
    assert tracker.get("/lookup/not-an-id").status_code == 404

    resolved = tracker.post(f"/errors/{error_id}/resolve", json={"notes": "retried"}).json()
    assert resolved["resolved"] is True
    assert resolved["notes"] == "retried"
    assert (
        tracker.get("/errors", params={"resolved": "false", "severity": "critical"}).json()["total"]
        == 1
    )
    unknown = tracker.post("/errors/nope/resolve")
    assert unknown.status_code == 404
    assert unknown.json()["error"]["message"] == "no stored error has error_id 'nope'"
    assert "store at" not in unknown.text


def test_stats_by_every_dimension(tracker: Tracker) -> None:
    stats = tracker.get("/stats", params={"since": "1d", "bucket": "hour"}).json()
    assert stats["total"] == 6
    assert stats["by_service"] == {"api": 5, "worker": 1}
    assert stats["by_severity"]["critical"] == 2
    assert stats["by_endpoint"] == {"/api/chat": 3, "/api/orders": 2, "jobs.run": 1}
    assert sum(stats["by_type"].values()) == 6
    assert sum(stats["by_code"].values()) == 6
    assert sum(n for _, n in stats["buckets"]) == 6
    assert tracker.get("/stats", params={"until": "2000-01-01"}).json()["total"] == 0
    worker = tracker.get("/stats", params={"service": "worker"}).json()
    assert worker["total"] == 1
    assert worker["by_endpoint"] == {"jobs.run": 1}
    assert tracker.get("/stats", params={"severity": "critical"}).json()["total"] == 2
    bad = tracker.get("/stats", params={"since": "yesterday"})
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "VALIDATION_INVALID_INPUT"


def test_export_csv_and_jsonl_streamed(tracker: Tracker) -> None:
    with tracker.client.stream(
        "GET", "/admin/api/export", params={"format": "csv"}, headers=tracker.headers()
    ) as answer:
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/csv")
        assert "attachment" in answer.headers["content-disposition"]
        text = "".join(answer.iter_text())
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 6
    assert {r["error_id"] for r in rows} >= set(tracker.seeded.boom_ids)
    jsonl = tracker.get("/export", params={"format": "jsonl", "service": "worker"})
    lines = [json.loads(line) for line in jsonl.text.splitlines()]
    assert [line["error_id"] for line in lines] == [tracker.seeded.worker_id]


def test_retention_cleanup_dry_run_then_real(tracker: Tracker) -> None:
    dry = tracker.post(
        "/retention/cleanup", json={"older_than": "2999-01-01", "dry_run": True}
    ).json()
    assert dry["dry_run"] is True
    assert dry["matched"] == 6
    assert tracker.store.count() == 6
    none = tracker.post("/retention/cleanup", json={"older_than": "30d"}).json()
    assert none["deleted"] == 0
    real = tracker.post("/retention/cleanup", json={"older_than": "2999-01-01"}).json()
    assert real["deleted"] == 6
    assert tracker.store.count() == 0
    # group counts stay exact after their rows are gone
    assert sum(g["count"] for g in tracker.get("/groups").json()["items"]) == 6


def test_breakers_list_reset_one_and_all(tracker: Tracker) -> None:
    listed = tracker.get("/breakers").json()
    states = {b["name"]: b for b in listed["breakers"]}
    assert listed["source"] == "registry"
    assert states["payments"]["state"] == "open"
    assert "payments gateway down" in states["payments"]["last_failure"]["message"]
    assert states["search"]["state"] == "closed"
    reset = tracker.post("/breakers/payments/reset").json()
    assert reset == {"name": "payments", "was": "open", "state": "closed"}
    assert str(tracker.breakers.status("payments").state) == "closed"
    assert tracker.post("/breakers/nope/reset").status_code == 404
    assert tracker.post("/breakers/reset-all").json() == {
        "reset": {"payments": "closed", "search": "closed"}
    }


def test_health_basic_detailed_and_live(tracker: Tracker) -> None:
    live = tracker.client.get("/admin/api/health/live")
    assert live.status_code == 200
    assert live.json()["status"] == "healthy"
    basic = tracker.get("/health")
    assert basic.status_code == 200
    detailed = tracker.get("/health/detailed").json()
    assert set(detailed["breakers"]) == {"payments", "search"}


def test_whoami_never_shows_the_token(tracker: Tracker) -> None:
    me = tracker.get("/auth/me", token=tracker.tokens.read)
    assert me.status_code == 200
    assert me.json()["role"] == "read"
    assert me.json()["name"] == "viewer"
    assert tracker.tokens.read not in me.text


def test_breakers_shared_through_redis(store_url: str) -> None:
    """With a RedisBackend the tracker lists and resets the state every app process shares."""
    import uuid

    from starlette.testclient import TestClient
    from tests._services import require_redis
    from tests.server.conftest import failing, make_tokens

    from errorkit.resilience.breaker_redis import RedisBackend
    from errorkit.resilience.registry import BreakerRegistry
    from errorkit.server import create_app
    from errorkit.store import open_store

    backend = RedisBackend(require_redis(), namespace=f"tracker-{uuid.uuid4().hex[:8]}")
    app_side = BreakerRegistry(backend=backend)
    breaker = app_side.circuit_breaker("ledger", failure_threshold=1, recovery_timeout=600)
    with pytest.raises(ConnectionError):
        breaker.call(failing)
    with open_store(store_url) as store:
        token = make_tokens(store).admin
        headers = {"Authorization": f"Bearer {token}"}
        tracker_side = RedisBackend(backend.url or "", namespace=backend.namespace)
        client = TestClient(create_app(store=store, breakers=tracker_side))
        listed = client.get("/admin/api/breakers", headers=headers).json()
        assert listed["source"] == "redis"
        assert [(b["name"], b["state"]) for b in listed["breakers"]] == [("ledger", "open")]
        reset = client.post("/admin/api/breakers/ledger/reset", headers=headers).json()
        assert reset["was"] == "open"
        assert str(breaker.status().state) == "closed"
        assert client.post("/admin/api/breakers/other/reset", headers=headers).status_code == 404
    for name in backend.breaker_names():
        backend.reset_breaker(name)
    backend.close()
    tracker_side.close()


def test_default_health_is_the_trackers_own(tracker: Tracker) -> None:
    """Without health=, the tracker reports its store (a critical check), the errors in it
    and the breakers it shows."""
    from starlette.testclient import TestClient

    from errorkit.server import create_app

    app = create_app(store=tracker.store, breakers=tracker.breakers)
    client = TestClient(app)
    detailed = client.get("/admin/api/health/detailed", headers=tracker.headers()).json()
    assert detailed["components"]["store"]["status"] == "healthy"
    assert detailed["components"]["store"]["critical"] is True
    assert detailed["errors"]["unresolved_count"] == 6
    assert detailed["errors"]["last_error"]["error_id"] == tracker.seeded.worker_id
    assert detailed["breakers"]["payments"]["state"] == "open"
    basic = client.get("/admin/api/health", headers=tracker.headers())
    assert basic.status_code == 200
    assert list(basic.json()["components"]) == ["store"]


def test_store_down_liveness_answers_and_the_rest_is_503() -> None:
    """The process is alive while its database is away; routes that need the store say 503
    in errorkit's envelope (never a 401 that would send people hunting for a new token)."""
    from starlette.testclient import TestClient

    from errorkit.server import create_app

    app = create_app("postgresql+psycopg://errorkit:hunter2@127.0.0.1:1/errors")
    client = TestClient(app, raise_server_exceptions=False)
    assert client.get("/admin/api/health/live").status_code == 200
    answer = client.get("/admin/api/groups", headers={"Authorization": "Bearer ekt_whatever"})
    assert answer.status_code == 503
    assert answer.json()["error"]["code"] == "DATABASE_UNAVAILABLE"
    assert "hunter2" not in answer.text


def test_group_series(tracker: Tracker) -> None:
    group = tracker.get("/groups", params={"q": "boom"}).json()["items"][0]
    series = tracker.get(f"/groups/{group['id']}/series", params={"bucket": "day"}).json()
    assert series["group_id"] == group["id"]
    assert series["total"] == 3
    assert sum(n for _, n in series["buckets"]) == 3
    assert tracker.get("/groups/424242/series").status_code == 404


def test_answers_match_the_documented_shapes(tracker: Tracker) -> None:
    """What the routes return validates against the models the OpenAPI schema shows."""
    from errorkit.server.schemas import ErrorAnswer, ErrorPage, Group, GroupDetail, GroupPage

    group = tracker.get("/groups").json()["items"][0]
    GroupPage.model_validate(tracker.get("/groups").json())
    GroupDetail.model_validate(tracker.get(f"/groups/{group['id']}").json())
    ErrorPage.model_validate(tracker.get(f"/groups/{group['id']}/occurrences").json())
    ErrorPage.model_validate(tracker.get("/errors").json())
    ErrorAnswer.model_validate(tracker.get(f"/errors/{tracker.seeded.worker_id}").json())
    Group.model_validate(tracker.post(f"/groups/{group['id']}/ignore").json())
    schema = tracker.get("/openapi.json").json()
    ok = schema["paths"]["/admin/api/groups"]["get"]["responses"]["200"]
    assert ok["content"]["application/json"]["schema"]["$ref"].endswith("/GroupPage")
    assert schema["components"]["schemas"]["Group"]["properties"]["status"]["enum"] == [
        "unresolved",
        "resolved",
        "ignored",
        "regressed",
    ]


def test_redis_unreachable_is_a_503(tracker: Tracker) -> None:
    from starlette.testclient import TestClient

    from errorkit.resilience.breaker_redis import RedisBackend
    from errorkit.server import create_app

    gone = RedisBackend("redis://:s3cret@127.0.0.1:1/0", socket_timeout=1)
    app = create_app(store=tracker.store, breakers=gone, health=HealthRegistry())
    client = TestClient(app, raise_server_exceptions=False)
    for method, path in (("GET", "/breakers"), ("POST", "/breakers/reset-all")):
        answer = client.request(method, f"/admin/api{path}", headers=tracker.headers())
        assert answer.status_code == 503, answer.text
        assert answer.json()["error"]["code"] == "CACHE_UNAVAILABLE"
        assert "s3cret" not in answer.text
    gone.close()


def test_mounted_inside_another_app(tracker: Tracker) -> None:
    """The tracker is a plain ASGI app: an app can mount it on its own store."""
    from fastapi import FastAPI
    from starlette.testclient import TestClient

    from errorkit.server import create_app

    main = FastAPI()
    main.mount("/ops", create_app(store=tracker.store, breakers=tracker.breakers))
    client = TestClient(main)
    answer = client.get("/ops/admin/api/groups", headers=tracker.headers())
    assert answer.status_code == 200
    assert answer.json()["total"] == 3
    assert client.get("/ops/admin/api/groups").status_code == 401


def test_groups_sorted_by_trend_page_by_cursor(tracker: Tracker) -> None:
    """Every seeded occurrence is in the last 24 h and none before: trend equals count."""
    by_trend = tracker.get("/groups", params={"sort": "trend"}).json()["items"]
    assert [g["count"] for g in by_trend] == [3, 2, 1]
    seen: list[int] = []
    cursor = None
    while True:
        params: dict[str, object] = {"limit": 1, "sort": "trend", "since": "1d"}
        if cursor:
            params["cursor"] = cursor
        page = tracker.get("/groups", params=params).json()
        seen.extend(g["id"] for g in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [g["id"] for g in by_trend]
    other = tracker.get("/groups", params={"sort": "trend", "limit": 1}).json()["next_cursor"]
    refused = tracker.get("/groups", params={"sort": "count", "cursor": other})
    assert refused.status_code == 400


def test_stats_top_new_regressed_groups_and_error_rate(tracker: Tracker) -> None:
    from datetime import UTC, datetime, timedelta

    from errorkit.server.schemas import StatsAnswer
    from errorkit.store import RequestCountRow

    stats = tracker.get("/stats", params={"since": "1d"}).json()
    StatsAnswer.model_validate(stats)
    assert [(g["title"].split(":")[0], g["occurrences"]) for g in stats["top_groups"]] == [
        ("Boom", 3),
        ("DbDown", 2),
        ("KeyError", 1),
    ]
    assert len(stats["new_groups"]) == 3
    assert stats["regressed_groups"] == []
    nobody = tracker.get("/stats", params={"since": "1d", "service": "shop"}).json()
    assert nobody["requests"] is None
    assert nobody["error_rate"] is None
    assert len(tracker.get("/stats", params={"top": 1}).json()["top_groups"]) == 1
    assert tracker.get("/stats", params={"top": 0}).status_code in (400, 422)
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    tracker.store.write_request_counts(
        [
            RequestCountRow(hour, "shop", "/cart", "2xx", 9, "hour", "prod"),
            RequestCountRow(hour, "shop", "/cart", "5xx", 1, "hour", "prod"),
        ]
    )
    stats = tracker.get("/stats", params={"since": "1d", "service": "shop"}).json()
    StatsAnswer.model_validate(stats)
    assert stats["requests"]["total"] == 10
    assert stats["error_rate"] == 0.1
    schema = tracker.get("/openapi.json").json()
    ok = schema["paths"]["/admin/api/stats"]["get"]["responses"]["200"]
    assert ok["content"]["application/json"]["schema"]["$ref"].endswith("/StatsAnswer")
