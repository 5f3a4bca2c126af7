"""``errorkit groups list`` filters and sorts the way ``GET /admin/api/groups`` does, and
the other way round."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import click
import pytest
from click.testing import CliRunner
from tests.store._support import T0, RecordFactory

from errorkit.cli.store_cmds import register
from errorkit.store import ErrorStore

HOUR = timedelta(hours=1)

#: API query parameter -> the CLI option doing the same.
SAME = {
    "status": "--status",
    "type": "--type",
    "severity": "--severity",
    "code": "--code",
    "release": "--release",
    "endpoint": "--endpoint",
    "service": "--service",
    "environment": "--environment",
    "q": "--search",
    "since": "--since",
    "until": "--until",
    "sort": "--sort",
    "order": "--asc",
    "limit": "--limit",
    "cursor": "--cursor",
}


@pytest.fixture
def cli() -> click.Group:
    @click.group()
    def main() -> None:
        """Test entry point."""

    register(main)
    return main


@pytest.fixture
def mixed(store: ErrorStore, make_record: RecordFactory) -> ErrorStore:
    """a: error, 1.0.0, /api/chat, 2 before T0+24h and 1 after; b: warning, 2.0.0,
    /api/stream, 3 after T0+24h; c: critical DB_LOCKED, worker, 1 at T0+5h."""
    at = T0 + 24 * HOUR
    store.write_batch(
        [
            make_record(fingerprint="a", timestamp=T0 + HOUR),
            make_record(fingerprint="a", timestamp=T0 + 2 * HOUR),
            make_record(fingerprint="a", timestamp=at + HOUR),
            *(
                make_record(
                    fingerprint="b",
                    severity="warning",
                    release="2.0.0",
                    endpoint="/api/stream",
                    timestamp=at + n * HOUR,
                )
                for n in (2, 3, 4)
            ),
            make_record(
                fingerprint="c",
                severity="critical",
                error_code="DB_LOCKED",
                service="worker",
                timestamp=T0 + 5 * HOUR,
            ),
        ]
    )
    return store


def listed(cli: click.Group, url: str, *args: str) -> dict[str, Any]:
    result = CliRunner().invoke(cli, ["groups", "list", *args, "--json", "--store", url])
    assert result.exit_code == 0, result.output
    answer: dict[str, Any] = json.loads(result.output)
    return answer


def names(cli: click.Group, url: str, *args: str) -> list[str]:
    return [g["fingerprint"] for g in listed(cli, url, *args)["items"]]


def test_groups_list_filters_like_the_api(
    cli: click.Group, mixed: ErrorStore, store_url: str
) -> None:
    assert names(cli, store_url, "--severity", "warning") == ["b"]
    assert names(cli, store_url, "--code", "DB_LOCKED") == ["c"]
    assert sorted(names(cli, store_url, "--release", "1.0.0")) == ["a", "c"]
    assert names(cli, store_url, "--endpoint", "/api/stream") == ["b"]
    assert sorted(names(cli, store_url, "--since", (T0 + 24 * HOUR).isoformat())) == ["a", "b"]
    assert names(cli, store_url, "--until", (T0 + 3 * HOUR).isoformat()) == ["a"]
    assert names(cli, store_url, "--service", "worker", "--severity", "critical") == ["c"]


def test_groups_list_sorts_by_trend_and_pages_by_cursor(
    cli: click.Group, mixed: ErrorStore, store_url: str
) -> None:
    window = ("--since", (T0 + 24 * HOUR).isoformat(), "--until", (T0 + 48 * HOUR).isoformat())
    # b: +3 (3 in the window, none before); a: 1 - 2 = -1; c is not seen in the window
    assert names(cli, store_url, "--sort", "trend", *window) == ["b", "a"]
    assert names(cli, store_url, "--sort", "trend", "--asc", *window) == ["a", "b"]
    # without --since: the 24 hours ending at --until; c (0 - 1) ties with a, the
    # newer group first
    until = ("--until", (T0 + 48 * HOUR).isoformat())
    assert names(cli, store_url, "--sort", "trend", *until) == ["b", "c", "a"]
    first = listed(cli, store_url, "--sort", "trend", "--limit", "2", *until)
    assert first["next_cursor"]
    rest = names(cli, store_url, "--sort", "trend", "--cursor", first["next_cursor"], *until)
    assert [g["fingerprint"] for g in first["items"]] + rest == ["b", "c", "a"]
    refused = CliRunner().invoke(
        cli, ["groups", "list", "--cursor", first["next_cursor"], "--store", store_url]
    )
    assert refused.exit_code == 2
    assert "sorted by trend" in refused.output


def test_groups_list_and_the_api_take_the_same_filters(cli: click.Group, store: ErrorStore) -> None:
    """Every filter and sort of GET /groups has its CLI option, and every CLI option
    (but --offset, --json and --store) its API parameter."""
    pytest.importorskip("fastapi")
    from errorkit.server import create_app

    schema = create_app(store=store, dashboard=False).openapi()
    route = schema["paths"]["/admin/api/groups"]["get"]
    api = {p["name"] for p in route["parameters"] if p["in"] == "query"}
    assert api == set(SAME)
    command = cli.commands["groups"].commands["list"]  # type: ignore[attr-defined]
    options = {opt for param in command.params for opt in param.opts if opt.startswith("--")}
    assert options - {"--offset", "--json", "--store", "--help"} == set(SAME.values())
    sorts = next(p for p in command.params if p.name == "sort").type.choices
    api_sorts = next(p for p in route["parameters"] if p["name"] == "sort")["schema"]["enum"]
    assert sorted(sorts) == sorted(api_sorts)
