"""The ingest's wire formats: bodies, envelopes, store bodies and JSON, on real SDK output
and on a hostile corpus (bombs, deep JSON, wrong lengths, bad UTF-8, huge lines)."""

from __future__ import annotations

import base64
import gzip
import tracemalloc
import zlib
from typing import Any

import brotli
import pytest
import sentry_sdk
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sentry_sdk.envelope import Envelope as SdkEnvelope
from sentry_sdk.envelope import Item as SdkItem
from sentry_sdk.envelope import PayloadRef

from errorkit.ingest import (
    Envelope,
    IngestLimits,
    IngestRefused,
    decode_body,
    parse_envelope,
    parse_json,
    parse_store_body,
)

LIMITS = IngestLimits()
MIB = 1024 * 1024


def _refused(call: Any, *args: Any) -> IngestRefused:
    with pytest.raises(IngestRefused) as info:
        call(*args)
    return info.value


def _gzip_bomb(gib: int) -> bytes:
    """A gzip stream of ``gib`` GiB of zeros (about 10 MB per GiB), made without holding or
    compressing them: after a full flush a deflate stream keeps no history, so the bytes
    that encode one 16 MiB block of zeros encode every following one too. (Its trailer is
    left out: a decoder that stops at the limit never gets there.)"""
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = bytes(16 * MIB)
    head = packer.compress(block) + packer.flush(zlib.Z_FULL_FLUSH)
    repeat = packer.compress(block) + packer.flush(zlib.Z_FULL_FLUSH)
    return head + repeat * (gib * 64 - 1)


def _sdk_envelope() -> bytes:
    envelope = SdkEnvelope(headers={"event_id": "a" * 32, "sent_at": "2026-01-01T00:00:00Z"})
    envelope.add_event({"event_id": "a" * 32, "message": "hello", "level": "error"})
    envelope.add_item(
        SdkItem(
            payload=PayloadRef(bytes=b"line one\nline two\n"),
            type="attachment",
            headers={"filename": "log.txt"},
        )
    )
    return envelope.serialize()


# --- limits ----------------------------------------------------------------------------------


def test_limits_defaults_are_the_documented_ones() -> None:
    """The defaults are those docs/ingest.md states."""
    limits = IngestLimits()
    assert limits.max_event_bytes == MIB
    assert limits.max_body_bytes == 20 * MIB
    assert limits.max_envelope_bytes == 20 * MIB
    assert (limits.max_items, limits.max_json_depth, limits.max_ratio) == (100, 64, 100)
    assert limits.max_header_bytes == 16 * 1024


@pytest.mark.parametrize(
    "kwargs",
    [{"max_items": 0}, {"max_json_depth": -1}, {"max_ratio": True}, {"max_event_bytes": 30 * MIB}],
)
def test_limits_refuse_nonsense(kwargs: dict[str, Any]) -> None:
    """A limit below 1, a boolean, or an event larger than its envelope is a ValueError."""
    with pytest.raises(ValueError, match="IngestLimits"):
        IngestLimits(**kwargs)


# --- bodies ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("encoding", "encode"),
    [
        (None, lambda b: b),
        ("identity", lambda b: b),
        ("gzip", gzip.compress),
        ("GZIP ", gzip.compress),
        ("deflate", zlib.compress),
        ("deflate", lambda b: zlib.compressobj(wbits=-15).compress(b) + b""),
        ("br", brotli.compress),
        ("gzip, br", lambda b: brotli.compress(gzip.compress(b))),
    ],
)
def test_decode_body_each_encoding(encoding: str | None, encode: Any) -> None:
    """identity, gzip, deflate (zlib and raw), br and layered encodings give the envelope."""
    raw = _sdk_envelope()
    body = encode(raw)
    if encoding == "deflate" and body[:1] != b"x":  # raw deflate: finish the stream
        packer = zlib.compressobj(wbits=-15)
        body = packer.compress(raw) + packer.flush()
    assert decode_body(body, encoding, LIMITS) == raw


def test_concatenated_gzip_members_are_all_read() -> None:
    """A gzip body of two members decodes to both."""
    body = gzip.compress(b"one ") + gzip.compress(b"two")
    assert decode_body(body, "gzip", LIMITS) == b"one two"


def test_gzip_bomb_is_refused_without_inflating_it() -> None:
    """10 GiB of zeros gzip'd (10 MB) is a 413 naming the envelope limit."""
    refused = _refused(decode_body, _gzip_bomb(10), "gzip", LIMITS)
    assert refused.status == 413
    assert "max_envelope_bytes" in refused.message


def test_small_bombs_are_refused_by_ratio() -> None:
    """A small body inflating past 100x (beyond the 64 KiB floor) is a 413 naming the ratio."""
    for encoding, body in [
        ("gzip", gzip.compress(bytes(5 * MIB))),
        ("deflate", zlib.compress(bytes(5 * MIB))),
        ("br", brotli.compress(bytes(5 * MIB))),
    ]:
        refused = _refused(decode_body, body, encoding, LIMITS)
        assert refused.status == 413
        assert "max_ratio" in refused.message


def test_tiny_compressible_envelopes_pass_the_ratio() -> None:
    """Below the floor, a 1000x ratio is fine: small envelopes compress very well."""
    raw = b"x" * 60_000
    assert decode_body(gzip.compress(raw), "gzip", LIMITS) == raw


@pytest.mark.parametrize(
    ("body", "encoding", "status", "words"),
    [
        (gzip.compress(b"x" * 1000)[:-12], "gzip", 400, "truncated"),
        (b"not gzip at all", "gzip", 400, "corrupt"),
        (gzip.compress(b"x") + b"trailing", "gzip", 400, "garbage"),
        (b"", "gzip", 400, "truncated"),
        (zlib.compress(b"x" * 1000)[:-6], "deflate", 400, "truncated"),
        (brotli.compress(b"x" * 1000)[:-2], "br", 400, "br body"),
        (b"\xff\xff\xff\xff", "br", 400, "br body"),
        (b"{}", "zstd", 415, "zstd"),
        (b"{}", "gzip, gzip, gzip, gzip", 415, "more than"),
    ],
)
def test_bad_bodies(body: bytes, encoding: str, status: int, words: str) -> None:
    """Corrupt or truncated streams are 400, unknown encodings 415, each saying so."""
    refused = _refused(decode_body, body, encoding, LIMITS)
    assert refused.status == status
    assert words in refused.message


def test_body_over_the_received_limit() -> None:
    """A body past max_body_bytes is a 413 before any decoding."""
    limits = IngestLimits(max_body_bytes=100)
    refused = _refused(decode_body, b"x" * 101, None, limits)
    assert (refused.status, "max_body_bytes" in refused.message) == (413, True)


# --- JSON ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "words"),
    [
        (b"[" * 100_000, "levels deep"),
        (b'{"a":' * 100_000 + b"1" + b"}" * 100_000, "levels deep"),
        (b'"\xff"', "UTF-8"),
        (b"NaN", "not valid JSON"),
        (b'"\\ud800"', "not valid JSON"),
        (b"{,}", "not valid JSON"),
    ],
)
def test_parse_json_refusals(payload: bytes, words: str) -> None:
    """Deep nesting, bad UTF-8, NaN, lone surrogates and syntax errors are 400, not a crash."""
    refused = _refused(parse_json, payload, LIMITS, "event")
    assert refused.status == 400
    assert words in refused.message
    assert refused.message.startswith("event")


def test_brackets_inside_strings_do_not_count_as_depth() -> None:
    """A string full of brackets (and escaped quotes) is not nesting."""
    text = "[" * 70 + '\\"[{'
    value = parse_json(b'{"a": "' + text.encode() + b'"}', IngestLimits(max_json_depth=2), "x")
    assert value == {"a": "[" * 70 + '"[{'}


# --- envelopes -------------------------------------------------------------------------------


def test_parse_the_sdks_envelope() -> None:
    """An envelope serialised by sentry_sdk parses into its header and items, payloads whole
    (a payload holding newlines is read by its length)."""
    envelope = parse_envelope(_sdk_envelope(), LIMITS)
    assert isinstance(envelope, Envelope)
    assert envelope.headers["event_id"] == "a" * 32
    assert [item.type for item in envelope.items] == ["event", "attachment"]
    assert envelope.items[1].payload == b"line one\nline two\n"
    assert parse_json(envelope.items[0].payload, LIMITS, "event")["message"] == "hello"


def test_items_without_length_end_at_the_newline() -> None:
    """Without length, a payload is the rest of the line; blank lines and no final newline
    are fine."""
    data = b'{}\n{"type":"session"}\n{"a":1}\n\n{"type":"client_report"}\n{"b":2}'
    envelope = parse_envelope(data, LIMITS)
    assert [(i.type, i.payload) for i in envelope.items] == [
        ("session", b'{"a":1}'),
        ("client_report", b'{"b":2}'),
    ]


def test_envelope_with_header_only() -> None:
    """An envelope of only its header has no items."""
    assert parse_envelope(b'{"dsn":"x"}', LIMITS) == Envelope({"dsn": "x"}, [])


HOSTILE_ENVELOPES = [
    (b"", 400, "empty"),
    (b"[]\n", 400, "envelope header must be a JSON object"),
    (b'{"a":"\xff"}\n', 400, "UTF-8"),
    (b"[" * 10_000 + b"\n", 400, "levels deep"),
    (b"{" + b" " * 20_000 + b"}\n", 413, "max_header_bytes"),
    (b'{}\n{"type":"event"' + b" " * 20_000 + b"}\n{}", 413, "item 0 header is longer"),
    (b'{}\n{"type":"event","length":10}\n{}', 400, "length 10 but only 2"),
    (b'{}\n{"type":"event","length":1}\n{}\n', 400, "not followed by a newline"),
    (b'{}\n{"type":"event","length":-1}\n', 400, "'length'"),
    (b'{}\n{"type":"event","length":"2"}\n{}', 400, "'length'"),
    (b'{}\n{"type":"event","length":true}\n{}', 400, "'length'"),
    (b'{}\n{"length":1}\nx', 400, "'type'"),
    (b'{}\n{"type":""}\nx', 400, "'type'"),
    (b"{}\n[1]\nx", 400, "item 0 header must be a JSON object"),
    (b'{}\n{"type":"a"}\n\n{"type":"b"}\nx\n{"type\xff":1}\n', 400, "item 2 header is not valid"),
    (b"{}\n" + b'{"type":"session"}\n{}\n' * 101, 413, "max_items=100"),
    (b'{}\n{"type":"event","length":2000000}\n', 413, "item 0 (event) of 2000000 bytes"),
    (b'{}\n{"type":"event"}\n' + b"x" * (MIB + 1), 413, "max_event_bytes"),
]


@pytest.mark.parametrize(("data", "status", "words"), HOSTILE_ENVELOPES)
def test_hostile_envelopes(data: bytes, status: int, words: str) -> None:
    """Each malformed or oversize envelope gets its status and a message naming the fault."""
    refused = _refused(parse_envelope, data, LIMITS)
    assert refused.status == status
    assert words in refused.message


def test_large_attachments_may_pass_the_event_limit() -> None:
    """max_event_bytes is for events; other items are bounded by the envelope limit."""
    data = b'{}\n{"type":"attachment","length":1100000}\n' + b"a" * 1_100_000 + b"\n"
    assert len(parse_envelope(data, LIMITS).items[0].payload) == 1_100_000


# --- the legacy store endpoint ---------------------------------------------------------------


def test_store_body_json_and_old_sdks_base64_zlib() -> None:
    """A plain JSON object, base64(zlib(JSON)) and base64(JSON) all give the event."""
    event = b'{"message":"old sdk","level":"warning"}'
    for body in (event, base64.b64encode(zlib.compress(event)), base64.b64encode(event)):
        assert parse_store_body(body, LIMITS)["message"] == "old sdk"


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        (b"", 400, "empty"),
        (b"[1, 2]", 400, "JSON object"),
        (b"!!!", 400, "not valid JSON"),
        (base64.b64encode(b"garbage!"), 400, "corrupt"),
        (base64.b64encode(zlib.compress(bytes(5 * MIB))), 413, "inflates past"),
        (b" " * (MIB + 1), 413, "max_event_bytes"),
    ],
)
def test_bad_store_bodies(body: bytes, status: int, words: str) -> None:
    """Store bodies that are not one bounded JSON object are refused, saying why."""
    refused = _refused(parse_store_body, body, LIMITS)
    assert refused.status == status
    assert words in refused.message


# --- properties ------------------------------------------------------------------------------

SMALL = IngestLimits(
    max_body_bytes=4096,
    max_envelope_bytes=4096,
    max_event_bytes=1024,
    max_items=5,
    max_json_depth=8,
    max_header_bytes=256,
    ratio_floor_bytes=1024,
)

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=20,
)


@st.composite
def _mutated_envelopes(draw: st.DrawFn) -> bytes:
    envelope = SdkEnvelope(headers=draw(st.dictionaries(st.text(max_size=5), _json_values)))
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.sampled_from(["event", "attachment", "session", "client_report"]))
        payload = draw(st.binary(max_size=300))
        envelope.add_item(SdkItem(payload=PayloadRef(bytes=payload), type=kind))
    data = bytearray(envelope.serialize())
    for _ in range(draw(st.integers(0, 4))):
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        action = draw(st.sampled_from(["flip", "cut", "insert", "delete"]))
        if action == "flip":
            data[at] ^= draw(st.integers(1, 255))
        elif action == "cut":
            del data[at:]
        elif action == "insert":
            data[at:at] = draw(st.sampled_from([b"\n", b"{", b"[", b'"', b"\xff", b"9"]))
        else:
            del data[at]
    return bytes(data)


def _only_envelope_or_refusal(call: Any, *args: Any) -> None:
    status, message = 200, "parsed"
    try:
        result = call(*args)
    except IngestRefused as refused:
        status, message = refused.status, refused.message
    else:
        assert result is not None
    assert status == 200 or 400 <= status < 500
    assert message


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_mutated_envelopes())
def test_mutated_envelopes_parse_or_are_refused(data: bytes) -> None:
    """A mutated real envelope is an Envelope or a 4xx refusal, never another exception."""
    _only_envelope_or_refusal(parse_envelope, data, SMALL)
    _only_envelope_or_refusal(parse_store_body, data, SMALL)


@settings(max_examples=300, deadline=None)
@given(
    st.binary(max_size=600),
    st.sampled_from([None, "gzip", "deflate", "br", "identity", "gzip, br", "lzma"]),
    st.booleans(),
)
def test_random_bodies_decode_or_are_refused(body: bytes, encoding: str | None, real: bool) -> None:
    """Random bytes, or random bytes really compressed then cut, decode or are refused 4xx."""
    if real and encoding in ("gzip", "deflate", "br"):
        packed = {"gzip": gzip.compress, "deflate": zlib.compress, "br": brotli.compress}
        body = packed[encoding](body)[: max(1, len(body))]
    _only_envelope_or_refusal(decode_body, body, encoding, SMALL)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200) | st.text(max_size=100).map(str.encode))
def test_random_json_parses_or_is_refused(payload: bytes) -> None:
    """parse_json on random bytes is a value or a 400."""
    status = 200
    try:
        parse_json(payload, SMALL, "payload")
    except IngestRefused as refused:
        status = refused.status
    assert status in (200, 400)


def test_a_bomb_costs_at_most_the_limit_in_memory() -> None:
    """Inflating a 10 GiB bomb holds the limit's worth of output plus a step, never more."""
    limits = IngestLimits(max_envelope_bytes=4 * MIB, max_event_bytes=MIB)
    bomb = _gzip_bomb(10)
    tracemalloc.start()
    try:
        refused = _refused(decode_body, bomb, "gzip", limits)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert refused.status == 413
    assert peak < 4 * MIB + 3 * MIB


def _deflate_bomb(gib: int) -> bytes:
    """Like _gzip_bomb, as a zlib-wrapped deflate stream."""
    packer = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS)
    block = bytes(16 * MIB)
    head = packer.compress(block) + packer.flush(zlib.Z_FULL_FLUSH)
    repeat = packer.compress(block) + packer.flush(zlib.Z_FULL_FLUSH)
    return head + repeat * (gib * 64 - 1)


@pytest.mark.parametrize("encoding", ["deflate", "br"])
def test_deflate_and_brotli_bombs_stop_at_the_envelope_limit(encoding: str) -> None:
    """With the ratio out of the way, deflate and br bombs stop at max_envelope_bytes."""
    limits = IngestLimits(max_envelope_bytes=2 * MIB, max_event_bytes=MIB, max_ratio=10**9)
    body = _deflate_bomb(1) if encoding == "deflate" else brotli.compress(bytes(64 * MIB))
    refused = _refused(decode_body, body, encoding, limits)
    assert refused.status == 413
    assert "max_envelope_bytes" in refused.message


@pytest.mark.parametrize("algo", ["gzip", "br"])
def test_the_sdks_http_transport_body_decodes(algo: str) -> None:
    """The body and Content-Encoding sentry_sdk's own HTTP transport would POST (gzip, or br
    when brotli is installed) decode and parse back to the envelope it serialised."""
    client = sentry_sdk.Client(
        dsn="http://" + "b" * 32 + "@127.0.0.1:9/3",
        default_integrations=False,
        _experiments={"transport_compression_algo": algo},
    )
    try:
        transport = client.transport
        assert transport is not None
        envelope = SdkEnvelope(headers={"event_id": "c" * 32})
        envelope.add_event({"event_id": "c" * 32, "message": "over the wire"})
        prepared = transport._prepare_envelope(envelope)  # type: ignore[attr-defined]
        assert prepared is not None
        _, body, headers = prepared
        assert headers["Content-Encoding"] == algo
        data = decode_body(body.getvalue(), headers["Content-Encoding"], LIMITS)
    finally:
        client.close()
    parsed = parse_envelope(data, LIMITS)
    assert parse_json(parsed.items[0].payload, LIMITS, "event")["message"] == "over the wire"
