"""The tracker's alert routes: rules kept in the TOML file (checked as the file is, written
back whole), test sends, and the alert history a page at a time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tests.server.conftest import Tracker

from errorkit.alerts import load_config


def _config_path(tracker: Tracker) -> Path:
    path = tracker.client.app.state.errorkit_alerts.path
    assert isinstance(path, Path)
    return path


def _names(tracker: Tracker) -> list[str]:
    return [rule["name"] for rule in tracker.get("/alerts/rules").json()["rules"]]


def _refusal(answer: Any) -> tuple[str, list[Any], str]:
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    return error["code"], [item["loc"] for item in error["details"]["errors"]], error["message"]


def test_rules_are_listed_from_the_file(tracker: Tracker) -> None:
    answer = tracker.get("/alerts/rules", token=tracker.tokens.read)
    assert answer.status_code == 200
    body = answer.json()
    assert body["source"] == str(_config_path(tracker))
    assert body["rules"] == [
        {
            "name": "api-repeats",
            "kind": "repeat",
            "count": 3,
            "window": "10m",
            "cooldown": "30m",
            "scope": {"service": "api"},
        }
    ]
    assert body["channels"] == [{"name": "ops-log", "type": "log", "target": "log"}]


def test_add_replace_delete_write_the_file_back(tracker: Tracker) -> None:
    path = _config_path(tracker)
    added = tracker.post(
        "/alerts/rules",
        json={"name": "disk-full", "kind": "critical", "codes": ["DISK_FULL"], "window": "5m"},
    )
    assert added.status_code == 201, added.text
    assert added.json()["codes"] == ["DISK_FULL"]
    assert [r.name for r in load_config(path).rules] == ["api-repeats", "disk-full"]

    again = tracker.post("/alerts/rules", json={"name": "disk-full", "kind": "critical"})
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "RESOURCE_CONFLICT"

    replaced = tracker.client.put(
        "/admin/api/alerts/rules/disk-full",
        headers=tracker.headers(),
        json={"kind": "critical", "codes": ["DISK_FULL", "OUT_OF_MEMORY"]},
    )
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["created"] is False
    (rule,) = [r for r in load_config(path).rules if r.name == "disk-full"]
    assert rule.codes == ("DISK_FULL", "OUT_OF_MEMORY")

    created = tracker.client.put(
        "/admin/api/alerts/rules/new-errors", headers=tracker.headers(), json={"kind": "new_group"}
    )
    assert created.json()["created"] is True

    rules = "/admin/api/alerts/rules"
    deleted = tracker.client.delete(f"{rules}/api-repeats", headers=tracker.headers())
    assert deleted.status_code == 200
    assert [r.name for r in load_config(path).rules] == ["disk-full", "new-errors"]
    assert _names(tracker) == ["disk-full", "new-errors"]
    gone = tracker.client.delete(f"{rules}/api-repeats", headers=tracker.headers())
    assert gone.status_code == 404
    assert list(path.parent.glob(".alerts.toml.*")) == []  # no temporary file left


def test_a_bad_rule_is_a_400_naming_the_field_and_changes_nothing(tracker: Tracker) -> None:
    path = _config_path(tracker)
    before = path.read_text(encoding="utf-8")
    cases = {
        "window": {"name": "r", "kind": "repeat", "window": "-5m"},
        "colour": {"name": "r", "kind": "repeat", "colour": "red"},
        "channels": {"name": "r", "kind": "repeat", "channels": ["nowhere"]},
        "scope.code": {"name": "r", "kind": "error_rate", "scope": {"code": "X"}},
        "threshold": {"name": "r", "kind": "error_rate", "threshold": 250},
        "kind": {"name": "r", "kind": "sometimes"},
    }
    for field, rule in cases.items():
        code, locs, message = _refusal(tracker.post("/alerts/rules", json=rule))
        assert code == "VALIDATION_INVALID_INPUT"
        assert locs == [field.split(".")], (field, locs, message)
        assert field.split(".")[-1] in message
    mismatch = tracker.client.put(
        "/admin/api/alerts/rules/one", headers=tracker.headers(), json={"name": "two"}
    )
    assert _refusal(mismatch)[1] == [["name"]]
    assert path.read_text(encoding="utf-8") == before
    assert _names(tracker) == ["api-repeats"]


def test_read_token_changes_no_rule(tracker: Tracker) -> None:
    path = _config_path(tracker)
    before = path.read_text(encoding="utf-8")
    refused = tracker.client.delete(
        "/admin/api/alerts/rules/api-repeats", headers=tracker.headers(tracker.tokens.read)
    )
    assert refused.status_code == 403
    assert path.read_text(encoding="utf-8") == before


def test_send_a_test_records_it_in_the_history(tracker: Tracker) -> None:
    sent = tracker.post("/alerts/test", json={"channel": "ops-log"})
    assert sent.status_code == 200, sent.text
    assert sent.json() == {
        "ok": True,
        "deliveries": [{"channel": "ops-log", "ok": True, "attempts": 1, "detail": ""}],
    }
    unknown = tracker.post("/alerts/test", json={"channel": "pager"})
    assert unknown.status_code == 404
    history = tracker.get("/alerts/history", params={"kind": "test"}).json()
    (event,) = history["items"]
    assert (event["kind"], event["channel"], event["status"]) == ("test", "ops-log", "sent")


def test_history_pages_through_every_event_once(tracker: Tracker) -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for n in range(7):
        tracker.store.add_alert_event(
            rule="r" if n % 2 else "other",
            scope="*",
            kind="delivery",
            status="sent",
            at=start + timedelta(minutes=n // 2),  # two events share each moment
            channel="ops-log",
            attempt=1,
            summary=f"event {n}",
        )
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor is not None:
            params["cursor"] = cursor
        page = tracker.get("/alerts/history", token=tracker.tokens.read, params=params).json()
        seen.extend(item["summary"] for item in page["items"])
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 4
    assert seen == [f"event {n}" for n in (6, 5, 4, 3, 2, 1, 0)]
    only_r = tracker.get("/alerts/history", params={"rule": "r"}).json()["items"]
    assert [item["summary"] for item in only_r] == ["event 5", "event 3", "event 1"]
    bad = tracker.get("/alerts/history", params={"cursor": "!!"})
    assert bad.status_code == 400


def test_without_a_file_rules_are_kept_in_memory(tmp_path: Path) -> None:
    from starlette.testclient import TestClient

    from errorkit.server import create_app
    from errorkit.store import open_store
    from errorkit.store.tokens import TokenStore

    store = open_store(f"sqlite:///{tmp_path / 'errors.db'}")
    secret = TokenStore(store).create(role="admin").secret
    headers = {"Authorization": f"Bearer {secret}"}
    with TestClient(create_app(store=store)) as client:
        assert client.get("/admin/api/alerts/rules", headers=headers).json()["source"] == "memory"
        added = client.post(
            "/admin/api/alerts/rules", headers=headers, json={"name": "new", "kind": "new_group"}
        )
        assert added.status_code == 201
        listed = client.get("/admin/api/alerts/rules", headers=headers).json()["rules"]
        assert [rule["name"] for rule in listed] == ["new"]
    assert list(tmp_path.glob("*.toml")) == []
    store.close()


def test_the_api_example_in_alerts_md_runs(capsys: Any) -> None:
    import re

    doc = (Path(__file__).resolve().parents[2] / "docs" / "alerts.md").read_text()
    section = doc.split("## Tracker API", 1)[1]
    block = re.findall(r"```python\n(.*?)```", section, re.S)[0]
    expected = [line.split("# ", 1)[1].strip() for line in block.splitlines() if "  # " in line]
    exec(compile(block, "docs/alerts.md", "exec"), {})
    assert capsys.readouterr().out.splitlines() == expected
    assert expected[0] == "201 ['DISK_FULL']"
