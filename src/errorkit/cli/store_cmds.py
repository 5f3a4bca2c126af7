"""``errorkit errors|groups|db``: read and manage the store from a terminal.

Exit codes: 0 done, 1 the id asked for is not in the store, 2 bad input, 3 the store is
unreachable or refused the operation (the message names the URL, never its password).
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any, TypeVar

import click
from rich.console import Console
from rich.panel import Panel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from errorkit.config import DEFAULT_SETTINGS, ConfigError, load_settings
from errorkit.store import (
    ErrorFilters,
    ErrorGroup,
    ErrorStore,
    InvalidQuery,
    InvalidStoreURL,
    NotFound,
    SlimError,
    StoredError,
    StoreError,
    upgrade,
)
from errorkit.store.engine import describe_url, normalize_url

__all__ = [
    "DEFAULT_STORE_URL",
    "db",
    "errors",
    "groups",
    "parse_duration",
    "parse_moment",
    "register",
]

#: The store used without --store or ERRORKIT_STORE_URL (the setting's default).
DEFAULT_STORE_URL = DEFAULT_SETTINGS.store_url
EXIT_NOT_FOUND = 1
EXIT_BAD_INPUT = 2
EXIT_UNAVAILABLE = 3

F = TypeVar("F", bound=Callable[..., Any])

_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def register(cli: click.Group) -> None:
    """Add the ``errors``, ``groups`` and ``db`` command groups to ``cli``."""
    cli.add_command(errors)
    cli.add_command(groups)
    cli.add_command(db)


# -- input --------------------------------------------------------------------------


def parse_duration(text: str) -> timedelta:
    """``30d``, ``12h``, ``15m``, ``90s``, ``2w`` as a timedelta; ValueError otherwise."""
    match = _DURATION.match(text)
    if match is None:
        message = (
            f"{text!r} is not a duration; write a whole number and a unit: "
            "s, m, h, d or w (for example 30d, 12h, 15m, 90s, 2w)"
        )
        raise ValueError(message)
    amount, unit = int(match.group(1)), match.group(2)
    if amount == 0:
        message = f"{text!r} is an empty duration; give a positive amount such as 30d"
        raise ValueError(message)
    return timedelta(**{_UNITS[unit]: amount})


def parse_moment(text: str) -> datetime:
    """A duration ago (``24h``) or an ISO 8601 date/time (UTC when it has no offset)."""
    if _DURATION.match(text):
        return datetime.now(UTC) - parse_duration(text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        message = (
            f"{text!r} is neither a duration ago (24h, 7d) nor an ISO date/time "
            "(2025-03-01 or 2025-03-01T12:00+00:00)"
        )
        raise ValueError(message) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _as_duration(ctx: click.Context, param: click.Parameter, value: str | None) -> timedelta | None:
    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx, param) from None


def _as_moment(ctx: click.Context, param: click.Parameter, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return parse_moment(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx, param) from None


def _default_store_url() -> str:
    """The store URL of the settings: ERRORKIT_STORE_URL, else the default."""
    try:
        return load_settings().store_url
    except ConfigError:  # another ERRORKIT_* variable is unusable: --store needs only this one
        return load_settings(environ=_only("ERRORKIT_STORE_URL")).store_url


def _only(name: str) -> dict[str, str]:
    return {name: os.environ[name]} if name in os.environ else {}


def _store_option(command: F) -> F:
    decorator = click.option(
        "--store",
        "store_url",
        metavar="URL",
        default=_default_store_url,
        show_default="ERRORKIT_STORE_URL, else " + DEFAULT_STORE_URL,
        help="Store to use: sqlite:///path.db or postgresql://user@host/db.",
    )
    return decorator(command)


def _json_option(command: F) -> F:
    decorator = click.option("--json", "as_json", is_flag=True, help="Print JSON instead.")
    return decorator(command)


def _filter_options(command: F) -> F:
    options = [
        click.option("--type", "error_type", metavar="TYPE", help="Only this error_type."),
        click.option("--severity", metavar="LEVEL", help="Only this severity."),
        click.option("--code", "error_code", metavar="CODE", help="Only this error_code."),
        click.option(
            "--resolved/--unresolved", default=None, help="Only resolved or unresolved errors."
        ),
        click.option("--fingerprint", metavar="FP", help="Only this group's errors."),
        click.option("--session", "session_id", metavar="ID", help="Only this session."),
        click.option("--request", "request_id", metavar="ID", help="Only this request."),
        click.option("--service", metavar="NAME", help="Only this service."),
        click.option("--environment", metavar="NAME", help="Only this environment."),
        click.option(
            "--since",
            metavar="WHEN",
            callback=_as_moment,
            help="From this time on (24h = the last day).",
        ),
        click.option("--until", metavar="WHEN", callback=_as_moment, help="Before this time."),
        click.option("--search", metavar="TEXT", help="Text in message, title, code, endpoint."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _filters(values: dict[str, Any]) -> ErrorFilters:
    names = ErrorFilters.__annotations__
    found: ErrorFilters = {}
    for name in names:
        if values.get(name) is not None:
            found[name] = values[name]  # type: ignore[literal-required]
    return found


# -- output and failures ------------------------------------------------------------


class _NotFound(click.ClickException):
    exit_code = EXIT_NOT_FOUND


class _Unavailable(click.ClickException):
    exit_code = EXIT_UNAVAILABLE


#: Width of tables written to a pipe or file, where no terminal sets one.
_PIPE_WIDTH = 200


def _console(stderr: bool = False) -> Console:
    console = Console(stderr=stderr, highlight=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = Console(stderr=stderr, highlight=False, width=_PIPE_WIDTH)
    return console


@contextmanager
def _open(url: str) -> Iterator[ErrorStore]:
    """The existing store at ``url``, with its failures turned into the CLI's exit codes.

    A SQLite file that does not exist is reported rather than created: reading commands
    must not leave an empty store behind a mistyped path (``db upgrade`` creates one).
    """
    try:
        parsed = normalize_url(url)
    except InvalidStoreURL as exc:
        raise click.BadParameter(str(exc), param_hint="--store") from None
    database = parsed.database or ""
    is_file = database.startswith("file:") or Path(database).expanduser().is_file()
    if parsed.drivername == "sqlite" and not is_file:
        message = (
            f"no store at {describe_url(parsed)} (the file does not exist); check --store "
            "or ERRORKIT_STORE_URL, or create it with `errorkit db upgrade`"
        )
        raise _Unavailable(message)
    try:
        store = ErrorStore(parsed)
    except StoreError as exc:
        raise _Unavailable(str(exc)) from None
    try:
        yield store
    except NotFound as exc:
        raise _NotFound(str(exc)) from None
    except InvalidQuery as exc:
        raise click.UsageError(str(exc)) from None
    except StoreError as exc:
        raise _Unavailable(str(exc)) from None
    finally:
        store.close()


def _when(value: datetime | None) -> str:
    return "" if value is None else value.strftime("%Y-%m-%d %H:%M:%S")


def _short(text: str | None, width: int = 60) -> str:
    if not text:
        return ""
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= width else line[: width - 1] + "…"


def _print_json(value: Any) -> None:
    click.echo(json.dumps(value, ensure_ascii=False, indent=2))


def _print_items(
    items: Sequence[Any],
    as_json: bool,
    empty: str,
    table: Callable[[Sequence[Any]], Table],
    record: Callable[[Any], dict[str, Any]] | None = None,
) -> None:
    """A list command's output: JSON records (each item's ``as_dict()``, or ``record`` of
    it), the ``empty`` hint, or the table."""
    if as_json:
        _print_json([item.as_dict() if record is None else record(item) for item in items])
    elif not items:
        click.echo(empty)
    else:
        _console().print(table(items))


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    )


def _errors_table(items: Sequence[StoredError], title: str) -> Table:
    table = Table(title=title, title_justify="left", expand=False)
    table.add_column("time (UTC)", no_wrap=True)
    table.add_column("error_id", overflow="fold", min_width=8)
    table.add_column("severity", no_wrap=True)
    table.add_column("type", overflow="fold")
    table.add_column("message", overflow="fold", min_width=16)
    table.add_column("done", no_wrap=True)
    for item in items:
        table.add_row(
            _when(item.timestamp),
            item.error_id,
            item.severity,
            item.error_type,
            _short(item.error_message),
            "yes" if item.resolved else "",
        )
    return table


def _groups_table(items: Sequence[ErrorGroup], title: str) -> Table:
    table = Table(title=title, title_justify="left", expand=False)
    table.add_column("id", justify="right", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("count", justify="right", no_wrap=True)
    table.add_column("last seen (UTC)", no_wrap=True)
    table.add_column("title", overflow="fold", min_width=16)
    table.add_column("fingerprint", overflow="fold", min_width=8)
    for group in items:
        table.add_row(
            str(group.id),
            group.status,
            f"{group.count:,}",
            _when(group.last_seen),
            _short(group.title),
            group.fingerprint,
        )
    return table


def _fields_table(values: dict[str, Any], skip: Sequence[str] = ()) -> Table:
    table = Table(show_header=False, box=None, padding=(0, 2, 0, 0))
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    for name, value in values.items():
        if name in skip or value is None or value == {}:
            continue
        shown = json.dumps(value, ensure_ascii=False) if isinstance(value, dict) else str(value)
        table.add_row(name, shown)
    return table


# -- errors -------------------------------------------------------------------------


@click.group()
def errors() -> None:
    """List, inspect, resolve, count, export and clean up stored errors."""


@errors.command("list")
@_filter_options
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
@click.option("--offset", type=click.IntRange(0), default=0, show_default=True)
@click.option("--cursor", metavar="CURSOR", help="Continue after a previous page.")
@_json_option
@_store_option
def errors_list(
    store_url: str, limit: int, offset: int, cursor: str | None, as_json: bool, **values: Any
) -> None:
    """Stored errors, newest first."""
    with _open(store_url) as store:
        page = store.list(limit=limit, offset=offset, cursor=cursor, **_filters(values))
    if as_json:
        _print_json(
            {
                "items": [item.as_dict() for item in page.items],
                "total": page.total,
                "next_cursor": page.next_cursor,
            }
        )
        return
    console = _console()
    shown = f"{offset + 1}-{offset + len(page)}" if page.items else "none"
    console.print(_errors_table(page.items, f"errors {shown} of {page.total}"))
    if page.next_cursor:
        console.print(f"more: --cursor {page.next_cursor}")


@errors.command("show")
@click.argument("error_id")
@_json_option
@_store_option
def errors_show(store_url: str, error_id: str, as_json: bool) -> None:
    """One stored error with its context, payloads and stack trace. An answered error whose
    full sample was not kept (sampled out under a flood) shows its slim row and group."""
    with _open(store_url) as store:
        item = store.get(error_id)
        slim = store.get_slim(error_id) if item is None else None
        if item is None and slim is None:
            raise NotFound.error(error_id, store.url)
    if item is None:
        if slim is not None:
            _show_slim(slim, as_json)
        return
    if as_json:
        _print_json(item.as_dict())
        return
    console = _console()
    long_text = ("stack_trace", "request_payload", "response_payload")
    console.print(_fields_table(item.as_dict(), skip=long_text))
    for name in long_text:
        value = getattr(item, name)
        if value:
            console.print(Panel(value, title=name, title_align="left", expand=False))


def _show_slim(slim: SlimError, as_json: bool) -> None:
    if as_json:
        _print_json(slim.as_dict())
        return
    console = _console()
    console.print(
        "the full sample of this error was not kept (sampled out under a flood of its "
        "group); its slim row and group:"
    )
    fields = slim.as_dict()
    fields.pop("group")
    fields.pop("sample_kept")
    console.print(_fields_table(fields, skip=()))
    group = slim.group
    if group is None:
        console.print(f"group {slim.fingerprint} is not in the store (yet)")
        return
    console.print(
        f"group {group.id} ({group.status}): {group.title} - {group.count} occurrences, "
        f"last seen {_when(group.last_seen)}; last stored sample: {group.last_error_id or '-'}"
    )


@errors.command("resolve")
@click.argument("error_id")
@click.option("--notes", metavar="TEXT", help="What was done about it.")
@_store_option
def errors_resolve(store_url: str, error_id: str, notes: str | None) -> None:
    """Mark one stored error resolved."""
    with _open(store_url) as store:
        item = store.resolve(error_id, notes)
    _console().print(f"resolved {item.error_id} ({item.error_type}: {_short(item.error_message)})")


@errors.command("stats")
@click.option(
    "--since", metavar="WHEN", callback=_as_moment, help="From this time on (24h = the last day)."
)
@click.option("--until", metavar="WHEN", callback=_as_moment, help="Before this time.")
@click.option("--bucket", type=click.Choice(["hour", "day"]), default="hour", show_default=True)
@_json_option
@_store_option
def errors_stats(
    store_url: str,
    since: datetime | None,
    until: datetime | None,
    bucket: str,
    as_json: bool,
) -> None:
    """Counts of stored errors by type, severity, code, endpoint and time."""
    with _open(store_url) as store:
        stats = store.stats(since, until, bucket="day" if bucket == "day" else "hour")
    if as_json:
        _print_json(stats.as_dict())
        return
    console = _console()
    console.print(f"{stats.total:,} stored errors, {stats.unresolved:,} unresolved")
    for title, counts in (
        ("by type", stats.by_type),
        ("by severity", stats.by_severity),
        ("by code", stats.by_code),
        ("by endpoint", stats.by_endpoint),
    ):
        table = Table(title=title, title_justify="left")
        table.add_column(title.removeprefix("by "))
        table.add_column("count", justify="right")
        for key, count in counts.items():
            table.add_row(key, f"{count:,}")
        console.print(table)
    table = Table(title=f"per {stats.bucket} (UTC)", title_justify="left")
    table.add_column("from", no_wrap=True)
    table.add_column("count", justify="right")
    for start, count in stats.buckets:
        table.add_row(_when(start), f"{count:,}")
    console.print(table)


@errors.command("export")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["jsonl", "csv"]),
    default="jsonl",
    show_default=True,
    help="JSON lines or CSV.",
)
@click.option(
    "--output",
    type=click.Path(dir_okay=False, writable=True, allow_dash=True),
    default="-",
    show_default="standard output",
    help="File to write.",
)
@_filter_options
@_store_option
def errors_export(store_url: str, fmt: str, output: str, **values: Any) -> None:
    """Write stored errors, oldest first, streaming (memory stays flat)."""
    filters = _filters(values)
    with _open(store_url) as store:
        stream: IO[str] = (
            sys.stdout if output == "-" else open(output, "w", encoding="utf-8", newline="")  # noqa: SIM115
        )
        status = _console(stderr=True)
        try:
            with _progress(status) as progress:
                # Counting costs a query; only a progress bar someone sees needs the total.
                total = store.count(**filters) if status.is_terminal else None
                task = progress.add_task("exporting", total=total)
                written = store.export(
                    stream,
                    fmt="csv" if fmt == "csv" else "jsonl",
                    on_progress=lambda n: progress.advance(task, n),
                    **filters,
                )
        finally:
            if stream is not sys.stdout:
                stream.close()
    if output != "-":
        status.print(f"wrote {written:,} errors to {output}")


@errors.command("cleanup")
@click.option(
    "--older-than",
    "older_than",
    metavar="DURATION",
    callback=_as_duration,
    required=True,
    help="Delete errors older than this: 30d, 12h, 2w ...",
)
@click.option("--dry-run", is_flag=True, help="Only count what would be deleted.")
@_store_option
def errors_cleanup(store_url: str, older_than: timedelta, dry_run: bool) -> None:
    """Delete old stored errors; group counts are kept exact."""
    cutoff = datetime.now(UTC) - older_than
    console = _console()
    with _open(store_url) as store:
        doomed = store.count(until=cutoff)
        if dry_run:
            console.print(f"would delete {doomed:,} errors stored before {_when(cutoff)} UTC")
            return
        with _progress(_console(stderr=True)) as progress:
            task = progress.add_task("deleting", total=doomed)
            deleted = store.cleanup(cutoff, on_progress=lambda n: progress.advance(task, n))
    console.print(f"deleted {deleted:,} errors stored before {_when(cutoff)} UTC")


# -- groups -------------------------------------------------------------------------


@click.group()
def groups() -> None:
    """List and triage error groups (issues)."""


@groups.command("list")
@click.option(
    "--status",
    "statuses",
    multiple=True,
    type=click.Choice(["unresolved", "resolved", "ignored", "regressed"]),
    help="Only groups in this status (repeatable).",
)
@click.option("--type", "error_type", metavar="TYPE", help="Only this error_type.")
@click.option("--severity", metavar="LEVEL", help="Only this severity.")
@click.option("--code", "error_code", metavar="CODE", help="Only this error_code.")
@click.option("--release", metavar="VERSION", help="Only groups with an error of this release.")
@click.option("--endpoint", metavar="PATH", help="Only groups with an error at this endpoint.")
@click.option("--search", metavar="TEXT", help="Text in title, fingerprint, code or type.")
@click.option("--service", metavar="NAME", help="Only this service.")
@click.option("--environment", metavar="NAME", help="Only this environment.")
@click.option(
    "--since",
    metavar="WHEN",
    callback=_as_moment,
    help="Only groups seen from this time on (24h = the last day).",
)
@click.option(
    "--until", metavar="WHEN", callback=_as_moment, help="Only groups first seen before this."
)
@click.option(
    "--sort",
    type=click.Choice(["last_seen", "count", "first_seen", "trend"]),
    default="last_seen",
    show_default=True,
    help="trend: occurrences from --since to --until (or the last 24 h) minus the window before.",
)
@click.option("--asc", is_flag=True, help="Ascending instead of descending.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
@click.option("--offset", type=click.IntRange(0), default=0, show_default=True)
@click.option("--cursor", metavar="CURSOR", help="Continue after a page (its next_cursor).")
@_json_option
@_store_option
def groups_list(
    store_url: str,
    statuses: tuple[str, ...],
    sort: str,
    asc: bool,
    limit: int,
    offset: int,
    cursor: str | None,
    as_json: bool,
    **filters: Any,
) -> None:
    """Groups with their exact occurrence counts (the tracker API's filters and sorts)."""
    with _open(store_url) as store:
        page = store.groups(
            status=list(statuses) or None,  # type: ignore[arg-type]
            sort=sort,  # type: ignore[arg-type]
            descending=not asc,
            limit=limit,
            offset=offset,
            cursor=cursor,
            **filters,
        )
    if as_json:
        _print_json(
            {
                "items": [group.as_dict() for group in page.items],
                "total": page.total,
                "next_cursor": page.next_cursor,
            }
        )
        return
    shown = f"{offset + 1}-{offset + len(page)}" if page.items else "none"
    _console().print(_groups_table(page.items, f"groups {shown} of {page.total}"))
    if page.next_cursor is not None:
        _console().print(f"next page: --cursor {page.next_cursor}")


@groups.command("show")
@click.argument("key", metavar="FINGERPRINT_OR_ID")
@_json_option
@_store_option
def groups_show(store_url: str, key: str, as_json: bool) -> None:
    """One group and its most recent errors."""
    with _open(store_url) as store:
        group = store.group(key)
        if group is None:
            raise NotFound.group(key, store.url)
        recent = store.list(fingerprint=group.fingerprint, limit=10, with_total=False).items
    if as_json:
        _print_json({**group.as_dict(), "recent": [item.as_dict() for item in recent]})
        return
    console = _console()
    console.print(_fields_table(group.as_dict()))
    console.print(_errors_table(recent, "most recent errors"))


def _group_action(
    name: str, help_text: str, act: Callable[[ErrorStore, str, str | None], ErrorGroup]
) -> None:
    @groups.command(name, help=help_text)
    @click.argument("key", metavar="FINGERPRINT_OR_ID")
    @click.option("--notes", metavar="TEXT", help="Why; kept with the group.")
    @_store_option
    def command(store_url: str, key: str, notes: str | None) -> None:
        with _open(store_url) as store:
            group = act(store, key, notes)
        _console().print(f"group {group.id} ({_short(group.title)}) is now {group.status}")


def _unresolve(store: ErrorStore, key: str, notes: str | None) -> ErrorGroup:
    if notes is not None:
        raise click.UsageError("unresolve takes no --notes; the group keeps its notes")
    return store.unresolve_group(key)


_group_action(
    "resolve",
    "Mark a group and its stored errors resolved; it regresses if it occurs again.",
    lambda store, key, notes: store.resolve_group(key, notes),
)
_group_action("unresolve", "Reopen a group and its stored errors.", _unresolve)
_group_action(
    "ignore",
    "Ignore a group: still counted, left out of the unresolved list.",
    lambda store, key, notes: store.ignore_group(key, notes),
)


# -- db -----------------------------------------------------------------------------


@click.group()
def db() -> None:
    """The store's database schema."""


@db.command("upgrade")
@_store_option
def db_upgrade(store_url: str) -> None:
    """Create or migrate the store's tables to this errorkit's schema."""
    try:
        revision = upgrade(store_url)
    except InvalidStoreURL as exc:
        raise click.BadParameter(str(exc), param_hint="--store") from None
    except StoreError as exc:
        raise _Unavailable(str(exc)) from None
    _console().print(f"store {describe_url(store_url)} is at schema revision {revision}")
