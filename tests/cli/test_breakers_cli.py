"""``errorkit breakers list | reset`` against a real Redis shared with live breakers."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import click
import pytest
from click.testing import CliRunner
from tests._services import breaker_namespace, drop_breaker_namespace, require_redis

import errorkit
from errorkit.cli.breakers import EXIT_UNKNOWN, EXIT_UNREACHABLE, register
from errorkit.resilience import CircuitBreaker, CircuitState, ManualClock, RedisBackend

pytestmark = pytest.mark.redis

# A closed port on this machine: connecting fails at once.
UNREACHABLE = "redis://:hunter2-secret@127.0.0.1:1/0"


@pytest.fixture
def cli() -> click.Group:
    @click.group()
    def root() -> None:
        """errorkit"""

    register(root)
    return root


@pytest.fixture
def redis_url() -> str:
    return require_redis()


@pytest.fixture
def namespace(redis_url: str) -> Iterator[str]:
    """A namespace of its own per test; its keys are deleted afterwards."""
    with breaker_namespace(redis_url, "cli") as name:
        yield name


@pytest.fixture
def make(redis_url: str, namespace: str) -> Iterator[Any]:
    """Build breakers sharing state in the test's namespace, as the app's processes would."""
    backends: list[RedisBackend] = []

    def build(name: str, **options: Any) -> CircuitBreaker:
        backend = RedisBackend(redis_url, namespace=options.pop("namespace", namespace))
        backends.append(backend)
        options.setdefault("failure_threshold", 2)
        options.setdefault("recovery_timeout", 30)
        return CircuitBreaker(name, backend=backend, **options)

    yield build
    for backend in backends:
        backend.close()


def fail(breaker: CircuitBreaker, times: int) -> None:
    for _ in range(times):
        with pytest.raises(errorkit.ServiceUnavailableError):
            breaker.call(_boom)


def _boom() -> None:
    raise errorkit.ServiceUnavailableError("upstream said: token=abc123secret")


def run(cli: click.Group, *args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["breakers", *args], env=env)
    return result.exit_code, result.output


def listed(cli: click.Group, url: str, namespace: str) -> dict[str, dict[str, Any]]:
    code, out = run(cli, "list", "--redis", url, "--namespace", namespace, "--json")
    assert code == 0, out
    data = json.loads(out)
    assert data["namespace"] == namespace
    return {b["name"]: b for b in data["breakers"]}


@pytest.mark.parametrize("args", [["list"], ["reset", "--all"]])
def test_an_empty_namespace_has_nothing_to_do(
    cli: click.Group, redis_url: str, namespace: str, args: list[str]
) -> None:
    """A namespace without breakers says so and exits 0."""
    code, out = run(cli, *args, "--redis", redis_url, "--namespace", namespace)
    assert code == 0, out
    assert "no breakers" in out and namespace in out


def test_list_shows_state_failures_and_when_it_probes_next(
    cli: click.Group, make: Any, redis_url: str, namespace: str
) -> None:
    """An open breaker shows when it opened and when it probes; a closed one its failures."""
    payments, search = make("payments-api"), make("search")
    fail(payments, 2)
    fail(search, 1)
    found = listed(cli, redis_url, namespace)
    assert set(found) == {"payments-api", "search"}
    opened = found["payments-api"]
    assert opened["state"] == "open"
    assert opened["recovery_timeout"] == 30.0
    opened_at = datetime.fromisoformat(opened["opened_at"])
    next_probe = datetime.fromisoformat(opened["next_probe_at"])
    assert (next_probe - opened_at).total_seconds() == pytest.approx(30, abs=1e-3)
    assert opened["last_failure"]["type"] == "errorkit.errors.ServiceUnavailableError"
    assert "abc123secret" not in json.dumps(found)
    assert (found["search"]["state"], found["search"]["failures"]) == ("closed", 1)
    assert found["search"]["next_probe_at"] is None


def test_list_prints_a_table_for_people(
    cli: click.Group, make: Any, redis_url: str, namespace: str
) -> None:
    """Without --json the same facts come as a table."""
    fail(make("payments-api"), 2)
    code, out = run(cli, "list", "--redis", redis_url, "--namespace", namespace)
    assert code == 0, out
    assert "payments-api" in out and "open" in out and "ServiceUnavailableError" in out
    assert "in 30s" in out or "in 29s" in out


def test_a_half_open_breaker_shows_its_probe_in_flight(
    cli: click.Group, make: Any, redis_url: str, namespace: str
) -> None:
    """While the only probe is out, the next probe waits for its lease to end."""
    clock = ManualClock(wall=time.time())
    breaker = make("ledger", clock=clock, probe_timeout=60)
    fail(breaker, 2)
    clock.advance(31)
    with breaker:  # the probe holds the one half-open slot until the block ends
        found = listed(cli, redis_url, namespace)["ledger"]
    assert (found["state"], found["probes_in_flight"]) == ("half_open", 1)
    assert found["next_probe_at"] is not None


def test_other_namespaces_are_not_listed(
    cli: click.Group, make: Any, redis_url: str, namespace: str
) -> None:
    """Only the asked namespace's breakers show."""
    fail(make("mine"), 1)
    other = f"{namespace}x"
    try:
        fail(make("theirs", namespace=other), 1)
        assert set(listed(cli, redis_url, namespace)) == {"mine"}
    finally:
        drop_breaker_namespace(redis_url, other)


def test_reset_closes_a_breaker_for_every_process(
    cli: click.Group, make: Any, redis_url: str, namespace: str
) -> None:
    """After reset NAME, the app's breakers pass calls again."""
    first, second = make("payments-api"), make("payments-api")
    fail(first, 2)
    assert second.state is CircuitState.OPEN
    code, out = run(cli, "reset", "payments-api", "--redis", redis_url, "--namespace", namespace)
    assert code == 0, out
    assert "payments-api: open -> closed" in out
    assert (first.state, second.state) == (CircuitState.CLOSED, CircuitState.CLOSED)
    assert second.call(lambda: "ok") == "ok"


def test_reset_all_closes_every_breaker(
    cli: click.Group, make: Any, redis_url: str, namespace: str
) -> None:
    """reset --all closes each breaker of the namespace and names each."""
    payments, search = make("payments-api"), make("search")
    fail(payments, 2)
    fail(search, 1)
    code, out = run(cli, "reset", "--all", "--redis", redis_url, "--namespace", namespace)
    assert code == 0, out
    assert "payments-api: open -> closed" in out and "search: closed (its failure" in out
    after = listed(cli, redis_url, namespace).values()
    assert {(b["state"], b["failures"]) for b in after} == {("closed", 0)}


def test_resetting_an_unknown_breaker_exits_1_and_creates_nothing(
    cli: click.Group, redis_url: str, namespace: str
) -> None:
    """A mistyped name is reported (exit 1), and no state is written for it."""
    code, out = run(cli, "reset", "paymnets", "--redis", redis_url, "--namespace", namespace)
    assert code == EXIT_UNKNOWN
    assert "no breaker 'paymnets'" in out and "breakers list" in out
    assert listed(cli, redis_url, namespace) == {}


def test_the_url_can_come_from_the_environment(
    cli: click.Group, make: Any, redis_url: str, namespace: str
) -> None:
    """ERRORKIT_REDIS_URL and ERRORKIT_BREAKER_NAMESPACE stand in for the options."""
    fail(make("search"), 1)
    env = {"ERRORKIT_REDIS_URL": redis_url, "ERRORKIT_BREAKER_NAMESPACE": namespace}
    code, out = run(cli, "list", "--json", env=env)
    assert code == 0, out
    assert [b["name"] for b in json.loads(out)["breakers"]] == ["search"]


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["list"], "--redis URL or set ERRORKIT_REDIS_URL"),
        (["list", "--redis", "http://127.0.0.1:6379"], "not a Redis URL"),
        (["list", "--namespace", "has space"], "namespace"),
        (["reset", "bad name!"], "not valid"),
        (["reset"], "pass its NAME, or --all"),
        (["reset", "search", "--all"], "not both"),
        (["list", "--timeout", "0"], "timeout"),
    ],
    ids=["no-url", "bad-scheme", "bad-namespace", "bad-name", "no-target", "both", "timeout"],
)
def test_bad_input_exits_2_and_says_the_fix(
    cli: click.Group, redis_url: str, args: list[str], fragment: str
) -> None:
    """Bad input is refused with exit code 2 and a message naming what to change."""
    if "--redis" not in args and args != ["list"]:
        args = [*args, "--redis", redis_url]
    code, out = run(cli, *args, env={"ERRORKIT_REDIS_URL": ""})
    assert code == 2, out
    assert fragment in out


@pytest.mark.parametrize("args", [["list"], ["reset", "search"], ["reset", "--all"]])
def test_unreachable_redis_exits_3_without_showing_the_password(
    cli: click.Group, args: list[str]
) -> None:
    """Every command says Redis cannot be reached (exit 3) and hides the URL's password."""
    code, out = run(cli, *args, "--redis", UNREACHABLE, "--timeout", "1")
    assert code == EXIT_UNREACHABLE, out
    assert "cannot be reached" in out and "127.0.0.1:1" in out
    assert "hunter2-secret" not in out


def test_help_says_in_memory_breakers_live_in_the_app(cli: click.Group) -> None:
    """The group's help explains which breakers it can see."""
    code, out = run(cli, "--help")
    text = " ".join(out.split())
    assert code == 0
    assert "kept in memory, the default, live inside each app process" in text
    assert "RedisBackend" in text
