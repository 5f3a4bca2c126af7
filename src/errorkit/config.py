"""One settings object: arguments > environment (``ERRORKIT_*``) > defaults.

Settings are immutable; :func:`errorkit.configure` builds a new one. Each field's
environment variable is ``ERRORKIT_`` + its name in capitals (``ERRORKIT_STORE_URL``), except
where ``env`` metadata names another one as well (``LOG_LEVEL``).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields, replace
from typing import Any, get_type_hints

__all__ = [
    "DEFAULT_SETTINGS",
    "ConfigError",
    "Settings",
    "capture_fields",
    "get_settings",
    "load_settings",
    "reset_settings",
    "update_settings",
]


class ConfigError(ValueError):
    """A setting has a value errorkit cannot use; the message names it and what is accepted."""


def _env(*names: str) -> dict[str, Any]:
    return {"env": names}


def _capture(default: Any, **metadata: Any) -> Any:
    # A setting of the capture pipeline: errorkit.configure() takes it as a keyword.
    return field(default=default, metadata={"capture": True, **metadata})


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything errorkit can be told. See the docs for each capability."""

    service: str = _capture("app")
    environment: str = _capture("production", env=("ERRORKIT_ENV",))
    release: str | None = _capture(None)
    store_url: str = _capture("sqlite:///errorkit.db")
    response_format: str = "default"
    log_level: str = field(default="INFO", metadata=_env("LOG_LEVEL"))
    scrub_keys: tuple[str, ...] = ()
    scrub_patterns: tuple[str, ...] = ()
    capture_enabled: bool = _capture(True)
    capture_4xx: bool = _capture(False)
    capture_uncaught: bool = _capture(True)
    queue_size: int = _capture(10_000)
    batch_size: int = _capture(500)
    flush_interval: float = _capture(0.5)
    max_payload_bytes: int = _capture(16_384)
    spool_dir: str | None = _capture(None)
    spool_max_bytes: int = _capture(64 * 1024 * 1024)
    flood_per_minute: int = _capture(60)
    slim_per_minute: int = _capture(600)
    code_rule: str = "default"
    # HTTP integrations: install()'s defaults (an argument given to install() wins).
    request_id_header: str = "X-Request-ID"
    trust_request_id: bool = True
    body_limit: int = 64 * 1024

    def __post_init__(self) -> None:
        _check_positive(self, ("queue_size", "batch_size", "max_payload_bytes", "spool_max_bytes"))
        if self.flush_interval <= 0:
            msg = f"flush_interval={self.flush_interval!r}: must be > 0 seconds"
            raise ConfigError(msg)
        if self.flood_per_minute < 1:
            msg = f"flood_per_minute={self.flood_per_minute!r}: must be >= 1"
            raise ConfigError(msg)
        if self.slim_per_minute < 0:
            msg = f"slim_per_minute={self.slim_per_minute!r}: must be >= 0 (0 keeps none)"
            raise ConfigError(msg)
        if self.code_rule not in ("default", "strict"):
            msg = f"code_rule={self.code_rule!r}: use 'default' or 'strict'"
            raise ConfigError(msg)
        if self.body_limit < 0:
            msg = f"body_limit={self.body_limit!r}: must be a whole number of bytes >= 0"
            raise ConfigError(msg)
        if self.response_format not in ("default", "problem", "wrapped"):
            msg = (
                f"response_format={self.response_format!r}: use 'default', 'problem' or "
                "'wrapped' (or pass a renderer callable to install())"
            )
            raise ConfigError(msg)


def _check_positive(settings: Settings, names: tuple[str, ...]) -> None:
    for name in names:
        value = getattr(settings, name)
        if value < 1:
            msg = f"{name}={value!r}: must be a whole number >= 1"
            raise ConfigError(msg)


#: Every setting at its default: other modules read a default here instead of restating it.
DEFAULT_SETTINGS = Settings()


def capture_fields() -> tuple[str, ...]:
    """The names of the capture pipeline's settings (those :func:`errorkit.configure` takes)."""
    return tuple(f.name for f in fields(Settings) if f.metadata.get("capture"))


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _parse(name: str, raw: str, hint: Any) -> Any:
    text = raw.strip()
    hint_text = str(hint)
    try:
        if hint is bool:
            low = text.lower()
            if low in _TRUE:
                return True
            if low in _FALSE:
                return False
            raise ValueError(text)
        if hint is int:
            return int(text.replace("_", ""))
        if hint is float:
            return float(text)
        if hint_text.startswith("tuple"):
            return tuple(p.strip() for p in text.split(",") if p.strip())
        if "None" in hint_text and text == "":
            return None
        return text
    except ValueError:
        kind = getattr(hint, "__name__", hint_text)
        msg = f"environment {name}={raw!r} is not a valid {kind}"
        raise ConfigError(msg) from None


def load_settings(
    overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Build settings from ``overrides`` (arguments), then the environment, then defaults."""
    environ = os.environ if environ is None else environ
    overrides = dict(overrides or {})
    hints = get_type_hints(Settings)
    known = {f.name for f in fields(Settings)}
    unknown = set(overrides) - known
    if unknown:
        msg = f"unknown setting(s) {sorted(unknown)}; known settings: {sorted(known)}"
        raise ConfigError(msg)
    values: dict[str, Any] = {}
    for f in fields(Settings):
        if f.name in overrides:
            value = overrides[f.name]
            values[f.name] = tuple(value) if isinstance(value, list) else value
            continue
        names = (f"ERRORKIT_{f.name.upper()}", *f.metadata.get("env", ()))
        for env_name in names:
            if env_name in environ:
                values[f.name] = _parse(env_name, environ[env_name], hints[f.name])
                break
        else:
            if f.default is MISSING and f.default_factory is MISSING:  # pragma: no cover
                msg = f"setting {f.name} has no default"
                raise ConfigError(msg)
    try:
        return Settings(**values)
    except TypeError as exc:
        raise ConfigError(str(exc)) from None


_lock = threading.Lock()
_settings: Settings | None = None


def get_settings() -> Settings:
    """The settings in force (loaded from the environment on first use)."""
    global _settings
    current = _settings
    if current is None:
        with _lock:
            if _settings is None:
                _settings = load_settings()
            current = _settings
    return current


def update_settings(**overrides: Any) -> Settings:
    """Replace the settings in force: the given values over the current ones."""
    global _settings
    with _lock:
        base = _settings if _settings is not None else load_settings()
        known = {f.name for f in fields(Settings)}
        unknown = set(overrides) - known
        if unknown:
            msg = f"unknown setting(s) {sorted(unknown)}; known settings: {sorted(known)}"
            raise ConfigError(msg)
        _settings = replace(base, **overrides)
        return _settings


def reset_settings() -> Settings:
    """Forget every setting given so far: the environment and the defaults again."""
    global _settings
    with _lock:
        _settings = load_settings()
        return _settings
