"""``errorkit tokens create|list|revoke``, ``errorkit users add|list|remove`` and
``errorkit serve``: the tracker's credentials and the tracker itself.

Exit codes: 0 done, 1 the token asked for is not in the store, 2 bad input (or serving on a
network address with no admin token), 3 the store is unreachable.
"""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import click
from rich.table import Table

from errorkit._extras import MissingExtraError, require
from errorkit.cli.store_cmds import (
    _as_duration,
    _json_option,
    _open,
    _print_items,
    _print_json,
    _store_option,
    _Unavailable,
    _when,
)
from errorkit.ingest.ratelimit import DEFAULT_RATE_LIMIT
from errorkit.store import ErrorStore, InvalidQuery, InvalidStoreURL, StoreError
from errorkit.store.engine import describe_url, normalize_url
from errorkit.store.tokens import ApiToken, TokenStore
from errorkit.store.users import UserStore

__all__ = ["register", "serve", "tokens", "users"]

_LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


def register(cli: click.Group) -> None:
    """Add the ``tokens`` group and the ``serve`` command to ``cli``."""
    cli.add_command(tokens)
    cli.add_command(users)
    cli.add_command(serve)


def _store(url: str) -> ErrorStore:
    """The store at ``url``, created (and migrated) if it does not exist yet."""
    try:
        parsed = normalize_url(url)
    except InvalidStoreURL as exc:
        raise click.BadParameter(str(exc), param_hint="--store") from None
    try:
        store = ErrorStore(parsed)
        store.ping()
    except StoreError as exc:
        raise _Unavailable(str(exc)) from None
    return store


# -- tokens -----------------------------------------------------------------------------


@click.group()
def tokens() -> None:
    """API tokens for the tracker (errorkit serve): create, list, revoke.

    A token is printed once, when it is made; the store keeps only its hash. Role ``read``
    sees everything and changes nothing; ``admin`` may resolve, reset and clean up.
    """


@tokens.command("create")
@click.option(
    "--role",
    type=click.Choice(["admin", "read"]),
    required=True,
    help="admin: may change things; read: may only look.",
)
@click.option(
    "--expires",
    metavar="DURATION",
    callback=_as_duration,
    help="Expire after this long (30d, 12h, 2w); default: never.",
)
@click.option("--name", metavar="NAME", help="What the token is for (shown in tokens list).")
@_json_option
@_store_option
def tokens_create(
    store_url: str,
    role: Literal["admin", "read"],
    expires: timedelta | None,
    name: str | None,
    as_json: bool,
) -> None:
    """Make a token and print it, this once."""
    expires_at = None if expires is None else datetime.now(UTC) + expires
    store = _store(store_url)
    try:
        made = TokenStore(store).create(role=role, name=name, expires_at=expires_at)
    except StoreError as exc:
        raise _Unavailable(str(exc)) from None
    finally:
        store.close()
    if as_json:
        _print_json({**made.token.as_dict(), "token": made.secret})
        return
    click.echo(made.secret)
    until = "never expires" if expires_at is None else f"expires {_when(expires_at)} UTC"
    click.echo(
        f"token {made.token.id} ({made.token.name}, role {role}, {until}); it is shown only "
        "now: keep it secret. Use it as 'Authorization: Bearer <token>'.",
        err=True,
    )


def _tokens_table(items: Sequence[ApiToken]) -> Table:
    table = Table(title="API tokens", title_justify="left")
    for column in ("id", "name", "role", "state", "starts with", "created", "expires", "used"):
        table.add_column(column, overflow="fold")
    for item in items:
        table.add_row(
            str(item.id),
            item.name,
            item.role,
            item.state(),
            item.prefix + "…",
            _when(item.created_at),
            _when(item.expires_at) or "never",
            _when(item.last_used_at) or "-",
        )
    return table


@tokens.command("list")
@_json_option
@_store_option
def tokens_list(store_url: str, as_json: bool) -> None:
    """Every token with its role and state (active, expired, revoked); never the token."""
    with _open(store_url) as store:
        items = TokenStore(store).list()
    _print_items(
        items,
        as_json,
        "no API tokens yet; make one with `errorkit tokens create --role admin`",
        _tokens_table,
    )


@tokens.command("revoke")
@click.argument("token_id", type=int, metavar="ID")
@_store_option
def tokens_revoke(store_url: str, token_id: int) -> None:
    """Revoke token ID at once, for every tracker on this store."""
    with _open(store_url) as store:
        item = TokenStore(store).revoke(token_id)
    click.echo(f"revoked token {item.id} ({item.name}, role {item.role})")


# -- users ------------------------------------------------------------------------------


@click.group()
def users() -> None:
    """The dashboard's users (who log in at /admin/ with a password): add, list, remove.

    Passwords are stored as argon2id hashes. Role ``read`` sees everything and changes
    nothing; ``admin`` may resolve, ignore and reset breakers.
    """


def _user_store(store: ErrorStore) -> UserStore:
    try:
        return UserStore(store)
    except MissingExtraError as exc:
        raise click.UsageError(str(exc)) from None


@users.command("add")
@click.argument("name")
@click.option(
    "--role",
    type=click.Choice(["admin", "read"]),
    default="read",
    show_default=True,
    help="admin: may change things; read: may only look.",
)
@click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the password from the first line of standard input (for scripts).",
)
@_store_option
def users_add(
    store_url: str, name: str, role: Literal["admin", "read"], password_stdin: bool
) -> None:
    """Add user NAME; asks for the password (twice) unless --password-stdin."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    store = _store(store_url)
    try:
        user = _user_store(store).add(name, password, role=role)
    except InvalidQuery as exc:
        raise click.BadParameter(str(exc)) from None
    except StoreError as exc:
        raise _Unavailable(str(exc)) from None
    finally:
        store.close()
    click.echo(f"added user {user.name} (role {user.role}); they log in at /admin/login")


@users.command("list")
@_json_option
@_store_option
def users_list(store_url: str, as_json: bool) -> None:
    """Every user with their role and last login; never a password."""
    with _open(store_url) as store:
        items = _user_store(store).list()
    _print_items(
        items,
        as_json,
        "no users yet; add one with `errorkit users add NAME --role admin`",
        _users_table,
    )


def _users_table(items: Sequence[Any]) -> Table:
    table = Table(title="dashboard users", title_justify="left")
    for column in ("id", "name", "role", "created", "last login"):
        table.add_column(column, overflow="fold")
    for item in items:
        table.add_row(
            str(item.id),
            item.name,
            item.role,
            _when(item.created_at),
            _when(item.last_login_at) or "-",
        )
    return table


@users.command("remove")
@click.argument("name")
@_store_option
def users_remove(store_url: str, name: str) -> None:
    """Remove user NAME; their open sessions end at their next request."""
    with _open(store_url) as store:
        user = _user_store(store).remove(name)
    click.echo(f"removed user {user.name} (role {user.role})")


# -- serve ------------------------------------------------------------------------------


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable from this machine only."""
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@click.command()
@_store_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True)
@click.option(
    "--redis",
    "redis_url",
    metavar="URL",
    envvar="ERRORKIT_REDIS_URL",
    show_envvar=True,
    help="Read and reset breakers shared through this Redis (default: none to show).",
)
@click.option(
    "--namespace",
    default="default",
    show_default=True,
    envvar="ERRORKIT_BREAKER_NAMESPACE",
    help="The breakers' Redis namespace (as the apps' RedisBackend uses).",
)
@click.option("--prefix", default="/admin", show_default=True, help="Path the API lives under.")
@click.option(
    "--alerts",
    "alerts_path",
    metavar="FILE",
    type=click.Path(dir_okay=False),
    envvar="ERRORKIT_ALERTS_CONFIG",
    help=(
        "Alert rules and channels (TOML): evaluated against the store on a thread of their "
        "own every `interval`, and edited through PREFIX/api/alerts/rules (written back here)."
    ),
)
@click.option(
    "--ingest/--no-ingest",
    default=True,
    show_default=True,
    help=(
        "Take Sentry SDK traffic at POST /api/<project_id>/envelope/ and /store/, "
        "authenticated by DSN keys (`errorkit keys create`)."
    ),
)
@click.option(
    "--ingest-rate-limit",
    type=click.IntRange(min=0),
    default=DEFAULT_RATE_LIMIT,
    show_default=True,
    metavar="N",
    envvar="ERRORKIT_INGEST_RATE_LIMIT",
    show_envvar=True,
    help=(
        "Events per minute a DSN key may send unless the key has a limit of its own "
        "(0: no limit). Counted by each server process on its own."
    ),
)
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    metavar="N",
    envvar="ERRORKIT_SERVE_WORKERS",
    show_envvar=True,
    help=(
        "Server processes sharing the port (uvicorn's workers): each has its own ingest "
        "writer and spool; use about one per core. Not with --alerts (see docs/deploy.md)."
    ),
)
def serve(
    store_url: str,
    host: str,
    port: int,
    redis_url: str | None,
    namespace: str,
    prefix: str,
    alerts_path: str | None,
    ingest: bool,
    ingest_rate_limit: int,
    workers: int,
) -> None:
    """Run the tracker on the store (uvicorn): its API under PREFIX/api/, its dashboard
    at PREFIX/ (log in with a token or a user from `errorkit users add`), and the
    Sentry-compatible ingest at /api/<project_id>/envelope/ (see docs/ingest.md).

    Binding to an address other than loopback is refused until an admin token exists.
    With --alerts FILE the alert rules in FILE are evaluated from startup to shutdown.
    With --workers N, N processes share the port (one per core takes the most traffic).
    """
    if workers > 1 and alerts_path is not None:
        message = (
            "--alerts runs with one worker only: each worker would keep its own copy of the "
            "rules, so an edit through the API would reach one of them. Run the alerts in a "
            "process of their own (`errorkit serve --alerts FILE --port OTHER`) beside the "
            "workers; the store makes sure each alert fires once."
        )
        raise click.UsageError(message)
    try:
        require("uvicorn", extra="server", feature="errorkit serve")
        require("fastapi", extra="server", feature="errorkit serve")
    except MissingExtraError as exc:
        raise click.UsageError(str(exc)) from None
    store = _store(store_url)
    try:
        has_admin = TokenStore(store).has_active("admin")
    except StoreError as exc:
        store.close()
        raise _Unavailable(str(exc)) from None
    shown = describe_url(normalize_url(store_url))
    if not has_admin and not is_loopback(host):
        store.close()
        message = (
            f"refusing to serve on {host}: the store at {shown} has no active admin token, "
            "so the API would be reachable from the network with no one able to use it "
            "safely. Create one first:\n\n"
            f"    errorkit tokens create --role admin --store '{shown}'\n\n"
            "then start again (or serve on 127.0.0.1)."
        )
        raise click.UsageError(message)
    import uvicorn

    options = {
        "store_url": store_url,
        "redis_url": redis_url,
        "namespace": namespace,
        "prefix": prefix,
        "ingest": ingest,
        "ingest_rate_limit": ingest_rate_limit,
    }
    # With workers, this process only watches them: it does not import the tracker (the
    # dashboard, the API, the ingest), so it takes a fraction of a worker's memory.
    from errorkit.alerts import AlertConfigError

    try:
        app = None if workers > 1 else _tracker_app(store, options, alerts_path)
    except AlertConfigError as exc:
        store.close()
        raise click.BadParameter(str(exc), param_hint="--alerts") from None
    root = f"http://{host}:{port}{prefix.rstrip('/')}"
    click.echo(f"errorkit tracker on {root}/api/ ({shown}); dashboard at {root}/")
    if ingest:
        limit = f"{ingest_rate_limit}/min per key" if ingest_rate_limit else "no rate limit"
        click.echo(
            f"ingest: http://{host}:{port}/api/<project_id>/envelope/ for Sentry SDKs "
            f"(DSN keys from `errorkit keys create`; {limit})"
        )
    if alerts_path is not None and app is not None:
        from errorkit.server.alerts_api import run_alerts

        manager = run_alerts(app, store)
        interval = app.state.errorkit_alerts.config.interval.total_seconds()
        click.echo(
            f"alerts: {len(manager.rules)} rule(s) from {alerts_path}, evaluated every "
            f"{interval:g}s"
        )
    if not has_admin:
        click.echo(
            "no admin token yet: make one with `errorkit tokens create --role admin`",
            err=True,
        )
    if app is None:
        store.close()  # each worker opens its own
        click.echo(f"{workers} worker processes share the port")
        os.environ[_WORKER_OPTIONS] = json.dumps(options)
        # One session secret for every worker, or a login would hold on one worker only.
        os.environ.setdefault("ERRORKIT_SESSION_SECRET", secrets.token_urlsafe(32))
        if sys.platform == "linux":  # SO_REUSEPORT spreads connections on Linux only
            _become_supervisor(host, port, workers)
        uvicorn.run(
            f"{__name__}:worker_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_config=None,
        )
        return
    try:
        uvicorn.run(app, host=host, port=port, log_config=None)
    finally:
        store.close()


#: How `errorkit serve --workers N` hands its options to each worker process.
_WORKER_OPTIONS = "ERRORKIT_SERVE_OPTIONS"


def _tracker_app(store: ErrorStore, options: dict[str, Any], alerts_path: str | None) -> Any:
    from errorkit.server import RedisBreakers, create_app

    redis_url = options["redis_url"]
    breakers = (
        None
        if redis_url is None
        else RedisBreakers.from_url(redis_url, namespace=options["namespace"])
    )
    return create_app(
        store=store,
        breakers=breakers,
        prefix=options["prefix"],
        alerts_config=alerts_path,
        ingest=options["ingest"],
        ingest_rate_limit=options["ingest_rate_limit"],
    )


def _become_supervisor(host: str, port: int, workers: int) -> None:
    """Replace this process (same pid, same signals) with the workers' supervisor of
    :mod:`errorkit._workers` (each worker on a ``SO_REUSEPORT`` socket of its own): the
    CLI, the store and the checks are no longer needed in it, so the server's memory is
    the workers' (the supervisor takes ~45 MiB instead of ~80)."""
    import errorkit

    sys.stdout.flush()
    sys.stderr.flush()
    # The workers import errorkit from where this process did (a source checkout too).
    home = str(Path(errorkit.__file__).resolve().parents[1])
    known = os.environ.get("PYTHONPATH", "")
    if home not in known.split(os.pathsep):
        os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (home, known) if p)
    factory = f"{__name__}:worker_app"
    argv = [sys.executable, "-m", "errorkit._workers", host, str(port), str(workers), factory]
    os.execv(sys.executable, argv)  # noqa: S606 - this interpreter, fixed code, no shell


def worker_app() -> Any:
    """The tracker of one process of `errorkit serve --workers N` (uvicorn calls it in each
    worker, with the options the command was given)."""
    options = json.loads(os.environ[_WORKER_OPTIONS])
    return _tracker_app(_store(options["store_url"]), options, None)
