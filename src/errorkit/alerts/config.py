"""Alert configuration in a TOML file.

.. code-block:: toml

    base_url = "https://errors.example.com/admin"   # the dashboard: links to its group pages
    interval = "30s"                          # how often AlertManager.start evaluates

    [[channels]]
    name = "ops"
    type = "webhook"
    url = "https://hooks.example.com/errorkit"
    secret = "change-me"

    [[rules]]
    name = "api-error-rate"
    kind = "error_rate"
    threshold = 5
    window = "5m"
    scope = { service = "api" }

Every unknown key, negative window, malformed URL or address is refused with an
:class:`AlertConfigError` naming it.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from errorkit.alerts.channels import Channel, channel_from_dict, check_url
from errorkit.alerts.manager import AlertManager
from errorkit.alerts.rules import AlertConfigError, Rule, parse_duration, rule_from_dict
from errorkit.store.repository import ErrorStore

__all__ = ["AlertConfig", "dump_toml", "load_config", "parse_config"]

_TOP = frozenset({"base_url", "interval", "rules", "channels"})


@dataclass(frozen=True, slots=True)
class AlertConfig:
    """Rules, channels and settings read from a file (or built in code)."""

    rules: tuple[Rule, ...] = ()
    channels: tuple[Channel, ...] = ()
    base_url: str | None = None
    interval: timedelta = timedelta(seconds=30)
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def manager(self, store: ErrorStore, **options: Any) -> AlertManager:
        """An :class:`AlertManager` with these rules and channels on ``store``."""
        return AlertManager(store, self.rules, self.channels, base_url=self.base_url, **options)


def parse_config(data: Mapping[str, Any], *, source: str = "the configuration") -> AlertConfig:
    """An :class:`AlertConfig` from a parsed TOML document."""
    unknown = sorted(set(data) - _TOP)
    if unknown:
        message = f"{source}: unknown field {unknown[0]!r}; accepted: {', '.join(sorted(_TOP))}"
        raise AlertConfigError(message)
    base_url = data.get("base_url")
    if base_url is not None:
        base_url = check_url(base_url, f"{source}: field 'base_url'")
    interval = parse_duration(data.get("interval", 30), f"{source}: field 'interval'")
    rules = _tables(data, "rules", source)
    channels = _tables(data, "channels", source)
    parsed_rules = tuple(rule_from_dict(item) for item in rules)
    parsed_channels = tuple(channel_from_dict(item) for item in channels)
    for kind, names in (
        ("rule", [r.name for r in parsed_rules]),
        ("channel", [c.name for c in parsed_channels]),
    ):
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            message = f"{source}: two {kind}s are called {twice[0]!r}; names must be unique"
            raise AlertConfigError(message)
    known = {channel.name for channel in parsed_channels}
    for rule in parsed_rules:
        missing = [name for name in rule.channels if name not in known]
        if missing:
            message = (
                f"rule {rule.name!r}: field 'channels' names {missing[0]!r}, which no "
                f"[[channels]] table defines"
            )
            raise AlertConfigError(message)
    return AlertConfig(parsed_rules, parsed_channels, base_url, interval, dict(data))


def _tables(data: Mapping[str, Any], key: str, source: str) -> Sequence[Mapping[str, Any]]:
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(item, Mapping) for item in value):
        message = f"{source}: field {key!r} must be an array of tables ([[{key}]])"
        raise AlertConfigError(message)
    return value


def load_config(path: str | Path) -> AlertConfig:
    """Read and check the TOML file at ``path``."""
    location = Path(path)
    try:
        data = tomllib.loads(location.read_text(encoding="utf-8"))
    except FileNotFoundError:
        message = f"no alert configuration at {location}"
        raise AlertConfigError(message) from None
    except tomllib.TOMLDecodeError as exc:
        message = f"{location} is not valid TOML: {exc}"
        raise AlertConfigError(message) from None
    return parse_config(data, source=str(location))


# -- writing ----------------------------------------------------------------------------


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'"{escaped}"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value(item) for item in value) + "]"
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + " }"
    message = f"cannot write {type(value).__name__} {value!r} as TOML"
    raise TypeError(message)


def _key(key: str) -> str:
    return key if key.replace("_", "").replace("-", "").isalnum() else _value(key)


def dump_toml(data: Mapping[str, Any]) -> str:
    """Write a configuration document (top-level values, then arrays of tables)."""
    lines: list[str] = []
    for key, value in data.items():
        if key not in ("rules", "channels"):
            lines.append(f"{_key(key)} = {_value(value)}")
    for key in ("channels", "rules"):
        for table in data.get(key, []):
            lines.append("")
            lines.append(f"[[{key}]]")
            lines.extend(f"{_key(k)} = {_value(v)}" for k, v in table.items())
    return "\n".join(lines).lstrip("\n") + "\n"
