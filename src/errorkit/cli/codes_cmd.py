"""``errorkit codes``: the error-code reference."""

from __future__ import annotations

import importlib

import click

from errorkit.codes import catalog


@click.command()
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["markdown", "json"]),
    default="markdown",
    show_default=True,
    help="Markdown table or JSON list.",
)
@click.option(
    "--import",
    "modules",
    multiple=True,
    metavar="MODULE",
    help="Import MODULE first so that its error classes are in the reference (repeatable).",
)
def codes(fmt: str, modules: tuple[str, ...]) -> None:
    """Print every registered error code with its status, category, severity and retriable."""
    import errorkit.classification  # noqa: F401 - registers the HTTP-status and upstream codes

    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as exc:
            msg = f"could not import {name!r}: {type(exc).__name__}: {exc}"
            raise click.BadParameter(msg, param_hint="--import") from exc
    click.echo(catalog.reference("json" if fmt == "json" else "markdown"), nl=False)
