"""The pipeline: bounded queue, flood limiter, exact counts, listeners, the writer thread."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.capture.conftest import stored_ids, total_count

from errorkit import AppError
from errorkit.capturing.pipeline import CaptureSummary, FloodLimiter, Pipeline
from errorkit.capturing.spool import Spool
from errorkit.scrubbing import default_scrubber
from errorkit.store import ErrorStore


class Clock:
    """A hand-driven clock: tests move time, nothing sleeps."""

    def __init__(self, start: float = 1_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def _fail(kind: int) -> None:
    if kind == 0:
        raise ValueError("bad value 1")
    if kind == 1:
        raise KeyError("missing")
    raise RuntimeError(f"kind {kind}")


def raised(kind: int = 0) -> BaseException:
    try:
        _fail(kind)
    except BaseException as exc:
        return exc
    raise AssertionError("expected an exception")


@pytest.fixture
def store(sqlite_url: str) -> Iterator[ErrorStore]:
    with ErrorStore(sqlite_url) as opened:
        yield opened


@pytest.fixture
def make_pipeline(
    store: ErrorStore, tmp_path: Path
) -> Iterator[Callable[..., tuple[Pipeline, Clock]]]:
    """A pipeline without a writer thread (tests call run_once) and with a fake clock."""
    made: list[Pipeline] = []

    def make(**options: Any) -> tuple[Pipeline, Clock]:
        clock = Clock()
        options.setdefault("start_writer", False)
        pipeline = Pipeline(
            options.pop("store", store),
            service="svc",
            scrubber=default_scrubber(),
            spool=options.pop("spool", Spool(tmp_path / "spool", 10**7)),
            clock=clock,
            monotonic=clock,
            **options,
        )
        made.append(pipeline)
        return pipeline, clock

    yield make
    for pipeline in made:
        pipeline.shutdown(timeout=5)


def submit(pipeline: Pipeline, exc: BaseException, **fields: Any) -> str:
    from errorkit.errors import error_id_of

    error_id = error_id_of(exc)
    pipeline.submit(error_id, exc, fields)
    return error_id


# --- the flood limiter -----------------------------------------------------------------------


def test_limiter_admits_per_minute_per_fingerprint() -> None:
    """Each fingerprint gets its own allowance of samples per minute."""
    clock = Clock(0.0)
    limiter = FloodLimiter(3, clock=clock)
    assert [limiter.admit("a") for _ in range(5)] == [True, True, True, False, False]
    assert limiter.admit("b")


def test_limiter_allowance_comes_back_next_minute() -> None:
    """A new clock minute resets every allowance."""
    clock = Clock(0.0)
    limiter = FloodLimiter(1, clock=clock)
    assert limiter.admit("a") and not limiter.admit("a")
    clock.advance(60)
    assert limiter.admit("a")


def test_limiter_memory_is_bounded() -> None:
    """Past max_fingerprints, new fingerprints are admitted without being tracked."""
    limiter = FloodLimiter(1, clock=Clock(0.0), max_fingerprints=10)
    for i in range(100):
        assert limiter.admit(f"fp-{i}")
    assert len(limiter._seen) == 10


# --- exact counts ----------------------------------------------------------------------------


def test_sampled_out_occurrences_are_counted_exactly(
    make_pipeline: Callable[..., tuple[Pipeline, Clock]], store: ErrorStore
) -> None:
    """Beyond flood_per_minute only counts are stored, and the group count is exact."""
    pipeline, _ = make_pipeline(flood_per_minute=3)
    for _ in range(10):
        submit(pipeline, raised())
    pipeline.run_once()
    assert len(stored_ids(store)) == 3
    assert total_count(store) == 10
    assert pipeline.stats().dropped == {"sampled": 7}


def test_counts_past_the_fingerprint_limit_go_to_one_overflow_group(
    make_pipeline: Callable[..., tuple[Pipeline, Clock]],
    store: ErrorStore,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Past MAX_FINGERPRINTS pending counts, new fingerprints are counted in one group per type."""
    from errorkit.capturing import counts as pipeline_module

    monkeypatch.setattr(pipeline_module, "MAX_FINGERPRINTS", 2)
    classified: list[object] = []
    meta = pipeline_module._meta

    def counting_meta(*args: Any) -> tuple[str, str, str]:
        classified.append(args[0])
        return meta(*args)

    monkeypatch.setattr(pipeline_module, "_meta", counting_meta)
    pipeline, _ = make_pipeline(queue_size=0, flood_per_minute=1000)
    for word in ("alpha", "beta", "gamma", "delta", "epsilon", "zeta"):
        try:
            raise RuntimeError(f"stage {word} failed")  # six distinct fingerprints
        except RuntimeError as exc:
            submit(pipeline, exc)
    assert len(pipeline._counts) == 3  # two of their own, the rest together
    assert sorted(entry.count for entry in pipeline._counts.values()) == [1, 1, 4]
    assert len(classified) == 3  # once per group, not once per overflowing occurrence
    pipeline.run_once()
    assert total_count(store) == 6
    assert pipeline.stats().dropped == {"queue_full": 6}


def test_queue_full_occurrences_are_counted_exactly(
    make_pipeline: Callable[..., tuple[Pipeline, Clock]], store: ErrorStore
) -> None:
    """A full queue refuses samples but every occurrence is still counted."""
    pipeline, _ = make_pipeline(queue_size=2, flood_per_minute=1000)
    ids = [submit(pipeline, raised()) for _ in range(5)]
    assert pipeline.stats().queue_depth == 2
    pipeline.run_once()
    assert sorted(stored_ids(store)) == sorted(ids[:2])
    assert total_count(store) == 5
    assert pipeline.stats().dropped == {"queue_full": 3}


def test_counts_keep_their_own_groups(
    make_pipeline: Callable[..., tuple[Pipeline, Clock]], store: ErrorStore
) -> None:
    """Counted occurrences of different errors land in their own groups."""
    pipeline, _ = make_pipeline(flood_per_minute=1)
    for kind in (0, 0, 0, 1, 1, 2):
        submit(pipeline, raised(kind))
    pipeline.run_once()
    counts = sorted(group.count for group in store.groups().items)
    assert counts == [1, 2, 3]


def test_every_captured_id_is_stored(
    make_pipeline: Callable[..., tuple[Pipeline, Clock]], store: ErrorStore
) -> None:
    """Below the flood limit, every id handed out finds its row."""
    pipeline, _ = make_pipeline(flood_per_minute=1000, batch_size=7)
    ids = [submit(pipeline, raised(kind % 3)) for kind in range(50)]
    pipeline.run_once()
    assert sorted(stored_ids(store)) == sorted(ids)
    assert all(store.get(error_id) is not None for error_id in ids)


def test_an_odd_app_error_id_is_replaced_not_lost(
    make_pipeline: Callable[..., tuple[Pipeline, Clock]], store: ErrorStore
) -> None:
    """An error id the store cannot key (too long) is stored under a new id, the old one
    kept in the event's data."""
    pipeline, _ = make_pipeline()
    exc = AppError("odd")
    exc.error_id = "x" * 50
    pipeline.submit(exc.error_id, exc, {})
    pipeline.run_once()
    (row,) = store.recent()
    assert row.data["original_error_id"] == "x" * 50


# --- listeners and stats ---------------------------------------------------------------------


def test_listeners_hear_stored_events_and_counts(
    make_pipeline: Callable[..., tuple[Pipeline, Clock]],
) -> None:
    """Listeners get one summary per stored event and one per count of sampled ones."""
    pipeline, _ = make_pipeline(flood_per_minute=2)
    heard: list[CaptureSummary] = []
    pipeline.add_listener(heard.append)
    for _ in range(5):
        submit(pipeline, raised())
    pipeline.run_once()
    assert sorted((s.count, s.sampled) for s in heard) == [(1, False), (1, False), (3, True)]
    assert {(s.error_type, s.code, s.severity, s.service) for s in heard} == {
        ("unknown_error", "INTERNAL_ERROR", "error", "svc")
    }
    assert sum(s.count for s in heard) == 5


def test_a_failing_listener_does_not_stop_the_writer(
    make_pipeline: Callable[..., tuple[Pipeline, Clock]],
    store: ErrorStore,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A listener that raises is counted as an internal error; events are still stored."""
    from errorkit import _guard

    monkeypatch.setattr(_guard, "_strict", False)
    pipeline, _ = make_pipeline()

    def broken(summary: CaptureSummary) -> None:
        raise RuntimeError("metrics are down")

    pipeline.add_listener(broken)
    submit(pipeline, raised())
    pipeline.run_once()
    assert total_count(store) == 1
    assert _guard.internal_error_counts().get("capture.listener", 0) >= 1


def test_stats_report_what_happened(
    make_pipeline: Callable[..., tuple[Pipeline, Clock]],
) -> None:
    """stats() says queue depth, writes, drops and store state."""
    pipeline, _ = make_pipeline(flood_per_minute=1)
    submit(pipeline, raised())
    submit(pipeline, raised())
    before = pipeline.stats()
    assert (before.queue_depth, before.pending_counts, before.store_available) == (1, 1, None)
    pipeline.run_once()
    after = pipeline.stats()
    assert (after.queue_depth, after.events_written, after.deltas_written) == (0, 1, 1)
    assert after.store_available is True and after.dropped == {"sampled": 1}


# --- the writer thread -----------------------------------------------------------------------


def test_flush_stores_everything_through_the_writer_thread(
    make_pipeline: Callable[..., tuple[Pipeline, Clock]], store: ErrorStore
) -> None:
    """With a running writer, flush() returns True once everything is stored."""
    pipeline, _ = make_pipeline(start_writer=True, flush_interval=30.0)
    ids = [submit(pipeline, raised(k % 3)) for k in range(20)]
    assert pipeline.writer_alive
    assert pipeline.flush(timeout=30)
    assert sorted(stored_ids(store)) == sorted(ids)


def test_flush_times_out_while_the_store_is_locked(
    make_pipeline: Callable[..., tuple[Pipeline, Clock]], sqlite_url: str
) -> None:
    """flush(timeout) gives up at the timeout instead of hanging on a locked store."""
    slow = ErrorStore(sqlite_url, busy_timeout_ms=3000)
    slow.ping()
    pipeline, _ = make_pipeline(store=slow, start_writer=True, flush_interval=30.0)
    holder = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"))
    holder.execute("BEGIN EXCLUSIVE")
    try:
        submit(pipeline, raised())
        assert pipeline.flush(timeout=0.2) is False
    finally:
        holder.rollback()
        holder.close()
    assert pipeline.flush(timeout=30)
    slow.close()


def test_after_shutdown_captures_are_stored_at_once(
    make_pipeline: Callable[..., tuple[Pipeline, Clock]], store: ErrorStore
) -> None:
    """Errors that happen after shutdown (late at exit) are written synchronously."""
    pipeline, _ = make_pipeline(start_writer=True)
    pipeline.shutdown(timeout=5)
    error_id = submit(pipeline, raised())
    assert store.get(error_id) is not None


# --- later reports of one exception ------------------------------------------------------------


@pytest.fixture
def queued() -> Iterator[tuple[Pipeline, Any]]:
    """The process's pipeline, writing to memory only when the test runs the writer."""
    from errorkit.capturing import api
    from errorkit.testing import MemoryStore

    memory = MemoryStore()
    pipeline = Pipeline(
        memory, service="svc", scrubber=default_scrubber(), spool=None, start_writer=False
    )
    previous = api._swap(pipeline)
    yield pipeline, memory
    api._swap(previous)


def test_a_retried_failure_keeps_the_request_the_http_layer_reports_later(
    queued: tuple[Pipeline, Any],
) -> None:
    """retry() gives up and reports first, without the request; the HTTP layer's report of
    the same exception fills the user agent and payload of the event still queued. An
    exception without text stores its classification's message."""
    import httpx
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route
    from starlette.testclient import TestClient

    import errorkit.starlette
    from errorkit.resilience.retrying import retry

    pipeline, memory = queued

    @retry(attempts=2, wait_initial=0.001, wait_max=0.001)
    def call_upstream() -> None:
        raise httpx.ReadTimeout("")

    async def chat(request: Request) -> JSONResponse:
        await request.json()
        call_upstream()
        return JSONResponse({})

    app = Starlette(routes=[Route("/v1/chat", chat, methods=["POST"])])
    errorkit.starlette.install(app)
    client = TestClient(app, raise_server_exceptions=False)
    answer = client.post(
        "/v1/chat", json={"prompt": "hello"}, headers={"user-agent": "chat-cli/1.0"}
    )
    assert answer.status_code == 504
    pipeline.run_once(force=True)
    (record,) = memory.records
    assert record.error_id == answer.json()["error"]["error_id"]
    assert record.user_agent == "chat-cli/1.0"
    assert record.request_payload is not None and "hello" in record.request_payload
    assert (record.method, record.endpoint) == ("POST", "/v1/chat")
    assert record.data["extra"]["attempts"] == 2
    assert record.error_code == "UPSTREAM_TIMEOUT"
    assert record.error_message == "An upstream service timed out."


def test_a_later_capture_fills_only_empty_fields_of_a_waiting_event(
    queued: tuple[Pipeline, Any],
) -> None:
    """Fields the first report set are kept; mappings gain missing keys; once the writer
    took the event, later reports change nothing (and do not store it twice)."""
    from errorkit.capturing.api import capture

    pipeline, memory = queued
    exc = raised()
    error_id = capture(exc, endpoint="/first", extra={"a": 1})
    assert capture(exc, endpoint="/second", user_agent="ua/2", extra={"a": 9, "b": 2}) == error_id
    pipeline.run_once(force=True)
    assert not pipeline.amend(error_id, {"method": "GET"})
    capture(exc, method="GET")
    pipeline.run_once(force=True)
    (record,) = memory.records
    assert (record.endpoint, record.user_agent, record.method) == ("/first", "ua/2", None)
    assert record.data["extra"] == {"a": 1, "b": 2}


def test_amending_never_compares_an_apps_objects(queued: tuple[Pipeline, Any]) -> None:
    """Only None and "" count as empty: a value whose == raises (a data frame) is kept."""
    from errorkit.capturing.api import capture

    class Frame:
        def __eq__(self, other: object) -> bool:
            raise ValueError("the truth value of a Frame is ambiguous")

        __hash__ = object.__hash__

        def __str__(self) -> str:
            return "frame"

    pipeline, memory = queued
    exc = raised()
    error_id = capture(exc, request_payload=Frame())
    assert pipeline.amend(error_id, {"request_payload": Frame(), "user_agent": "ua/1"})
    pipeline.run_once(force=True)
    (record,) = memory.records
    assert record.user_agent == "ua/1"
    assert record.request_payload is not None
