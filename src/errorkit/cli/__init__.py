"""The ``errorkit`` command line."""

from __future__ import annotations

import click

from errorkit.cli import alerts_cmds, projects_cmds, server_cmds, spool_cmds, store_cmds
from errorkit.cli import breakers as breaker_cmds
from errorkit.cli.codes_cmd import codes

__all__ = ["cli", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="errorkit")
def cli() -> None:
    """errorkit: typed errors, capture, recovery and visibility for Python services."""


cli.add_command(codes)
store_cmds.register(cli)
spool_cmds.register(cli)
breaker_cmds.register(cli)
server_cmds.register(cli)
projects_cmds.register(cli)
alerts_cmds.register(cli)


def main() -> None:
    cli(prog_name="errorkit")
