"""The capture writer stores the HTTP request counts beside the errors, once each, on
SQLite and PostgreSQL; while the store fails they wait, bounded."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import errorkit
from errorkit.capturing import flush
from errorkit.capturing import request_counts as rc
from errorkit.capturing.pipeline import Pipeline
from errorkit.scrubbing import default_scrubber
from errorkit.store import ErrorStore, RequestCountRow, StoreUnavailable
from errorkit.store.models import RequestCounts

T = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)
WINDOW = (T, T + timedelta(hours=1))


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def counter() -> RequestCounter:
    return rc.RequestCounter(clock=Clock(T.timestamp() + 1))


RequestCounter = rc.RequestCounter


def pipeline_for(store: Any, counter: RequestCounter, clock: Clock | None = None) -> Pipeline:
    return Pipeline(
        store,
        service="billing",
        environment="production",
        scrubber=default_scrubber(),
        spool=None,
        start_writer=False,
        requests=counter,
        monotonic=clock or Clock(0.0),
    )


def count(counter: RequestCounter, endpoint: str, status: int, n: int) -> None:
    for _ in range(n):
        counter.count("billing", endpoint, status)


def test_the_writer_cycle_stores_the_counts(
    store_url: str,
    counter: RequestCounter,
    open_store: Callable[[str], ErrorStore],
) -> None:
    store = open_store(store_url)
    pipeline = pipeline_for(store, counter)
    count(counter, "/items/{id}", 200, 18)
    count(counter, "/items/{id}", 404, 1)
    count(counter, "/items/{id}", 503, 1)
    pipeline.run_once()
    count(counter, "/items/{id}", 200, 10)  # the same minute again: added to its bucket
    count(counter, "/health", 200, 5)
    pipeline.run_once()

    assert store.request_counts(*WINDOW) == RequestCounts(35, 1, 1)
    assert store.request_counts(
        *WINDOW, service="billing", environment="production", endpoint="/items/{id}"
    ) == RequestCounts(30, 1, 1)
    assert pipeline.flush(0) is True
    assert pipeline.requests is not None
    assert pipeline.requests.written == 35


class FlakyCounts:
    """A store whose request-count writes fail ``failures`` times; with ``lose_answer``
    the first failing write is committed and only its answer lost."""

    def __init__(self, store: ErrorStore, failures: int, *, lose_answer: bool = False) -> None:
        self.store = store
        self.failures = failures
        self.lose_answer = lose_answer
        self.calls = 0

    def write_batch(self, records: Sequence[Any], deltas: Sequence[Any] = ()) -> Any:
        return self.store.write_batch(records, deltas)

    def write_request_counts(
        self, rows: Sequence[RequestCountRow], *, batch_id: str | None = None
    ) -> int:
        self.calls += 1
        if self.failures:
            self.failures -= 1
            if self.lose_answer:
                self.store.write_request_counts(rows, batch_id=batch_id)
            message = "the store went away"
            raise StoreUnavailable(message)
        return self.store.write_request_counts(rows, batch_id=batch_id)


@pytest.mark.parametrize("lose_answer", [False, True], ids=["refused", "answer-lost"])
def test_counts_wait_for_a_failing_store_and_are_stored_once(
    store_url: str,
    counter: RequestCounter,
    open_store: Callable[[str], ErrorStore],
    lose_answer: bool,
) -> None:
    store = open_store(store_url)
    flaky = FlakyCounts(store, 2, lose_answer=lose_answer)
    clock = Clock(0.0)
    pipeline = pipeline_for(flaky, counter, clock)
    count(counter, "/a", 200, 7)
    pipeline.run_once()
    assert flaky.calls == 1
    count(counter, "/a", 500, 3)
    pipeline.run_once()  # backing off: not tried again yet
    assert flaky.calls == 1
    assert pipeline.flush(0) is False

    clock.now += 60
    pipeline.run_once()  # the second failure
    clock.now += 60
    pipeline.run_once()  # both batches, each once

    assert store.request_counts(*WINDOW) == RequestCounts(10, 0, 3)
    pipeline.run_once(force=True)
    assert store.request_counts(*WINDOW) == RequestCounts(10, 0, 3)


def test_counts_waiting_for_the_store_are_bounded(
    counter: RequestCounter, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Down:
        def write_batch(self, records: Sequence[Any], deltas: Sequence[Any] = ()) -> Any:
            raise StoreUnavailable("down")

        def write_request_counts(
            self, rows: Sequence[RequestCountRow], *, batch_id: str | None = None
        ) -> int:
            raise StoreUnavailable("down")

    monkeypatch.setattr(rc, "MAX_UNSTORED_ROWS", 3)
    pipeline = pipeline_for(Down(), counter)
    for n in range(1, 6):
        counter.count("billing", f"/e{n}", 200)
        counter.count("billing", f"/e{n}", 500)
        pipeline.run_once(force=True)
    writer = pipeline.requests
    assert writer is not None
    assert writer._rows_waiting <= 3 + 1
    assert writer.dropped == 8  # four batches of two requests dropped, the newest kept


def test_a_store_without_request_counts_keeps_nothing(counter: RequestCounter) -> None:
    class ErrorsOnly:
        def write_batch(self, records: Sequence[Any], deltas: Sequence[Any] = ()) -> Any:
            return None

    pipeline = pipeline_for(ErrorsOnly(), counter)
    count(counter, "/a", 200, 3)
    pipeline.run_once()
    assert pipeline.flush(0) is True
    assert counter.totals() == {("billing", "/a", "2xx"): 3}  # still in /metrics


@pytest.fixture
def configured_url(store_url: str) -> Iterator[str]:
    errorkit.configure(store_url=store_url, service="shop", environment="staging")
    yield store_url
    errorkit.reset()


def test_an_app_with_capture_configured_stores_its_request_counts(
    configured_url: str, open_store: Callable[[str], ErrorStore]
) -> None:
    from fastapi import FastAPI
    from starlette.testclient import TestClient

    import errorkit.fastapi

    app = FastAPI()

    @app.get("/orders/{order_id}")
    async def order(order_id: int) -> dict[str, int]:
        if order_id == 0:
            raise errorkit.NotFoundError(details={"order_id": order_id})
        if order_id < 0:
            raise RuntimeError("negative order")
        return {"id": order_id}

    errorkit.fastapi.install(app)
    client = TestClient(app, raise_server_exceptions=False)
    started = datetime.now(UTC).replace(second=0, microsecond=0)
    for order_id in (1, 2, 3, 4, 5, 6, 7, 0, -1, -2):
        client.get(f"/orders/{order_id}")
    assert flush(10)

    store = open_store(configured_url)
    window = (started - timedelta(minutes=1), datetime.now(UTC) + timedelta(minutes=1))
    counts = store.request_counts(
        *window, service="shop", environment="staging", endpoint="/orders/{order_id}"
    )
    assert counts == RequestCounts(total=10, client_errors=1, server_errors=2)
    assert counts.failure_rate == pytest.approx(0.2)
