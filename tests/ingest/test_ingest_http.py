"""The ingest endpoints over real HTTP: DSN-key auth, answers and headers, encodings,
limits, dropped item types and client reports counted, per-key rate limits."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.ingest._wire import (
    compress,
    envelope,
    event,
    event_envelope,
    event_id,
    sentry_auth,
)
from tests.ingest.conftest import Keys, Served, UvicornThread, tracker_app

from errorkit.ingest.limits import IngestLimits
from errorkit.store import ErrorStore
from errorkit.store.projects import ProjectKey, ProjectStore

UNSUPPORTED = "3600:transaction;span;profile;replay:project:errorkit_unsupported"


@pytest.fixture
def client(served: Served) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served.base_url, timeout=30) as http:
        yield http


def _key(keys: Keys, credential: str) -> str | None:
    return {
        "none": None,
        "unknown": "0123456789abcdef0123456789abcdef",
        "revoked": keys.revoked.public_key,
        "other_project": keys.others.public_key,
        "good": keys.good.public_key,
    }[credential]


EXPECTED = {"none": 401, "unknown": 401, "revoked": 403, "other_project": 403, "good": 200}
PLACES = [
    ("envelope", "x-sentry-auth"),
    ("envelope", "authorization"),
    ("envelope", "query"),
    ("envelope", "dsn"),
    ("store", "x-sentry-auth"),
    ("store", "authorization"),
    ("store", "query"),
]


@pytest.mark.parametrize("credential", list(EXPECTED))
def test_ingest_auth_matrix(served: Served, client: httpx.Client, credential: str) -> None:
    """No key or an unknown one: 401; a revoked key or another project's: 403; the
    project's key: 200 and the event is stored, wherever the SDK puts the key."""
    project = served.keys.shop.id
    failures = []
    for route, place in PLACES:
        key = _key(served.keys, credential)
        ev = event()
        headers: dict[str, str] = {}
        params: dict[str, str] = {}
        dsn = None
        if key is not None:
            if place == "x-sentry-auth":
                headers["X-Sentry-Auth"] = sentry_auth(key)
            elif place == "authorization":
                headers["Authorization"] = sentry_auth(key)
            elif place == "query":
                params["sentry_key"] = key
            else:
                dsn = f"http://{key}@127.0.0.1/{project}"
        body = event_envelope(ev, dsn=dsn) if route == "envelope" else json.dumps(ev).encode()
        answer = client.post(
            f"/api/{project}/{route}/", content=body, headers=headers, params=params
        )
        expected = EXPECTED[credential]
        stored = served.store.get(ev["event_id"])
        ok = answer.status_code == expected and (stored is not None) == (expected == 200)
        if expected == 200:
            ok = ok and answer.json() == {"id": ev["event_id"]}
        else:
            ok = ok and bool(answer.json()["detail"]) and answer.json()["error"]["code"]
        if not ok:
            failures.append(f"{route} {place}: {answer.status_code} {answer.text}")
    assert failures == []


def test_every_answer_tells_the_sdk_what_to_stop_sending(
    served: Served, client: httpx.Client
) -> None:
    """200s and refusals alike carry the limit on the item types errorkit drops."""
    project = served.keys.shop.id
    good = client.post(
        f"/api/{project}/envelope/",
        content=event_envelope(event()),
        headers={"X-Sentry-Auth": sentry_auth(served.keys.good.public_key)},
    )
    refused = client.post(f"/api/{project}/envelope/", content=b"{}\n")
    assert good.status_code == 200
    assert refused.status_code == 401
    assert good.headers["x-sentry-rate-limits"] == UNSUPPORTED
    assert refused.headers["x-sentry-rate-limits"] == UNSUPPORTED
    assert good.headers["access-control-allow-origin"] == "*"


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br", "identity"])
def test_compressed_bodies_are_decoded(served: Served, client: httpx.Client, encoding: str) -> None:
    """gzip, deflate, br and identity bodies all land."""
    ev = event(message=f"sent as {encoding}")
    answer = client.post(
        f"/api/{served.keys.shop.id}/envelope/",
        content=compress(event_envelope(ev), encoding),
        headers={
            "X-Sentry-Auth": sentry_auth(served.keys.good.public_key),
            "Content-Encoding": encoding,
        },
    )
    assert answer.status_code == 200, answer.text
    stored = served.store.get(ev["event_id"])
    assert stored is not None
    assert stored.service == "shop"


def test_an_unknown_encoding_is_415(served: Served, client: httpx.Client) -> None:
    answer = client.post(
        f"/api/{served.keys.shop.id}/envelope/",
        content=event_envelope(event()),
        headers={
            "X-Sentry-Auth": sentry_auth(served.keys.good.public_key),
            "Content-Encoding": "zstd-or-so",
        },
    )
    assert answer.status_code == 415
    assert "detail" in answer.json()


def test_the_same_event_sent_twice_is_stored_once(served: Served, client: httpx.Client) -> None:
    """An SDK retrying (or a replay) never counts twice: one row, a group count of 1."""
    ev = event(message="sent twice")
    for _ in range(2):
        answer = client.post(
            f"/api/{served.keys.shop.id}/envelope/",
            content=event_envelope(ev),
            headers={"X-Sentry-Auth": sentry_auth(served.keys.good.public_key)},
        )
        assert answer.status_code == 200
    stored = served.store.get(ev["event_id"])
    assert stored is not None
    group = served.store.group(stored.fingerprint)
    assert group is not None
    assert group.count == 1
    assert served.store.count(fingerprint=stored.fingerprint) == 1


def test_dropped_items_and_client_reports_are_counted(served: Served, client: httpx.Client) -> None:
    """Transactions, sessions, attachments... are accepted and counted by category; a
    client report's discarded events are counted as the SDK reported them."""
    report = {
        "timestamp": 1_700_000_000,
        "discarded_events": [
            {"reason": "queue_overflow", "category": "error", "quantity": 3},
            {"reason": "ratelimit_backoff", "category": "transaction", "quantity": 2},
        ],
    }
    body = envelope(
        ({"type": "transaction"}, {"type": "transaction", "spans": []}),
        ({"type": "session"}, {"sid": event_id(), "status": "ok"}),
        ({"type": "sessions"}, {"aggregates": []}),
        ({"type": "attachment", "filename": "log.txt"}, b"hello"),
        ({"type": "client_report"}, report),
        headers={"event_id": event_id()},
    )
    answer = client.post(
        f"/api/{served.keys.shop.id}/envelope/",
        content=body,
        headers={"X-Sentry-Auth": sentry_auth(served.keys.good.public_key)},
    )
    assert answer.status_code == 200, answer.text
    assert served.ingest.outcomes.flush()
    counted = {row[1:4]: row[4] for row in ProjectStore(served.store).outcomes("shop")}
    assert counted[("dropped", "transaction", "unsupported_item")] == 1
    assert counted[("dropped", "session", "unsupported_item")] == 2
    assert counted[("dropped", "attachment", "unsupported_item")] == 1
    assert counted[("client_report", "error", "queue_overflow")] == 3
    assert counted[("client_report", "transaction", "ratelimit_backoff")] == 2
    assert served.store.count() == 0


def test_cors_preflight_allows_browser_sdks(served: Served, client: httpx.Client) -> None:
    answer = client.options(
        f"/api/{served.keys.shop.id}/envelope/",
        headers={
            "Origin": "https://shop.example.com",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert answer.status_code == 200
    assert answer.headers["access-control-allow-origin"] == "*"
    assert "POST" in answer.headers["access-control-allow-methods"]


def test_other_methods_are_405(served: Served, client: httpx.Client) -> None:
    answer = client.get(f"/api/{served.keys.shop.id}/envelope/")
    assert answer.status_code == 405
    assert "POST" in answer.headers["allow"]


def test_a_key_over_its_rate_limit_is_429(served: Served, client: httpx.Client) -> None:
    """A key's own limit: past it, 429 with Retry-After and an error:key rate limit, and
    the refused events are counted."""
    limited: ProjectKey = ProjectStore(served.store).create_key(
        served.keys.shop.id, label="slow", rate_limit=2
    )
    headers = {"X-Sentry-Auth": sentry_auth(limited.public_key)}
    statuses = [
        client.post(
            f"/api/{served.keys.shop.id}/envelope/",
            content=event_envelope(event()),
            headers=headers,
        )
        for _ in range(3)
    ]
    assert [a.status_code for a in statuses] == [200, 200, 429]
    refused = statuses[2]
    assert int(refused.headers["retry-after"]) >= 1
    limits = refused.headers["x-sentry-rate-limits"]
    assert limits.startswith(f"{refused.headers['retry-after']}:error:key")
    assert UNSUPPORTED in limits
    assert served.ingest.outcomes.flush()
    counted = {row[1:4]: row[4] for row in ProjectStore(served.store).outcomes("shop")}
    assert counted[("dropped", "error", "rate_limited")] == 1


def test_the_server_default_rate_limit_applies_to_keys_without_one(
    store: ErrorStore, keys: Keys, tmp_path: Path
) -> None:
    app = tracker_app(store, tmp_path / "spool", ingest_rate_limit=1)
    with UvicornThread(app) as server, httpx.Client(timeout=30) as http:
        url = f"http://127.0.0.1:{server.port}/api/{keys.shop.id}/store/"
        headers = {"X-Sentry-Auth": sentry_auth(keys.good.public_key)}
        first = http.post(url, content=json.dumps(event()).encode(), headers=headers)
        second = http.post(url, content=json.dumps(event()).encode(), headers=headers)
    assert (first.status_code, second.status_code) == (200, 429)


def test_a_body_past_the_limit_is_413_before_it_is_read(
    store: ErrorStore, keys: Keys, tmp_path: Path
) -> None:
    """Declared too big: 413 at once; streamed (chunked) past the limit: 413 too."""
    limits = IngestLimits(max_body_bytes=4096)
    app = tracker_app(store, tmp_path / "spool", ingest_limits=limits)
    headers = {"X-Sentry-Auth": sentry_auth(keys.good.public_key)}

    def chunks() -> Iterator[bytes]:
        for _ in range(64):
            yield b"x" * 1024

    with UvicornThread(app) as server, httpx.Client(timeout=30) as http:
        url = f"http://127.0.0.1:{server.port}/api/{keys.shop.id}/envelope/"
        declared = http.post(url, content=b"x" * 5000, headers=headers)
        streamed = http.post(url, content=chunks(), headers=headers)
        fine = http.post(url, content=event_envelope(event()), headers=headers)
    assert declared.status_code == 413
    assert "max_body_bytes" in declared.json()["detail"]
    assert streamed.status_code == 413
    assert fine.status_code == 200


def test_the_routes_are_in_the_openapi_schema(served: Served) -> None:
    schema = served.app.openapi()
    for path in ("/api/{project_id}/envelope/", "/api/{project_id}/store/"):
        operation = schema["paths"][path]["post"]
        assert operation["tags"] == ["ingest"]
        assert {"200", "401", "403", "413", "429", "503"} <= set(operation["responses"])
    assert "SentryAuth" in schema["components"]["securitySchemes"]
