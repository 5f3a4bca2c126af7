"""``HttpStore``, the transport's client: what each answer of a tracker means to the
pipeline (spool and retry, item by item, key refused), what it sends, how its URL is read,
and that the key is shown nowhere."""

from __future__ import annotations

import gzip
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from tests.transport.conftest import free_port

import errorkit
from errorkit.capturing import api as capture
from errorkit.capturing.spool import default_spool_dir
from errorkit.cli import cli
from errorkit.store import InvalidRecord, InvalidStoreURL, StoreError, StoreUnavailable
from errorkit.store.engine import describe_url
from errorkit.store.http import HttpStore, TrackerRefused, parse_tracker_url
from errorkit.store.wire import decode_message

KEY = "5f0c3a1b2d4e6f708192a3b4c5d6e7f8"


@dataclass
class Fake:
    """A tiny real HTTP server answering each batch with ``status`` (and ``body``), and
    keeping what it was sent."""

    port: int
    status: int = 200
    body: Any = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)

    def url(self, project: int = 7) -> str:
        return f"http://{KEY}@127.0.0.1:{self.port}/{project}"


@pytest.fixture
def fake() -> Iterator[Fake]:
    import uvicorn

    state = Fake(free_port())

    async def batch(request: Request) -> Response:
        state.received.append((dict(request.headers), await request.body()))
        if isinstance(state.body, bytes):
            return Response(state.body, status_code=state.status, headers=state.headers)
        return JSONResponse(state.body, status_code=state.status, headers=state.headers)

    app = Starlette(routes=[Route("/api/{project}/errorkit/batch/", batch, methods=["POST"])])
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=state.port, log_config=None, lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    yield state
    server.should_exit = True
    thread.join(timeout=30)


def test_sends_gzip_json_with_the_key_in_the_header_only(fake: Fake) -> None:
    fake.body = {"inserted": 0}
    with HttpStore(fake.url()) as store:
        store.write_batch([], [])
    ((headers, body),) = fake.received
    assert headers["content-encoding"] == "gzip"
    assert headers["x-sentry-auth"].startswith(f"Sentry sentry_key={KEY}, ")
    assert "sentry_client=errorkit/" in headers["x-sentry-auth"]
    message = decode_message(gzip.decompress(body))
    assert (message.records, message.deltas) == ([], [])


def test_a_200_is_the_write_result(fake: Fake) -> None:
    fake.body = {"inserted": 3, "duplicates": 1, "deltas_applied": 2, "new_groups": ["f1"]}
    with HttpStore(fake.url()) as store:
        result = store.write_batch([], [])
    assert (result.inserted, result.duplicates, result.deltas_applied) == (3, 1, 2)
    assert result.new_groups == ("f1",)


@pytest.mark.parametrize(
    ("status", "raised"),
    [
        (500, StoreUnavailable),
        (502, StoreUnavailable),
        (503, StoreUnavailable),
        (429, StoreUnavailable),
        (400, InvalidRecord),
        (413, InvalidRecord),
        (422, InvalidRecord),
        (401, TrackerRefused),
        (403, TrackerRefused),
    ],
)
def test_each_answer_raises_what_the_pipeline_acts_on(
    fake: Fake, status: int, raised: type[Exception]
) -> None:
    """Failures to retry (spool), malformed batches (item by item), a refused key (spool,
    not lost); the tracker's own message is quoted."""
    fake.status = status
    fake.body = {"error": {"code": "X", "message": "what the tracker said"}}
    fake.headers = {"Retry-After": "5"} if status in (429, 503) else {}
    with HttpStore(fake.url()) as store, pytest.raises(raised) as caught:
        store.write_batch([], [])
    text = str(caught.value)
    assert "what the tracker said" in text
    assert KEY not in text
    assert "http://***@127.0.0.1" in text
    if isinstance(caught.value, TrackerRefused):
        assert caught.value.status == status
        assert "key" in text
    if isinstance(caught.value, StoreUnavailable):
        assert caught.value.retry_after == (5 if status in (429, 503) else None)


def test_an_odd_answer_is_a_store_error_not_a_malformed_batch(fake: Fake) -> None:
    """A 404 (not a tracker, or an old one) or a 200 without JSON: retried, never dropped."""
    fake.status = 404
    with HttpStore(fake.url()) as store, pytest.raises(StoreError) as caught:
        store.write_batch([], [])
    assert not isinstance(caught.value, InvalidRecord)
    fake.status, fake.body = 200, b"<html>hello</html>"
    with HttpStore(fake.url()) as store, pytest.raises(StoreError, match="errorkit tracker"):
        store.write_batch([], [])


def test_an_unreachable_tracker_is_unavailable() -> None:
    store = HttpStore(f"http://{KEY}@127.0.0.1:{free_port()}/1")
    with store, pytest.raises(StoreUnavailable, match="unreachable") as caught:
        store.ping()
    assert KEY not in str(caught.value)


def test_names_and_repr_hide_the_key(fake: Fake) -> None:
    store = HttpStore(fake.url())
    assert store.url == f"http://***@127.0.0.1:{fake.port}/7"
    assert store.dialect == "http"
    assert store.endpoint == f"http://127.0.0.1:{fake.port}/api/7/errorkit/batch/"
    assert KEY not in repr(store)
    assert describe_url(fake.url()) == store.url
    assert describe_url(f"https://{KEY}@errors.example.com/3") == "https://***@errors.example.com/3"


def test_configure_reports_through_the_tracker(fake: Fake, tmp_path: Path) -> None:
    """configure(store_url=http://...) makes the pipeline write through an HttpStore; its
    runtime and its default spool name no key."""
    fake.body = {"inserted": 1}
    runtime = errorkit.configure(store_url=fake.url(), flush_interval=0.05)
    assert KEY not in repr(runtime)
    capture.capture(RuntimeError("over the wire"))
    assert capture.flush(timeout=30)
    (_, body), *_ = fake.received
    (sent,) = decode_message(gzip.decompress(body)).records
    assert sent.error_message == "over the wire"
    spool = default_spool_dir(fake.url())
    assert KEY not in str(spool)
    assert spool == default_spool_dir(f"http://{'0' * 32}@127.0.0.1:{fake.port}/7")


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://127.0.0.1:8080/1", "no key"),
        (f"http://{KEY}:secret@127.0.0.1:8080/1", "no ':' and password"),
        ("http://NOTHEX@127.0.0.1:8080/1", "32 lowercase hex"),
        (f"http://{KEY}@127.0.0.1:8080/shop", "project's number"),
        (f"http://{KEY}@127.0.0.1:8080/", "project's number"),
        (f"http://{KEY}@127.0.0.1:8080/1?x=1", "no query"),
        (f"http://{KEY}@127.0.0.1:99999/1", "cannot be read"),
        (f"http://{KEY}@/1", "no host"),
    ],
)
def test_a_bad_tracker_url_fails_in_configure(url: str, says: str) -> None:
    with pytest.raises(InvalidStoreURL, match=says) as caught:
        errorkit.configure(store_url=url)
    assert KEY not in str(caught.value)
    assert "http://<public_key>@<host>:<port>/<project_id>" in str(caught.value)


def test_https_and_default_ports() -> None:
    secure = parse_tracker_url(f"https://{KEY}@errors.example.com/12")
    assert (secure.port, secure.project_id, secure.public_key) == (443, 12, KEY)
    assert secure.endpoint == "https://errors.example.com:443/api/12/errorkit/batch/"
    assert parse_tracker_url(f"http://{KEY}@[::1]:8080/1").base == "http://[::1]:8080"


def test_database_commands_refuse_a_tracker_url() -> None:
    """`errorkit errors list` on a tracker URL: exit 2, saying a database URL is needed."""
    result = CliRunner().invoke(cli, ["errors", "list", "--store", f"http://{KEY}@h:1/1"])
    assert result.exit_code == 2
    assert "tracker" in result.output
    assert "database" in result.output
    assert KEY not in result.output


def test_spool_replay_sends_to_the_tracker(fake: Fake, tmp_path: Path) -> None:
    """`errorkit spool replay --store <tracker URL>` empties the spool into the tracker."""
    from tests.transport.test_transport_route import record

    from errorkit.capturing.spool import Spool

    spool = Spool(tmp_path / "spool", 1024 * 1024)
    spool.append([record()], [])
    spool.close()
    fake.body = {"inserted": 1}
    result = CliRunner().invoke(
        cli, ["spool", "replay", "--store", fake.url(), "--spool-dir", str(tmp_path / "spool")]
    )
    assert result.exit_code == 0, result.output
    assert KEY not in result.output
    assert spool.is_empty()
    assert len(fake.received) == 2  # the ping, then the batch
    assert json.loads(gzip.decompress(fake.received[1][1]))["records"][0]["error_message"] == (
        "boom"
    )


def test_detailed_health_of_an_app_reporting_to_a_tracker(fake: Fake) -> None:
    """The app cannot read a tracker's errors: its detailed health leaves them out instead
    of calling the errors store unavailable."""
    errorkit.configure(store_url=fake.url())
    report = errorkit.current_runtime().health.detailed_sync()
    assert report.errors is None
