"""The error-rate rule on a real FastAPI app: request counts from errorkit's own HTTP
integration, errors from its capture pipeline, both in the store, the rule read from it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi import FastAPI

import errorkit
import errorkit.fastapi
from errorkit.alerts import AlertManager, LogChannel, Rule, Scope
from errorkit.capturing import api as capture
from errorkit.store import open_store

REQUESTS = 2_000  # bounded synthetic load


def _run_load(tmp_path: Path, failure_every: int) -> str:
    from starlette.testclient import TestClient

    url = f"sqlite:///{tmp_path / 'errors.db'}"
    capture.configure(store_url=url, service="shop", spool_dir=tmp_path / "spool")
    app = FastAPI()

    @app.get("/orders/{order_id}")
    async def order(order_id: int) -> dict[str, int]:
        if order_id % failure_every == 0:
            raise errorkit.DatabaseUnavailableError()
        return {"id": order_id}

    errorkit.fastapi.install(app, endpoints=None)
    with TestClient(app, raise_server_exceptions=False) as client:
        for n in range(1, REQUESTS + 1):
            client.get(f"/orders/{n}")
    assert capture.flush(timeout=30)
    return url


@pytest.mark.parametrize(("failure_every", "fires"), [(10, True), (100, False)])
def test_the_error_rate_rule_fires_at_10_percent_and_stays_quiet_at_1(
    tmp_path: Path, failure_every: int, fires: bool
) -> None:
    url = _run_load(tmp_path, failure_every)
    store = open_store(url)
    try:
        now = datetime.now(UTC)
        counts = store.request_counts(
            now - timedelta(minutes=10), now + timedelta(minutes=1), service="shop"
        )
        assert counts.total == REQUESTS
        assert counts.server_errors == REQUESTS // failure_every
        rule = Rule(
            "error-rate-5pct",
            "error_rate",
            threshold=5,
            min_requests=100,
            window=timedelta(minutes=10),
            scope=Scope(service="shop"),
        )
        alerts = AlertManager(store, rules=[rule], channels=[LogChannel("log")])
        fired = alerts.evaluate()
        assert bool(fired) is fires, [f.notification.title for f in fired]
        if fires:
            numbers = fired[0].notification.numbers
            assert (numbers["error_rate"], numbers["requests"], numbers["server_errors"]) == (
                "10.00%",
                REQUESTS,
                REQUESTS // 10,
            )
    finally:
        store.close()
        capture.shutdown()
