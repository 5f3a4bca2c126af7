"""The spool: durable, capped, replayed exactly once into the store."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from tests.capture.conftest import stored_ids, total_count

from errorkit.capturing.spool import (
    Spool,
    SpoolFull,
    decode_batch,
    default_spool_dir,
    encode_batch,
)
from errorkit.store import CountDelta, ErrorRecord, ErrorStore

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def record(n: int, fingerprint: str = "fp-a") -> ErrorRecord:
    return ErrorRecord(
        error_id=f"00000000-0000-4000-8000-{n:012d}",
        timestamp=T0 + timedelta(seconds=n),
        error_type="http_error",
        error_code="INTERNAL_ERROR",
        error_message=f"boom {n} ünïcode",
        severity="error",
        fingerprint=fingerprint,
        title="RuntimeError: boom <num>",
        stack_trace="Traceback ...",
        status=500,
        data={"exceptions": [{"type": "RuntimeError", "frames": []}], "tags": {"a": "b"}},
    )


def delta(n: int, count: int, fingerprint: str = "fp-a") -> CountDelta:
    return CountDelta(
        delta_id=f"delta-{n}",
        fingerprint=fingerprint,
        title="RuntimeError: boom <num>",
        error_type="http_error",
        error_code="INTERNAL_ERROR",
        severity="error",
        count=count,
        first_seen=T0,
        last_seen=T0 + timedelta(minutes=1),
    )


def test_encode_decode_round_trip() -> None:
    """A batch survives the trip through one spool line unchanged."""
    records = [record(1), record(2)]
    deltas = [delta(1, 5)]
    assert decode_batch(encode_batch(records, deltas)) == (records, deltas)


def test_spool_directory_is_created_on_first_append(tmp_path: Path) -> None:
    """Creating a spool touches nothing on disk; the first batch creates the directory."""
    spool = Spool(tmp_path / "spool", max_bytes=1_000_000)
    assert not (tmp_path / "spool").exists()
    assert spool.is_empty()
    spool.append([record(1)], [])
    assert (tmp_path / "spool").is_dir()
    assert not spool.is_empty()


def test_append_refuses_to_grow_past_the_cap(tmp_path: Path) -> None:
    """A batch that would pass max_bytes is refused (SpoolFull), nothing half-written."""
    one = len(encode_batch([record(1)], []))
    spool = Spool(tmp_path, max_bytes=one * 2 + 10)
    spool.append([record(1)], [])
    spool.append([record(2)], [])
    size = spool.size_bytes()
    with pytest.raises(SpoolFull, match="spool_max_bytes"):
        spool.append([record(3)], [])
    assert spool.size_bytes() == size


def test_status_counts_batches_records_deltas(tmp_path: Path) -> None:
    """status(count=True) reads the files and says what they hold."""
    spool = Spool(tmp_path, max_bytes=1_000_000)
    spool.append([record(1), record(2)], [delta(1, 3)])
    spool.append([record(3)], [])
    status = spool.status(count=True)
    assert (status.batches, status.records, status.deltas) == (2, 3, 1)
    assert status.oldest == T0
    assert status.bytes == spool.size_bytes()


def test_replay_writes_every_batch_and_empties_the_spool(tmp_path: Path) -> None:
    """Replay hands each batch to the writer in order, then deletes the files."""
    spool = Spool(tmp_path, max_bytes=1_000_000)
    spool.append([record(1)], [delta(1, 2)])
    spool.append([record(2)], [])
    seen: list[tuple[list[ErrorRecord], list[CountDelta]]] = []
    result = spool.replay(lambda r, d: seen.append((r, d)))
    assert result.ok
    assert (result.batches, result.records, result.deltas) == (2, 2, 1)
    assert seen == [([record(1)], [delta(1, 2)]), ([record(2)], [])]
    assert spool.is_empty()


def test_replay_failure_keeps_the_file(tmp_path: Path) -> None:
    """When the writer fails the file stays, and the next replay starts it over."""
    spool = Spool(tmp_path, max_bytes=1_000_000)
    spool.append([record(1)], [])
    spool.append([record(2)], [])
    calls: list[str] = []

    def flaky(records: list[ErrorRecord], deltas: list[CountDelta]) -> None:
        calls.append(records[0].error_id)
        if len(calls) == 2:
            raise ConnectionError("store went away")

    result = spool.replay(flaky)
    assert not result.ok
    assert isinstance(result.error, ConnectionError)
    assert not spool.is_empty()
    again = spool.replay(lambda r, d: calls.append(r[0].error_id))
    assert again.ok and again.batches == 2
    assert spool.is_empty()


def test_torn_last_line_is_skipped_and_counted(tmp_path: Path) -> None:
    """A line cut by a crash mid-write is skipped; the batches before it are replayed."""
    spool = Spool(tmp_path, max_bytes=1_000_000)
    spool.append([record(1)], [])
    spool.close()
    sealed = next(tmp_path.glob("sealed-*.jsonl"))
    with open(sealed, "ab") as handle:
        handle.write(encode_batch([record(2)], [])[:40])
    result = spool.replay(lambda r, d: None)
    assert (result.batches, result.corrupt_lines) == (1, 1)


def test_a_file_claimed_by_another_replayer_is_skipped(tmp_path: Path) -> None:
    """Two replayers never replay the same file: claiming is an atomic rename."""
    spool = Spool(tmp_path, max_bytes=1_000_000)
    spool.append([record(1)], [])
    spool.close()
    other = Spool(tmp_path, max_bytes=1_000_000)
    taken: list[str] = []

    def steal_then_write(records: list[ErrorRecord], deltas: list[CountDelta]) -> None:
        taken.append(records[0].error_id)

    # The other replayer claims the sealed file first ...
    sealed = next(tmp_path.glob("sealed-*.jsonl"))
    claimed = other._claim(sealed)
    assert claimed is not None
    # ... so this one finds nothing to replay (the claimant is alive: this process).
    result = spool.replay(steal_then_write)
    assert (result.files, result.batches, taken) == (0, 0, [])


def test_files_of_a_dead_process_are_replayed(tmp_path: Path) -> None:
    """A process that died with an active file leaves it to the next replayer."""
    code = (
        "import sys; from tests.capture.test_spool import record;"
        "from errorkit.capturing.spool import Spool;"
        f"Spool({str(tmp_path)!r}, 10**6).append([record(7)], []);"
        "import os; os._exit(0)"  # no close(): the file stays active-<pid>-...
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2])
    assert list(tmp_path.glob("active-*.jsonl"))
    seen: list[str] = []
    result = Spool(tmp_path, 10**6).replay(lambda r, d: seen.extend(x.error_id for x in r))
    assert result.ok and seen == [record(7).error_id]


def test_replay_into_a_real_store_never_counts_twice(
    store_url: str, tmp_path: Path, open_store: Callable[[str], ErrorStore]
) -> None:
    """Replaying the same batches again (a crash after writing, before deleting) changes
    nothing: writes are idempotent by error_id and delta_id."""
    store = open_store(store_url)
    spool = Spool(tmp_path / "spool", max_bytes=1_000_000)
    spool.append([record(1), record(2)], [delta(1, 10)])
    spool.close()
    sealed = next((tmp_path / "spool").glob("sealed-*.jsonl"))
    backup = sealed.read_bytes()
    assert spool.replay(store.write_batch).ok
    sealed.write_bytes(backup)  # as if the file had not been deleted
    assert spool.replay(store.write_batch).ok
    assert total_count(store) == 12
    assert sorted(stored_ids(store)) == [record(1).error_id, record(2).error_id]


def test_default_spool_dir_sits_beside_a_sqlite_file(tmp_path: Path) -> None:
    """``errors.db`` spools into ``errors.db-spool/``; other stores into the cache dir."""
    assert default_spool_dir(f"sqlite:///{tmp_path}/errors.db") == tmp_path / "errors.db-spool"
    pg = default_spool_dir("postgresql://u:secret@db.internal:5432/errs")
    assert "errorkit" in pg.parts and "spool" in pg.parts
    assert "secret" not in str(pg)


def test_a_forked_child_writes_its_own_file(tmp_path: Path) -> None:
    """After fork the child appends to a file of its own, never its parent's."""
    spool = Spool(tmp_path, max_bytes=1_000_000)
    spool.append([record(1)], [])
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        try:
            spool.append([record(2)], [])
            os._exit(0)
        finally:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    actives = sorted(tmp_path.glob("active-*.jsonl"))
    assert len(actives) == 2
    ids = sorted(r.error_id for path in actives for r in decode_batch(path.read_bytes())[0])
    assert ids == [record(1).error_id, record(2).error_id]


def test_bad_cap_is_refused(tmp_path: Path) -> None:
    """A spool without room is a configuration mistake, said at once."""
    with pytest.raises(ValueError, match="max_bytes"):
        Spool(tmp_path, max_bytes=0)
