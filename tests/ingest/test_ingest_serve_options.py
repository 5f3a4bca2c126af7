"""``errorkit serve --ingest/--no-ingest --ingest-rate-limit``: the options reach the app."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from errorkit.cli import cli


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """uvicorn.run replaced by a recorder: serve builds its app, no server starts."""
    import uvicorn

    calls: list[dict[str, Any]] = []

    def fake_run(app: Any, **options: Any) -> None:
        calls.append({"app": app, **options})

    monkeypatch.setattr(uvicorn, "run", fake_run)
    return calls


def test_serve_has_the_ingest_by_default_with_its_rate_limit(
    tmp_path: Path, started: list[dict[str, Any]]
) -> None:
    url = f"sqlite:///{tmp_path / 'e.db'}"
    result = CliRunner().invoke(cli, ["serve", "--store", url, "--ingest-rate-limit", "120"])
    assert result.exit_code == 0, result.output
    assert "ingest: http://127.0.0.1:8080/api/<project_id>/envelope/" in result.output
    assert "120/min per key" in result.output
    app = started[0]["app"]
    assert app.state.errorkit_ingest.rate_limit == 120
    assert "/api/{project_id}/envelope/" in app.openapi()["paths"]


def test_serve_no_ingest_serves_no_ingest_route(
    tmp_path: Path, started: list[dict[str, Any]]
) -> None:
    url = f"sqlite:///{tmp_path / 'e.db'}"
    result = CliRunner().invoke(cli, ["serve", "--store", url, "--no-ingest"])
    assert result.exit_code == 0, result.output
    assert "ingest:" not in result.output
    app = started[0]["app"]
    assert "/api/{project_id}/envelope/" not in app.openapi()["paths"]
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.post("/api/1/envelope/", content=b"{}\n").status_code == 404


def test_a_zero_rate_limit_means_none(tmp_path: Path, started: list[dict[str, Any]]) -> None:
    url = f"sqlite:///{tmp_path / 'e.db'}"
    result = CliRunner().invoke(cli, ["serve", "--store", url, "--ingest-rate-limit", "0"])
    assert result.exit_code == 0, result.output
    assert "no rate limit" in result.output
    assert started[0]["app"].state.errorkit_ingest.rate_limit is None
