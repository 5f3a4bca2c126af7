"""The manager's thread evaluates and sends beside the app, which keeps answering."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from tests.alerts._support import CountingStore, Receiver, occurrences

from errorkit.alerts import AlertManager, Rule, WebhookChannel
from errorkit.store.alerting import AlertEvent


def test_a_down_channel_is_retried_in_the_background_while_the_app_answers(
    store: CountingStore, receiver: Receiver
) -> None:
    testclient = pytest.importorskip("starlette.testclient")
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def hello(request: object) -> PlainTextResponse:
        return PlainTextResponse("hello")

    app = Starlette(routes=[Route("/", hello)])
    receiver.status = 503
    occurrences(store, 3, datetime.now(UTC))
    alerts = AlertManager(
        store,
        [Rule("repeats", "repeat", count=3, window=timedelta(minutes=5))],
        [WebhookChannel("hook", receiver.url)],
        attempts=3,
    )
    failures: list[AlertEvent] = []
    alerts.start(interval=0.01)
    try:
        with testclient.TestClient(app) as client:
            answers = [client.get("/").status_code for _ in range(20)]
        deadline = time.monotonic() + 30
        while len(failures) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
            failures = list(store.alert_events(kinds=("delivery",)))
    finally:
        alerts.stop()
    assert answers == [200] * 20
    assert [(e.attempt, e.status) for e in reversed(failures)] == [
        (1, "failed"),
        (2, "failed"),
        (3, "failed"),
    ]
    assert len(receiver.requests) == 3
