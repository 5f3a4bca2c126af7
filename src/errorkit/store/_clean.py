"""Making values safe to store, so one odd value never fails a whole batch.

Records arrive scrubbed and size-capped, but text can still hold what a database refuses:
a NUL character (PostgreSQL ``text`` and ``jsonb``), a lone surrogate (not encodable as
UTF-8), NaN in JSON (``jsonb``), or an object ``json`` cannot serialise. Such values are
replaced by visible stand-ins instead of losing the batch.
"""

from __future__ import annotations

import json
import json.encoder
import math
from collections.abc import Callable, Iterable
from json.encoder import encode_basestring
from typing import Any

from errorkit.store.records import EncodedData

# The C encoder factory json.dumps() uses (private, absent outside CPython: then json.dumps).
c_make_encoder: Callable[..., Callable[[Any, int], Iterable[str]]] | None = getattr(
    json.encoder, "c_make_encoder", None
)

__all__ = ["clean_text", "json_dumps", "json_string"]

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


def _refuse(value: Any) -> Any:
    message = f"Object of type {type(value).__name__} is not JSON serializable"
    raise TypeError(message)


# One C encoder, made once: json.dumps() builds a new one per call, which costs as much as
# encoding a small value. No circular-reference markers: a cycle ends in RecursionError,
# which _safe_dumps answers.
_ENCODER = (
    None
    if c_make_encoder is None
    else c_make_encoder(None, _refuse, encode_basestring, None, ":", ",", False, False, False)
)


def _encode(value: Any) -> str:
    if _ENCODER is None:  # pragma: no cover - CPython always has the C accelerator
        return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return "".join(_ENCODER(value, 0))


def json_string(value: str) -> str:
    """The JSON text of one string, as :func:`json_dumps` writes it (cheaper)."""
    text: str = encode_basestring(value)
    if "\\u0000" in text or not (text.isascii() or _encodable(text)):
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
