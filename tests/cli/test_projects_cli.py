"""``errorkit projects`` and ``errorkit keys``: a project made, a DSN printed for it, keys
listed with their DSNs and state, revoked, and bad input answered with exit 2."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from click.testing import CliRunner

from errorkit.cli import cli
from errorkit.store import open_store
from errorkit.store.projects import KeyRefused, ProjectStore

DSN = re.compile(r"^http://(?P<key>[0-9a-f]{32})@127\.0\.0\.1:8080/(?P<project>\d+)$")


def run(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args))


def test_project_key_dsn_list_and_revoke(store_url: str) -> None:
    """The DSN printed by `keys create` is accepted until `keys revoke`."""
    made = run("projects", "create", "shop", "--store", store_url)
    assert made.exit_code == 0, made.output
    assert "errorkit keys create --project shop" in made.stdout
    run("projects", "create", "billing", "--store", store_url)
    listed = json.loads(run("projects", "list", "--json", "--store", store_url).stdout)
    assert [p["name"] for p in listed] == ["shop", "billing"]
    assert "billing" in run("projects", "list", "--store", store_url).stdout

    key = run("keys", "create", "--project", "shop", "--label", "prod", "--store", store_url)
    assert key.exit_code == 0, key.output
    dsn = key.stdout.strip()
    match = DSN.match(dsn)
    assert match is not None, dsn
    assert match["project"] == str(listed[0]["id"])
    with open_store(store_url) as store:
        project, found = ProjectStore(store).authenticate(int(match["project"]), match["key"])
    assert (project.name, found.label) == ("shop", "prod")

    other = run(
        "keys", "create", "--project", str(listed[1]["id"]), "--rate-limit", "60",
        "--url", "https://errors.example.com", "--json", "--store", store_url,
    )  # fmt: skip
    assert other.exit_code == 0, other.output
    other_key = json.loads(other.stdout)
    assert other_key["rate_limit"] == 60
    assert other_key["dsn"].startswith(f"https://{other_key['public_key']}@errors.example.com/")

    keys = json.loads(
        run("keys", "list", "--project", "shop", "--json", "--store", store_url).stdout
    )
    assert [(k["label"], k["state"], k["dsn"]) for k in keys] == [("prod", "active", dsn)]
    table = run("keys", "list", "--store", store_url)
    assert dsn in table.stdout
    assert "prod" in table.stdout

    revoked = run("keys", "revoke", match["key"], "--store", store_url)
    assert revoked.exit_code == 0, revoked.output
    assert "revoked key" in revoked.stdout
    states = [
        k["state"] for k in json.loads(run("keys", "list", "--json", "--store", store_url).stdout)
    ]
    assert states == ["revoked", "active"]
    with open_store(store_url) as store, pytest.raises(KeyRefused) as refused:
        ProjectStore(store).authenticate(int(match["project"]), match["key"])
    assert refused.value.status == 403


def test_bad_input_and_unknown_things(store_url: str) -> None:
    """A bad name, rate limit or URL is exit 2; an unknown project or key exit 1."""
    assert run("projects", "create", "shop", "--store", store_url).exit_code == 0
    duplicate = run("projects", "create", "shop", "--store", store_url)
    assert duplicate.exit_code == 2
    assert "already a project named 'shop'" in duplicate.output
    bad_name = run("projects", "create", "no spaces", "--store", store_url)
    assert bad_name.exit_code == 2
    assert "a project name is 1 to 64" in bad_name.output
    zero = run("keys", "create", "--project", "shop", "--rate-limit", "0", "--store", store_url)
    assert zero.exit_code == 2
    assert "rate_limit is events per minute" in zero.output
    bad_url = run("keys", "create", "--project", "shop", "--url", "ftp://x", "--store", store_url)
    assert bad_url.exit_code == 2
    assert "is not an http(s) address" in bad_url.output
    ghost = run("keys", "create", "--project", "ghost", "--store", store_url)
    assert ghost.exit_code == 1
    assert "no project with id or name 'ghost'" in ghost.output
    unknown = run("keys", "revoke", "999", "--store", store_url)
    assert unknown.exit_code == 1
    assert "no DSN key" in unknown.output
    empty = run("keys", "list", "--store", store_url)
    assert "no DSN keys yet" in empty.stdout
