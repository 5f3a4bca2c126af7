"""Every built-in error class, raised the laziest way (no arguments) from a real Flask app:
no message template reaches a client, a log line or the store, and every 5xx answer leaves
exactly one line with its error id in the ``errors`` log category."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import errorkit.observe.health
import errorkit.resilience  # noqa: F401 - defines FallbackExhaustedError
from errorkit.capturing import api as capture
from errorkit.errors import AppError, iter_error_classes
from errorkit.observe.logging import setup_logging
from errorkit.store import ErrorStore

BUILTIN = sorted(
    (cls for cls in iter_error_classes() if cls.__module__.startswith("errorkit.")),
    key=lambda cls: cls.__name__,
)


def _flask_app(classes: dict[str, type[AppError]]) -> Any:
    from flask import Flask

    import errorkit.flask

    app = Flask("builtin_errors")

    @app.get("/raise/<name>")
    def raise_one(name: str) -> Any:
        raise classes[name]()

    errorkit.flask.install(app, endpoints=None)
    return app.test_client()


def test_no_builtin_error_shows_a_template_and_every_5xx_logs_one_line(
    store_url: str, tmp_path: Path, open_store: Callable[[str], ErrorStore]
) -> None:
    assert len(BUILTIN) > 40  # the walk really covers the hierarchy
    classes = {cls.__name__: cls for cls in BUILTIN}
    capture.configure(store_url=store_url, spool_dir=tmp_path / "spool", capture_4xx=True)
    logs = setup_logging(log_dir=tmp_path / "logs", console=False, renderer="json")
    try:
        client = _flask_app(classes)
        answered: dict[str, tuple[int, str]] = {}
        for name in classes:
            response = client.get(f"/raise/{name}")
            body = response.get_json()
            assert response.status_code == classes[name].status, name
            assert "{" not in json.dumps(body["error"]["message"]), (name, body)
            answered[name] = (response.status_code, body["error"]["error_id"])
        assert capture.flush(timeout=30)
    finally:
        logs.close()

    lines = [
        json.loads(line)
        for line in (tmp_path / "logs" / "errors.log").read_text().splitlines()
        if line.strip()
    ]
    for name, (status, error_id) in answered.items():
        mine = [line for line in lines if line.get("error_id") == error_id]
        if status >= 500:
            assert len(mine) == 1, (name, mine)
            assert "{" not in mine[0]["event"]
            assert mine[0]["status"] == status
        else:
            assert mine == [], name
    for line in lines:
        assert "{" not in str(line.get("error_message", "")), line

    store = open_store(store_url)
    for name, (_, error_id) in answered.items():
        row = store.get(error_id)
        assert row is not None, name
        assert "{" not in row.error_message, (name, row.error_message)


@pytest.mark.parametrize("cls", BUILTIN, ids=lambda cls: cls.__name__)
def test_a_builtin_error_without_arguments_has_a_plain_message(cls: type[AppError]) -> None:
    err = cls()
    assert err.message and "{" not in err.message
    assert "{" not in str(err) and "{" not in err.to_dict()["message"]
