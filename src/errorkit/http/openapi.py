"""OpenAPI documentation of errorkit's error answers (used by the FastAPI integration).

FastAPI documents a ``422`` with its own ``{"detail": [...]}`` shape that errorkit never
sends. :func:`error_responses` gives the ``4XX``, ``5XX`` and ``422`` responses in the
format actually installed; :func:`document_errors` puts them on every operation of a
schema and drops FastAPI's unused validation components.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any

from errorkit.http.envelope import JSON, PROBLEM_JSON

__all__ = ["ERROR_SCHEMAS", "document_errors", "error_components", "error_responses"]

_REF = "#/components/schemas/"

_FIELD_ERROR: dict[str, Any] = {
    "title": "ErrorkitFieldError",
    "type": "object",
    "description": "One invalid field.",
    "properties": {
        "loc": {
            "type": "array",
            "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
            "description": "Where the field is: ['body', 'email'], ['query', 'limit'].",
        },
        "field": {"type": "string", "description": "The location joined with dots."},
        "message": {"type": "string"},
        "type": {"type": "string", "description": "The kind of error, e.g. 'missing'."},
    },
    "required": ["loc", "field", "message", "type"],
}

_FIELD_ERRORS: dict[str, Any] = {"type": "array", "items": {"$ref": _REF + "ErrorkitFieldError"}}

_COMMON: dict[str, Any] = {
    "code": {"type": "string", "description": "The catalog code, e.g. NOT_FOUND."},
    "timestamp": {"type": "string", "format": "date-time"},
    "request_id": {"type": ["string", "null"], "description": "Also in X-Request-ID."},
    "error_id": {"type": "string", "description": "Finds the stored occurrence."},
    "retriable": {"type": "boolean"},
    "retry_after": {"type": "integer", "description": "Seconds; also in Retry-After."},
}


def _error_object(validation: bool, correlation: bool) -> dict[str, Any]:
    details: dict[str, Any] = {"type": "object", "additionalProperties": True}
    if validation:
        details = {
            "type": "object",
            "properties": {
                "errors": {"type": "array", "items": {"$ref": _REF + "ErrorkitFieldError"}}
            },
            "required": ["errors"],
        }
    props: dict[str, Any] = {
        "code": _COMMON["code"],
        "message": {"type": "string"},
        "details": details,
        "timestamp": _COMMON["timestamp"],
        "request_id": _COMMON["request_id"],
        "error_id": _COMMON["error_id"],
        "retriable": _COMMON["retriable"],
        "retry_after": _COMMON["retry_after"],
    }
    required = ["code", "message", "details", "timestamp", "request_id", "error_id", "retriable"]
    if correlation:
        props["correlation_id"] = {"type": ["string", "null"]}
    return {"type": "object", "properties": props, "required": required}


def _default(validation: bool) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {"error": _error_object(validation, correlation=False)},
        "required": ["error"],
    }


def _wrapped(validation: bool) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "success": {"type": "boolean", "const": False},
            "data": {"type": "null"},
            "error": _error_object(validation, correlation=True),
        },
        "required": ["success", "data", "error"],
    }


def _problem(validation: bool) -> dict[str, Any]:
    props: dict[str, Any] = {
        "type": {"type": "string", "description": "A URI naming the problem type."},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": ["string", "null"], "description": "The request path."},
        **_COMMON,
        "details": {"type": "object", "additionalProperties": True},
    }
    required = ["type", "title", "status", "detail", "code", "error_id", "retriable"]
    if validation:
        props["errors"] = _FIELD_ERRORS
        required.append("errors")
    return {"type": "object", "properties": props, "required": required}


ERROR_SCHEMAS: Mapping[str, tuple[str, Any]] = {
    "default": (JSON, _default),
    "wrapped": (JSON, _wrapped),
    "problem": (PROBLEM_JSON, _problem),
}
"""Per format name: the media type and a builder of the schema (validation or not)."""


def error_components(format: str, custom: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Schema components for ``format`` (``custom`` for a renderer of your own)."""
    if custom is not None:
        return {"ErrorkitError": dict(custom), "ErrorkitValidationError": dict(custom)}
    _, build = ERROR_SCHEMAS[format]
    return {
        "ErrorkitFieldError": copy.deepcopy(_FIELD_ERROR),
        "ErrorkitError": {"title": "ErrorkitError", **build(False)},
        "ErrorkitValidationError": {"title": "ErrorkitValidationError", **build(True)},
    }


def error_responses(format: str, media_type: str | None = None) -> dict[str, Any]:
    """The ``422``, ``4XX`` and ``5XX`` response objects for ``format``."""
    media = media_type or (ERROR_SCHEMAS[format][0] if format in ERROR_SCHEMAS else JSON)

    def response(description: str, name: str) -> dict[str, Any]:
        return {
            "description": description,
            "headers": {
                "X-Request-ID": {
                    "description": "The request id (yours if valid, else a new one).",
                    "schema": {"type": "string"},
                }
            },
            "content": {media: {"schema": {"$ref": _REF + name}}},
        }

    return {
        "422": response(
            "Validation error: one entry per invalid field.", "ErrorkitValidationError"
        ),
        "4XX": response("Client error.", "ErrorkitError"),
        "5XX": response("Server error: a generic message and the error id.", "ErrorkitError"),
    }


_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
_FASTAPI_COMPONENTS = ("HTTPValidationError", "ValidationError")


def document_errors(
    schema: dict[str, Any],
    format: str = "default",
    *,
    custom_schema: Mapping[str, Any] | None = None,
    media_type: str | None = None,
) -> dict[str, Any]:
    """Document errorkit's answers on every operation of ``schema`` (in place; idempotent):
    FastAPI's 422 is replaced, ``4XX``/``5XX`` are added where the operation has none."""
    if custom_schema is None and format not in ERROR_SCHEMAS:
        msg = (
            f"no OpenAPI schema is known for format {format!r}; pass custom_schema= "
            "(a JSON Schema of your renderer's body)"
        )
        raise ValueError(msg)
    responses = error_responses(format, media_type)
    for path_item in schema.get("paths", {}).values():
        for method, operation in path_item.items():
            if method not in _METHODS or not isinstance(operation, dict):
                continue
            ops = operation.setdefault("responses", {})
            if "422" in ops:
                ops["422"] = copy.deepcopy(responses["422"])
            for key in ("4XX", "5XX"):
                ops.setdefault(key, copy.deepcopy(responses[key]))
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components.update(error_components(format, custom_schema))
    text = json.dumps({k: v for k, v in schema.items() if k != "components"})
    text += json.dumps({k: v for k, v in components.items() if k not in _FASTAPI_COMPONENTS})
    for name in _FASTAPI_COMPONENTS:
        if name in components and f'"{_REF}{name}"' not in text:
            del components[name]
    return schema
