"""End to end: real apps answer errors, errorkit stores them, nothing secret is kept, and
every answer's error id is found by ``errorkit errors show``."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fastapi import FastAPI, Request  # module level: FastAPI resolves annotations here

from errorkit.capturing import ErrorkitHandler
from errorkit.capturing import api as capture
from errorkit.store import ErrorStore

# Each secret is planted in exactly one place; none may appear anywhere in the store.
BODY_SECRET = "body-Pa55w0rd-91xq"
CARD = "4111 1111 1111 1111"
HEADER_SECRET = "hdr-tok-7Hq2Lm9Zx4"
AGENT_SECRET = "ua-key-3Vb8Nn1Qw5"
MESSAGE_SECRET = "msg-key-5Tr6Yu7Io8"
LOG_SECRET = "log-pw-2Kj4Hg6Fd8"
SECRETS = (BODY_SECRET, "4111111111111111", CARD, HEADER_SECRET, AGENT_SECRET, MESSAGE_SECRET)


def _fastapi_client() -> Callable[..., Any]:
    from starlette.testclient import TestClient

    import errorkit.fastapi

    app = FastAPI()
    errorkit.fastapi.install(app)

    @app.post("/charge/{order_id}")
    async def charge(order_id: int, request: Request) -> dict[str, str]:
        await request.json()
        raise RuntimeError(f"gateway refused: api_key={MESSAGE_SECRET}")

    client = TestClient(app, raise_server_exceptions=False)
    return client.post


def _flask_client() -> Callable[..., Any]:
    from flask import Flask, request

    import errorkit.flask

    app = Flask(__name__)
    errorkit.flask.install(app)

    @app.post("/charge/<int:order_id>")
    def charge(order_id: int) -> dict[str, str]:
        request.get_json()
        raise RuntimeError(f"gateway refused: api_key={MESSAGE_SECRET}")

    client = app.test_client()
    return client.post


@pytest.fixture(params=["fastapi", "flask"])
def post(request: pytest.FixtureRequest) -> Callable[..., Any]:
    """POST to a real app of each framework with errorkit installed."""
    return _fastapi_client() if request.param == "fastapi" else _flask_client()


@pytest.fixture
def logger() -> Iterator[logging.Logger]:
    log = logging.getLogger("tests.capture.e2e")
    log.propagate = False
    handler = ErrorkitHandler()
    log.addHandler(handler)
    yield log
    log.removeHandler(handler)
    log.propagate = True


def _error_id(response: Any) -> str:
    body = response.json() if callable(getattr(response, "json", None)) else response.json
    return str(body["error"]["error_id"])


def test_no_secret_is_stored_or_exported(
    post: Callable[..., Any],
    logger: logging.Logger,
    store_url: str,
    tmp_path: Path,
    open_store: Callable[[str], ErrorStore],
) -> None:
    """Secrets in a request body, headers, an exception message and a log record are in
    none of the stored rows, groups or exports."""
    capture.configure(store_url=store_url, spool_dir=tmp_path / "spool")
    response = post(
        "/charge/17",
        json={"user": "ann", "password": BODY_SECRET, "card_number": CARD, "note": CARD},
        headers={
            "Authorization": f"Bearer {HEADER_SECRET}",
            "User-Agent": f"shop-client/1.0 token={AGENT_SECRET}",
        },
    )
    assert response.status_code == 500
    logger.error("login for %s failed: password=%s", "ann", LOG_SECRET)
    assert capture.flush(timeout=30)

    store = open_store(store_url)
    row = store.get(_error_id(response))
    assert row is not None
    assert row.endpoint is not None and "charge" in row.endpoint
    assert row.request_payload is not None and '"user":"ann"' in row.request_payload
    rows = store.list(limit=100).items
    assert len(rows) == 2
    dumped = json.dumps([r.as_dict() for r in rows], default=str)
    dumped += json.dumps([g.__repr__() for g in store.groups().items])
    exports = ""
    for fmt in ("jsonl", "csv"):
        out = io.StringIO()
        store.export(out, fmt=fmt)  # type: ignore[arg-type]
        exports += out.getvalue()
    for secret in (*SECRETS, LOG_SECRET):
        assert secret not in dumped, secret
        assert secret not in exports, secret


def test_every_answers_error_id_is_found_by_the_cli(
    post: Callable[..., Any], store_url: str, tmp_path: Path
) -> None:
    """The error id in each 500 answer finds its row with ``errorkit errors show``."""
    from errorkit.cli.store_cmds import errors

    capture.configure(store_url=store_url, spool_dir=tmp_path / "spool")
    ids = [_error_id(post(f"/charge/{n}", json={"n": n})) for n in range(5)]
    assert len(set(ids)) == 5
    assert capture.flush(timeout=30)
    runner = CliRunner()
    for error_id in ids:
        shown = runner.invoke(errors, ["show", error_id, "--store", store_url, "--json"])
        assert shown.exit_code == 0, shown.output
        assert json.loads(shown.output)["error_id"] == error_id
