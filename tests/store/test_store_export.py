"""Streaming export: JSON lines and CSV that parse back, in chunks."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timedelta

import pytest
from tests.store._support import T0, RecordFactory

from errorkit.store import ErrorStore, InvalidQuery
from errorkit.store.models import ERROR_FIELDS


@pytest.fixture
def ten(store: ErrorStore, make_record: RecordFactory) -> ErrorStore:
    """Ten errors, the even ones warnings; written newest first."""
    records = [
        make_record(
            error_id=f"e{i}",
            timestamp=T0 + timedelta(minutes=i),
            severity="warning" if i % 2 == 0 else "error",
            error_message=f'line one "quoted", comma\nline two {i}',
        )
        for i in range(10)
    ]
    store.write_batch(list(reversed(records)))
    return store


def test_jsonl_parses_back(ten: ErrorStore) -> None:
    """Each line is one JSON object with every field, oldest first."""
    out = io.StringIO()
    written = ten.export(out, fmt="jsonl")
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert written == 10
    assert [line["error_id"] for line in lines] == [f"e{i}" for i in range(10)]
    assert set(lines[0]) == set(ERROR_FIELDS)
    assert datetime.fromisoformat(lines[3]["timestamp"]) == T0 + timedelta(minutes=3)
    assert lines[3]["error_message"] == 'line one "quoted", comma\nline two 3'
    assert lines[3]["data"] == {"tags": {"region": "eu"}, "n": 3}
    assert lines[3]["resolved"] is False


def test_csv_parses_back(ten: ErrorStore) -> None:
    """The CSV has a header of every field and round-trips quotes, commas and newlines."""
    out = io.StringIO(newline="")
    ten.export(out, fmt="csv", severity="warning")
    rows = list(csv.DictReader(io.StringIO(out.getvalue(), newline="")))
    assert [row["error_id"] for row in rows] == ["e0", "e2", "e4", "e6", "e8"]
    assert list(rows[0]) == list(ERROR_FIELDS)
    assert rows[1]["error_message"] == 'line one "quoted", comma\nline two 2'
    assert json.loads(rows[1]["data"]) == {"tags": {"region": "eu"}, "n": 2}
    assert rows[1]["resolved"] == "false"
    assert rows[1]["response_payload"] == ""


def test_csv_neutralizes_formulas(store: ErrorStore, make_record: RecordFactory) -> None:
    """A message that a spreadsheet would run as a formula is prefixed with a quote."""
    store.write_batch([make_record(error_message='=HYPERLINK("http://evil")')])
    safe, raw = io.StringIO(), io.StringIO()
    store.export(safe, fmt="csv")
    store.export(raw, fmt="csv", neutralize_formulas=False)
    assert next(csv.DictReader(io.StringIO(safe.getvalue())))["error_message"].startswith("'=")
    assert next(csv.DictReader(io.StringIO(raw.getvalue())))["error_message"].startswith("=")


def test_export_streams_in_chunks(ten: ErrorStore) -> None:
    """Rows arrive chunk_size at a time, and each chunk is written before the next."""
    out = io.StringIO()
    seen: list[tuple[int, int]] = []
    ten.export(
        out, chunk_size=3, on_progress=lambda n: seen.append((n, out.getvalue().count("\n")))
    )
    assert seen == [(3, 3), (3, 6), (3, 9), (1, 10)]


def test_export_of_nothing(store: ErrorStore) -> None:
    """An empty match writes nothing in JSON lines and only the header in CSV."""
    jsonl, table = io.StringIO(), io.StringIO()
    assert store.export(jsonl) == 0
    assert store.export(table, fmt="csv") == 0
    assert jsonl.getvalue() == ""
    assert table.getvalue().strip() == ",".join(ERROR_FIELDS)


def test_export_refuses_unknown_format(store: ErrorStore) -> None:
    """Only jsonl and csv are accepted."""
    with pytest.raises(InvalidQuery, match="export format must be 'jsonl' or 'csv'"):
        store.export(io.StringIO(), fmt="xml")  # type: ignore[arg-type]
