"""``errorkit projects create|list`` and ``errorkit keys create|list|revoke``: the projects
the tracker ingests for and the DSN keys their SDKs send with.

Exit codes: 0 done, 1 the project or key asked for is not in the store, 2 bad input, 3 the
store is unreachable.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import click
from rich.table import Table

from errorkit.cli.server_cmds import _store
from errorkit.cli.store_cmds import (
    _json_option,
    _NotFound,
    _open,
    _print_items,
    _print_json,
    _store_option,
    _Unavailable,
    _when,
)
from errorkit.store import ErrorStore, InvalidQuery, NotFound, StoreError
from errorkit.store.projects import Project, ProjectKey, ProjectStore, check_base_url

__all__ = ["DEFAULT_BASE_URL", "keys", "projects", "register"]

#: Where ``errorkit serve`` listens by default: the start of the DSNs printed.
DEFAULT_BASE_URL = "http://127.0.0.1:8080"


def register(cli: click.Group) -> None:
    """Add the ``projects`` and ``keys`` groups to ``cli``."""
    cli.add_command(projects)
    cli.add_command(keys)


def _url_option(command: click.decorators.FC) -> click.decorators.FC:
    decorator = click.option(
        "--url",
        "base_url",
        metavar="BASE",
        default=DEFAULT_BASE_URL,
        show_default=True,
        help="Where SDKs reach the tracker (errorkit serve): the start of the DSN.",
    )
    return decorator(command)


@contextmanager
def _changing(store: ErrorStore) -> Iterator[ProjectStore]:
    """A ProjectStore on ``store``, its refusals turned into the CLI's exit codes."""
    try:
        yield ProjectStore(store)
    except InvalidQuery as exc:
        raise click.UsageError(str(exc)) from None
    except NotFound as exc:
        raise _NotFound(str(exc)) from None
    except StoreError as exc:
        raise _Unavailable(str(exc)) from None
    finally:
        store.close()


def _check_url(base_url: str) -> None:
    try:
        check_base_url(base_url)
    except InvalidQuery as exc:
        raise click.BadParameter(str(exc), param_hint="--url") from None


# -- projects ---------------------------------------------------------------------------


@click.group()
def projects() -> None:
    """Projects the tracker ingests for (Sentry SDKs and errorkit's HTTP transport).

    A project's id ends its DSNs; its name becomes the service of the events it sends.
    """


@projects.command("create")
@click.argument("name")
@_json_option
@_store_option
def projects_create(store_url: str, name: str, as_json: bool) -> None:
    """Make project NAME (letters, digits, '.', '_', '-'); then `errorkit keys create`."""
    with _changing(_store(store_url)) as book:
        project = book.create_project(name)
    if as_json:
        _print_json(project.as_dict())
        return
    click.echo(
        f"project {project.id} ({project.name}); give it a DSN key with "
        f"`errorkit keys create --project {project.name}`"
    )


def _projects_table(items: Sequence[Project]) -> Table:
    table = Table(title="projects", title_justify="left")
    for column in ("id", "name", "created"):
        table.add_column(column, overflow="fold")
    for item in items:
        table.add_row(str(item.id), item.name, _when(item.created_at))
    return table


@projects.command("list")
@_json_option
@_store_option
def projects_list(store_url: str, as_json: bool) -> None:
    """Every project with its id (the last part of its DSNs)."""
    with _open(store_url) as store:
        items = ProjectStore(store).list_projects()
    _print_items(
        items,
        as_json,
        "no projects yet; make one with `errorkit projects create NAME`",
        _projects_table,
    )


# -- keys -------------------------------------------------------------------------------


@click.group()
def keys() -> None:
    """DSN keys of the projects: create (prints the DSN), list, revoke.

    The public key is the user part of the DSN; SDKs send it with every event, so treat a
    DSN like an address, and revoke a key that should no longer send.
    """


@keys.command("create")
@click.option("--project", "project", metavar="ID|NAME", required=True, help="Whose key.")
@click.option("--label", default="default", show_default=True, help="What the key is for.")
@click.option(
    "--rate-limit",
    type=int,
    metavar="N",
    help="Events per minute this key may send (default: the server's limit).",
)
@_url_option
@_json_option
@_store_option
def keys_create(
    store_url: str,
    project: str,
    label: str,
    rate_limit: int | None,
    base_url: str,
    as_json: bool,
) -> None:
    """Make a key for a project and print the DSN to give its SDK."""
    _check_url(base_url)
    with _open(store_url) as store:
        key = ProjectStore(store).create_key(project, label=label, rate_limit=rate_limit)
    if as_json:
        _print_json(key.as_dict(base_url))
        return
    click.echo(key.dsn(base_url))
    limit = "the server's rate limit" if key.rate_limit is None else f"{key.rate_limit}/min"
    click.echo(
        f"key {key.id} ({key.label}, {limit}) of project {key.project_id}; give the DSN "
        "above to the SDK: sentry_sdk.init(dsn=...) or errorkit.configure(store_url=...)",
        err=True,
    )


def _keys_table(base_url: str) -> Callable[[Sequence[ProjectKey]], Table]:
    def build(items: Sequence[ProjectKey]) -> Table:
        table = Table(title="DSN keys", title_justify="left")
        for column in ("id", "project", "label", "state", "rate limit", "created", "DSN"):
            table.add_column(column, overflow="fold")
        for item in items:
            table.add_row(
                str(item.id),
                str(item.project_id),
                item.label,
                item.state(),
                "-" if item.rate_limit is None else f"{item.rate_limit}/min",
                _when(item.created_at),
                item.dsn(base_url),
            )
        return table

    return build


@keys.command("list")
@click.option("--project", "project", metavar="ID|NAME", help="Only this project's keys.")
@_url_option
@_json_option
@_store_option
def keys_list(store_url: str, project: str | None, base_url: str, as_json: bool) -> None:
    """Every key (revoked ones too) with its DSN and state (active, revoked)."""
    _check_url(base_url)
    with _open(store_url) as store:
        items = ProjectStore(store).list_keys(project)
    _print_items(
        items,
        as_json,
        "no DSN keys yet; make one with `errorkit keys create --project NAME`",
        _keys_table(base_url),
        record=lambda item: item.as_dict(base_url),
    )


@keys.command("revoke")
@click.argument("key", metavar="KEY_OR_ID")
@_store_option
def keys_revoke(store_url: str, key: str) -> None:
    """Revoke a key (its id or public key): trackers refuse it within a few seconds."""
    with _open(store_url) as store:
        item = ProjectStore(store).revoke_key(key)
    click.echo(f"revoked key {item.id} ({item.label}) of project {item.project_id}")
