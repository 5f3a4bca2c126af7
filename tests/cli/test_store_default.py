"""The CLI's default store is the setting's: ERRORKIT_STORE_URL, else Settings' default."""

from __future__ import annotations

from pathlib import Path

import click
from click.testing import CliRunner

from errorkit.cli import store_cmds
from errorkit.config import DEFAULT_SETTINGS


def _cli() -> click.Group:
    @click.group()
    def main() -> None:
        """Test entry point."""

    store_cmds.register(main)
    return main


def test_the_default_store_is_the_settings_default() -> None:
    """Without --store or the variable, the CLI uses the settings' default URL."""
    assert DEFAULT_SETTINGS.store_url == store_cmds.DEFAULT_STORE_URL
    result = CliRunner().invoke(_cli(), ["errors", "list", "--help"])
    assert DEFAULT_SETTINGS.store_url in result.output


def test_store_url_from_the_environment_despite_another_bad_variable(tmp_path: Path) -> None:
    """ERRORKIT_STORE_URL is honoured even when an unrelated ERRORKIT_* value is unusable."""
    url = f"sqlite:///{tmp_path / 'env.db'}"
    env = {"ERRORKIT_STORE_URL": url, "ERRORKIT_QUEUE_SIZE": "lots"}
    result = CliRunner().invoke(_cli(), ["db", "upgrade"], env=env)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "env.db").exists()
