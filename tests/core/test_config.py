"""Settings: arguments > environment > defaults, with clear errors."""

from __future__ import annotations

import pytest

from errorkit.config import ConfigError, Settings, load_settings


def test_defaults() -> None:
    """Without arguments or environment the defaults apply."""
    settings = load_settings(environ={})
    assert settings == Settings()
    assert settings.store_url.startswith("sqlite:///")


def test_environment_then_arguments() -> None:
    """The environment overrides defaults; arguments override the environment."""
    env = {
        "ERRORKIT_SERVICE": "billing",
        "ERRORKIT_QUEUE_SIZE": "5_000",
        "ERRORKIT_ENV": "staging",
        "LOG_LEVEL": "debug",
        "ERRORKIT_CAPTURE_4XX": "yes",
        "ERRORKIT_SCRUB_KEYS": "a, b",
    }
    settings = load_settings({"service": "api"}, environ=env)
    assert settings.service == "api"
    assert settings.queue_size == 5000
    assert settings.environment == "staging"
    assert settings.log_level == "debug"
    assert settings.capture_4xx is True
    assert settings.scrub_keys == ("a", "b")


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({"ERRORKIT_QUEUE_SIZE": "lots"}, "ERRORKIT_QUEUE_SIZE='lots' is not a valid int"),
        ({"ERRORKIT_CAPTURE_4XX": "maybe"}, "ERRORKIT_CAPTURE_4XX='maybe' is not a valid bool"),
        ({"ERRORKIT_QUEUE_SIZE": "0"}, "queue_size=0: must be a whole number >= 1"),
        ({"ERRORKIT_RESPONSE_FORMAT": "xml"}, "use 'default', 'problem' or 'wrapped'"),
    ],
)
def test_bad_environment_values_are_named(env: dict[str, str], fragment: str) -> None:
    """A bad value names the variable and what is accepted."""
    with pytest.raises(ConfigError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        load_settings(environ=env)


def test_unknown_argument_lists_known_settings() -> None:
    """A misspelt setting is refused with the list of known ones."""
    with pytest.raises(ConfigError, match="unknown setting"):
        load_settings({"stor_url": "x"}, environ={})
