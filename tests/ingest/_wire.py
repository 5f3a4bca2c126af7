"""Building what a Sentry SDK sends: events, envelopes, auth headers, compressed bodies."""

from __future__ import annotations

import gzip
import json
import uuid
import zlib
from datetime import UTC, datetime
from typing import Any

import brotli


def event_id() -> str:
    return uuid.uuid4().hex


def event(eid: str | None = None, *, message: str = "boom", **extra: Any) -> dict[str, Any]:
    """An error event as sentry-python builds one (exception with a frame)."""
    return {
        "event_id": eid or event_id(),
        "timestamp": datetime.now(UTC).isoformat(),
        "platform": "python",
        "level": "error",
        "release": "shop@1.0.0",
        "environment": "production",
        "tags": {"feature": "checkout"},
        "user": {"id": "user-1"},
        "exception": {
            "values": [
                {
                    "type": "ValueError",
                    "value": message,
                    "stacktrace": {
                        "frames": [
                            {
                                "filename": "shop/cart.py",
                                "function": "total",
                                "lineno": 12,
                                "module": "shop.cart",
                                "in_app": True,
                            }
                        ]
                    },
                }
            ]
        },
        **extra,
    }


def envelope(
    *items: tuple[dict[str, Any], bytes | dict[str, Any]], headers: dict[str, Any] | None = None
) -> bytes:
    """An envelope: a header line, then each item's header and payload (with ``length``)."""
    lines = [json.dumps(headers or {}).encode()]
    for item_headers, payload in items:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        lines.append(json.dumps({**item_headers, "length": len(body)}).encode())
        lines.append(body)
    return b"\n".join(lines) + b"\n"


def event_envelope(ev: dict[str, Any], *, dsn: str | None = None) -> bytes:
    headers: dict[str, Any] = {"event_id": ev["event_id"]}
    if dsn is not None:
        headers["dsn"] = dsn
    return envelope(({"type": "event"}, ev), headers=headers)


def sentry_auth(public_key: str) -> str:
    return f"Sentry sentry_key={public_key}, sentry_version=7, sentry_client=sentry.python/2.0"


def compress(body: bytes, encoding: str) -> bytes:
    if encoding == "gzip":
        return gzip.compress(body)
    if encoding == "deflate":
        return zlib.compress(body)
    if encoding == "br":
        return bytes(brotli.compress(body))
    return body
