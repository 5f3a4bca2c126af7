"""The tracker's ``POST /api/<project_id>/errorkit/batch/``: its key matrix, its body
limits (a gzip bomb is refused without being inflated), its checks of what it is sent, its
answer and its 503 when the store fails."""

from __future__ import annotations

import gzip
import json
import sqlite3
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from tests._services import fresh_postgres_database

from errorkit.server import create_app
from errorkit.server.transport import MAX_BATCH_BYTES, MAX_BODY_BYTES, inflate
from errorkit.store import ErrorRecord, ErrorStore
from errorkit.store.projects import Project, ProjectKey, ProjectStore
from errorkit.store.wire import encode_message


@dataclass
class Route:
    client: TestClient
    store: ErrorStore
    project: Project
    key: ProjectKey
    other_key: ProjectKey
    revoked: ProjectKey

    @property
    def path(self) -> str:
        return f"/api/{self.project.id}/errorkit/batch/"

    def post(
        self,
        body: bytes,
        *,
        key: str | None = None,
        encoding: str | None = "gzip",
        path: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        sent = {"X-Sentry-Auth": f"Sentry sentry_key={key or self.key.public_key}"}
        if encoding is not None:
            sent["Content-Encoding"] = encoding
        sent.update(headers or {})
        return self.client.post(path or self.path, content=body, headers=sent)


def _route(url: str) -> Iterator[Route]:
    store = ErrorStore(url)
    projects = ProjectStore(store)
    project = projects.create_project("shop")
    other = projects.create_project("blog")
    key = projects.create_key(project.id)
    revoked = projects.create_key(project.id, label="old")
    projects.revoke_key(revoked.public_key)
    other_key = projects.create_key(other.id)
    app = create_app(store=store, dashboard=False)
    with TestClient(app) as client:
        yield Route(client, store, project, key, other_key, revoked)
    store.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def route(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Route]:
    if request.param == "sqlite":
        yield from _route(f"sqlite:///{tmp_path / 'route.db'}")
        return
    with fresh_postgres_database() as url:
        yield from _route(url)


def record(**changes: Any) -> ErrorRecord:
    values: dict[str, Any] = {
        "error_id": uuid.uuid4().hex,
        "timestamp": datetime.now(UTC),
        "error_type": "unknown_error",
        "error_code": "INTERNAL_ERROR",
        "error_message": "boom",
        "severity": "error",
        "fingerprint": "a" * 16,
        "title": "RuntimeError: boom",
        "service": "checkout-worker",
    }
    values.update(changes)
    return ErrorRecord(**values)


def gz(data: bytes) -> bytes:
    return gzip.compress(data)


def test_key_matrix(route: Route) -> None:
    """Each kind of credential gets its status; only a valid key of this project writes."""
    body = gz(encode_message([record()]))
    path = route.path
    cases: list[tuple[str, dict[str, str], str, int]] = [
        ("none", {}, path, 401),
        ("garbage", {"X-Sentry-Auth": "Sentry sentry_key=not-a-key"}, path, 401),
        ("unknown", {"X-Sentry-Auth": f"Sentry sentry_key={'0' * 32}"}, path, 401),
        ("bearer", {"Authorization": "Bearer ekt_something"}, path, 401),
        ("revoked", {"X-Sentry-Auth": f"Sentry sentry_key={route.revoked.public_key}"}, path, 403),
        (
            "other project",
            {"X-Sentry-Auth": f"Sentry sentry_key={route.other_key.public_key}"},
            path,
            403,
        ),
        (
            "authorization header",
            {"Authorization": f"Sentry sentry_key={route.key.public_key}, sentry_version=7"},
            path,
            200,
        ),
        ("query", {}, f"{path}?sentry_key={route.key.public_key}", 200),
        ("header", {"X-Sentry-Auth": f"Sentry sentry_key={route.key.public_key}"}, path, 200),
    ]
    got = {}
    for name, headers, url, _ in cases:
        answer = route.client.post(
            url, content=body, headers={"Content-Encoding": "gzip", **headers}
        )
        got[name] = answer.status_code
        if answer.status_code != 200:
            assert route.key.public_key not in answer.text
    assert got == {name: status for name, _, _, status in cases}
    # The one record, accepted three times, is stored once.
    assert len(route.store.list(limit=10).items) == 1


def test_the_key_is_checked_before_the_body(route: Route) -> None:
    """Without a valid key even a malformed body learns nothing: 401, not 400."""
    answer = route.post(b"not gzip", key="0" * 32)
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] in {"AUTH_REQUIRED", "AUTH_TOKEN_INVALID"}


def test_an_unknown_project_path(route: Route) -> None:
    assert route.post(gz(encode_message()), path="/api/shop/errorkit/batch/").status_code == 404


def test_answer_is_the_write_result_and_a_retry_counts_nothing(route: Route) -> None:
    """200 with what was stored; the same body again stores nothing new."""
    sent = [record(), record(fingerprint="b" * 16)]
    body = gz(encode_message(sent))
    first = route.post(body)
    assert first.status_code == 200
    assert first.json()["inserted"] == 2
    assert sorted(first.json()["new_groups"]) == ["a" * 16, "b" * 16]
    again = route.post(body).json()
    assert (again["inserted"], again["duplicates"]) == (0, 2)
    stored = route.store.get(sent[0].error_id)
    assert stored is not None
    assert stored.service == "checkout-worker"  # the app's own service is kept


def test_plain_and_deflate_bodies_are_read_too(route: Route) -> None:
    plain = route.post(encode_message([record()]), encoding=None)
    deflated = route.post(zlib.compress(encode_message([record()])), encoding="deflate")
    assert (plain.status_code, deflated.status_code) == (200, 200)


def test_a_gzip_bomb_is_refused_without_inflating_it() -> None:
    """A small body that inflates past the limit is a 413, never inflated further."""
    bomb = gzip.compress(b"\0" * (MAX_BATCH_BYTES + 1024 * 1024), 9)
    assert len(bomb) < MAX_BODY_BYTES // 100
    with pytest.raises(Exception, match="once inflated") as refused:
        inflate(bomb, "gzip")
    assert getattr(refused.value, "status", None) == 413


def test_body_limits(route: Route) -> None:
    """Past the body limit (declared or streamed) is 413; another encoding 415; bad gzip,
    a cut stream or data after it 400."""
    too_big = route.post(b"\0" * (MAX_BODY_BYTES + 1), encoding=None)
    assert too_big.status_code == 413
    assert route.post(gz(b"x" * 10), encoding="br").status_code == 415
    assert route.post(b"\x1f\x8bnot really").status_code == 400
    assert route.post(gz(encode_message())[:-12]).status_code == 400
    assert route.post(gz(encode_message()) + gz(encode_message())).status_code == 400


@pytest.mark.parametrize(
    ("change", "names"),
    [
        ({"fingerprint": ""}, "fingerprint"),
        ({"error_id": ""}, "error_id"),
        ({"error_id": "x" * 37}, "error_id"),
        ({"status": 1234}, "status"),
        ({"status": "500"}, "status"),
        ({"timestamp": "yesterday"}, "timestamp"),
        ({"data": [1, 2]}, "data"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_invalid_records_are_a_400_and_nothing_is_written(
    route: Route, change: dict[str, Any], names: str
) -> None:
    good = json.loads(encode_message([record()]))["records"][0]
    bad = {**json.loads(encode_message([record()]))["records"][0], **change}
    body = {"v": 1, "records": [good, bad], "deltas": []}
    answer = route.post(gz(json.dumps(body).encode()))
    assert answer.status_code == 400, answer.text
    assert names in answer.json()["error"]["message"]
    assert route.store.list(limit=10).items == ()


def test_not_a_batch_is_a_400(route: Route) -> None:
    for body in (b"[]", b'{"v": 2}', b"{", b'{"v": 1, "records": {}}', "\u00e9".encode("latin-1")):
        assert route.post(gz(body)).status_code == 400


def test_a_store_failure_is_a_503_with_retry_after(tmp_path: Path) -> None:
    """While the database refuses writes the route says 503 and when to come back; the
    batch sent again once it is back is stored once."""
    url = f"sqlite:///{tmp_path / 'locked.db'}"
    store = ErrorStore(url, busy_timeout_ms=50)
    projects = ProjectStore(store)
    project = projects.create_project("shop")
    key = projects.create_key(project.id)
    app = create_app(store=store, dashboard=False)
    body = gz(encode_message([record()]))
    headers = {"X-Sentry-Auth": f"Sentry sentry_key={key.public_key}", "Content-Encoding": "gzip"}
    path = f"/api/{project.id}/errorkit/batch/"
    holder = sqlite3.connect(str(tmp_path / "locked.db"))
    with TestClient(app) as client:
        holder.execute("BEGIN EXCLUSIVE")
        try:
            refused = client.post(path, content=body, headers=headers)
        finally:
            holder.rollback()
            holder.close()
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "5"
        accepted = client.post(path, content=body, headers=headers)
        assert accepted.status_code == 200
        assert accepted.json()["inserted"] == 1
    store.close()
