"""Making values safe to store, so one odd value never fails a whole batch.

Records arrive scrubbed and size-capped, but text can still hold what a database refuses:
a NUL character (PostgreSQL ``text`` and ``jsonb``), a lone surrogate (not encodable as
UTF-8), NaN in JSON (``jsonb``), or an object ``json`` cannot serialise. Such values are
replaced by visible stand-ins instead of losing the batch.
"""

from __future__ import annotations

import json
import math
from typing import Any

from errorkit.store.records import EncodedData

try:
    import orjson as _orjson
except ImportError:  # pragma: no cover - orjson comes with the logging and server extras
    _orjson = None  # type: ignore[assignment]

__all__ = ["clean_text", "json_dumps", "json_plain", "json_string", "plain_json"]

_MAX_DEPTH = 64
_REPLACEMENT = "\ufffd"


def clean_text(value: str) -> str:
    """``value`` with NUL and lone surrogates replaced; cheap for the common ASCII case."""
    if value.isascii():
        return value.replace("\x00", _REPLACEMENT) if "\x00" in value else value
    if "\x00" in value:
        value = value.replace("\x00", _REPLACEMENT)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "".join(_REPLACEMENT if "\ud800" <= c <= "\udfff" else c for c in value)
    return value


# One encoder, made once (json.dumps() with options builds one per call). Compact, non-ASCII
# kept, NaN refused, an unknown object refused (TypeError). No circular-reference markers: a
# cycle ends in RecursionError, which _safe_dumps answers.
_encode = json.JSONEncoder(
    ensure_ascii=False, allow_nan=False, check_circular=False, separators=(",", ":")
).encode


def json_string(value: str) -> str:
    """The JSON text of one string, as :func:`json_dumps` writes it (cheaper)."""
    if _orjson is not None and type(value) is str:
        # orjson escapes every character as json does with ensure_ascii=False (tests compare
        # each code point); it refuses lone surrogates, which json_dumps replaces.
        try:
            text = _orjson.dumps(value).decode()
        except TypeError:
            return _dumps(value)
        return _dumps(value) if "\\u0000" in text else text
    text = _encode(value)
    if "\\u0000" in text or not (text.isascii() or _encodable(text)):
        return _dumps(value)
    return text


# A subclass of a builtin type, a datetime or a dataclass goes to no default: refused.
_PLAIN = (
    0
    if _orjson is None
    else _orjson.OPT_PASSTHROUGH_SUBCLASS
    | _orjson.OPT_PASSTHROUGH_DATETIME
    | _orjson.OPT_PASSTHROUGH_DATACLASS
)


def plain_json(value: Any) -> str | None:
    """The compact JSON text of a value made of dicts with text keys, lists, text, whole
    numbers, booleans and None only (no float, no other object), in one call to orjson:
    for such values it writes what :mod:`json` writes with ``ensure_ascii=False`` (floats
    are where the two differ). None without orjson, or when it refuses the value (a
    subclass, an integer past 64 bits, a lone surrogate)."""
    if _orjson is None:
        return None
    try:
        return _orjson.dumps(value, option=_PLAIN).decode()
    except TypeError:
        return None


def json_plain(value: Any) -> str:
    """:func:`json_dumps` of a value :func:`plain_json` takes (cheaper)."""
    text = plain_json(value)
    if text is None or "\\u0000" in text:
        return json_dumps(value)
    return text


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def json_dumps(value: Any) -> str:
    """Serialise ``value``; unserialisable parts become strings, NaN/inf become text.

    :class:`~errorkit.store.records.EncodedData` brings its text along."""
    if type(value) is EncodedData:
        return value.json
    if type(value) is str:
        return json_string(value)
    return _dumps(value)


def _dumps(value: Any) -> str:
    try:
        text = _encode(value)
        if not text.isascii():
            text.encode("utf-8")
    except (TypeError, ValueError, RecursionError):
        return _safe_dumps(value)
    if "\\u0000" in text:
        return _safe_dumps(value)
    return text


def _safe_dumps(value: Any) -> str:
    return json.dumps(
        _sanitise(value, 0, set()), ensure_ascii=False, allow_nan=False, separators=(",", ":")
    )


def _sanitise(value: Any, depth: int, seen: set[int]) -> Any:
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, str):
        return clean_text(value)
    if depth >= _MAX_DEPTH or id(value) in seen:
        return "<cycle or too deep>"
    if isinstance(value, dict):
        seen = seen | {id(value)}
        return {clean_text(str(k)): _sanitise(v, depth + 1, seen) for k, v in value.items()}
    if isinstance(value, list | tuple):
        seen = seen | {id(value)}
        return [_sanitise(v, depth + 1, seen) for v in value]
    return clean_text(str(value))
