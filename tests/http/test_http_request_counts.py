"""Request counts: every answered request counted under its route template and status
class, in minute buckets, with a bounded number of endpoints."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest
from _apps import Client

import errorkit
from errorkit.capturing.request_counts import (
    OTHER_ENDPOINT,
    UNMATCHED_ENDPOINT,
    RequestCounter,
    default_request_counter,
    set_default_request_counter,
    status_class,
)
from errorkit.config import update_settings


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


START = datetime(2026, 12, 3, 10, 0, tzinfo=UTC).timestamp()


@pytest.fixture
def counter() -> Iterator[RequestCounter]:
    """A fresh process counter with a frozen clock; every default back afterwards."""
    counter = RequestCounter(clock=Clock(START + 5))
    previous = set_default_request_counter(counter)
    yield counter
    set_default_request_counter(previous)
    errorkit.reset()


ITEM = {
    "fastapi": "/items/{item_id}",
    "starlette": "/items/{item_id}",
    "flask": "/items/<int:item_id>",
}
STATUS = {
    "fastapi": "/status/{code}",
    "starlette": "/status/{code}",
    "flask": "/status/<int:code>",
}


def test_requests_are_counted_per_route_template_and_status_class(
    framework: str, client_for: Callable[..., Client], counter: RequestCounter
) -> None:
    update_settings(service="billing")
    client = client_for(framework)
    for path in ("/items/1", "/items/2", "/items/3", "/ok", "/ok", "/boom", "/status/503"):
        client.get(path)
    client.get("/no/such/path/4711")

    assert counter.totals() == {
        ("billing", ITEM[framework], "2xx"): 1,
        ("billing", ITEM[framework], "4xx"): 2,
        ("billing", "/ok", "2xx"): 2,
        ("billing", "/boom", "5xx"): 1,
        ("billing", STATUS[framework], "5xx"): 1,
        ("billing", UNMATCHED_ENDPOINT, "4xx"): 1,
    }


def test_the_writer_takes_minute_buckets(
    client_for: Callable[..., Client], counter: RequestCounter
) -> None:
    client = client_for("starlette")
    clock = counter._clock
    assert isinstance(clock, Clock)
    client.get("/ok")
    clock.now += 60
    client.get("/ok")
    client.get("/items/2")

    rows = sorted(counter.take(), key=lambda r: (r.bucket_start, r.endpoint))
    assert [(r.bucket_start, r.endpoint, r.status_class, r.count) for r in rows] == [
        (datetime(2026, 12, 3, 10, 0, tzinfo=UTC), "/ok", "2xx", 1),
        (datetime(2026, 12, 3, 10, 1, tzinfo=UTC), "/items/{item_id}", "4xx", 1),
        (datetime(2026, 12, 3, 10, 1, tzinfo=UTC), "/ok", "2xx", 1),
    ]
    assert {r.granularity for r in rows} == {"minute"}
    assert counter.take() == []  # taken once; the totals keep them
    assert sum(counter.totals().values()) == 3


def test_endpoints_past_the_cap_are_counted_as_other() -> None:
    counter = RequestCounter(max_endpoints=2, clock=Clock(START))
    for endpoint in ("/a", "/b", "/c", "/d", "/a"):
        counter.count("app", endpoint, 200)
    counter.count("app", None, 404)

    assert counter.totals() == {
        ("app", "/a", "2xx"): 2,
        ("app", "/b", "2xx"): 1,
        ("app", OTHER_ENDPOINT, "2xx"): 2,
        ("app", UNMATCHED_ENDPOINT, "4xx"): 1,
    }


def test_buckets_no_writer_takes_only_stay_in_the_totals() -> None:
    clock = Clock(START)
    counter = RequestCounter(clock=clock)
    for minute in range(30):
        clock.now = START + 60 * minute
        counter.count("app", "/a", 200)
    # At most the last few minutes wait for a writer; the rest only count in the totals.
    assert len(counter._pending) <= 6
    assert counter.totals() == {("app", "/a", "2xx"): 30}


def test_status_classes() -> None:
    assert [status_class(s) for s in (101, 200, 204, 302, 404, 499, 500, 503, 99, 600)] == [
        "1xx",
        "2xx",
        "2xx",
        "3xx",
        "4xx",
        "4xx",
        "5xx",
        "5xx",
        "5xx",
        "5xx",
    ]


def test_reset_empties_the_counts() -> None:
    default_request_counter().count("app", "/a", 200)
    errorkit.reset()
    assert default_request_counter().totals() == {}


def test_a_mounted_route_is_counted_under_its_full_template(counter: RequestCounter) -> None:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Mount, Route
    from starlette.testclient import TestClient

    import errorkit.starlette

    async def item(request: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    app = Starlette(routes=[Mount("/api/v1", routes=[Route("/items/{item_id}", item)])])
    errorkit.starlette.install(app)
    client = TestClient(app)
    client.get("/api/v1/items/1")
    client.get("/api/v1/items/2")

    assert counter.totals() == {("app", "/api/v1/items/{item_id}", "2xx"): 2}


def test_counting_from_many_threads_loses_nothing() -> None:
    import threading

    counter = RequestCounter(clock=Clock(START))
    taken: list[int] = []

    def work(n: int) -> None:
        for i in range(2000):
            counter.count("app", f"/e{i % 7}", 200 + 100 * (n % 4))

    def take() -> None:
        for _ in range(50):
            taken.extend(row.count for row in counter.take())

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    threads.append(threading.Thread(target=take))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    taken.extend(row.count for row in counter.take())

    assert sum(taken) == 16_000
    assert sum(counter.totals().values()) == 16_000
