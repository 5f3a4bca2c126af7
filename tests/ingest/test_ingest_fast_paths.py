"""The ingest's fast paths give what the plain ones give: the bracket count of JSON depth,
the one-call inflate, the frame cache of the event mapping and its encoded data."""

from __future__ import annotations

import gzip
import json
import random
import zlib
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import sentry_sdk
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sentry_sdk.envelope import Envelope as SdkEnvelope
from sentry_sdk.transport import Transport
from tests._values import reference_dumps, typed

from errorkit.capturing.event import RecordBuilder
from errorkit.ingest import IngestLimits, IngestRefused, decode_body, parse_envelope, parse_json
from errorkit.ingest.envelope import json_depth
from errorkit.ingest.events import event_to_record
from errorkit.scrubbing import Scrubber
from errorkit.store.records import EncodedData, ErrorRecord

LIMITS = IngestLimits()


def _depth(value: Any) -> int:
    """The nesting of a parsed value, by recursion (the test's values are shallow)."""
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


# Strings made of what the count must see through: brackets, quotes, backslashes.
_TRICKY = st.text(alphabet='[]{}"\\/ab\n\u00e9', max_size=12)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | _TRICKY,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_TRICKY, inner, max_size=4),
    max_leaves=40,
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_JSON, st.booleans(), st.booleans())
def test_depth_is_the_nesting_of_the_document(value: Any, compact: bool, ascii_only: bool) -> None:
    """Counted on the text, the depth is the parsed value's nesting, whatever its strings
    hold (brackets, escaped quotes, escaped backslashes before a closing quote)."""
    separators = (",", ":") if compact else (", ", ": ")
    payload = json.dumps(value, separators=separators, ensure_ascii=ascii_only).encode()
    assert json_depth(payload) == _depth(value)


@settings(max_examples=200, deadline=None)
@given(_JSON, st.integers(min_value=1, max_value=6))
def test_the_limit_refuses_exactly_what_is_deeper(value: Any, limit: int) -> None:
    """parse_json takes a document up to max_json_depth and refuses one level more, with
    the depth in its message."""
    payload = json.dumps(value).encode()
    limits = IngestLimits(max_json_depth=limit)
    if _depth(value) <= limit:
        assert parse_json(payload, limits, "event") == value
    else:
        with pytest.raises(IngestRefused) as info:
            parse_json(payload, limits, "event")
        assert info.value.status == 400
        assert f"nests {_depth(value)} levels deep" in info.value.message


@pytest.mark.parametrize("depth", [65, 1023, 1024, 1025, 5000, 200_000])
def test_valid_deep_documents_are_refused_for_their_depth(depth: int) -> None:
    """Valid JSON nested past the limit is a 400 naming its depth, on both sides of the
    parser's own limit (1024), without a recursion error."""
    payload = b"[" * depth + b"]" * depth
    with pytest.raises(IngestRefused) as info:
        parse_json(payload, LIMITS, "event")
    assert info.value.message == (
        f"event nests {depth} levels deep, beyond max_json_depth={LIMITS.max_json_depth}"
    )


def test_the_first_wrong_thing_is_named() -> None:
    """Bad UTF-8 is named before depth, depth before a syntax error, as before."""
    cases = [
        (b'["\xff"' + b"[" * 100, "not valid UTF-8"),
        (b"[" * 100 + b"}", "levels deep"),
        (b'{"a": [1, 2}', "not valid JSON"),
    ]
    for payload, words in cases:
        with pytest.raises(IngestRefused) as info:
            parse_json(payload, LIMITS, "event")
        assert words in info.value.message


@pytest.mark.parametrize("size", [0, 1, 7_000, 60_000, 2_000_000])
def test_one_call_inflate_gives_the_whole_body(size: int) -> None:
    """Small bodies (one call) and big ones (in steps) inflate to the same bytes."""
    data = random.Random(size).randbytes(size // 2) + b"x" * (size - size // 2)
    for encoding, body in (("gzip", gzip.compress(data)), ("deflate", zlib.compress(data))):
        assert decode_body(body, encoding, LIMITS) == data


def test_one_call_inflate_keeps_every_refusal() -> None:
    """A small bomb, two gzip members, trailing garbage and a cut stream are told apart
    as on the stepped path."""
    limits = IngestLimits(max_envelope_bytes=1024 * 1024, ratio_floor_bytes=64 * 1024)
    bomb = gzip.compress(b"\0" * (8 * 1024 * 1024))
    assert len(bomb) < 64 * 1024
    with pytest.raises(IngestRefused) as info:
        decode_body(bomb, "gzip", limits)
    assert info.value.status == 413
    assert decode_body(gzip.compress(b"ab") + gzip.compress(b"cd"), "gzip", LIMITS) == b"abcd"
    for body, words in (
        (gzip.compress(b"ab") + b"junk", "garbage"),
        (gzip.compress(b"ab" * 500)[:-4], "truncated"),
        (b"\x1f\x8b" + b"\0" * 30, "corrupt"),
    ):
        with pytest.raises(IngestRefused) as info:
            decode_body(body, "gzip", LIMITS)
        assert (info.value.status, words in info.value.message) == (400, True)


# --- the frame cache of the event mapping ------------------------------------------------------

RECEIVED = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def _build(event: dict[str, Any], scrubber: Scrubber) -> ErrorRecord | str:
    """The record of ``event``, or the refusal's message."""
    try:
        return event_to_record(event, project="shop", scrubber=scrubber, received_at=RECEIVED)
    except IngestRefused as exc:
        return exc.message


def _event(frames: list[Any]) -> dict[str, Any]:
    return {
        "event_id": "b" * 32,
        "exception": {
            "values": [{"type": "KeyError", "value": "'sku'", "stacktrace": {"frames": frames}}]
        },
    }


_SCALAR = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-2, max_value=3)
    | st.sampled_from([0.0, 1.0, 2.5])
    | st.sampled_from(["", "1", "app/cart.py", "/srv/app/x.py", "step", "password=hunter2"])
)
_FRAME = st.fixed_dictionaries(
    {},
    optional=dict.fromkeys(
        ("filename", "abs_path", "module", "function", "lineno", "in_app"), _SCALAR
    )
    | {"context_line": _SCALAR}
    | {
        "pre_context": _SCALAR | st.lists(_SCALAR, max_size=3),
        "post_context": _SCALAR | st.lists(_SCALAR, max_size=3),
    },
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_FRAME, max_size=4), st.lists(_FRAME, max_size=4))
def test_a_cached_stack_gives_the_uncached_record(
    first: list[dict[str, Any]], second: list[dict[str, Any]]
) -> None:
    """Whatever stack was seen before (one whose values are equal but of another type:
    1, 1.0, True), a record is the one a fresh mapping builds, refusals included."""
    warm = Scrubber()
    _build(_event(first), warm)
    for frames in (first, second):
        assert _build(_event(frames), warm) == _build(_event(frames), Scrubber())


SOURCE = """
def load(order_id):
    try:
        return int("x" + str(order_id))
    except ValueError as exc:
        raise LookupError(f"order {order_id} not found, token=s3cr3t") from exc
"""


def test_sdk_events_map_the_same_from_the_cache(tmp_path: Path) -> None:
    """Events sentry_sdk sent for one error at one place: the second and later ones come
    from the cache and equal what an empty cache builds, frame for frame."""
    path = tmp_path / "orders_mod.py"
    path.write_text(SOURCE)
    module = ModuleType("orders_mod")
    module.__file__ = str(path)
    exec(compile(SOURCE, str(path), "exec"), module.__dict__)
    kept: list[SdkEnvelope] = []

    class Keep(Transport):
        def capture_envelope(self, envelope: SdkEnvelope) -> None:
            kept.append(envelope)

    client = sentry_sdk.Client(dsn="http://" + "a" * 32 + "@127.0.0.1:9/1", transport=Keep)
    scope = sentry_sdk.get_global_scope()
    old = scope.client
    scope.set_client(client)
    try:
        for order in range(3):
            try:
                module.load(order)
            except LookupError:
                sentry_sdk.capture_exception()
        client.flush()
    finally:
        scope.set_client(old)
        client.close()
    events = [
        parse_json(item.payload, LIMITS, "event")
        for envelope in kept
        for item in parse_envelope(envelope.serialize(), LIMITS).items
        if item.type == "event"
    ]
    assert len(events) == 3
    warm = Scrubber()
    records = [_build(event, warm) for event in events]
    assert records == [_build(event, Scrubber()) for event in events]
    first, later = records[0], records[2]
    assert isinstance(first, ErrorRecord) and isinstance(later, ErrorRecord)
    assert "s3cr3t" not in json.dumps(first.data)
    # the same stack (its frames' lines) in both, built once
    assert first.data["exceptions"][1]["frames"] is later.data["exceptions"][1]["frames"]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_FRAME, max_size=3), _JSON, _JSON)
def test_encoded_data_is_the_json_of_the_data(
    frames: list[dict[str, Any]], extra: Any, tags: Any
) -> None:
    """The data a mapped record brings its text with is that text, parsed back."""
    event = _event(frames) | {"extra": {"x": extra}, "contexts": {"c": {"v": tags}}}
    scrubber = Scrubber()
    for _ in range(2):  # built, then from the cache
        record = _build(event, scrubber)
        if isinstance(record, ErrorRecord):
            assert isinstance(record.data, EncodedData)
            assert json.loads(record.data.json) == json.loads(json.dumps(dict(record.data)))


# --- the scrubbed parts of a mapped event: what scrubbing every node stores ------------------


_TEXT = st.sampled_from(
    ["", "eu-west-1", "token=abc123", "Bearer abcdefgh123", "x\ny", "caf\u00e9", "a\x00b"]
) | st.text(max_size=6)
_LEAF = (
    st.none()
    | st.booleans()
    | st.integers(-5, 5)
    | st.sampled_from([4111111111111111, 2**70, 0.5, 1.0, 1e-05, float("nan")])
    | _TEXT
)
_VALUE = st.recursive(
    _LEAF,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.lists(inner, max_size=2).map(tuple)
        | st.dictionaries(
            _TEXT | st.sampled_from(["password", "api_key", "note"]), inner, max_size=3
        )
    ),
    max_leaves=12,
)
_PARTS = st.fixed_dictionaries(
    {},
    optional={
        "tags": st.dictionaries(_TEXT, _TEXT | st.integers(), max_size=3),
        "contexts": st.dictionaries(_TEXT, _VALUE, max_size=3),
        "extra": st.dictionaries(_TEXT, _VALUE, max_size=3),
        "breadcrumbs": st.lists(_VALUE, max_size=3),
        "user": st.dictionaries(st.sampled_from(["id", "email", "ip_address", "x"]), _TEXT),
        "request": st.fixed_dictionaries(
            {"url": st.sampled_from(["https://shop.example.com/a?b=c", "/x"])},
            optional={
                "headers": st.dictionaries(st.sampled_from(["Host", "Cookie", "X-A"]), _TEXT),
                "query_string": _TEXT | _VALUE,
                "data": _VALUE,
            },
        ),
    },
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_PARTS, st.sampled_from([64, 16_384]), st.booleans())
def test_scrubbed_parts_are_what_scrubbing_every_node_stores(
    parts: dict[str, Any], limit: int, as_json: bool
) -> None:
    """Tags, contexts, extra, breadcrumbs, user, query string and body are stored as the
    scrubber's walk over each node (capped as before) stores them, type for type, and the
    record's JSON is the json module's text of its data, whether the event is parsed JSON
    or Python values, and whether the caches have seen it."""
    event = {"event_id": "c" * 32, "message": "hello"} | parts
    if as_json:
        try:
            event = json.loads(json.dumps(event))
        except ValueError:
            return
    scrubber = Scrubber()
    for _ in range(2):  # then with every cache warm
        try:
            record = event_to_record(
                event,
                project="shop",
                scrubber=scrubber,
                received_at=RECEIVED,
                max_payload_bytes=limit,
            )
        except IngestRefused:
            return
        reference = Scrubber()
        builder = RecordBuilder(
            service="",
            environment=None,
            release=None,
            max_payload_bytes=limit,
            scrubber=reference,
        )
        data = record.data
        if "tags" in data:
            tags = {str(k)[:256]: str(v)[:256] for k, v in event["tags"].items()}
            assert typed(data["tags"]) == typed(reference.scrub(tags, single_line=True))
        for key, name in (("context", "contexts"), ("extra", "extra")):
            if key in data:
                expected = builder._bounded(reference.scrub(dict(event[name])))
                assert typed(data[key]) == typed(expected)
        if "breadcrumbs" in data:
            expected = builder._bounded(reference.scrub(event["breadcrumbs"][-100:]))
            assert typed(data["breadcrumbs"]) == typed(expected)
        if "user" in data:
            rest = {k: v for k, v in event["user"].items() if k != "id" and v != "{{auto}}"}
            assert typed(data["user"]) == typed(reference.scrub(rest, single_line=True))
        request = event.get("request", {})
        if request.get("query_string"):
            query = request["query_string"]
            query = query if isinstance(query, dict | list) else str(query)
            expected = builder._bounded(reference.scrub(query))
            assert typed(data["request"]["query_string"]) == typed(expected)
        if request.get("data") is not None:
            assert record.request_payload == builder.payload(request["data"])
        assert isinstance(data, EncodedData)
        parts_json = [f"{reference_dumps(k)}:{reference_dumps(v)}" for k, v in data.items()]
        assert data.json == "{" + ",".join(parts_json) + "}"


_ODD = _SCALAR | st.sampled_from([b"app", bytearray(b"app"), ("a",), ["a"], float("nan")])
_RAW_FRAME = st.fixed_dictionaries(
    {},
    optional=dict.fromkeys(
        ("filename", "abs_path", "module", "function", "lineno", "in_app", "context_line"), _ODD
    )
    | {
        "pre_context": _ODD | st.lists(_ODD, max_size=3) | st.lists(_ODD, max_size=2).map(tuple),
        "post_context": _ODD | st.lists(_ODD, max_size=3),
        "vars": _JSON,
    },
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_RAW_FRAME, min_size=1, max_size=4), st.lists(_RAW_FRAME, max_size=4))
def test_a_stack_found_by_its_bytes_gives_the_uncached_record(
    first: list[dict[str, Any]], second: list[dict[str, Any]]
) -> None:
    """Stacks looked up by their marshalled bytes (or by their fields, when they carry
    local variables) give the record and the JSON a fresh mapping gives, for values of
    any type in any field: bytes and bytearray, tuples and lists, 1, 1.0 and True."""
    warm = Scrubber()
    _build(_event(first), warm)
    for frames in (first, second, first):
        cached, fresh = _build(_event(frames), warm), _build(_event(frames), Scrubber())
        assert cached == fresh
        if isinstance(cached, ErrorRecord) and isinstance(fresh, ErrorRecord):
            assert cached.data.json == fresh.data.json  # type: ignore[attr-defined]
            assert cached.stack_trace == fresh.stack_trace
