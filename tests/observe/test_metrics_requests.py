"""errorkit_http_requests_total: the request counts, as /metrics shows them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

import errorkit
import errorkit.config
from errorkit.capturing.request_counts import (
    OTHER_ENDPOINT,
    RequestCounter,
    set_default_request_counter,
)
from errorkit.observe.metrics import Metrics

NAME = "errorkit_http_requests_total"


def requests_samples(body: bytes) -> dict[tuple[str, str, str], float]:
    return {
        (s.labels["service"], s.labels["endpoint"], s.labels["status_class"]): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
        if s.name == NAME
    }


def test_the_counter_is_exposed_by_service_endpoint_and_status_class() -> None:
    counter = RequestCounter(max_endpoints=1)
    for endpoint, status in (("/a", 200), ("/a", 200), ("/a", 503), ("/b", 404)):
        counter.count("shop", endpoint, status)
    metrics = Metrics(capture_stats=lambda: None, request_totals=counter.totals)
    counter.take()  # what the writer took stays counted
    counter.count("shop", "/a", 200)

    assert requests_samples(metrics.render()[0]) == {
        ("shop", "/a", "2xx"): 3.0,
        ("shop", "/a", "5xx"): 1.0,
        ("shop", OTHER_ENDPOINT, "4xx"): 1.0,
    }


def test_services_past_the_cap_are_other() -> None:
    counter = RequestCounter()
    for service in ("a", "b", "c"):
        counter.count(service, "/x", 200)
    metrics = Metrics(capture_stats=lambda: None, request_totals=counter.totals, max_services=2)
    assert requests_samples(metrics.render()[0]) == {
        ("a", "/x", "2xx"): 1.0,
        ("b", "/x", "2xx"): 1.0,
        ("other", "/x", "2xx"): 1.0,
    }


@pytest.fixture
def counter() -> Iterator[RequestCounter]:
    counter = RequestCounter()
    previous = set_default_request_counter(counter)
    yield counter
    set_default_request_counter(previous)
    errorkit.reset()


def test_the_mounted_metrics_show_an_apps_requests(counter: RequestCounter) -> None:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route
    from starlette.testclient import TestClient

    import errorkit.starlette

    errorkit.config.update_settings(service="shop")

    async def item(request: Request) -> JSONResponse:
        if request.path_params["item_id"] == "0":
            raise errorkit.NotFoundError()
        return JSONResponse({"ok": True})

    app = Starlette(routes=[Route("/items/{item_id}", item)])
    errorkit.starlette.install(app)
    client = TestClient(app)
    for item_id in (1, 2, 0):
        client.get(f"/items/{item_id}")

    seen = requests_samples(client.get("/metrics").content)
    assert seen == {
        ("shop", "/items/{item_id}", "2xx"): 2.0,
        ("shop", "/items/{item_id}", "4xx"): 1.0,
    }
    # The scrape itself is counted once it is answered.
    again = requests_samples(client.get("/metrics").content)
    assert again[("shop", "/metrics", "2xx")] == 1.0
