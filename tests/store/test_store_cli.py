"""``errorkit errors|groups|db``: output, effects and exit codes."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result
from tests.store._support import RecordFactory

from errorkit.cli.store_cmds import parse_duration, register
from errorkit.store import ErrorStore, head_revision

UNREACHABLE = "postgresql://errorkit:hunter2@127.0.0.1:1/errors"

Run = Callable[..., Result]


@pytest.fixture
def cli() -> click.Group:
    """A command line with the store's groups registered, as the main CLI does."""

    @click.group()
    def main() -> None:
        """Test entry point."""

    register(main)
    return main


@pytest.fixture
def run(cli: click.Group, store_url: str) -> Run:
    """Invoke the CLI against the test store."""

    def invoke(*args: str) -> Result:
        return CliRunner().invoke(cli, [*args, "--store", store_url])

    return invoke


@pytest.fixture
def filled(store: ErrorStore, make_record: RecordFactory) -> ErrorStore:
    """Three errors in two groups; e2's message looks like a spreadsheet formula."""
    store.write_batch(
        [
            make_record(error_id="e1", error_message="first failure"),
            make_record(
                error_id="e2",
                error_message="=cmd|' /C calc'!A0",
                error_type="stream_error",
                fingerprint="fp-stream",
                title="StreamAborted",
            ),
            make_record(error_id="e3", error_message="third failure"),
        ]
    )
    return store


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30d", timedelta(days=30)),
        ("12h", timedelta(hours=12)),
        ("15m", timedelta(minutes=15)),
        ("90s", timedelta(seconds=90)),
        ("2w", timedelta(weeks=2)),
        (" 7d ", timedelta(days=7)),
    ],
)
def test_durations(text: str, expected: timedelta) -> None:
    """Durations are a whole number and one of s, m, h, d, w."""
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["30x", "d", "1.5h", "-3d", "0d", ""])
def test_bad_durations(text: str) -> None:
    """Anything else is refused with an example of what works."""
    with pytest.raises(ValueError, match="30d"):
        parse_duration(text)


def test_errors_list_table(filled: ErrorStore, run: Run) -> None:
    """The list shows each error's id and message, newest first."""
    result = run("errors", "list")
    assert result.exit_code == 0, result.output
    assert result.output.index("e3") < result.output.index("e1")
    assert "third failure" in result.output
    assert "errors 1-3 of 3" in result.output


def test_errors_list_json_with_filter(filled: ErrorStore, run: Run) -> None:
    """--json prints the page as JSON; filters apply."""
    result = run("errors", "list", "--type", "stream_error", "--json")
    page = json.loads(result.output)
    assert result.exit_code == 0
    assert [item["error_id"] for item in page["items"]] == ["e2"]
    assert page["total"] == 1


def test_errors_list_cursor_paging(filled: ErrorStore, run: Run) -> None:
    """The printed cursor continues the listing."""
    first = json.loads(run("errors", "list", "--limit", "2", "--json").output)
    rest = json.loads(run("errors", "list", "--cursor", first["next_cursor"], "--json").output)
    assert [i["error_id"] for i in first["items"] + rest["items"]] == ["e3", "e2", "e1"]


def test_errors_show(filled: ErrorStore, run: Run) -> None:
    """show prints the fields and the stack trace."""
    result = run("errors", "show", "e1")
    assert result.exit_code == 0, result.output
    assert "first failure" in result.output
    assert "Traceback" in result.output


@pytest.mark.parametrize("command", [("errors", "show"), ("errors", "resolve")])
def test_unknown_error_id_exits_1(store: ErrorStore, run: Run, command: tuple[str, str]) -> None:
    """An id that is not stored exits 1 and says so."""
    result = run(*command, "missing-id")
    assert result.exit_code == 1
    assert "no stored error has error_id 'missing-id'" in result.output


def test_errors_resolve(filled: ErrorStore, run: Run) -> None:
    """resolve marks the error resolved with the notes."""
    result = run("errors", "resolve", "e1", "--notes", "fixed the loop")
    stored = filled.get("e1")
    assert result.exit_code == 0, result.output
    assert stored is not None
    assert (stored.resolved, stored.notes) == (True, "fixed the loop")


def test_errors_stats(filled: ErrorStore, run: Run) -> None:
    """stats prints counts; --json gives them to scripts."""
    table = run("errors", "stats")
    as_json = json.loads(run("errors", "stats", "--bucket", "day", "--json").output)
    assert table.exit_code == 0, table.output
    assert "3 stored errors, 3 unresolved" in table.output
    assert as_json["by_type"] == {"http_error": 2, "stream_error": 1}
    assert as_json["bucket"] == "day"


def test_errors_stats_since_filters(filled: ErrorStore, run: Run) -> None:
    """--since takes an ISO time (or a duration ago)."""
    late = json.loads(run("errors", "stats", "--since", "2025-03-01T12:00:02", "--json").output)
    recent = json.loads(run("errors", "stats", "--since", "24h", "--json").output)
    assert late["total"] == 1
    assert recent["total"] == 0


def test_export_csv_to_file(filled: ErrorStore, run: Run, tmp_path: Path) -> None:
    """export --format csv --output FILE writes a CSV that parses back, formulas defused."""
    target = tmp_path / "errors.csv"
    result = run("errors", "export", "--format", "csv", "--output", str(target))
    with target.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert result.exit_code == 0, result.output
    assert "wrote 3 errors" in result.output
    assert [row["error_id"] for row in rows] == ["e1", "e2", "e3"]
    assert rows[1]["error_message"] == "'=cmd|' /C calc'!A0"


def test_export_jsonl_to_stdout_with_filter(filled: ErrorStore, run: Run) -> None:
    """export writes JSON lines to standard output, nothing else."""
    result = run("errors", "export", "--fingerprint", "fp-boom")
    lines = [json.loads(line) for line in result.output.splitlines()]
    assert result.exit_code == 0
    assert [line["error_id"] for line in lines] == ["e1", "e3"]


def test_export_unknown_format_exits_2(store: ErrorStore, run: Run) -> None:
    """A format other than jsonl or csv is a usage error."""
    result = run("errors", "export", "--format", "xml")
    assert result.exit_code == 2
    assert "'xml' is not one of 'jsonl', 'csv'" in result.output


def test_cleanup_deletes_and_keeps_counts(filled: ErrorStore, run: Run) -> None:
    """cleanup --older-than deletes old rows; --dry-run only counts them."""
    dry = run("errors", "cleanup", "--older-than", "30d", "--dry-run")
    real = run("errors", "cleanup", "--older-than", "30d")
    group = filled.group("fp-boom")
    assert dry.exit_code == real.exit_code == 0, real.output
    assert "would delete 3 errors" in dry.output
    assert "deleted 3 errors" in real.output
    assert filled.count() == 0
    assert group is not None
    assert group.count == 2


def test_cleanup_bad_duration_exits_2(store: ErrorStore, run: Run) -> None:
    """A duration like 30x exits 2 with an example of a good one."""
    result = run("errors", "cleanup", "--older-than", "30x")
    assert result.exit_code == 2
    assert "'30x' is not a duration" in result.output


def test_cleanup_needs_older_than(store: ErrorStore, run: Run) -> None:
    """cleanup without --older-than is a usage error, never 'delete everything'."""
    result = run("errors", "cleanup")
    assert result.exit_code == 2
    assert "--older-than" in result.output


def test_groups_list_and_show(filled: ErrorStore, run: Run) -> None:
    """groups list shows each group's count; show adds its recent errors."""
    listing = json.loads(run("groups", "list", "--sort", "count", "--json").output)
    table = run("groups", "list")
    shown = run("groups", "show", "fp-stream")
    assert [(g["fingerprint"], g["count"]) for g in listing["items"]] == [
        ("fp-boom", 2),
        ("fp-stream", 1),
    ]
    assert table.exit_code == 0, table.output
    assert "fp-stream" in table.output
    assert shown.exit_code == 0, shown.output
    assert "StreamAborted" in shown.output
    assert "e2" in shown.output


def test_groups_triage(filled: ErrorStore, run: Run) -> None:
    """resolve, unresolve and ignore change the group's status."""
    resolved = run("groups", "resolve", "fp-boom", "--notes", "deployed fix")
    group = filled.group("fp-boom")
    assert resolved.exit_code == 0, resolved.output
    assert "is now resolved" in resolved.output
    assert group is not None
    assert (group.status, group.notes) == ("resolved", "deployed fix")
    assert run("groups", "unresolve", str(group.id)).exit_code == 0
    assert run("groups", "ignore", "fp-boom").exit_code == 0
    assert run("groups", "list", "--status", "ignored", "--json").output.count("fp-boom") == 1


@pytest.mark.parametrize("action", ["show", "resolve", "unresolve", "ignore"])
def test_unknown_group_exits_1(store: ErrorStore, run: Run, action: str) -> None:
    """A fingerprint that is not stored exits 1 and names it."""
    result = run("groups", action, "ghost")
    assert result.exit_code == 1
    assert "no error group has fingerprint or id 'ghost'" in result.output


def test_db_upgrade(cli: click.Group, tmp_path: Path) -> None:
    """db upgrade creates the schema and prints its revision."""
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    result = CliRunner().invoke(cli, ["db", "upgrade", "--store", url])
    assert result.exit_code == 0, result.output
    assert f"revision {head_revision()}" in result.output


def test_store_url_from_environment(cli: click.Group, tmp_path: Path) -> None:
    """Without --store, ERRORKIT_STORE_URL names the store."""
    url = f"sqlite:///{tmp_path / 'from-env.db'}"
    result = CliRunner().invoke(cli, ["db", "upgrade"], env={"ERRORKIT_STORE_URL": url})
    assert result.exit_code == 0, result.output
    assert (tmp_path / "from-env.db").exists()


@pytest.mark.parametrize(
    "args", [("errors", "list"), ("groups", "list"), ("db", "upgrade"), ("errors", "stats")]
)
def test_unreachable_store_exits_3(cli: click.Group, args: tuple[str, str]) -> None:
    """A store that cannot be reached exits 3, naming the URL but not the password."""
    result = CliRunner().invoke(cli, [*args, "--store", UNREACHABLE])
    assert result.exit_code == 3
    assert "127.0.0.1:1" in result.output
    assert "hunter2" not in result.output


def test_missing_sqlite_file_is_reported_not_created(cli: click.Group, tmp_path: Path) -> None:
    """Reading a SQLite store that does not exist exits 3 and leaves no empty file behind."""
    path = tmp_path / "typo.db"
    result = CliRunner().invoke(cli, ["errors", "list", "--store", f"sqlite:///{path}"])
    assert result.exit_code == 3
    assert "the file does not exist" in result.output
    assert "errorkit db upgrade" in result.output
    assert not path.exists()


def test_bad_store_url_exits_2(cli: click.Group) -> None:
    """An unsupported URL is bad input: exit 2 with the accepted forms."""
    result = CliRunner().invoke(cli, ["errors", "list", "--store", "mysql://root:pw@db/x"])
    assert result.exit_code == 2
    assert "sqlite:///" in result.output
    assert ":pw@" not in result.output


# --- the documented shapes ---------------------------------------------------------------------

STORE_DOC = Path(__file__).resolve().parents[2] / "docs" / "store.md"


def _doc_row(command: str) -> str:
    """The row of the ``--json`` table in docs/store.md that documents ``command``."""
    rows = [line for line in STORE_DOC.read_text().splitlines() if line.startswith(f"| `{command}")]
    assert len(rows) == 1, f"docs/store.md documents {command!r} once"
    return rows[0]


def test_docs_describe_every_field_of_stored_error_stats_and_page() -> None:
    """Each field of StoredError, ErrorGroup, Stats and Page is named in docs/store.md."""
    from dataclasses import fields

    from errorkit.store import ErrorGroup, Page, Stats, StoredError

    text = STORE_DOC.read_text()
    for cls in (StoredError, ErrorGroup, Stats, Page):
        missing = [f.name for f in fields(cls) if f"`{f.name}`" not in text]
        assert missing == [], f"{cls.__name__} fields missing from docs/store.md: {missing}"


@pytest.mark.parametrize(
    ("args", "command"),
    [
        (("errors", "list", "--json"), "errors list --json"),
        (("errors", "stats", "--json"), "errors stats --json"),
        (("groups", "list", "--json"), "groups list --json"),
    ],
)
def test_json_output_has_the_documented_keys(
    run: Run, filled: ErrorStore, args: tuple[str, ...], command: str
) -> None:
    """The keys each --json command prints are the ones its row in docs/store.md names."""
    result = run(*args)
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    row = _doc_row(command)
    assert [key for key in document if f'"{key}"' not in row] == []


def test_json_show_commands_print_the_documented_records(run: Run, filled: ErrorStore) -> None:
    """errors show --json is one StoredError's fields; groups show adds "recent"."""
    from errorkit.store.models import ERROR_FIELDS, GROUP_FIELDS

    shown = json.loads(run("errors", "show", "e1", "--json").output)
    assert tuple(shown) == ERROR_FIELDS
    group = json.loads(run("groups", "show", "fp-stream", "--json").output)
    assert tuple(group) == (*GROUP_FIELDS, "recent")
    assert '"recent"' in _doc_row("groups show KEY --json")
