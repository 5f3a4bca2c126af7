"""``errorkit spool status | replay``: what waits, putting it in the store, exit codes."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from tests.capture.conftest import total_count
from tests.capture.test_spool import delta, record

from errorkit.capturing.spool import Spool
from errorkit.cli.spool_cmds import register
from errorkit.store import ErrorStore


@pytest.fixture
def cli() -> click.Group:
    @click.group()
    def root() -> None:
        """errorkit"""

    register(root)
    return root


@pytest.fixture
def spool_dir(tmp_path: Path) -> Path:
    """A spool holding two batches: 3 events and a count of 10."""
    spool = Spool(tmp_path / "spool", max_bytes=10**7)
    spool.append([record(1), record(2)], [delta(1, 10)])
    spool.append([record(3)], [])
    spool.close()
    return tmp_path / "spool"


def run(cli: click.Group, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.output


def test_status_of_an_empty_spool(cli: click.Group, tmp_path: Path) -> None:
    """A spool that was never written to is reported empty, exit 0."""
    code, out = run(cli, "spool", "status", "--spool-dir", str(tmp_path / "none"))
    assert code == 0, out
    assert "files" in out and "0" in out


def test_status_counts_what_waits(cli: click.Group, spool_dir: Path) -> None:
    """status --json says how many batches, events and counts wait, and since when."""
    code, out = run(cli, "spool", "status", "--spool-dir", str(spool_dir), "--json")
    assert code == 0, out
    status = json.loads(out)
    assert (status["batches"], status["records"], status["deltas"]) == (2, 3, 1)
    assert status["oldest"].startswith("2025-03-01")


def test_status_check_fails_when_batches_wait(cli: click.Group, spool_dir: Path) -> None:
    """status --check exits 1 while batches wait (for monitoring scripts)."""
    code, out = run(cli, "spool", "status", "--spool-dir", str(spool_dir), "--check")
    assert code == 1
    assert "errorkit spool replay" in out


def test_replay_puts_everything_in_the_store(
    cli: click.Group, spool_dir: Path, store_url: str, open_store: Callable[[str], ErrorStore]
) -> None:
    """replay writes every batch, empties the spool and exits 0; a second run is a no-op."""
    code, out = run(cli, "spool", "replay", "--store", store_url, "--spool-dir", str(spool_dir))
    assert code == 0, out
    assert "3 event(s), 1 count(s)" in out
    store = open_store(store_url)
    assert total_count(store) == 13
    code, out = run(cli, "spool", "replay", "--store", store_url, "--spool-dir", str(spool_dir))
    assert (code, "nothing to replay" in out) == (0, True)


def test_replay_with_the_store_down_keeps_the_spool(cli: click.Group, spool_dir: Path) -> None:
    """An unreachable store exits 3, says so, and leaves every batch in the spool."""
    code, out = run(
        cli,
        "spool",
        "replay",
        "--store",
        "postgresql://nobody:pw@127.0.0.1:9/none",
        "--spool-dir",
        str(spool_dir),
    )
    assert code == 3
    assert "the spool is kept (2 batch(es)" in out
    assert "pw@" not in out
    assert Spool(spool_dir, 10**7).status(count=True).batches == 2


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--store", "mysql://x/y"], "accepted forms"),
        (["--spool-dir", __file__], "is a file"),
    ],
)
def test_bad_input_exits_2(cli: click.Group, args: list[str], fragment: str) -> None:
    """A bad store URL or spool directory is refused with exit 2 and the fix."""
    code, out = run(cli, "spool", "status", *args)
    assert code == 2
    assert fragment in out
