"""The JSON form of what the capture pipeline writes: one spool line, one HTTP batch.

The spool (``errorkit.capturing.spool``) keeps a batch as one line of
``{"v": 1, "records": [...], "deltas": [...]}``; errorkit's HTTP transport sends the same
object, optionally with ``"slim"`` rows and ``"request_counts"`` (``{"batch_id": ...,
"rows": [...]}``), gzip'd, to a tracker (``errorkit.store.http`` is the client,
``errorkit.server.transport`` the route). Both sides import this module; neither needs the
other's internals.

:func:`decode_message` reads what a remote client sent and checks every field's type, so a
value of the wrong kind is a :class:`ValueError` naming it, not a half-written batch.
"""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, dataclass, fields, replace
from datetime import UTC, datetime
from typing import Any

from errorkit.store._clean import plain_json
from errorkit.store.records import (
    CountDelta,
    EncodedData,
    ErrorRecord,
    RequestCountRow,
    SlimRecord,
)

try:
    import orjson as _orjson
except ImportError:  # pragma: no cover - orjson comes with the server and logging extras
    _orjson = None  # type: ignore[assignment]

__all__ = [
    "FORMAT",
    "Message",
    "decode_batch",
    "decode_message",
    "encode_batch",
    "encode_message",
]

#: The version every line and message carries as ``"v"``.
FORMAT = 1

_RECORD_FIELDS = tuple(f.name for f in fields(ErrorRecord))
_RECORD_FIELDS_BUT_DATA = tuple(name for name in _RECORD_FIELDS if name != "data")
_DELTA_FIELDS = tuple(f.name for f in fields(CountDelta))
_SLIM_FIELDS = tuple(f.name for f in fields(SlimRecord))
_COUNT_FIELDS = tuple(f.name for f in fields(RequestCountRow))


@dataclass(frozen=True, slots=True)
class Message:
    """One HTTP batch: records and deltas (``write_batch``), slim rows (``write_slim``)
    and request counts (``write_request_counts`` under ``counts_batch_id``)."""

    records: list[ErrorRecord]
    deltas: list[CountDelta]
    slim: list[SlimRecord]
    request_counts: list[RequestCountRow]
    counts_batch_id: str | None = None


# --- encoding --------------------------------------------------------------------------------


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return str(value)


def _as_dict(item: Any, names: tuple[str, ...]) -> dict[str, Any]:
    out = {name: getattr(item, name) for name in names}
    for name, value in out.items():
        if isinstance(value, datetime):
            out[name] = value.isoformat()
    return out


def _text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=_json_default, separators=(",", ":"))


def _dumps(body: Mapping[str, Any]) -> bytes:
    return _text(body).encode("utf-8", "surrogatepass")


def _records_text(records: Sequence[ErrorRecord]) -> str:
    """The JSON list of ``records``. A record's ``data`` that arrives with its JSON text
    (:class:`~errorkit.store.records.EncodedData`, as capture builds it: the bulk of a
    record, its frames) is spliced in as it is instead of being serialised again."""
    parts = []
    for record in records:
        data = record.data
        if type(data) is EncodedData:
            rest = _text(_as_dict(record, _RECORD_FIELDS_BUT_DATA))
            parts.append(f'{rest[:-1]},"data":{data.json}}}')
        else:
            parts.append(_text(_as_dict(record, _RECORD_FIELDS)))
    return "[" + ",".join(parts) + "]"


def encode_batch(records: Sequence[ErrorRecord], deltas: Sequence[CountDelta]) -> bytes:
    """One spool line (with its newline) for a batch."""
    text = (
        f'{{"v":{FORMAT},"records":{_records_text(records)},'
        f'"deltas":{_text([_as_dict(d, _DELTA_FIELDS) for d in deltas])}}}'
    )
    return text.encode("utf-8", "surrogatepass") + b"\n"


def encode_message(
    records: Sequence[ErrorRecord] = (),
    deltas: Sequence[CountDelta] = (),
    *,
    slim: Sequence[SlimRecord] = (),
    request_counts: Sequence[RequestCountRow] = (),
    counts_batch_id: str | None = None,
) -> bytes:
    """The JSON of one HTTP batch (a spool line's object, plus slim rows and counts)."""
    body: dict[str, Any] = {
        "v": FORMAT,
        "deltas": [_as_dict(d, _DELTA_FIELDS) for d in deltas],
    }
    if slim:
        body["slim"] = [_as_dict(s, _SLIM_FIELDS) for s in slim]
    if request_counts:
        body["request_counts"] = {
            "batch_id": counts_batch_id,
            "rows": [_as_dict(c, _COUNT_FIELDS) for c in request_counts],
        }
    text = f'{{"records":{_records_text(records)},{_text(body)[1:]}'
    return text.encode("utf-8", "surrogatepass")


# --- decoding --------------------------------------------------------------------------------


def _when(text: Any) -> datetime:
    value = datetime.fromisoformat(str(text))
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def decode_batch(line: bytes) -> tuple[list[ErrorRecord], list[CountDelta]]:
    """The batch in one spool line; raises ValueError for a line that is not one."""
    body = json.loads(line)
    if not isinstance(body, dict) or body.get("v") != FORMAT:
        message = f"not a spool batch of format {FORMAT}"
        raise ValueError(message)
    records = []
    for item in body.get("records", ()):
        values = {k: item.get(k) for k in _RECORD_FIELDS if k in item}
        values["timestamp"] = _when(item["timestamp"])
        values["data"] = item.get("data") or {}
        records.append(ErrorRecord(**values))
    deltas = []
    for item in body.get("deltas", ()):
        values = {k: item.get(k) for k in _DELTA_FIELDS if k in item}
        values["first_seen"] = _when(item["first_seen"])
        values["last_seen"] = _when(item["last_seen"])
        deltas.append(CountDelta(**values))
    return records, deltas


def _kinds(cls: type) -> dict[str, tuple[type, ...]]:
    """Each field's accepted JSON kinds (``datetime`` fields arrive as ISO text)."""
    hints = typing.get_type_hints(cls)
    out: dict[str, tuple[type, ...]] = {}
    for name, hint in hints.items():
        members = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
        kinds: list[type] = []
        for member in members:
            origin = typing.get_origin(member) or member
            kinds.append(type(None) if member is None else origin)
        out[name] = tuple(kinds)
    return out


_KINDS: dict[type, dict[str, tuple[type, ...]]] = {
    cls: _kinds(cls) for cls in (ErrorRecord, CountDelta, SlimRecord, RequestCountRow)
}


def _strict(cls: type, item: Any, where: str) -> Any:
    """``item`` (a JSON object) as a ``cls``, every field of the kind ``cls`` declares."""
    if not isinstance(item, dict):
        message = f"{where} must be an object, got {type(item).__name__}"
        raise ValueError(message)
    kinds = _KINDS[cls]
    unknown = sorted(set(item) - set(kinds))
    if unknown:
        message = f"{where} has unknown field(s) {', '.join(unknown)}"
        raise ValueError(message)
    values: dict[str, Any] = {}
    for name, value in item.items():
        accepted = kinds[name]
        if datetime in accepted:
            if not isinstance(value, str):
                message = f"{where}.{name} must be an ISO 8601 time, got {value!r:.60}"
                raise ValueError(message)
            try:
                values[name] = _when(value)
            except ValueError:
                message = f"{where}.{name} must be an ISO 8601 time, got {value!r:.60}"
                raise ValueError(message) from None
            continue
        ok = value is None if type(None) in accepted else False
        ok = ok or (isinstance(value, accepted) and not isinstance(value, bool))
        if not ok:
            names = " or ".join("null" if k is type(None) else k.__name__ for k in accepted)
            message = f"{where}.{name} must be {names}, got {type(value).__name__}"
            raise ValueError(message)
        values[name] = value
    try:
        return cls(**values)
    except TypeError:
        missing = [
            f.name
            for f in fields(cls)
            if f.name not in values and f.default is MISSING and f.default_factory is MISSING
        ]
        message = f"{where} lacks required field(s) {', '.join(missing)}"
        raise ValueError(message) from None


def _list(body: Mapping[str, Any], name: str) -> list[Any]:
    value = body.get(name, [])
    if not isinstance(value, list):
        message = f"{name!r} must be a list, got {type(value).__name__}"
        raise ValueError(message)
    return value


def _loads_message(data: bytes) -> tuple[Any, bool]:
    """The batch's JSON: orjson when it is there (several times quicker on a 500-record
    batch), the standard library for what orjson refuses, so that what the standard
    library takes (NaN, integers past 64 bits) is still taken, and its refusals are the
    messages. Also whether orjson read it."""
    if _orjson is not None:
        try:
            return _orjson.loads(data), True
        except _orjson.JSONDecodeError:
            pass
    try:
        return json.loads(data), False
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        message = f"the batch is not UTF-8 JSON ({exc})"
        raise ValueError(message) from None
    except RecursionError:
        message = "the batch nests too deeply to be read"
        raise ValueError(message) from None


def _with_data_text(record: ErrorRecord) -> ErrorRecord:
    """``record`` with its ``data`` carrying its JSON text, made by orjson, so the store
    does not serialise it again with the standard library (the bulk of a record's cost).
    Only for what orjson parsed (text keys, finite numbers, valid UTF-8), and not when a
    string holds NUL, which the store's own serialiser replaces."""
    data = record.data
    if type(data) is not dict or not data:
        return record
    text = plain_json(data)
    if text is None or "\\u0000" in text:
        return record
    return replace(record, data=EncodedData(data, text))


def decode_message(data: bytes) -> Message:
    """The batch a client sent, every field checked; ValueError says what is wrong."""
    body, by_orjson = _loads_message(data)
    if not isinstance(body, dict) or body.get("v") != FORMAT:
        message = f'the batch must be a JSON object with "v": {FORMAT}'
        raise ValueError(message)
    unknown = sorted(set(body) - {"v", "records", "deltas", "slim", "request_counts"})
    if unknown:
        message = f"the batch has unknown part(s) {', '.join(unknown)}"
        raise ValueError(message)
    records = [
        _strict(ErrorRecord, item, f"records[{n}]") for n, item in enumerate(_list(body, "records"))
    ]
    if by_orjson:
        records = [_with_data_text(record) for record in records]
    deltas = [
        _strict(CountDelta, item, f"deltas[{n}]") for n, item in enumerate(_list(body, "deltas"))
    ]
    slim = [_strict(SlimRecord, item, f"slim[{n}]") for n, item in enumerate(_list(body, "slim"))]
    counts = body.get("request_counts")
    rows: list[RequestCountRow] = []
    batch_id = None
    if counts is not None:
        if not isinstance(counts, dict):
            message = '"request_counts" must be an object {"batch_id": ..., "rows": [...]}'
            raise ValueError(message)
        batch_id = counts.get("batch_id")
        if batch_id is not None and (not isinstance(batch_id, str) or not 0 < len(batch_id) <= 64):
            message = "request_counts.batch_id must be text of 1 to 64 characters or null"
            raise ValueError(message)
        rows = [
            _strict(RequestCountRow, item, f"request_counts.rows[{n}]")
            for n, item in enumerate(_list(counts, "rows"))
        ]
    return Message(records, deltas, slim, rows, batch_id)
