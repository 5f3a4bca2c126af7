"""How write_batch puts rows in: a few multi-row statements, and data JSON made only once."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest
from sqlalchemy import event
from tests.store._support import RecordFactory

from errorkit.store import ErrorRecord, ErrorStore, open_store
from errorkit.store._clean import json_dumps
from errorkit.store._driver import MAX_ROWS, rows_per_statement
from errorkit.store._write import _COLUMNS
from errorkit.store.records import EncodedData


@pytest.mark.parametrize("rows", [1, 3, MAX_ROWS, MAX_ROWS + 1, 1000])
def test_every_row_of_a_batch_is_stored_once(
    store: ErrorStore, make_record: RecordFactory, rows: int
) -> None:
    """Batches of any size (split into statements of 2**k rows) store each row exactly once."""
    records = [make_record(fingerprint=f"fp-{n % 7}") for n in range(rows)]
    result = store.write_batch(records)
    assert result.inserted == rows
    assert sum(group.count for group in store.groups(limit=100).items) == rows
    assert all(store.get(record.error_id) is not None for record in records[:: max(1, rows // 9)])
    assert store.write_batch(records).inserted == 0


def test_sqlite_batch_takes_a_handful_of_statements_not_one_per_row(
    tmp_path: Path, make_record: RecordFactory
) -> None:
    """1,000 rows go in with at most 10 INSERTs (one per row let another thread that runs
    Python hold up the writer for the interpreter's switch interval at every row)."""
    statements: list[str] = []

    def trace(driver: sqlite3.Connection, record: object) -> None:
        driver.set_trace_callback(statements.append)  # every statement SQLite runs

    with open_store(f"sqlite:///{tmp_path / 'errors.db'}") as store:
        store.write_batch([make_record()])  # opens and migrates the store
        event.listen(store.engine, "connect", trace)
        store.engine.dispose()
        store.write_batch([make_record() for _ in range(1000)])
    inserts = [s for s in statements if s.startswith("INSERT INTO errors ")]
    assert 1 <= len(inserts) <= 10


def test_a_build_that_binds_few_variables_gets_smaller_statements(
    tmp_path: Path, make_record: RecordFactory
) -> None:
    """An SQLite built with the old limit of 999 variables still takes whole batches."""

    def old_limit(driver: sqlite3.Connection, record: object) -> None:
        driver.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 999)

    with open_store(f"sqlite:///{tmp_path / 'errors.db'}") as store:
        event.listen(store.engine, "connect", old_limit)
        store.engine.dispose()  # connections made from here on have the old limit
        with store.engine.connect() as connection:
            assert rows_per_statement(connection, len(_COLUMNS)) * len(_COLUMNS) <= 999
        records = [make_record() for _ in range(100)]
        assert store.write_batch(records).inserted == 100


def test_pre_encoded_data_is_stored_as_its_text(
    store: ErrorStore, make_record: RecordFactory
) -> None:
    """A record whose data comes with its JSON text reads back as that data."""
    data = {"exceptions": [{"type": "ValueError", "frames": []}], "tags": {"a": "é"}}
    record = make_record(data=EncodedData(data, json_dumps(data)))
    store.write_batch([record])
    stored = store.get(record.error_id)
    assert stored is not None
    assert stored.data == data


def test_writers_in_threads_keep_counts_exact_with_multi_row_statements(
    store: ErrorStore, make_record: RecordFactory
) -> None:
    """Two threads writing overlapping 600-row batches store each row once, counted once."""
    records = [make_record() for _ in range(900)]
    halves = (records[:600], records[300:])
    errors: list[BaseException] = []

    def write(batch: list[ErrorRecord]) -> None:
        try:
            store.write_batch(batch)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(half,)) for half in halves]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    group = store.group("fp-boom")
    assert group is not None
    assert group.count == 900
