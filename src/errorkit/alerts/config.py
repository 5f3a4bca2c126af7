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

import contextlib
import os
import tempfile
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import tomlkit
import tomlkit.exceptions
from tomlkit.items import AoT, Comment, Table, Whitespace

from errorkit.alerts.channels import Channel, channel_from_dict, check_url
from errorkit.alerts.manager import AlertManager
from errorkit.alerts.rules import AlertConfigError, Rule, parse_duration, rule_from_dict
from errorkit.store.repository import ErrorStore

__all__ = [
    "AlertConfig",
    "dump_toml",
    "load_config",
    "parse_config",
    "update_toml",
    "write_config",
]

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
#
# tomlkit edits the document as written: a rule or channel that did not change keeps its
# table byte for byte, comments included (decision 0017).


def update_toml(text: str, data: Mapping[str, Any]) -> str:
    """``text`` (a configuration document, or "") changed to hold ``data``, keeping what did
    not change as it was written.

    Top-level values are set or removed; ``[[channels]]`` and ``[[rules]]`` tables are
    matched by ``name``: an unchanged one is left as it is, comments and all; a changed one
    is rewritten where it stands; a removed one goes with the comment written just above
    it; a new one is appended."""
    try:
        document = tomlkit.parse(text)
    except tomlkit.exceptions.ParseError as exc:
        message = f"the configuration is not valid TOML: {exc}"
        raise AlertConfigError(message) from None
    for key in [k for k in document if k not in ("rules", "channels") and k not in data]:
        del document[key]
    for key, value in data.items():
        if key in ("rules", "channels"):
            continue
        if document.get(key) != value:
            document[key] = _item(value)
    for key in ("channels", "rules"):
        _merge_tables(document, key, list(data.get(key, ())))
    return tomlkit.dumps(document)


def dump_toml(data: Mapping[str, Any]) -> str:
    """Write a configuration document (top-level values, then arrays of tables)."""
    return update_toml("", data)


def write_config(path: str | Path, data: Mapping[str, Any]) -> None:
    """Check ``data`` and write it to ``path`` (keeping what did not change as it was
    written, see :func:`update_toml`), atomically: a reader sees the old file or the new
    one, never half of it. Raises AlertConfigError for a configuration it would refuse."""
    location = Path(path)
    parse_config(data, source=str(location))
    old = location.read_text(encoding="utf-8") if location.exists() else ""
    _write_atomically(location, update_toml(old, data))


def _merge_tables(document: Any, key: str, wanted: list[Mapping[str, Any]]) -> None:
    tables = document.get(key)
    if not isinstance(tables, AoT):
        if key in document:
            del document[key]
        if not wanted:
            return
        tables = tomlkit.aot()
        document.append(key, tables)
    by_name = {table.get("name"): dict(table) for table in wanted}
    seen: set[Any] = set()
    for index in range(len(tables) - 1, -1, -1):
        table = tables[index]
        name = table.get("name")
        if name not in by_name or name in seen:
            _remove(document, key, tables, index)
            continue
        seen.add(name)
        if table.unwrap() != by_name[name]:
            _rewrite(table, by_name[name])
    for values in wanted:
        if values.get("name") not in seen:
            tables.append(_table(values, blank_line=bool(tables) or len(document) > 1))
    if not tables:
        del document[key]


def _trailing(table: Any) -> list[tuple[None, Any]]:
    """Take the comments and blank lines at the end of ``table`` off it (in TOML they stand
    above the next table and describe it)."""
    body = table.value.body
    taken: list[tuple[None, Any]] = []
    while body and body[-1][0] is None and isinstance(body[-1][1], Comment | Whitespace):
        taken.insert(0, body.pop())
    return taken


def _remove(document: Any, key: str, tables: AoT, index: int) -> None:
    below = _trailing(tables[index])  # they describe the table after this one: keep them
    previous = tables[index - 1] if index > 0 else _table_before(document, key)
    if previous is not None:
        _trailing(previous)  # the comment written above the removed table goes with it
        for _, item in below:
            previous.value.body.append((None, item))
    del tables[index]


def _table_before(document: Any, key: str) -> Any:
    """The table just before the array ``key`` in ``document`` (the last channel above the
    first rule), or None when top-level values come first."""
    before = None
    for name, item in document.body:
        if name is not None and name.key == key:
            return before
        if isinstance(item, AoT) and len(item):
            before = item[-1]
        elif isinstance(item, Table):
            before = item
        elif name is not None:
            before = None
    return None


def _rewrite(table: Any, values: Mapping[str, Any]) -> None:
    below = _trailing(table)
    for name in [n for n in table if n not in values]:
        del table[name]
    for name, value in values.items():
        if table.get(name) != value:
            table[name] = _item(value)
    for _, item in below:
        table.value.body.append((None, item))


def _table(values: Mapping[str, Any], *, blank_line: bool) -> Table:
    table = tomlkit.table()
    for name, value in values.items():
        table.add(name, _item(value))
    if blank_line:
        table.trivia.indent = "\n"
    return table


def _item(value: Any) -> Any:
    """A TOML value; a mapping inside a table is written inline (``scope = { ... }``)."""
    if isinstance(value, Mapping):
        inline = tomlkit.inline_table()
        for name, item in value.items():
            inline.append(name, _item(item))
        return inline
    if isinstance(value, list | tuple):
        return [_item(item) for item in value]
    if value is None:
        message = "cannot write None in TOML: leave the field out instead"
        raise AlertConfigError(message)
    return tomlkit.item(value)


def _write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path`` and rename it over ``path``."""
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        if path.exists():
            os.chmod(temporary, path.stat().st_mode & 0o777)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
