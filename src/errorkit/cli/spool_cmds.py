"""``errorkit spool status | replay``: the local spool where captured errors wait while
the store is down.

Exit codes: 0 done (for ``replay``: the spool is empty), 1 ``status --check`` found
batches waiting, 2 bad input, 3 the store is unreachable (the spool is kept as it is).
"""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from errorkit.capturing.spool import Spool, SpoolStatus, default_spool_dir
from errorkit.cli.store_cmds import DEFAULT_STORE_URL, _console, _Unavailable
from errorkit.store import ErrorStore, InvalidStoreURL, StoreError, open_store
from errorkit.store.engine import describe_url, normalize_url
from errorkit.store.http import HttpStore, is_tracker_url, parse_tracker_url

__all__ = ["register", "spool"]

EXIT_WAITING = 1


def register(cli: click.Group) -> None:
    """Add the ``spool`` command group to ``cli``."""
    cli.add_command(spool)


class _Waiting(click.ClickException):
    exit_code = EXIT_WAITING


def _settings() -> tuple[str, str | None, int]:
    from errorkit.config import ConfigError, load_settings

    try:
        settings = load_settings()
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    return settings.store_url, settings.spool_dir, settings.spool_max_bytes


def _resolve(store_url: str | None, spool_dir: str | None) -> tuple[str, Spool]:
    default_url, default_dir, max_bytes = _settings()
    url = store_url or default_url
    try:
        if is_tracker_url(url):
            parse_tracker_url(url)
        else:
            normalize_url(url)
    except InvalidStoreURL as exc:
        raise click.BadParameter(str(exc), param_hint="--store") from None
    directory = Path(spool_dir or default_dir or default_spool_dir(url))
    if directory.exists() and not directory.is_dir():
        message = f"{directory} is a file, not a spool directory; pass the directory"
        raise click.BadParameter(message, param_hint="--spool-dir")
    return url, Spool(directory, max_bytes)


def _open_writer(url: str) -> ErrorStore | HttpStore:
    """The store at ``url`` (a tracker's too), checked to answer."""
    if not is_tracker_url(url):
        return open_store(url)
    tracker = HttpStore(url)
    try:
        tracker.ping()
    except BaseException:
        tracker.close()
        raise
    return tracker


_store = click.option(
    "--store",
    "store_url",
    metavar="URL",
    default=None,
    help=(
        "The store the spool belongs to, a database or a tracker's http(s):// URL "
        f"(default: ERRORKIT_STORE_URL, else {DEFAULT_STORE_URL})."
    ),
)
_spool_dir = click.option(
    "--spool-dir",
    metavar="DIR",
    default=None,
    help="The spool directory (default: ERRORKIT_SPOOL_DIR, else the store's own spool).",
)


@click.group()
def spool() -> None:
    """The local spool: captured errors waiting for the store."""


def _status_dict(status: SpoolStatus) -> dict[str, object]:
    return {
        "directory": status.directory,
        "files": status.files,
        "bytes": status.bytes,
        "max_bytes": status.max_bytes,
        "batches": status.batches,
        "records": status.records,
        "deltas": status.deltas,
        "corrupt_lines": status.corrupt_lines,
        "oldest": None if status.oldest is None else status.oldest.isoformat(),
    }


@spool.command("status")
@_store
@_spool_dir
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead.")
@click.option("--check", is_flag=True, help="Exit with 1 when batches are waiting.")
def status_command(
    store_url: str | None, spool_dir: str | None, as_json: bool, check: bool
) -> None:
    """What the spool holds: files, bytes, batches, events and counts waiting."""
    url, spooled = _resolve(store_url, spool_dir)
    status = spooled.status(count=True)
    if as_json:
        click.echo(json.dumps({"store": describe_url(url), **_status_dict(status)}, indent=2))
    else:
        table = Table(show_header=False, box=None, padding=(0, 2, 0, 0))
        table.add_column(style="bold", no_wrap=True)
        table.add_column(overflow="fold")
        table.add_row("store", describe_url(url))
        table.add_row("directory", status.directory)
        table.add_row("files", str(status.files))
        table.add_row("size", f"{status.bytes:,} of {status.max_bytes:,} bytes")
        table.add_row("batches", str(status.batches))
        table.add_row("events", str(status.records))
        table.add_row("counts", str(status.deltas))
        if status.corrupt_lines:
            table.add_row("unreadable lines", str(status.corrupt_lines))
        if status.oldest is not None:
            table.add_row("oldest", status.oldest.strftime("%Y-%m-%d %H:%M:%S UTC"))
        _console().print(table)
    if check and status.batches:
        message = (
            f"{status.batches} batch(es) wait in {status.directory}; run `errorkit spool replay`"
        )
        raise _Waiting(message)


@spool.command("replay")
@_store
@_spool_dir
def replay_command(store_url: str | None, spool_dir: str | None) -> None:
    """Write every waiting batch into the store, then empty the spool.

    Replays are idempotent: an event already stored, or a count already applied, is not
    counted again, so replaying twice (or while the app replays too) is safe."""
    url, spooled = _resolve(store_url, spool_dir)
    before = spooled.status(count=True)
    if not before.batches:
        click.echo(f"nothing to replay in {before.directory}")
        return
    try:
        store = _open_writer(url)
    except StoreError as exc:
        message = f"{exc}; the spool is kept ({before.batches} batch(es) in {before.directory})"
        raise _Unavailable(message) from None
    console = _console()
    total = (before.records or 0) + (before.deltas or 0)
    try:
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=not console.is_terminal,
        ) as progress:
            task = progress.add_task("replaying", total=total)
            result = spooled.replay(
                store.write_batch, on_progress=lambda n: progress.advance(task, n)
            )
    finally:
        store.close()
    click.echo(
        f"replayed {result.batches} batch(es): {result.records} event(s), "
        f"{result.deltas} count(s) into {store.url}"
    )
    if result.corrupt_lines:
        click.echo(f"skipped {result.corrupt_lines} unreadable line(s) (cut by a crash)")
    if result.error is not None:
        message = (
            f"the store failed part-way ({type(result.error).__name__}: {result.error}); "
            "the rest is kept in the spool, run replay again when the store is back"
        )
        raise _Unavailable(message)
