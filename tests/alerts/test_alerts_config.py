"""Configuration: TOML, refusals naming the field, the 001 thresholds, the CLI."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from tests.alerts._support import T0, CountingStore, Receiver, occurrences, record

from errorkit.alerts import (
    AlertConfigError,
    AlertManager,
    Rule,
    load_config,
    parse_config,
    rule_from_dict,
    rule_to_dict,
)
from errorkit.cli import cli

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("rule", "names"),
    [
        pytest.param({"name": "r", "kind": "repeat", "windw": "5m"}, "'windw'", id="unknown"),
        pytest.param({"name": "r", "kind": "repeat", "window": -5}, "'window'", id="negative"),
        pytest.param({"name": "r", "kind": "repeat", "window": "-5m"}, "'window'", id="neg-text"),
        pytest.param({"name": "r", "kind": "repeat", "count": 0}, "count", id="count"),
        pytest.param({"name": "r", "kind": "error_rate", "count": 3}, "'count'", id="wrong-kind"),
        pytest.param(
            {"name": "r", "kind": "repeat", "scope": {"host": "x"}}, "scope.host", id="sc"
        ),
        pytest.param({"name": "r", "kind": "pager"}, "'kind'", id="kind"),
        pytest.param({"kind": "repeat"}, "'name'", id="no-name"),
        pytest.param(
            {"name": "r", "kind": "error_rate", "scope": {"code": "X"}}, "scope.code", id="rate"
        ),
        pytest.param(
            {"name": "r", "kind": "new_group", "scope": {"endpoint": "/x"}}, "scope.endpoint"
        ),
        pytest.param({"name": "r", "kind": "error_rate", "threshold": 150}, "threshold", id="pct"),
    ],
)
def test_a_bad_rule_is_refused_naming_the_field(rule: dict[str, object], names: str) -> None:
    with pytest.raises(AlertConfigError, match=names.replace(".", r"\.")):
        rule_from_dict(rule)


@pytest.mark.parametrize(
    ("channel", "names"),
    [
        pytest.param({"name": "c", "type": "webhook", "url": "ftp://x/y"}, "'url'", id="url"),
        pytest.param({"name": "c", "type": "webhook", "url": "not a url"}, "'url'", id="url2"),
        pytest.param(
            {"name": "c", "type": "email", "host": "h", "sender": "a@b.c", "to": ["nope"]},
            "'to'",
            id="address",
        ),
        pytest.param(
            {"name": "c", "type": "email", "host": "h", "sender": "me", "to": ["a@b.c"]},
            "'sender'",
            id="sender",
        ),
        pytest.param({"name": "c", "type": "slack", "url": "https://h/x", "tkn": 1}, "'tkn'"),
        pytest.param({"name": "c", "type": "pagerduty"}, "'routing_key'", id="routing"),
    ],
)
def test_a_bad_channel_is_refused_naming_the_field(channel: dict[str, object], names: str) -> None:
    with pytest.raises(AlertConfigError, match=names):
        parse_config({"channels": [channel]})


def test_a_rule_naming_an_unknown_channel_is_refused() -> None:
    with pytest.raises(AlertConfigError, match="'channels' names 'ops'"):
        parse_config({"rules": [{"name": "r", "kind": "new_group", "channels": ["ops"]}]})


def test_rule_round_trips_through_its_dict() -> None:
    rule = rule_from_dict(
        {
            "name": "budget",
            "kind": "error_budget",
            "objective": 99.5,
            "period": "7d",
            "scope": {"service": "api"},
            "burn_windows": [{"long": "1h", "short": "5m", "factor": 14.4}],
        }
    )
    assert rule.period == timedelta(days=7)
    assert rule_from_dict(rule_to_dict(rule)) == rule


def test_the_001_thresholds_load_and_fire(store: CountingStore) -> None:
    config = load_config(ROOT / "examples" / "alerts-001.toml")
    by_name = {rule.name: rule for rule in config.rules}
    assert by_name["high-error-rate"].threshold == 5
    assert by_name["repeated-failures"].count == 10
    assert by_name["repeated-failures"].by == "endpoint"
    assert "ENCRYPTION_ERROR" in by_name["critical-errors"].codes
    assert "SYSTEM_DISK_FULL" in by_name["resource-errors"].codes
    manager = config.manager(store, now=lambda: T0)
    store.write_batch(
        [
            record(T0 - timedelta(seconds=1), fingerprint="fp-disk", error_code="SYSTEM_DISK_FULL"),
            record(T0 - timedelta(seconds=2), fingerprint="fp-enc", error_code="ENCRYPTION_ERROR"),
        ]
    )
    occurrences(store, 10, T0, endpoint="/api/configs")
    fired = {(f.event.rule, f.notification.group) for f in manager.evaluate(T0)}
    assert ("resource-errors", "fp-disk") in fired
    assert ("critical-errors", "fp-enc") in fired
    assert ("repeated-failures", None) in fired


def test_cli_add_list_remove(tmp_path: Path) -> None:
    config = tmp_path / "alerts.toml"
    runner = CliRunner()
    added = runner.invoke(
        cli,
        ["alerts", "add", "--config", str(config), "api-rate", "--kind", "error_rate",
         "--set", "threshold=7.5", "--set", "window=\"5m\"", "--scope", "service=api"],
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    listed = runner.invoke(cli, ["alerts", "list", "--config", str(config), "--json"])
    assert json.loads(listed.output)["rules"] == [
        {
            "name": "api-rate",
            "kind": "error_rate",
            "scope": {"service": "api"},
            "threshold": 7.5,
            "window": "5m",
            "cooldown": "30m",
        }
    ]
    bad = runner.invoke(
        cli,
        ["alerts", "add", "--config", str(config), "x", "--kind", "repeat", "--set", "window=-1"],
    )
    assert bad.exit_code == 1
    assert "window" in bad.output
    assert "rule 'x'" in bad.output
    removed = runner.invoke(cli, ["alerts", "remove", "--config", str(config), "api-rate"])
    assert removed.exit_code == 0, removed.output
    assert load_config(config).rules == ()
    missing = runner.invoke(cli, ["alerts", "remove", "--config", str(config), "api-rate"])
    assert missing.exit_code == 1
    assert "no rule called 'api-rate'" in missing.output


def test_cli_test_and_history(store: CountingStore, store_url: str, receiver: Receiver,
                              tmp_path: Path) -> None:  # fmt: skip
    config = tmp_path / "alerts.toml"
    config.write_text(
        f'[[channels]]\nname = "hook"\ntype = "webhook"\nurl = "{receiver.url}/hook"\n'
        '[[rules]]\nname = "repeats"\nkind = "repeat"\ncount = 2\n'
    )
    runner = CliRunner()
    sent = runner.invoke(cli, ["alerts", "test", "--config", str(config), "--store", store_url])
    assert sent.exit_code == 0, sent.output
    assert "hook: sent" in sent.output
    assert receiver.requests[0].json()["status"] == "test"
    receiver.status = 500
    occurrences(store, 2, T0)
    AlertManager(store, load_config(config).rules, load_config(config).channels).evaluate(T0)
    history = runner.invoke(cli, ["alerts", "history", "--store", store_url, "--json"])
    assert history.exit_code == 0, history.output
    events = [json.loads(line) for line in history.output.splitlines()]
    events.sort(key=lambda e: e["id"])
    assert [(e["kind"], e["status"], e["attempt"]) for e in events] == [
        ("test", "sent", 1),
        ("fired", "fired", None),
        ("delivery", "failed", 1),
        ("delivery", "failed", 2),
        ("delivery", "failed", 3),
    ]
    table = runner.invoke(
        cli,
        ["alerts", "history", "--store", store_url, "--rule", "repeats"],
        env={"COLUMNS": "200"},
    )
    assert "127.0.0.1 answered HTTP 500" in table.output
    assert "failed" in table.output


def test_the_python_api_adds_and_removes_rules(store: CountingStore) -> None:
    alerts = AlertManager(store, now=lambda: T0)
    alerts.add_rule(Rule("repeats", "repeat", count=1))
    occurrences(store, 1, T0)
    assert len(alerts.evaluate(T0)) == 1
    alerts.remove_rule("repeats")
    with pytest.raises(KeyError, match="no rule 'repeats'"):
        alerts.remove_rule("repeats")
