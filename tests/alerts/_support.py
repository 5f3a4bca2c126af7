"""Helpers for the alert tests: records, a local HTTP receiver, a store with counts."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from errorkit.alerts import RequestCounts
from errorkit.store import ErrorRecord, ErrorStore

#: The instant the tests evaluate at; nothing depends on the clock.
T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def record(at: datetime, **overrides: Any) -> ErrorRecord:
    values: dict[str, Any] = {
        "error_id": str(uuid.uuid4()),
        "timestamp": at,
        "error_type": "http_error",
        "error_code": "HTTP_INTERNAL_ERROR",
        "error_message": "boom",
        "severity": "error",
        "fingerprint": "fp-boom",
        "title": "RuntimeError: boom",
        "status": 500,
        "endpoint": "/api/chat",
        "service": "api",
        "environment": "prod",
    }
    values.update(overrides)
    return ErrorRecord(**values)


def occurrences(store: ErrorStore, n: int, end: datetime, **overrides: Any) -> None:
    """``n`` occurrences a second apart, the last one a second before ``end``."""
    store.write_batch([record(end - timedelta(seconds=n - i), **overrides) for i in range(n)])


@dataclass
class Received:
    path: str
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """An HTTP server on 127.0.0.1 recording each POST; ``status`` is what it answers."""

    status: int = 200
    requests: list[Received] = field(default_factory=list)
    url: str = ""

    def __post_init__(self) -> None:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                owner.requests.append(Received(self.path, dict(self.headers), body))
                self.send_response(owner.status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


CountsFor = Callable[[datetime, datetime, Mapping[str, str | None]], RequestCounts]


class CountingStore(ErrorStore):
    """A store whose request counts the test supplies (``counts_for(since, until, scope)``)."""

    counts_for: CountsFor | None = None

    def request_counts(
        self,
        since: datetime,
        until: datetime,
        *,
        service: str | None = None,
        environment: str | None = None,
        endpoint: str | None = None,
    ) -> RequestCounts:
        assert self.counts_for is not None
        scope = {"service": service, "environment": environment, "endpoint": endpoint}
        return self.counts_for(since, until, scope)


def counts(total: int, failed: int) -> RequestCounts:
    return RequestCounts(total, 0, failed)
