"""``errorkit serve --alerts FILE``: the rules are evaluated on a thread of their own against
the served store from startup to shutdown, and a rule added through the API is evaluated
by that same thread."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from tests.server.conftest import seed

from errorkit.cli import cli
from errorkit.store import ErrorStore, open_store
from errorkit.store.tokens import TokenStore

CONFIG = """\
interval = "0.2s"

[[channels]]
name = "ops-log"
type = "log"

[[rules]]
name = "api-repeats"
kind = "repeat"
count = 3
window = "1h"
scope = { service = "api" }
"""


def _wait_for_firing(store: ErrorStore, rule: str) -> list[Any]:
    """The firings of ``rule``, waiting (up to a generous bound) for the first."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        fired = list(store.alert_events(rule=rule, kinds=["fired"]))
        if fired:
            return fired
        time.sleep(0.05)
    raise AssertionError(f"rule {rule!r} never fired")


def test_serve_alerts_evaluates_on_its_own_thread_until_shutdown(
    store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uvicorn
    from starlette.testclient import TestClient

    seed(store_url, tmp_path / "spool")  # 3 errors of service api, 2 of them critical
    config = tmp_path / "alerts.toml"
    config.write_text(CONFIG, encoding="utf-8")
    with open_store(store_url) as store:
        secret = TokenStore(store).create(role="admin").secret
    seen: dict[str, Any] = {}

    def fake_run(app: Any, **options: Any) -> None:
        """Run the app's lifespan as uvicorn would, and look while it runs."""
        manager = app.state.errorkit_alert_manager
        assert manager._thread is None  # nothing runs before startup
        with open_store(store_url) as reader, TestClient(app) as client:
            assert manager._thread is not None
            assert manager._thread.name == "errorkit-alerts"
            assert manager._thread is not threading.current_thread()
            seen["repeats"] = _wait_for_firing(reader, "api-repeats")
            added = client.put(
                "/admin/api/alerts/rules/critical",
                headers={"Authorization": f"Bearer {secret}"},
                json={"kind": "critical", "window": "1h"},
            )
            assert added.status_code == 200, added.text
            seen["critical"] = _wait_for_firing(reader, "critical")
            seen["history"] = client.get(
                "/admin/api/alerts/history",
                headers={"Authorization": f"Bearer {secret}"},
                params={"kind": "fired"},
            ).json()["items"]
        seen["thread_after"] = manager._thread

    monkeypatch.setattr(uvicorn, "run", fake_run)
    served = CliRunner().invoke(
        cli, ["serve", "--store", store_url, "--alerts", str(config)], catch_exceptions=False
    )
    assert served.exit_code == 0, served.output
    assert "alerts: 1 rule(s) from" in served.output
    (repeat,) = seen["repeats"]
    assert repeat.data["count"] == 3
    assert repeat.scope == "service=api|group=" + repeat.data["group"]
    assert {event.rule for event in seen["critical"]} == {"critical"}
    assert {item["rule"] for item in seen["history"]} >= {"api-repeats", "critical"}
    assert seen["thread_after"] is None  # stopped at shutdown
    assert 'name = "critical"' in config.read_text(encoding="utf-8")


def test_serve_refuses_a_bad_alerts_file(store_url: str, tmp_path: Path) -> None:
    config = tmp_path / "alerts.toml"
    config.write_text('[[rules]]\nname = "r"\nkind = "repeat"\nwindow = "-1m"\n')
    refused = CliRunner().invoke(cli, ["serve", "--store", store_url, "--alerts", str(config)])
    assert refused.exit_code == 2
    assert "window" in refused.output
