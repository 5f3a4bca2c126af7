"""Hostile and random HTTP against the ingest, in process: never a 5xx, never a stored
half-event, and the hostile corpus gets the 4xx the parser gives it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from starlette.testclient import TestClient
from tests.ingest._wire import compress, envelope, event, event_envelope, sentry_auth
from tests.ingest.conftest import Keys, tracker_app
from tests.ingest.test_envelope_parse import HOSTILE_ENVELOPES, _gzip_bomb

from errorkit._guard import internal_error_counts
from errorkit.store import ErrorStore
from errorkit.store.schema import errors

# What the store's contract requires of a row (the message and title may be empty text).
REQUIRED = ("error_id", "timestamp", "error_type", "error_code", "severity", "fingerprint")


@pytest.fixture
def client(store: ErrorStore, keys: Keys, tmp_path: Path) -> Iterator[TestClient]:
    app = tracker_app(store, tmp_path / "spool", ingest_rate_limit=0)
    with TestClient(app, raise_server_exceptions=False) as http:
        yield http


def _auth(keys: Keys) -> dict[str, str]:
    return {"X-Sentry-Auth": sentry_auth(keys.good.public_key)}


@pytest.mark.parametrize(("data", "status", "words"), HOSTILE_ENVELOPES)
def test_the_hostile_corpus_over_http(
    client: TestClient, keys: Keys, data: bytes, status: int, words: str
) -> None:
    """Each malformed or oversize envelope is answered with the parser's status and
    message, and nothing is stored."""
    answer = client.post(f"/api/{keys.shop.id}/envelope/", content=data, headers=_auth(keys))
    assert answer.status_code == status
    assert words in answer.json()["detail"]


def test_a_gzip_bomb_is_413(client: TestClient, keys: Keys, store: ErrorStore) -> None:
    """A gigabyte of zeros in ten megabytes of gzip is refused, never inflated."""
    answer = client.post(
        f"/api/{keys.shop.id}/envelope/",
        content=_gzip_bomb(1),
        headers={**_auth(keys), "Content-Encoding": "gzip"},
    )
    assert answer.status_code == 413
    assert store.count() == 0


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
EVENT_FIELDS = st.fixed_dictionaries(
    {},
    optional={
        "event_id": st.one_of(st.uuids().map(lambda u: u.hex), st.text(max_size=40), JSON),
        "message": st.one_of(st.text(max_size=200), JSON),
        "level": st.one_of(st.sampled_from(["error", "fatal", "warning", "info", "debug"]), JSON),
        "exception": JSON,
        "tags": JSON,
        "user": JSON,
        "release": JSON,
        "environment": JSON,
        "timestamp": st.one_of(st.floats(allow_nan=False), st.text(max_size=30), JSON),
        "fingerprint": JSON,
        "contexts": JSON,
        "extra": JSON,
        "request": JSON,
        "logentry": JSON,
    },
)
ITEM_TYPES = st.sampled_from(
    ["event", "event", "transaction", "session", "client_report", "attachment", "x", ""]
)


@st.composite
def bodies(draw: st.DrawFn, dsn: str) -> tuple[str, bytes, dict[str, str]]:
    """A request: a route, a body (well formed, broken or random) and headers."""
    route = draw(st.sampled_from(["envelope", "store"]))
    kind = draw(st.sampled_from(["event", "items", "raw", "truncated"]))
    if kind == "event":
        fields = draw(EVENT_FIELDS)
        body = (
            envelope(({"type": "event"}, fields), headers=draw(st.sampled_from([{}, {"dsn": dsn}])))
            if route == "envelope"
            else json.dumps(fields).encode()
        )
    elif kind == "items":
        items = draw(
            st.lists(
                st.tuples(ITEM_TYPES, st.one_of(EVENT_FIELDS, JSON.map(lambda v: {"v": v}))),
                max_size=4,
            )
        )
        body = envelope(*(({"type": t}, p) for t, p in items))
    elif kind == "raw":
        body = draw(st.binary(max_size=300))
    else:
        whole = envelope(({"type": "event"}, event()))
        body = whole[: draw(st.integers(0, len(whole)))]
    encoding = draw(st.sampled_from([None, "gzip", "deflate", "br", "identity", "bogus"]))
    headers: dict[str, str] = {}
    if encoding is not None:
        headers["Content-Encoding"] = encoding
        if encoding != "bogus" and draw(st.booleans()):
            body = compress(body, encoding)
    auth = draw(st.sampled_from(["good", "none", "garbage", "text"]))
    if auth == "good":
        headers["X-Sentry-Auth"] = dsn.split("//")[1].split("@")[0]
        headers["X-Sentry-Auth"] = sentry_auth(headers["X-Sentry-Auth"])
    elif auth == "garbage":
        headers["X-Sentry-Auth"] = "Sentry sentry_key=, ,,=="
    elif auth == "text":
        headers["Authorization"] = draw(st.text(st.characters(min_codepoint=32, max_codepoint=126)))
    return route, body, headers


def _stored_rows(store: ErrorStore) -> list[dict[str, Any]]:
    with store.engine.connect() as connection:
        return [dict(row._mapping) for row in connection.execute(select(errors))]


def test_random_requests_never_5xx_and_never_half_store(
    client: TestClient, keys: Keys, store: ErrorStore
) -> None:
    """Whatever the request, the answer is below 500, no internal error is swallowed,
    and every stored row is whole: required fields set, its data valid JSON, its group
    counted."""
    dsn = keys.good.dsn("http://127.0.0.1")
    before = dict(internal_error_counts())

    @settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
    @given(request=bodies(dsn))
    def check(request: tuple[str, bytes, dict[str, str]]) -> None:
        route, body, headers = request
        answer = client.post(f"/api/{keys.shop.id}/{route}/", content=body, headers=headers)
        assert answer.status_code < 500, answer.text
        assert "detail" in answer.json() or answer.status_code == 200

    check()
    assert internal_error_counts() == before
    for row in _stored_rows(store):
        assert all(row[name] not in (None, "") for name in REQUIRED), row
        assert isinstance(row["error_message"], str) and isinstance(row["title"], str), row
        assert row["service"] == "shop"
        data = row["data"]
        assert isinstance(json.loads(data) if isinstance(data, str) else data, dict)
        group = store.group(row["fingerprint"])
        assert group is not None
        assert group.count >= 1


def test_a_valid_event_in_random_company_is_stored_whole(
    client: TestClient, keys: Keys, store: ErrorStore
) -> None:
    """The fuzz's control: a plain event through the same client is stored."""
    ev = event()
    answer = client.post(
        f"/api/{keys.shop.id}/envelope/", content=event_envelope(ev), headers=_auth(keys)
    )
    assert answer.status_code == 200
    assert store.get(ev["event_id"]) is not None
