"""The wire form of a batch: what capture's pre-encoded data becomes on the way and back."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from errorkit.store import ErrorRecord
from errorkit.store._clean import json_dumps
from errorkit.store.records import CountDelta, EncodedData
from errorkit.store.wire import decode_batch, decode_message, encode_batch, encode_message

AT = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


def _record(data: Any, n: int = 0) -> ErrorRecord:
    return ErrorRecord(
        error_id=f"id-{n}",
        timestamp=AT,
        error_type="api_error",
        error_code="UPSTREAM_TIMEOUT",
        error_message="the upstream did not answer \u00e9",
        severity="error",
        fingerprint="fp",
        title="TimeoutError: the upstream did not answer",
        service="checkout",
        data=data,
    )


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.text(), json_values, max_size=6))
def test_pre_encoded_data_travels_as_the_same_value(data: dict[str, Any]) -> None:
    """A record whose data brings its JSON text (capture's EncodedData) is sent with that
    text spliced in; read back, it is the same record as one sent from the plain dict,
    in a batch and in a spool line."""
    text = json_dumps(data)
    encoded = _record(EncodedData(json.loads(text), text))
    plain = _record(json.loads(text))
    delta = CountDelta(
        delta_id="d-1",
        fingerprint="fp",
        title="t",
        error_type="api_error",
        severity="error",
        error_code="UPSTREAM_TIMEOUT",
        count=2,
        first_seen=AT,
        last_seen=AT,
    )
    sent = decode_message(encode_message([encoded], [delta]))
    assert sent.records == decode_message(encode_message([plain], [delta])).records
    assert sent.deltas == [delta]
    [back] = sent.records
    assert back.data == json.loads(text)
    assert decode_batch(encode_batch([encoded], [delta])) == ([plain], [delta])


def test_decoded_data_brings_its_json_text_for_the_store() -> None:
    """What the tracker reads keeps its data's JSON (the store writes it as is) unless a
    string holds NUL, which the store's own serialiser replaces."""
    data = {"frames": [{"function": "pay", "lineno": 3}], "tags": {"region": "eu"}}
    [record] = decode_message(encode_message([_record(data)])).records
    assert type(record.data) is EncodedData
    assert json.loads(record.data.json) == data
    [with_nul] = decode_message(encode_message([_record({"note": "a\x00b"})])).records
    assert type(with_nul.data) is dict
    assert json.loads(json_dumps(with_nul.data)) == {"note": "a\ufffdb"}


def test_what_only_the_standard_library_reads_is_still_read() -> None:
    """orjson refuses NaN and integers past 64 bits; the standard library takes them."""
    body = json.loads(encode_message([_record({"n": 1})]))
    body["records"][0]["data"] = {"big": 2**70}
    [record] = decode_message(json.dumps(body).encode()).records
    assert record.data == {"big": 2**70}
    with pytest.raises(ValueError, match="not UTF-8 JSON"):
        decode_message(b'{"v": 1, "records": [')
