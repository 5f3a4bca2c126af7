"""Alert rules: what to watch, over which window, how often to say so.

A rule is a frozen :class:`Rule`; build one in Python or from a mapping (a TOML table)
with :func:`rule_from_dict`, which refuses an unknown field, a negative window or a
value of the wrong type with an :class:`AlertConfigError` naming the field.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import timedelta
from typing import Any, Literal, get_args

__all__ = [
    "RULE_KINDS",
    "AlertConfigError",
    "BurnWindow",
    "Rule",
    "RuleKind",
    "Scope",
    "parse_duration",
    "rule_from_dict",
    "rule_to_dict",
]

RuleKind = Literal[
    "error_rate", "repeat", "critical", "new_group", "regression", "breaker", "error_budget"
]
RULE_KINDS: tuple[str, ...] = get_args(RuleKind)

_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,100}$")
_DURATION = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class AlertConfigError(ValueError):
    """A rule or channel that cannot work; the message names the field."""


def parse_duration(value: object, where: str) -> timedelta:
    """``90``/``90.0`` seconds, ``"5m"``, ``"1h"``, ``"30d"`` or a timedelta; must be > 0."""
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, bool):
        seconds = -1.0
    elif isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        match = _DURATION.match(value)
        if match is None:
            message = f"{where}: {value!r} is not a duration; write 90s, 5m, 1h, 30d or seconds"
            raise AlertConfigError(message)
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    else:
        message = f"{where}: expected a duration such as '5m', got {type(value).__name__}"
        raise AlertConfigError(message)
    if not seconds > 0:
        message = f"{where} must be a positive duration, got {value!r}"
        raise AlertConfigError(message)
    return timedelta(seconds=seconds)


def _text_duration(value: timedelta) -> str:
    seconds = value.total_seconds()
    for unit in ("w", "d", "h", "m", "s"):
        size = _UNITS[unit]
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


@dataclass(frozen=True, slots=True)
class Scope:
    """Which errors (or requests) a rule looks at; None means any."""

    service: str | None = None
    environment: str | None = None
    endpoint: str | None = None
    code: str | None = None
    type: str | None = None
    severity: str | None = None
    group: str | None = None

    def store_filters(self) -> dict[str, str | None]:
        """The scope as the store's filter names."""
        return {
            "service": self.service,
            "environment": self.environment,
            "endpoint": self.endpoint,
            "error_code": self.code,
            "error_type": self.type,
            "severity": self.severity,
            "fingerprint": self.group,
        }

    def label(self) -> str:
        """A stable text for the scope: ``service=api,environment=prod`` or ``*``."""
        parts = [f"{f.name}={getattr(self, f.name)}" for f in fields(self) if getattr(self, f.name)]
        return ",".join(parts) or "*"


@dataclass(frozen=True, slots=True)
class BurnWindow:
    """A multi-window burn-rate condition: both windows burn faster than ``factor``."""

    long: timedelta
    short: timedelta
    factor: float


#: The SRE workbook's page conditions for a 30-day objective.
DEFAULT_BURN_WINDOWS = (
    BurnWindow(timedelta(hours=1), timedelta(minutes=5), 14.4),
    BurnWindow(timedelta(hours=6), timedelta(minutes=30), 6.0),
)


@dataclass(frozen=True, slots=True)
class Rule:
    """One alert rule. Which fields matter depends on ``kind``:

    - ``error_rate``: ``threshold`` (percent of requests failing) and ``min_requests``;
    - ``repeat``: ``count`` occurrences of one group (``by="group"``) or endpoint
      (``by="endpoint"``, the operation) within ``window``;
    - ``critical``: any error of a severity in ``severities`` (default critical) or a code
      in ``codes`` or a type in ``types``, within ``window``;
    - ``new_group``: a group first seen within ``window``;
    - ``regression``: a resolved group that occurred again;
    - ``breaker``: a circuit breaker (any, or those in ``breakers``) opened; resolved when
      it closes;
    - ``error_budget``: ``objective`` (percent available) over ``period``, firing when the
      burn rate exceeds a :class:`BurnWindow`'s factor over both of its windows.

    ``cooldown`` is the least time between two notifications of the rule for one scope;
    ``channels`` names where to send them (empty: every channel).
    """

    name: str
    kind: RuleKind
    scope: Scope = field(default_factory=Scope)
    window: timedelta = timedelta(minutes=5)
    cooldown: timedelta = timedelta(minutes=30)
    threshold: float = 5.0
    min_requests: int = 100
    count: int = 10
    by: Literal["group", "endpoint"] = "group"
    severities: tuple[str, ...] = ("critical",)
    codes: tuple[str, ...] = ()
    types: tuple[str, ...] = ()
    breakers: tuple[str, ...] = ()
    objective: float = 99.9
    period: timedelta = timedelta(days=30)
    burn_windows: tuple[BurnWindow, ...] = DEFAULT_BURN_WINDOWS
    channels: tuple[str, ...] = ()
    description: str = ""

    def __post_init__(self) -> None:
        where = f"rule {self.name!r}"
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            message = (
                f"rule name {self.name!r}: use 1-100 letters, digits or _ . : - "
                "(for example 'api-error-rate')"
            )
            raise AlertConfigError(message)
        if self.kind not in RULE_KINDS:
            message = f"{where}: kind {self.kind!r} is unknown; use one of {', '.join(RULE_KINDS)}"
            raise AlertConfigError(message)
        for name in ("window", "cooldown", "period"):
            value = getattr(self, name)
            if not isinstance(value, timedelta) or value <= timedelta(0):
                message = f"{where}: {name} must be a positive duration, got {value!r}"
                raise AlertConfigError(message)
        if not 0 < self.threshold <= 100:
            message = f"{where}: threshold is a percentage in (0, 100], got {self.threshold!r}"
            raise AlertConfigError(message)
        if not 0 < self.objective < 100:
            message = f"{where}: objective is a percentage in (0, 100), got {self.objective!r}"
            raise AlertConfigError(message)
        for name in ("min_requests", "count"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                message = f"{where}: {name} must be a whole number >= 1, got {value!r}"
                raise AlertConfigError(message)
        if self.by not in ("group", "endpoint"):
            message = f"{where}: by must be 'group' or 'endpoint', got {self.by!r}"
            raise AlertConfigError(message)
        if self.kind in ("error_rate", "error_budget"):
            for name in ("code", "type", "severity", "group"):
                if getattr(self.scope, name) is not None:
                    message = (
                        f"{where}: field 'scope.{name}' cannot narrow a {self.kind} rule: "
                        "requests are counted per service, environment and endpoint only"
                    )
                    raise AlertConfigError(message)
        if self.kind in ("new_group", "regression") and self.scope.endpoint is not None:
            message = (
                f"{where}: field 'scope.endpoint' cannot narrow a {self.kind} rule: "
                "groups span endpoints"
            )
            raise AlertConfigError(message)
        for burn in self.burn_windows:
            if burn.factor <= 0 or burn.short >= burn.long:
                message = f"{where}: burn_windows need factor > 0 and short < long, got {burn!r}"
                raise AlertConfigError(message)

    @property
    def is_event(self) -> bool:
        """A rule whose firings are events (a new group): no resolved notification."""
        return self.kind == "new_group"

    def with_changes(self, **changes: Any) -> Rule:
        return replace(self, **changes)


_COMMON = frozenset({"name", "kind", "scope", "window", "cooldown", "channels", "description"})
_FIELDS: dict[str, frozenset[str]] = {
    "error_rate": _COMMON | {"threshold", "min_requests"},
    "repeat": _COMMON | {"count", "by"},
    "critical": _COMMON | {"severities", "codes", "types"},
    "new_group": _COMMON,
    "regression": _COMMON,
    "breaker": _COMMON | {"breakers"},
    "error_budget": _COMMON | {"objective", "period", "burn_windows", "min_requests"},
}
_SCOPE_FIELDS = tuple(f.name for f in fields(Scope))


def _strings(value: object, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, Sequence) and all(isinstance(item, str) for item in value):
        return tuple(value)
    message = f"{where}: expected a list of strings, got {value!r}"
    raise AlertConfigError(message)


def _number(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        message = f"{where}: expected a number, got {value!r}"
        raise AlertConfigError(message)
    return float(value)


def _integer(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        message = f"{where}: expected a whole number, got {value!r}"
        raise AlertConfigError(message)
    return value


def rule_from_dict(data: Mapping[str, Any]) -> Rule:
    """A :class:`Rule` from a mapping such as a TOML ``[[rules]]`` table."""
    if not isinstance(data, Mapping):
        message = f"a rule is a table of fields, got {type(data).__name__}"
        raise AlertConfigError(message)
    name = data.get("name")
    where = f"rule {name!r}"
    if not isinstance(name, str):
        message = f"rule: field 'name' is required (a text such as 'api-error-rate'), got {name!r}"
        raise AlertConfigError(message)
    kind = data.get("kind")
    if kind not in _FIELDS:
        message = f"{where}: field 'kind' must be one of {', '.join(RULE_KINDS)}, got {kind!r}"
        raise AlertConfigError(message)
    unknown = sorted(set(data) - _FIELDS[kind])
    if unknown:
        message = (
            f"{where}: unknown field {unknown[0]!r} for a {kind} rule; "
            f"accepted: {', '.join(sorted(_FIELDS[kind]))}"
        )
        raise AlertConfigError(message)
    values: dict[str, Any] = {"name": name, "kind": kind}
    raw_scope = data.get("scope", {})
    if not isinstance(raw_scope, Mapping):
        message = f"{where}: field 'scope' must be a table, got {raw_scope!r}"
        raise AlertConfigError(message)
    bad_scope = sorted(set(raw_scope) - set(_SCOPE_FIELDS))
    if bad_scope:
        message = (
            f"{where}: unknown field 'scope.{bad_scope[0]}'; accepted: {', '.join(_SCOPE_FIELDS)}"
        )
        raise AlertConfigError(message)
    for key, value in raw_scope.items():
        if not isinstance(value, str) or not value:
            message = f"{where}: field 'scope.{key}' must be a non-empty text, got {value!r}"
            raise AlertConfigError(message)
    values["scope"] = Scope(**raw_scope)
    for key in ("window", "cooldown", "period"):
        if key in data:
            values[key] = parse_duration(data[key], f"{where}: field {key!r}")
    for key in ("threshold", "objective"):
        if key in data:
            values[key] = _number(data[key], f"{where}: field {key!r}")
    for key in ("min_requests", "count"):
        if key in data:
            values[key] = _integer(data[key], f"{where}: field {key!r}")
    for key in ("severities", "codes", "types", "breakers", "channels"):
        if key in data:
            values[key] = _strings(data[key], f"{where}: field {key!r}")
    if "by" in data:
        values["by"] = data["by"]
    if "description" in data:
        if not isinstance(data["description"], str):
            message = f"{where}: field 'description' must be a text"
            raise AlertConfigError(message)
        values["description"] = data["description"]
    if "burn_windows" in data:
        values["burn_windows"] = _burn_windows(data["burn_windows"], where)
    return Rule(**values)


def _burn_windows(value: object, where: str) -> tuple[BurnWindow, ...]:
    if not isinstance(value, Sequence) or isinstance(value, str):
        message = f"{where}: field 'burn_windows' must be a list of tables"
        raise AlertConfigError(message)
    windows = []
    for position, item in enumerate(value):
        spot = f"{where}: field 'burn_windows[{position}]"
        if not isinstance(item, Mapping) or set(item) != {"long", "short", "factor"}:
            message = f"{spot}' needs exactly long, short and factor"
            raise AlertConfigError(message)
        windows.append(
            BurnWindow(
                parse_duration(item["long"], f"{spot}.long'"),
                parse_duration(item["short"], f"{spot}.short'"),
                _number(item["factor"], f"{spot}.factor'"),
            )
        )
    return tuple(windows)


def rule_to_dict(rule: Rule) -> dict[str, Any]:
    """The rule as a TOML-ready mapping holding the fields its kind accepts."""
    defaults = Rule(name=rule.name, kind=rule.kind)
    out: dict[str, Any] = {"name": rule.name, "kind": rule.kind}
    for name in sorted(_FIELDS[rule.kind] - {"name", "kind"}):
        value = getattr(rule, name)
        if value == getattr(defaults, name) and name not in ("window", "cooldown"):
            continue
        if name == "scope":
            scope = {
                f.name: getattr(value, f.name) for f in fields(Scope) if getattr(value, f.name)
            }
            if scope:
                out["scope"] = scope
        elif isinstance(value, timedelta):
            out[name] = _text_duration(value)
        elif name == "burn_windows":
            out[name] = [
                {
                    "long": _text_duration(b.long),
                    "short": _text_duration(b.short),
                    "factor": b.factor,
                }
                for b in value
            ]
        elif isinstance(value, tuple):
            out[name] = list(value)
        else:
            out[name] = value
    return out
