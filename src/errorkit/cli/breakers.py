"""``errorkit breakers list | reset``: circuit breakers whose state is shared through Redis.

In-memory breakers (the default) live inside each app process, so only the app can show or
reset them (``breaker_statuses()``, ``reset_breaker()``, ``/health/detailed``). Breakers
built after ``configure_breakers(backend=RedisBackend(url, namespace=...))`` keep their
state in Redis: this command reads it, and a reset here closes the breaker for every
process sharing the namespace.

Exit codes: 0 done, 1 unknown breaker, 2 bad input, 3 Redis unreachable.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final
from urllib.parse import urlsplit, urlunsplit

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from errorkit._extras import MissingExtraError, require
from errorkit.scrubbing import default_scrubber

if TYPE_CHECKING:
    from errorkit.resilience.breaker_redis import RedisBackend, SharedBreakerState

__all__ = ["EXIT_UNKNOWN", "EXIT_UNREACHABLE", "breakers", "register"]

EXIT_UNKNOWN: Final = 1
EXIT_UNREACHABLE: Final = 3
REDIS_ENV: Final = "ERRORKIT_REDIS_URL"
NAMESPACE_ENV: Final = "ERRORKIT_BREAKER_NAMESPACE"
_PIPE_WIDTH: Final = 200
_STATE_STYLE: Final = {"closed": "green", "open": "bold red", "half_open": "yellow"}


def register(cli: click.Group) -> None:
    """Add the ``breakers`` command group to ``cli``."""
    cli.add_command(breakers)


class _Unknown(click.ClickException):
    exit_code = EXIT_UNKNOWN


class _Unreachable(click.ClickException):
    exit_code = EXIT_UNREACHABLE


def _console() -> Console:
    console = Console(highlight=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = Console(highlight=False, width=_PIPE_WIDTH)
    return console


def _shown(url: str) -> str:
    """The URL without its password, for messages."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        user = parts.username or ""
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port is not None else ""
        netloc = f"{user}:***@{host}{port}"
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    except ValueError:
        return "the given URL"


def _backend(url: str | None, namespace: str, timeout: float) -> RedisBackend:
    if not url:
        message = f"say which Redis holds the breakers: pass --redis URL or set {REDIS_ENV}"
        raise click.UsageError(message)
    try:
        require("redis", extra="redis", feature="errorkit breakers")
    except MissingExtraError as exc:
        raise click.UsageError(str(exc)) from None
    from errorkit.resilience.breaker_redis import RedisBackend

    try:
        backend = RedisBackend(url, namespace=namespace, socket_timeout=timeout)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--namespace") from None
    try:
        backend.client()
    except ValueError as exc:  # redis-py refuses the URL itself
        message = f"{_shown(url)} is not a Redis URL ({exc}); use redis://host:6379/0"
        raise click.BadParameter(message, param_hint="--redis") from None
    return backend


@contextmanager
def _reaching(backend: RedisBackend) -> Iterator[None]:
    """Turn Redis being unreachable into exit code 3 with what to check."""
    import redis.exceptions

    try:
        yield
    except (redis.exceptions.RedisError, OSError) as exc:
        detail = default_scrubber().scrub_text(f"{type(exc).__name__}: {exc}", single_line=True)
        message = (
            f"Redis at {_shown(backend.url or '')} cannot be reached ({detail}); check "
            f"--redis / {REDIS_ENV} and that Redis is running"
        )
        raise _Unreachable(message) from None
    finally:
        backend.close()


def _name(value: str) -> str:
    from errorkit.resilience.breaker import validate_breaker_name

    try:
        return validate_breaker_name(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="NAME") from None


_redis = click.option(
    "--redis",
    "redis_url",
    metavar="URL",
    envvar=REDIS_ENV,
    show_envvar=True,
    help="The Redis that holds the shared breaker state (redis://host:6379/0).",
)
_namespace = click.option(
    "--namespace",
    metavar="NS",
    envvar=NAMESPACE_ENV,
    show_envvar=True,
    default="default",
    show_default=True,
    help="The namespace the app's RedisBackend uses.",
)
_timeout = click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=2.0,
    show_default=True,
    metavar="SECONDS",
    help="How long to wait for Redis before giving up (exit 3).",
)


@click.group()
def breakers() -> None:
    """Circuit breakers shared through Redis: list them, reset them.

    Only breakers whose state is kept in Redis (RedisBackend) are seen here. Breakers kept
    in memory, the default, live inside each app process: see them in the app's
    /health/detailed or with errorkit.resilience.breaker_statuses().

    Exit codes: 0 done, 1 unknown breaker, 2 bad input, 3 Redis unreachable.
    """


def _when(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return "-"
    seconds = (moment - now).total_seconds()
    stamp = moment.strftime("%Y-%m-%d %H:%M:%S UTC")
    if abs(seconds) < 0.5:
        return f"{stamp} (now)"
    relative = f"in {seconds:.0f}s" if seconds > 0 else f"{-seconds:.0f}s ago"
    return f"{stamp} ({relative})"


def _next_probe(state: SharedBreakerState, now: datetime) -> str:
    if state.state == "closed":
        return "-"
    if state.next_probe_at is None:
        return "unknown (opened by an older errorkit)"
    return _when(state.next_probe_at, now)


@breakers.command("list", short_help="Every breaker: state, failures, opened at, next probe.")
@_redis
@_namespace
@_timeout
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def list_command(redis_url: str | None, namespace: str, timeout: float, as_json: bool) -> None:
    """Every breaker in the namespace: state, failures, when it opened, when it probes next."""
    backend = _backend(redis_url, namespace, timeout)
    with _reaching(backend):
        states = [s for s in (backend.read_breaker(n) for n in backend.breaker_names()) if s]
    if as_json:
        payload = {"namespace": namespace, "breakers": [s.as_dict() for s in states]}
        click.echo(json.dumps(payload, indent=2))
        return
    if not states:
        click.echo(f"no breakers with shared state in namespace {namespace!r}")
        return
    now = datetime.now(UTC)
    table = Table(title=f"circuit breakers in namespace {namespace!r}", title_justify="left")
    for column in ("breaker", "state", "failures", "opened at", "next probe", "last failure"):
        table.add_column(column, overflow="fold")
    for s in states:
        last = s.last_failure
        table.add_row(
            s.name,
            Text(str(s.state), style=_STATE_STYLE.get(str(s.state), "")),
            str(s.failures),
            _when(s.opened_at, now),
            _next_probe(s, now),
            "-" if last is None else f"{last.type}: {last.message}",
        )
    _console().print(table)


@breakers.command("reset", short_help="Close one breaker, or --all, for every process.")
@click.argument("name", required=False)
@click.option("--all", "reset_all", is_flag=True, help="Reset every breaker in the namespace.")
@_redis
@_namespace
@_timeout
def reset_command(
    name: str | None, reset_all: bool, redis_url: str | None, namespace: str, timeout: float
) -> None:
    """Close breaker NAME (or --all) for every process sharing the namespace.

    The reset is atomic: calls already in flight when it happens do not count against the
    closed breaker."""
    if (name is None) == (not reset_all):
        message = "name one breaker (errorkit breakers reset NAME) or pass --all, not both"
        if name is None:
            message = "which breaker? pass its NAME, or --all for every breaker"
        raise click.UsageError(message)
    names = None if name is None else [_name(name)]
    backend = _backend(redis_url, namespace, timeout)
    with _reaching(backend):
        targets = backend.breaker_names() if names is None else names
        results = [(target, backend.reset_breaker(target)) for target in targets]
    if names is not None and results[0][1] is None:
        message = (
            f"no breaker {name!r} in namespace {namespace!r}; "
            "`errorkit breakers list` shows the ones there"
        )
        raise _Unknown(message)
    if not results:
        click.echo(f"no breakers with shared state in namespace {namespace!r}")
        return
    for target, was in results:
        if was is None:
            continue  # gone since it was listed (its keys expired)
        if was == "closed":
            click.echo(f"{target}: closed (its failure count cleared)")
        else:
            click.echo(f"{target}: {was} -> closed")
