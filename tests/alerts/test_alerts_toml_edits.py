"""Editing an alert configuration (CLI ``alerts add/remove``, the tracker's alerts API) keeps
what a person wrote: comments, order and layout of everything that did not change."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from errorkit.alerts import AlertConfigError, dump_toml, load_config, update_toml, write_config
from errorkit.cli import cli

WRITTEN = """\
# alerts for billing
base_url = "https://errors.example.com/admin"  # the dashboard
interval = "30s"

[[channels]]
name = "ops"   # the on-call room
type = "log"

# page when the rate jumps
[[rules]]
name = "rate"
kind = "error_rate"
threshold = 5 # per minute
window = "5m"
scope = { service = "api" }

# every critical error, at once
[[rules]]
name = "crit"
kind = "critical"
"""


def _data(text: str) -> dict[str, object]:
    return tomllib.loads(text)


def test_an_unchanged_document_comes_back_byte_for_byte() -> None:
    assert update_toml(WRITTEN, _data(WRITTEN)) == WRITTEN


def test_adding_a_rule_appends_it_and_keeps_every_comment() -> None:
    data = _data(WRITTEN)
    data["rules"] = [*data["rules"], {"name": "new", "kind": "new_group", "scope": {"env": "prod"}}]  # type: ignore[misc]
    text = update_toml(WRITTEN, data)
    assert text.startswith(WRITTEN)
    assert _data(text) == data
    assert "[rules.scope]" not in text  # inline, as a person writes it


def test_removing_a_rule_takes_its_comment_and_keeps_the_next_ones() -> None:
    data = _data(WRITTEN)
    data["rules"] = [data["rules"][1]]  # type: ignore[index]
    text = update_toml(WRITTEN, data)
    assert "# page when the rate jumps" not in text
    assert "threshold" not in text
    assert '# every critical error, at once\n[[rules]]\nname = "crit"' in text
    assert "# alerts for billing" in text and "# the on-call room" in text
    assert _data(text) == data


def test_changing_a_rule_rewrites_it_in_place() -> None:
    data = _data(WRITTEN)
    data["rules"][0]["threshold"] = 9  # type: ignore[index]
    text = update_toml(WRITTEN, data)
    assert text.index('name = "rate"') < text.index('name = "crit"')  # it stays where it was
    assert "# page when the rate jumps" in text and "# every critical error" in text
    assert _data(text) == data


def test_a_fresh_document_is_plain_toml() -> None:
    rule = {"name": "a", "kind": "critical", "scope": {"service": "x"}}
    data = {"interval": "1m", "rules": [rule]}
    text = dump_toml(data)
    assert _data(text) == data
    assert "[rules.scope]" not in text  # mappings inside a table stay inline


def test_write_config_refuses_a_bad_configuration_and_leaves_the_file(tmp_path: Path) -> None:
    path = tmp_path / "alerts.toml"
    path.write_text(WRITTEN)
    with pytest.raises(AlertConfigError, match="threshold"):
        write_config(path, {"rules": [{"name": "x", "kind": "error_rate", "threshold": -1}]})
    assert path.read_text() == WRITTEN


def test_cli_add_and_remove_keep_the_comments(tmp_path: Path) -> None:
    path = tmp_path / "alerts.toml"
    path.write_text(WRITTEN)
    runner = CliRunner()
    added = runner.invoke(
        cli, ["alerts", "add", "--config", str(path), "dup", "--kind", "repeat", "--set", "count=3"]
    )
    assert added.exit_code == 0, added.output
    assert path.read_text().startswith(WRITTEN)
    removed = runner.invoke(cli, ["alerts", "remove", "--config", str(path), "dup"])
    assert removed.exit_code == 0, removed.output
    assert path.read_text() == WRITTEN
    assert [rule.name for rule in load_config(path).rules] == ["rate", "crit"]
