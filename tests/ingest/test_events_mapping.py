"""A Sentry event becomes the record local capture would store: mapped from what the real
sentry_sdk sends, with capture's scrubber, caps and grouping."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import sentry_sdk
from hypothesis import given, settings
from hypothesis import strategies as st
from sentry_sdk.envelope import Envelope as SdkEnvelope
from sentry_sdk.transport import Transport

from errorkit.capturing.event import MAX_FRAMES
from errorkit.capturing.fingerprint import group_exception, group_message
from errorkit.ingest import IngestLimits, IngestRefused, parse_envelope, parse_json
from errorkit.ingest.events import client_report_items, event_to_record
from errorkit.scrubbing import Scrubber, default_scrubber
from errorkit.store.records import ErrorRecord

RECEIVED = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
DSN = "http://" + "a" * 32 + "@127.0.0.1:9/1"


class _Keep(Transport):
    """A transport that keeps the envelopes the SDK would send."""

    kept: list[SdkEnvelope] = []  # noqa: RUF012 - filled per test by the fixture

    def capture_envelope(self, envelope: SdkEnvelope) -> None:
        type(self).kept.append(envelope)


@pytest.fixture
def sdk_events() -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """A real sentry_sdk client; the returned callable gives the events it sent, parsed
    back by errorkit's envelope parser from the bytes the SDK serialised."""
    _Keep.kept = []
    client = sentry_sdk.Client(
        dsn=DSN,
        transport=_Keep,
        release="shop@1.2",
        environment="prod",
        server_name="web-1",
        default_integrations=False,
    )
    scope = sentry_sdk.get_global_scope()
    old = scope.client
    scope.set_client(client)

    def events() -> list[dict[str, Any]]:
        client.flush()
        out = []
        for envelope in _Keep.kept:
            parsed = parse_envelope(envelope.serialize(), IngestLimits())
            out += [
                parse_json(item.payload, IngestLimits(), "event")
                for item in parsed.items
                if item.type == "event"
            ]
        return out

    yield events
    scope.set_client(old)
    client.close()


def _record(event: dict[str, Any], project: str = "shop", **kwargs: Any) -> ErrorRecord:
    return event_to_record(
        event, project=project, scrubber=default_scrubber(), received_at=RECEIVED, **kwargs
    )


def _module(tmp_path: Path, name: str, source: str) -> ModuleType:
    """``source`` imported as a real module file, so frames have a file and a module name."""
    path = tmp_path / f"{name}.py"
    path.write_text(source)
    module = ModuleType(name)
    module.__file__ = str(path)
    exec(compile(source, str(path), "exec"), module.__dict__)
    return module


SOURCE = """
def load(order_id):
    try:
        return int("x" + str(order_id))
    except ValueError as exc:
        raise LookupError(f"order {order_id} not found") from exc

def handler(order_id):
    return load(order_id)
"""


def _raise(module: ModuleType, order_id: int) -> BaseException:
    try:
        module.handler(order_id)
    except LookupError as exc:
        return exc
    raise AssertionError("handler should raise")


def test_exception_event_maps_like_local_capture(
    tmp_path: Path, sdk_events: Callable[[], list[dict[str, Any]]]
) -> None:
    """A real SDK exception event: the raised exception's type and text, the chain in data
    (nearest first), frames in errorkit's shape with source, and a Python-style stack."""
    module = _module(tmp_path, "orders_app", SOURCE)
    exc = _raise(module, 42)
    with sentry_sdk.new_scope() as scope:
        scope.set_tag("region", "eu")
        scope.set_user({"id": 7, "email": "ann@example.com", "ip_address": "{{auto}}"})
        sentry_sdk.add_breadcrumb(message="clicked pay", category="ui")
        sentry_sdk.capture_exception(exc)
    [event] = sdk_events()
    record = _record(event)

    assert record.error_id == event["event_id"]
    assert record.exception_type == "LookupError"
    assert record.error_message == "order 42 not found"
    assert record.title == "LookupError: order <num> not found"
    assert (record.service, record.environment, record.release) == ("shop", "prod", "shop@1.2")
    assert record.user_id == "7"
    assert record.severity == "error"
    assert record.error_code == "INTERNAL_ERROR"
    assert record.timestamp.tzinfo is not None
    assert record.trace_id == event["contexts"]["trace"]["trace_id"]
    chain = record.data["exceptions"]
    assert [item["type"] for item in chain] == ["LookupError", "ValueError"]
    frame = chain[0]["frames"][-1]
    assert frame["function"] == "load"
    assert frame["module"] == "orders_app"
    assert frame["lineno"] == 6
    assert frame["source"] == 'raise LookupError(f"order {order_id} not found") from exc'
    assert frame["in_app"] is True
    assert frame["pre_context"]
    assert record.stack_trace is not None
    assert record.stack_trace.rstrip().endswith("LookupError: order 42 not found")
    assert "ValueError: invalid literal" in record.stack_trace
    assert record.data["tags"] == {"region": "eu"}
    assert record.data["breadcrumbs"][-1]["message"] == "clicked pay"
    assert record.data["user"] == {"email": "ann@example.com"}
    assert record.data["server_name"] == "web-1"
    assert record.data["sdk"]["name"].startswith("sentry.python")


def test_fingerprint_is_the_local_capture_one(
    tmp_path: Path, sdk_events: Callable[[], list[dict[str, Any]]]
) -> None:
    """The SDK's event of an exception groups exactly as local capture groups the same
    exception (type, chain, in-app frames, normalised message), and ids in the message do
    not split the group."""
    module = _module(tmp_path, "orders_grouping", SOURCE)
    first, second = _raise(module, 1), _raise(module, 2)
    sentry_sdk.capture_exception(first)
    sentry_sdk.capture_exception(second)
    records = [_record(event) for event in sdk_events()]
    assert records[0].fingerprint == records[1].fingerprint
    assert records[0].fingerprint == group_exception(first, "shop").fingerprint


def test_projects_never_share_a_group(sdk_events: Callable[[], list[dict[str, Any]]]) -> None:
    """The same event ingested for two projects gets two fingerprints."""
    sentry_sdk.capture_message("disk full")
    [event] = sdk_events()
    assert _record(event, "shop").fingerprint != _record(event, "billing").fingerprint


def test_message_event(sdk_events: Callable[[], list[dict[str, Any]]]) -> None:
    """capture_message: the message, its level as severity, grouped like a local message."""
    sentry_sdk.capture_message("cache miss for user 12", level="warning")
    [event] = sdk_events()
    record = _record(event)
    assert (record.error_message, record.severity) == ("cache miss for user 12", "warning")
    assert record.error_code == "LOG_MESSAGE"
    assert record.stack_trace is None
    assert record.fingerprint == group_message("cache miss for user 12", "shop").fingerprint


def test_logentry_groups_on_its_template() -> None:
    """A logentry shows its formatted text and groups on its template."""
    event = {"logentry": {"message": "user %s failed", "formatted": "user 5 failed"}}
    a = _record(event)
    b = _record({"logentry": {"message": "user %s failed", "formatted": "user 6 failed"}})
    assert a.error_message == "user 5 failed"
    assert a.fingerprint == b.fingerprint


@pytest.mark.parametrize(
    ("level", "severity"),
    [
        ("fatal", "critical"),
        ("error", "error"),
        ("warning", "warning"),
        ("info", "info"),
        ("debug", "debug"),
        ("nonsense", "error"),
    ],
)
def test_level_becomes_severity(level: str, severity: str) -> None:
    """Sentry's levels map onto errorkit's severities (fatal is critical)."""
    assert _record({"message": "m", "level": level}).severity == severity


def test_sdk_fingerprint_is_honoured() -> None:
    """The SDK's own fingerprint decides the group; "{{ default }}" stands for the default."""
    base = {"message": "boom"}
    custom = _record({**base, "fingerprint": ["payments", "stripe"]})
    again = _record({"message": "other text", "fingerprint": ["payments", "stripe"]})
    assert custom.fingerprint == again.fingerprint
    assert custom.fingerprint != _record(base).fingerprint
    with_default = _record({**base, "fingerprint": ["{{ default }}", "eu"]})
    assert with_default.fingerprint not in (custom.fingerprint, _record(base).fingerprint)
    other_default = _record({"message": "else", "fingerprint": ["{{default}}", "eu"]})
    assert with_default.fingerprint != other_default.fingerprint


def test_request_is_mapped_and_scrubbed() -> None:
    """request: method, path as endpoint, headers scrubbed, body capped and scrubbed."""
    event = {
        "message": "bad request",
        "request": {
            "method": "post",
            "url": "https://shop.example.com/api/orders?token=abc",
            "headers": {
                "Authorization": "Bearer secret-token-value",
                "User-Agent": "curl/8",
                "X-Request-ID": "req-1",
            },
            "data": {"password": "hunter2", "item": "x" * 50_000},
        },
    }
    record = _record(event, max_payload_bytes=1000)
    assert (record.method, record.endpoint) == ("POST", "/api/orders")
    assert (record.user_agent, record.request_id) == ("curl/8", "req-1")
    assert record.data["headers"]["Authorization"] == "[Filtered]"
    assert record.request_payload is not None
    assert "hunter2" not in record.request_payload
    assert len(record.request_payload.encode()) < 1100


def test_secrets_in_messages_extra_and_frames_are_scrubbed() -> None:
    """The same scrubber as local capture runs over message, extra, tags and source lines."""
    scrubber = Scrubber(extra_keys=("email",))
    event = {
        "exception": {
            "values": [
                {
                    "type": "RuntimeError",
                    "value": "failed with api_key=sk_live_abcdefghijklmnop1234",
                    "stacktrace": {
                        "frames": [{"filename": "a.py", "context_line": "password = 'p4ss'"}]
                    },
                }
            ]
        },
        "extra": {"password": "p4ss", "ok": 1},
        "user": {"id": "1", "email": "ann@example.com"},
    }
    record = event_to_record(event, project="p", scrubber=scrubber, received_at=RECEIVED)
    text = json.dumps(record.data) + record.error_message + (record.stack_trace or "")
    assert "sk_live_abcdefghijklmnop1234" not in text
    assert "p4ss" not in text
    assert "ann@example.com" not in text
    assert record.data["extra"]["ok"] == 1


def test_frames_are_capped_like_local_capture() -> None:
    """More than MAX_FRAMES frames keep the outermost and innermost, saying how many went."""
    frames = [{"filename": "app.py", "function": f"f{i}", "lineno": i} for i in range(500)]
    event = {
        "exception": {"values": [{"type": "E", "value": "v", "stacktrace": {"frames": frames}}]}
    }
    item = _record(event).data["exceptions"][0]
    assert len(item["frames"]) == MAX_FRAMES
    assert item["frames_omitted"] == 400
    assert item["frames"][-1]["function"] == "f499"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1767322800.5, datetime(2026, 1, 2, 3, 0, 0, 500000, tzinfo=UTC)),
        ("2026-01-02T03:00:00Z", datetime(2026, 1, 2, 3, tzinfo=UTC)),
        ("2026-01-02T04:00:00+01:00", datetime(2026, 1, 2, 3, tzinfo=UTC)),
        (None, RECEIVED),
        ("yesterday", RECEIVED),
        (math.inf, RECEIVED),
    ],
)
def test_timestamps(value: Any, expected: datetime) -> None:
    """A float or ISO timestamp is the record's time; a missing or bad one is received_at."""
    assert _record({"message": "m", "timestamp": value}).timestamp == expected


def test_event_ids() -> None:
    """event_id is kept as 32 lowercase hex digits; one is made when missing."""
    given_id = "A1B2C3D4-E5F6-4711-8899-AABBCCDDEEFF"
    assert _record({"event_id": given_id}).error_id == "a1b2c3d4e5f647118899aabbccddeeff"
    made = _record({}).error_id
    assert len(made) == 32
    assert int(made, 16) >= 0


@pytest.mark.parametrize(
    ("event", "words"),
    [
        ({"event_id": "nope"}, "event_id"),
        ({"event_id": 5}, "event_id"),
        ({"exception": {"values": "x"}}, "exception"),
        ({"exception": {"values": [1]}}, "exception.values[0]"),
        ({"exception": {"values": [{"type": "E", "stacktrace": {"frames": {}}}]}}, "frames"),
        ({"exception": {"values": [{"type": 3.5j}]}}, "type"),
        ({"user": "bob"}, "user"),
        ({"request": {"headers": 5}}, "request.headers"),
        ({"tags": "a"}, "tags"),
        ({"message": ["x"]}, "message"),
        ({"fingerprint": [{"a": 1}]}, "fingerprint"),
        ([], "JSON object"),
    ],
)
def test_malformed_events_are_refused(event: Any, words: str) -> None:
    """An event whose fields have the wrong shape is a 400 naming the field."""
    with pytest.raises(IngestRefused) as info:
        _record(event)
    assert info.value.status == 400
    assert words in info.value.message


def test_client_report_items() -> None:
    """A client report's discarded events become (category, reason, quantity) tuples."""
    report = {
        "timestamp": "2026-01-01T00:00:00Z",
        "discarded_events": [
            {"reason": "queue_overflow", "category": "error", "quantity": 3},
            {"reason": "sample_rate", "category": "transaction", "quantity": 0},
        ],
    }
    assert client_report_items(report) == [("error", "queue_overflow", 3)]
    with pytest.raises(IngestRefused, match="quantity"):
        client_report_items({"discarded_events": [{"reason": "r", "category": "c"}]})


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=25,
)
_KEYS = [
    "event_id",
    "timestamp",
    "level",
    "message",
    "logentry",
    "exception",
    "tags",
    "user",
    "request",
    "contexts",
    "extra",
    "breadcrumbs",
    "fingerprint",
    "release",
    "environment",
    "logger",
    "platform",
    "sdk",
    "server_name",
]
_events = st.dictionaries(st.sampled_from(_KEYS), _json) | st.fixed_dictionaries(
    {
        "exception": st.fixed_dictionaries(
            {
                "values": st.lists(
                    st.dictionaries(
                        st.sampled_from(["type", "value", "module", "stacktrace", "mechanism"]),
                        _json
                        | st.fixed_dictionaries(
                            {
                                "frames": st.lists(
                                    st.dictionaries(
                                        st.sampled_from(
                                            [
                                                "filename",
                                                "abs_path",
                                                "function",
                                                "module",
                                                "lineno",
                                                "in_app",
                                                "context_line",
                                                "pre_context",
                                            ]
                                        ),
                                        _json,
                                    ),
                                    max_size=3,
                                )
                            }
                        ),
                    ),
                    max_size=3,
                )
            }
        )
    }
)


@settings(max_examples=150, deadline=None)
@given(_events)
def test_random_events_become_records_or_are_refused(event: dict[str, Any]) -> None:
    """event_to_record on random JSON returns a complete record or raises a 400."""
    try:
        record = _record(event)
    except IngestRefused as refused:
        status = refused.status
    else:
        status = 200
        assert len(record.error_id) == 32
        assert record.fingerprint
        assert record.title is not None
        assert record.severity in {"debug", "info", "warning", "error", "critical"}
        json.dumps(record.data, allow_nan=True)
    assert status in (200, 400)


def test_python_builtin_exceptions_get_their_local_classification() -> None:
    """A Python SDK's TimeoutError gets the code, type, status and group local capture
    gives a TimeoutError; another platform's TimeoutError stays unclassified."""
    try:
        raise TimeoutError("upstream took 30s")
    except TimeoutError as exc:
        local = exc
    event = {
        "platform": "python",
        "exception": {"values": [{"type": "TimeoutError", "value": "upstream took 30s"}]},
    }
    record = _record(event)
    assert (record.error_code, record.error_type, record.status) == (
        "TIMEOUT_ERROR",
        "timeout_error",
        504,
    )
    assert record.data["classification"]["retriable"] is True
    assert _record({**event, "platform": "javascript"}).error_code == "INTERNAL_ERROR"
    own = {"values": [{"type": "TimeoutError", "module": "shop.errors", "value": "x"}]}
    assert _record({**event, "exception": own}).error_code == "INTERNAL_ERROR"
    frames_free = group_exception(local.with_traceback(None), "shop")
    assert record.fingerprint == frames_free.fingerprint
