"""The wire formats a Sentry SDK sends: compressed bodies, envelopes, legacy store bodies.

Everything here is pure and bounded. A body is inflated in steps that never produce more
than the limit allows (a gzip bomb is refused after at most ``max_envelope_bytes`` of
output), JSON nesting is measured before a parser sees it (no recursion on hostile input),
and every refusal is an :class:`~errorkit.ingest.limits.IngestRefused` whose message names
what is wrong: the item, the field, the limit.

An envelope is one JSON header line, then items: each a JSON header line and a payload that
is either ``length`` bytes (followed by a newline or the end) or, without ``length``, the
rest of the line.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from itertools import accumulate
from typing import Any

from errorkit.ingest.limits import IngestLimits, IngestRefused

try:
    import orjson as _orjson
except ImportError:  # pragma: no cover - orjson comes with the logging extra
    _orjson = None  # type: ignore[assignment]

try:
    import brotli as _brotli
except ImportError:  # pragma: no cover - brotli comes with the server extra
    _brotli = None

__all__ = [
    "EVENT_ITEM_TYPES",
    "Envelope",
    "Item",
    "decode_body",
    "parse_envelope",
    "parse_json",
    "parse_json_object",
    "parse_store_body",
]

#: Item types whose payload is one event, limited to ``max_event_bytes``.
EVENT_ITEM_TYPES = frozenset({"event", "transaction"})

#: Decompressed bytes produced per step: what is held beyond the limit at most.
_STEP = 1024 * 1024
#: Compressed bytes fed to the decoder at a time.
_IN_STEP = 64 * 1024
#: Content-Encoding layers decoded in one body ("gzip, br").
_MAX_LAYERS = 3


@dataclass(frozen=True, slots=True)
class Item:
    """One envelope item: its ``type``, its whole header and its raw payload."""

    type: str
    headers: dict[str, Any]
    payload: bytes


@dataclass(frozen=True, slots=True)
class Envelope:
    """A parsed envelope: its header and its items, in order."""

    headers: dict[str, Any]
    items: list[Item]


# --- bodies ------------------------------------------------------------------------------


def decode_body(body: bytes, content_encoding: str | None, limits: IngestLimits) -> bytes:
    """``body`` decoded from its ``Content-Encoding`` (identity, gzip, deflate in its zlib or
    raw form, br; several layers are decoded last first).

    Refuses with 413 a body past ``max_body_bytes``, or one whose output passes
    ``max_envelope_bytes`` or ``max_ratio``: inflating stops there, so no more than the limit
    (plus one step) is ever held. An unknown encoding is 415, a corrupt or truncated stream
    400."""
    if len(body) > limits.max_body_bytes:
        msg = f"request body of {len(body)} bytes exceeds max_body_bytes={limits.max_body_bytes}"
        raise IngestRefused(413, msg)
    layers = [part.strip().lower() for part in (content_encoding or "").split(",") if part.strip()]
    if len(layers) > _MAX_LAYERS:
        msg = f"Content-Encoding {content_encoding!r}: more than {_MAX_LAYERS} encodings"
        raise IngestRefused(415, msg)
    for name in layers:
        if name not in _DECODERS and name != "identity":
            msg = f"Content-Encoding {name!r} is not supported (use identity, gzip, deflate or br)"
            raise IngestRefused(415, msg)
    data = body
    for name in reversed(layers):
        if name == "identity":
            continue
        limit = _output_limit(len(data), limits)
        data = _DECODERS[name](data, limit, limits)
    if len(data) > limits.max_envelope_bytes:
        msg = (
            f"envelope of {len(data)} bytes exceeds max_envelope_bytes={limits.max_envelope_bytes}"
        )
        raise IngestRefused(413, msg)
    return data


def _output_limit(compressed: int, limits: IngestLimits) -> int:
    by_ratio = max(limits.ratio_floor_bytes, compressed * limits.max_ratio)
    return min(limits.max_envelope_bytes, by_ratio)


def _too_big(name: str, limit: int, limits: IngestLimits) -> IngestRefused:
    if limit < limits.max_envelope_bytes:
        why = f"max_ratio={limits.max_ratio} (decompressed / compressed)"
    else:
        why = f"max_envelope_bytes={limits.max_envelope_bytes}"
    return IngestRefused(413, f"{name} body inflates past {limit} bytes, beyond {why}")


def _inflate(name: str, data: bytes, wbits: int, limit: int, limits: IngestLimits) -> bytes:
    """``data`` through zlib (``wbits`` picks the framing), at most ``limit`` bytes out.

    Input is fed in slices of :data:`_IN_STEP` bytes and output taken in steps of at most
    :data:`_STEP`, so what is held beyond the body is the output so far plus a step.
    Concatenated gzip members are each inflated; anything else after the end is refused."""
    if len(data) <= _IN_STEP:
        # The common small body in one call: max_length still stops the output one byte
        # past the limit, and a whole stream with nothing after it is done.
        inflater = zlib.decompressobj(wbits)
        try:
            whole = inflater.decompress(data, limit + 1)
        except zlib.error:
            whole = b""  # the stepped path below says what is wrong
        else:
            if len(whole) > limit:
                raise _too_big(name, limit, limits)
            if inflater.eof and not inflater.unused_data:
                return whole
        del whole
    out: list[bytes] = []
    size = 0
    view = memoryview(data)
    offset = 0
    pending: bytes | memoryview = b""
    inflater = zlib.decompressobj(wbits)
    try:
        while True:
            if not pending and offset < len(data):
                pending = view[offset : offset + _IN_STEP]
                offset += len(pending)
            chunk = inflater.decompress(pending, min(_STEP, limit - size + 1))
            size += len(chunk)
            if size > limit:
                raise _too_big(name, limit, limits)
            if chunk:
                out.append(chunk)
            pending = inflater.unconsumed_tail
            if inflater.eof:
                offset -= len(inflater.unused_data)  # the bytes after this stream's end
                if offset >= len(data):
                    break
                if name == "gzip" and data[offset : offset + 2] == b"\x1f\x8b":
                    inflater = zlib.decompressobj(wbits)
                    pending = b""
                    continue
                msg = (
                    f"{name} body has {len(data) - offset} bytes of garbage after the end "
                    "of its stream"
                )
                raise IngestRefused(400, msg)
            if not chunk and not pending and offset >= len(data):
                msg = f"{name} body is truncated (its stream does not end)"
                raise IngestRefused(400, msg)
    except zlib.error as exc:
        msg = f"{name} body is corrupt: {exc}"
        raise IngestRefused(400, msg) from None
    if len(out) == 1:
        return out[0]
    return b"".join(out)


def _gunzip(data: bytes, limit: int, limits: IngestLimits) -> bytes:
    return _inflate("gzip", data, 16 + zlib.MAX_WBITS, limit, limits)


def _deflate(data: bytes, limit: int, limits: IngestLimits) -> bytes:
    # "deflate" is zlib-wrapped by the standard; some clients send the raw stream.
    zlib_header = len(data) >= 2 and data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0
    wbits = zlib.MAX_WBITS if zlib_header else -zlib.MAX_WBITS
    return _inflate("deflate", data, wbits, limit, limits)


def _unbrotli(data: bytes, limit: int, limits: IngestLimits) -> bytes:
    if _brotli is None:  # pragma: no cover - brotli comes with the server extra
        msg = "Content-Encoding 'br' needs the brotli package (pip install 'errorkit[server]')"
        raise IngestRefused(415, msg)
    out: list[bytes] = []
    size = 0
    decoder = _brotli.Decompressor()
    try:
        chunk = decoder.process(data, output_buffer_limit=min(_STEP, limit - size + 1))
        while True:
            size += len(chunk)
            if size > limit:
                raise _too_big("br", limit, limits)
            out.append(chunk)
            if decoder.can_accept_more_data():
                break
            chunk = decoder.process(b"", output_buffer_limit=min(_STEP, limit - size + 1))
        if not decoder.is_finished():
            msg = "br body is truncated (its stream does not end)"
            raise IngestRefused(400, msg)
    except _brotli.error as exc:
        msg = f"br body is corrupt: {exc}"
        raise IngestRefused(400, msg) from None
    return out[0] if len(out) == 1 else b"".join(out)


_DECODERS: dict[str, Callable[[bytes, int, IngestLimits], bytes]] = {
    "gzip": _gunzip,
    "x-gzip": _gunzip,
    "deflate": _deflate,
    "br": _unbrotli,
}


# --- JSON --------------------------------------------------------------------------------

# Every byte but quotes and brackets, deleted before brackets are counted.
_NOT_SYNTAX = bytes(b for b in range(256) if b not in b'"[]{}')
# Opening brackets become 1, closing ones 255 (-1 as a signed byte).
_SIGNS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")
# Up to this size, a document's brackets are counted in it (not in its _syntax()).
_SMALL = 1024
# Arrays as objects: only the nesting counts.
_ONE_KIND = bytes.maketrans(b"[]", b"{}")


def json_depth(payload: bytes) -> int:
    """The deepest nesting of arrays and objects in ``payload``, counted without parsing
    (so without recursion), each step in C: escaped backslashes and quotes are removed, then
    all but quotes and brackets, then what lies between quotes (brackets inside strings),
    and the brackets left are summed. A 7 KB event takes some 15 us."""
    if b"[" not in payload and b"{" not in payload:
        return 0
    return _syntax_depth(_syntax(payload))


def _syntax(payload: bytes) -> bytes:
    """The quotes and brackets of ``payload``, escaped ones left out."""
    if b"\\" in payload:
        # Left to right, as a parser reads escapes: each \\ is one backslash, then each \"
        # a quote inside its string; no other escape holds a quote or a bracket.
        payload = payload.replace(b"\\\\", b"").replace(b'\\"', b"")
    return payload.translate(None, _NOT_SYNTAX)


def _syntax_depth(syntax: bytes, *, valid: bool = False, limit: int = 0) -> int:
    """:func:`json_depth` of a document whose :func:`_syntax` is ``syntax``; ``valid`` when
    the document is known to be JSON (its brackets then pair up, and a depth up to ``limit``
    is found by rounds of removing the innermost pairs)."""
    if b'"' in syntax:
        # Dropping two adjacent quotes keeps every other byte inside or outside a string as
        # it was; most strings hold no bracket, so this leaves few quotes to split on.
        syntax = syntax.replace(b'""', b"")
        if b'"' in syntax:
            syntax = b"".join(syntax.split(b'"')[::2])
    if valid:
        # Paired brackets: each round removes the innermost pairs, one level. Past the
        # limit (whose rounds could each copy all that is left), the sum says how deep.
        pairs = syntax.translate(_ONE_KIND)
        for depth in range(limit):
            pairs = pairs.replace(b"{}", b"")
            if not pairs:
                return depth + 1
    signs = syntax.translate(_SIGNS)
    return max(0, max(accumulate(memoryview(signs).cast("b")), default=0))


def _refuse_constant(name: str) -> Any:
    msg = f"{name} is not JSON"
    raise ValueError(msg)


def parse_json(payload: bytes, limits: IngestLimits, what: str) -> Any:
    """``payload`` as strict JSON (UTF-8, no NaN, no lone surrogates), nested at most
    ``max_json_depth`` deep; anything else is refused with 400 naming ``what``.

    With orjson, a document it takes is valid UTF-8 and strict JSON already, and orjson
    itself stops at 1024 levels (without recursing past them): only its depth is left to
    check. What it refuses goes through the checks in order, so the message names the first
    thing wrong, as without orjson."""
    if _orjson is not None:
        try:
            value = _orjson.loads(payload)
        except _orjson.JSONDecodeError:
            pass
        else:
            _check_depth(payload, limits, what, valid=True)
            return value
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        msg = f"{what} is not valid UTF-8 (byte {exc.start}: {exc.reason})"
        raise IngestRefused(400, msg) from None
    _check_depth(payload, limits, what)
    try:
        if _orjson is not None:
            return _orjson.loads(payload)
        value = json.loads(text, parse_constant=_refuse_constant)
        json.dumps(value, ensure_ascii=False).encode("utf-8")  # lone surrogates fail here
        return value
    except (ValueError, UnicodeEncodeError) as exc:  # orjson's JSONDecodeError is one
        msg = f"{what} is not valid JSON: {exc}"
        raise IngestRefused(400, msg) from None


def _check_depth(payload: bytes, limits: IngestLimits, what: str, *, valid: bool = False) -> None:
    limit = limits.max_json_depth
    if len(payload) <= _SMALL:
        if payload.count(b"{") + payload.count(b"[") <= limit:
            return  # no deeper than its opening brackets: a header line, a small item
        syntax = _syntax(payload)
    else:
        syntax = _syntax(payload)  # its brackets are all of the payload's, counted faster
        if syntax.count(b"{") + syntax.count(b"[") <= limit:
            return
    depth = _syntax_depth(syntax, valid=valid, limit=limit)
    if depth > limits.max_json_depth:
        msg = f"{what} nests {depth} levels deep, beyond max_json_depth={limits.max_json_depth}"
        raise IngestRefused(400, msg)


def parse_json_object(payload: bytes, limits: IngestLimits, what: str) -> dict[str, Any]:
    """Like :func:`parse_json`, for a document that must be a JSON object."""
    value = parse_json(payload, limits, what)
    if not isinstance(value, dict):
        msg = f"{what} must be a JSON object, not {_json_kind(value)}"
        raise IngestRefused(400, msg)
    return value


def _json_kind(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    return "a number"


# --- envelopes ---------------------------------------------------------------------------


def _line(data: bytes, start: int, limits: IngestLimits, what: str) -> tuple[bytes, int]:
    """The header line at ``start`` (without its newline) and where the next one starts."""
    end = data.find(b"\n", start, start + limits.max_header_bytes + 1)
    if end < 0:
        if len(data) - start > limits.max_header_bytes:
            msg = f"{what} is longer than max_header_bytes={limits.max_header_bytes}"
            raise IngestRefused(413, msg)
        end = len(data)
    line = data[start:end]
    if line.endswith(b"\r"):
        line = line[:-1]
    return line, end + 1


def parse_envelope(data: bytes, limits: IngestLimits) -> Envelope:
    """The envelope in ``data`` (already decoded by :func:`decode_body`).

    Refuses with 400 what is malformed (a header that is not a JSON object, an item without
    a ``type``, a ``length`` that is wrong or not followed by a newline) and with 413 what
    is too big (the envelope, a header line, an event item, more than ``max_items``)."""
    if len(data) > limits.max_envelope_bytes:
        msg = (
            f"envelope of {len(data)} bytes exceeds max_envelope_bytes={limits.max_envelope_bytes}"
        )
        raise IngestRefused(413, msg)
    line, pos = _line(data, 0, limits, "envelope header")
    if not line.strip():
        raise IngestRefused(400, "envelope is empty: its first line must be a JSON header")
    headers = parse_json_object(line, limits, "envelope header")
    items: list[Item] = []
    size = len(data)
    while pos < size:
        index = len(items)
        what = f"item {index} header"
        line, next_pos = _line(data, pos, limits, what)
        if not line.strip():
            pos = next_pos  # blank lines between items (and a trailing newline) are allowed
            continue
        if index >= limits.max_items:
            msg = f"envelope has more than max_items={limits.max_items} items"
            raise IngestRefused(413, msg)
        item_headers = parse_json_object(line, limits, what)
        item_type = item_headers.get("type")
        if not isinstance(item_type, str) or not item_type:
            msg = f"{what}: field 'type' must be a non-empty string, not {item_type!r}"[:300]
            raise IngestRefused(400, msg)
        is_event = item_type in EVENT_ITEM_TYPES
        length = item_headers.get("length")
        pos = next_pos
        if length is not None:
            if not isinstance(length, int) or isinstance(length, bool) or length < 0:
                msg = f"{what}: field 'length' must be a whole number >= 0, not {length!r}"[:300]
                raise IngestRefused(400, msg)
            if is_event and length > limits.max_event_bytes:
                raise _event_too_big(index, item_type, length, limits)
            remaining = max(0, size - pos)
            if length > remaining:
                msg = (
                    f"item {index} ({item_type}): header says length {length} but only "
                    f"{remaining} bytes follow"
                )
                raise IngestRefused(400, msg)
            payload = data[pos : pos + length]
            pos += length
            if pos < size:
                if data[pos : pos + 1] != b"\n":
                    msg = (
                        f"item {index} ({item_type}): payload of length {length} is not "
                        "followed by a newline (wrong length?)"
                    )
                    raise IngestRefused(400, msg)
                pos += 1
        else:
            end = data.find(b"\n", pos)
            if end < 0:
                end = size
            payload = data[pos:end]
            pos = end + 1
            if is_event and len(payload) > limits.max_event_bytes:
                raise _event_too_big(index, item_type, len(payload), limits)
        items.append(Item(item_type, item_headers, payload))
    return Envelope(headers, items)


def _event_too_big(index: int, item_type: str, size: int, limits: IngestLimits) -> IngestRefused:
    msg = (
        f"item {index} ({item_type}) of {size} bytes exceeds "
        f"max_event_bytes={limits.max_event_bytes}"
    )
    return IngestRefused(413, msg)


# --- the legacy store endpoint -----------------------------------------------------------

_BASE64 = re.compile(rb"[A-Za-z0-9+/=_\-\s]+")


def parse_store_body(data: bytes, limits: IngestLimits) -> dict[str, Any]:
    """The event of a legacy ``/store/`` body: a JSON object, or (old SDKs) the same JSON
    zlib-compressed and base64-encoded. At most ``max_event_bytes`` once decoded."""
    if len(data) > limits.max_event_bytes:
        raise _store_too_big(len(data), limits)
    stripped = data.strip()
    if not stripped:
        raise IngestRefused(400, "store body is empty: send one JSON event object")
    if stripped[:1] not in (b"{", b"[") and _BASE64.fullmatch(stripped):
        try:
            raw = base64.b64decode(b"".join(stripped.split()), altchars=_altchars(stripped))
        except (binascii.Error, ValueError):
            raise IngestRefused(400, "store body is neither JSON nor valid base64") from None
        if raw.lstrip()[:1] == b"{":
            stripped = raw
        else:
            limit = min(limits.max_event_bytes, _output_limit(len(raw), limits))
            stripped = _inflate("zlib-compressed store", raw, zlib.MAX_WBITS, limit, limits)
        if len(stripped) > limits.max_event_bytes:
            raise _store_too_big(len(stripped), limits)
    return parse_json_object(stripped, limits, "store body")


def _altchars(data: bytes) -> bytes:
    return b"-_" if b"-" in data or b"_" in data else b"+/"


def _store_too_big(size: int, limits: IngestLimits) -> IngestRefused:
    msg = f"store body of {size} bytes exceeds max_event_bytes={limits.max_event_bytes}"
    return IngestRefused(413, msg)
