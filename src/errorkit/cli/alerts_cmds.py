"""``errorkit alerts``: list, add and remove rules in the TOML file, send a test, show history."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from errorkit.alerts import AlertConfigError, load_config, rule_to_dict, write_config
from errorkit.cli.store_cmds import _console, _open, _store_option

__all__ = ["alerts", "register"]

DEFAULT_CONFIG = "errorkit-alerts.toml"


def register(cli: click.Group) -> None:
    cli.add_command(alerts)


def _config_option(command: Any) -> Any:
    return click.option(
        "--config",
        "config_path",
        metavar="FILE",
        envvar="ERRORKIT_ALERTS_CONFIG",
        default=DEFAULT_CONFIG,
        show_default=True,
        help="The alert configuration (TOML); also ERRORKIT_ALERTS_CONFIG.",
    )(command)


def _read_raw(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        message = f"{path} is not valid TOML: {exc}"
        raise click.ClickException(message) from None


def _write(path: Path, data: dict[str, Any]) -> None:
    """Check ``data`` and write it, keeping the file's comments and layout where nothing
    changed."""
    try:
        write_config(path, data)
    except AlertConfigError as exc:
        raise click.ClickException(str(exc)) from None


@click.group()
def alerts() -> None:
    """Alert rules and channels (a TOML file), test sends and the alert history."""


@alerts.command("list")
@_config_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead.")
def alerts_list(config_path: str, as_json: bool) -> None:
    """Show the rules and channels of the configuration."""
    try:
        config = load_config(config_path)
    except AlertConfigError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        payload = {
            "rules": [rule_to_dict(rule) for rule in config.rules],
            "channels": [{"name": c.name, "type": c.type} for c in config.channels],
        }
        click.echo(json.dumps(payload, indent=2))
        return
    table = Table("rule", "kind", "scope", "window", "cooldown", "channels")
    for rule in config.rules:
        table.add_row(
            rule.name,
            rule.kind,
            rule.scope.label(),
            str(rule_to_dict(rule).get("window", "")),
            str(rule_to_dict(rule).get("cooldown", "")),
            ", ".join(rule.channels) or "all",
        )
    console = _console()
    console.print(table)
    for channel in config.channels:
        console.print(f"channel {channel.name}: {channel.describe()}")


def _parse_value(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


@alerts.command("add")
@_config_option
@click.argument("name")
@click.option("--kind", required=True, help="error_rate, repeat, critical, new_group, ...")
@click.option(
    "--set",
    "settings",
    multiple=True,
    metavar="FIELD=VALUE",
    help='A rule field (threshold=5, window=5m, codes=["DISK_FULL"]); repeatable.',
)
@click.option("--scope", "scopes", multiple=True, metavar="FIELD=VALUE", help="service=api ...")
@click.option("--replace", is_flag=True, help="Replace a rule of the same name.")
def alerts_add(
    config_path: str,
    name: str,
    kind: str,
    settings: tuple[str, ...],
    scopes: tuple[str, ...],
    replace: bool,
) -> None:
    """Add rule NAME to the configuration file (checked before it is written)."""
    path = Path(config_path)
    data = _read_raw(path)
    rule: dict[str, Any] = {"name": name, "kind": kind}
    for item in settings:
        field, sep, value = item.partition("=")
        if not sep:
            raise click.BadParameter(f"{item!r}: write FIELD=VALUE", param_hint="--set")
        rule[field.strip()] = _parse_value(value.strip())
    scope: dict[str, str] = {}
    for item in scopes:
        field, sep, value = item.partition("=")
        if not sep:
            raise click.BadParameter(f"{item!r}: write FIELD=VALUE", param_hint="--scope")
        scope[field.strip()] = value.strip()
    if scope:
        rule["scope"] = scope
    rules = list(data.get("rules", []))
    if any(existing.get("name") == name for existing in rules):
        if not replace:
            message = f"a rule called {name!r} exists already; pass --replace to change it"
            raise click.ClickException(message)
        rules = [existing for existing in rules if existing.get("name") != name]
    data["rules"] = [*rules, rule]
    _write(path, data)
    click.echo(f"added rule {name} ({kind}) to {path}")


@alerts.command("remove")
@_config_option
@click.argument("name")
def alerts_remove(config_path: str, name: str) -> None:
    """Remove rule NAME from the configuration file."""
    path = Path(config_path)
    data = _read_raw(path)
    rules = list(data.get("rules", []))
    kept = [rule for rule in rules if rule.get("name") != name]
    if len(kept) == len(rules):
        known = ", ".join(str(rule.get("name")) for rule in rules) or "none"
        message = f"no rule called {name!r} in {path}; the rules are: {known}"
        raise click.ClickException(message)
    data["rules"] = kept
    _write(path, data)
    click.echo(f"removed rule {name} from {path}")


@alerts.command("test")
@_config_option
@_store_option
@click.option("--channel", metavar="NAME", help="Only this channel (default: every one).")
def alerts_test(config_path: str, store_url: str, channel: str | None) -> None:
    """Send a test notification through the channels; recorded in the history."""
    try:
        config = load_config(config_path)
    except AlertConfigError as exc:
        raise click.ClickException(str(exc)) from None
    with _open(store_url) as store:
        manager = config.manager(store)
        try:
            deliveries = manager.send_test(channel)
        except KeyError as exc:
            raise click.ClickException(str(exc.args[0])) from None
    failed = 0
    for delivery in deliveries:
        if delivery.ok:
            click.echo(f"{delivery.channel}: sent")
        else:
            failed += 1
            click.echo(f"{delivery.channel}: FAILED after {delivery.attempts}: {delivery.detail}")
    if failed:
        raise SystemExit(1)


@alerts.command("history")
@_store_option
@click.option("--rule", metavar="NAME", help="Only this rule.")
@click.option("--limit", default=50, show_default=True, help="How many events, newest first.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines instead.")
def alerts_history(store_url: str, rule: str | None, limit: int, as_json: bool) -> None:
    """Firings, resolutions and every delivery attempt, newest first."""
    with _open(store_url) as store:
        events = store.alert_events(rule=rule, limit=limit)
    if as_json:
        for event in events:
            click.echo(json.dumps(event.as_dict(), ensure_ascii=False))
        return
    table = Table("at", "rule", "scope", "event", "channel", "try", "status", "detail")
    for event in events:
        table.add_row(
            event.at.strftime("%Y-%m-%d %H:%M:%S"),
            event.rule,
            event.scope,
            event.kind,
            event.channel or "",
            "" if event.attempt is None else str(event.attempt),
            event.status,
            event.detail or event.summary or "",
        )
    _console().print(table)
