"""Slim rows: every error id a client was shown under a flood still finds its group."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner
from tests.store._support import T0

from errorkit.capturing.pipeline import Pipeline
from errorkit.cli.store_cmds import register
from errorkit.errors import error_id_of
from errorkit.scrubbing import default_scrubber
from errorkit.store import ErrorStore, SlimRecord

START = 1_000_020.0  # 20 s into a clock minute: the test never crosses into the next one


@pytest.fixture
def pipeline(store: ErrorStore, tmp_path: Path) -> Iterator[Pipeline]:
    """A pipeline without a writer thread: one sample per minute, two slim rows per minute."""
    made = Pipeline(
        store,
        service="svc",
        scrubber=default_scrubber(),
        spool=None,
        flood_per_minute=1,
        slim_per_minute=2,
        clock=lambda: START,
        monotonic=lambda: START,
        start_writer=False,
    )
    yield made
    made.shutdown(timeout=5)


def _answered(pipeline: Pipeline, n: int, **fields: Any) -> str:
    try:
        raise RuntimeError("upstream reset")
    except RuntimeError as exc:
        error_id = error_id_of(exc)
        pipeline.submit(error_id, exc, fields)
    return error_id


def _show(store_url: str, error_id: str, *extra: str) -> Any:
    @click.group()
    def main() -> None:
        """Test entry point."""

    register(main)
    return CliRunner().invoke(main, ["errors", "show", error_id, *extra, "--store", store_url])


def test_sampled_out_answers_keep_slim_rows_within_their_bound(
    pipeline: Pipeline, store: ErrorStore, store_url: str
) -> None:
    """Past the flood limit an answered occurrence (it has a request id) leaves a slim row
    with its group, request, session, endpoint and status, at most slim_per_minute; past
    that, and for occurrences no client saw, it is only counted."""
    answer = {"endpoint": "/chat", "status": 502, "session_id": "sess-1"}
    ids = [_answered(pipeline, n, request_id=f"req-{n}", **answer) for n in range(5)]
    unanswered = _answered(pipeline, 5)  # a background error: no request id, no slim row
    pipeline.run_once(force=True)

    assert store.get(ids[0]) is not None  # the one sample of the minute
    slim = [store.get_slim(error_id) for error_id in ids[1:]]
    kept = [s for s in slim if s is not None]
    assert [s.error_id for s in kept] == ids[1:3]
    assert slim[2:] == [None, None]
    assert store.get_slim(unanswered) is None
    first = kept[0]
    assert (first.request_id, first.session_id, first.endpoint, first.status) == (
        "req-1",
        "sess-1",
        "/chat",
        502,
    )
    assert first.group is not None and first.group.count == 6  # every occurrence counted
    assert first.fingerprint == first.group.fingerprint
    stats = pipeline.stats()
    assert stats.slim_written == 2
    assert stats.dropped["slim_limit"] == 2

    shown = _show(store_url, ids[1])
    assert shown.exit_code == 0, shown.output
    assert "full sample of this error was not kept" in shown.output
    assert f"group {first.group.id}" in shown.output and "6 occurrences" in shown.output
    assert "req-1" in shown.output
    as_json = _show(store_url, ids[1], "--json")
    assert as_json.exit_code == 0, as_json.output
    assert '"sample_kept": false' in as_json.output
    assert _show(store_url, ids[4]).exit_code == 1  # only counted: not found


def test_slim_rows_are_idempotent_and_follow_retention(store: ErrorStore) -> None:
    """Writing the same slim row twice keeps one; cleanup removes old ones."""
    row = SlimRecord("slim-1", T0, "fp-x", "req-1", None, "/a", 500)
    assert store.write_slim([row]) == 1
    assert store.write_slim([row]) == 0
    found = store.get_slim("slim-1")
    assert found is not None and found.timestamp == T0 and found.group is None
    store.cleanup(T0.replace(year=T0.year + 1))
    assert store.get_slim("slim-1") is None
