"""A service using the real sentry-sdk, run as its own process (the SDK patches logging,
Starlette and FastAPI process-wide): ``python _sdk_client.py <dsn>``.

It sends one error each way an app does (capture_exception, capture_message, the logging
integration, an exception in a FastAPI app with the FastAPI integration), flushes, and
prints JSON: the event id of each scenario and the HTTP status of every answer the SDK's
transport got.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

import sentry_sdk
from fastapi import FastAPI
from sentry_sdk.integrations.fastapi import FastApiIntegration
from sentry_sdk.integrations.logging import LoggingIntegration
from sentry_sdk.integrations.starlette import StarletteIntegration
from sentry_sdk.transport import HttpTransport
from starlette.testclient import TestClient

statuses: list[int] = []
events: dict[str, str] = {}


class RecordingTransport(HttpTransport):
    """The SDK's own HTTP transport, noting each answer's status."""

    def _handle_response(self, response: Any, envelope: Any) -> None:
        statuses.append(int(response.status))
        super()._handle_response(response, envelope)


def before_send(event: Any, hint: Any) -> Any:
    scenario = (event.get("tags") or {}).get("scenario")
    if scenario:
        events[str(scenario)] = str(event["event_id"])
    return event


def apply_discount(cart: dict[str, int], code: str) -> int:
    total = sum(cart.values())
    if code != "SPRING":
        message = f"discount code {code!r} is not valid for a cart of {total}"
        raise ValueError(message)
    return total


def shop() -> FastAPI:
    app = FastAPI()

    @app.get("/orders/{order_id}")
    def order(order_id: int) -> dict[str, Any]:
        sentry_sdk.set_tag("scenario", "fastapi")
        sentry_sdk.set_user({"id": "user-7"})
        orders: dict[int, Any] = {}
        return {"order": orders[order_id]}

    return app


def main(dsn: str) -> None:
    sentry_sdk.init(
        dsn=dsn,
        transport=RecordingTransport,
        release="shop@1.4.2",
        environment="staging",
        server_name="web-1",
        before_send=before_send,
        integrations=[
            LoggingIntegration(level=logging.INFO, event_level=logging.ERROR),
            StarletteIntegration(),
            FastApiIntegration(),
        ],
    )
    with sentry_sdk.isolation_scope() as scope:
        scope.set_tag("scenario", "exception")
        scope.set_tag("feature", "checkout")
        scope.set_user({"id": "user-42", "email": "ada@example.com"})
        try:
            apply_discount({"book": 12, "pen": 3}, "WINTER")
        except ValueError:
            sentry_sdk.capture_exception()
    with sentry_sdk.isolation_scope() as scope:
        scope.set_tag("scenario", "message")
        scope.set_user({"id": "user-43"})
        sentry_sdk.capture_message("payment provider answered slowly", level="warning")
    with sentry_sdk.isolation_scope() as scope:
        scope.set_tag("scenario", "logging")
        scope.set_user({"id": "user-44"})
        try:
            apply_discount({"lamp": 40}, "AUTUMN")
        except ValueError:
            logging.getLogger("shop.orders").exception("order %s could not be priced", 17)
    with TestClient(shop(), raise_server_exceptions=False) as client:
        answered = client.get("/orders/7").status_code
    sentry_sdk.flush(timeout=20)
    print(json.dumps({"events": events, "statuses": statuses, "app_status": answered}))


if __name__ == "__main__":
    main(sys.argv[1])
