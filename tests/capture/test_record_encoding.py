"""The writer builds each record's data JSON and stack text from parts made once per code
path; what it stores is exactly what serialising and formatting from scratch would give."""

from __future__ import annotations

import json
import math
import re
import time
import traceback
from dataclasses import fields
from typing import Any

import pytest

from errorkit import DatabaseError
from errorkit.capturing.event import ErrorEvent, RecordBuilder
from errorkit.context import ErrorContext, current_context
from errorkit.scrubbing import default_scrubber
from errorkit.store._clean import json_dumps
from errorkit.store.records import EncodedData, ErrorRecord


def _builder() -> RecordBuilder:
    return RecordBuilder(
        service="shop",
        environment="test",
        release="1.2.3",
        max_payload_bytes=16_384,
        scrubber=default_scrubber(),
    )


def _event(
    exc: BaseException | None,
    *,
    message: str | None = None,
    context: ErrorContext | None = None,
    **fields: Any,
) -> ErrorEvent:
    return ErrorEvent(
        "0b6f3b1e-8e0f-4c41-9d7a-3a1f0c2d4e5f",
        exc,
        message,
        None,
        time.time(),
        context or current_context(),
        fields,
        "f" * 32,
        "Title",
    )


def _raise(exc: BaseException) -> None:
    raise exc


def _parse(raw: str) -> int:
    return int(raw)


def _load(raw: str) -> int:
    try:
        return _parse(raw)
    except ValueError as exc:
        raise DatabaseError("could not load the row") from exc


def _caught(func: Any, *args: Any) -> BaseException:
    try:
        func(*args)
    except BaseException as exc:
        return exc
    raise AssertionError("expected an exception")


def _recurse(depth: int) -> None:
    _recurse(depth + 1)


def _group() -> None:
    members = [_caught(_parse, "x"), _caught(_raise, KeyError("k"))]
    raise ExceptionGroup("two failed", [m for m in members if isinstance(m, Exception)])


def _handled_then_failed() -> None:
    try:
        _parse("y")
    except ValueError:
        _raise(RuntimeError("cleanup failed too"))


EVENTS = {
    "plain": lambda: _event(_caught(_parse, "abc")),
    "cause": lambda: _event(_caught(_load, "abc")),
    "context": lambda: _event(_caught(_handled_then_failed)),
    "group": lambda: _event(_caught(_group)),
    "recursion": lambda: _event(_caught(_recurse, 0)),
    "NUL and surrogate": lambda: _event(_caught(_raise, ValueError("nul \x00 and \udc80 here"))),
    "odd extra": lambda: _event(
        _caught(_parse, "abc"), extra={"nan": math.nan, "set": {1}, "obj": object()}
    ),
    "message": lambda: _event(None, message="queue 7 is backing up", logger="jobs"),
    "context and tags": lambda: _event(
        _caught(_parse, "abc"),
        context=ErrorContext(request_id="r-1", tags={"tenant": "a"}),
        tags={"region": "eu"},
        headers={"Authorization": "Bearer abcdefgh", "Accept": "*/*"},
    ),
}


@pytest.mark.parametrize("make", EVENTS.values(), ids=EVENTS.keys())
def test_data_json_is_what_serialising_the_data_gives(make: Any) -> None:
    """The JSON made from cached parts equals serialising the whole data afresh."""
    record = _builder().build(make())
    assert isinstance(record.data, EncodedData)
    assert record.data.json == json_dumps(dict(record.data))
    assert json.loads(record.data.json) == json.loads(json_dumps(dict(record.data)))


@pytest.mark.parametrize("make", EVENTS.values(), ids=EVENTS.keys())
def test_a_second_occurrence_on_the_same_path_builds_the_same_texts(make: Any) -> None:
    """Texts reused from the first occurrence of a path equal the ones first made."""
    builder = _builder()
    first, second = builder.build(make()), builder.build(make())
    assert isinstance(first.data, EncodedData)
    assert isinstance(second.data, EncodedData)
    assert second.stack_trace == first.stack_trace
    assert second.data.json == first.data.json


def test_stack_trace_has_pythons_layout() -> None:
    """The stored stack reads like Python's own traceback (less its ^^^ markers)."""
    exc = _caught(_load, "abc")
    record = _builder().build(_event(exc))
    python = "".join(traceback.format_exception(exc))
    python = "\n".join(
        line for line in python.splitlines() if not re.fullmatch(r"\s*[\^~]+\s*", line)
    )
    assert record.stack_trace is not None
    assert record.stack_trace.rstrip("\n") == python.rstrip("\n")


def test_encoded_data_is_read_only() -> None:
    """A record's data cannot be changed after the build (its JSON would no longer match)."""
    record = _builder().build(_event(_caught(_parse, "abc")))
    with pytest.raises(TypeError, match="read-only"):
        record.data["extra"] = {"late": True}
    with pytest.raises(TypeError, match="read-only"):
        record.data.update(extra={})


def test_every_field_lands_in_its_own_column() -> None:
    """Each field passed, and each the builder derives, is in the record field it names."""
    record = _builder().build(
        _event(
            _caught(_parse, "abc"),
            error_type="api_error",
            code="UPSTREAM_DOWN",
            status=503,
            severity="warning",
            endpoint="/orders",
            method="POST",
            user_agent="curl/8.5",
            request_id="req-1",
            session_id="sess-1",
            correlation_id="corr-1",
            trace_id="trace-1",
            user_id="user-1",
            request_payload='{"a": 1}',
            response_payload="oops",
        )
    )
    expected = {
        "error_id": "0b6f3b1e-8e0f-4c41-9d7a-3a1f0c2d4e5f",
        "error_type": "api_error",
        "error_code": "UPSTREAM_DOWN",
        "error_message": "invalid literal for int() with base 10: 'abc'",
        "severity": "warning",
        "fingerprint": "f" * 32,
        "title": "Title",
        "exception_type": "ValueError",
        "status": 503,
        "session_id": "sess-1",
        "request_id": "req-1",
        "correlation_id": "corr-1",
        "trace_id": "trace-1",
        "user_id": "user-1",
        "endpoint": "/orders",
        "method": "POST",
        "user_agent": "curl/8.5",
        "request_payload": '{"a":1}',
        "response_payload": "oops",
        "service": "shop",
        "environment": "test",
        "release": "1.2.3",
    }
    assert {name: getattr(record, name) for name in expected} == expected
    assert record.stack_trace is not None and record.stack_trace.startswith("Traceback")
    assert record.timestamp.tzinfo is not None
    assert set(expected) | {"timestamp", "stack_trace", "data"} == {
        f.name for f in fields(ErrorRecord)
    }


def test_frames_of_a_new_function_never_come_from_a_freed_one() -> None:
    """Frames are cached by code-object ids; a freed function's id reused by a new one
    never brings back the old frames (the cache keeps the code objects it keys on)."""
    builder = _builder()
    for n in range(200):
        namespace: dict[str, Any] = {}
        source = f"def f{n}():\n    raise ValueError({n})\n"
        exec(compile(source, "<generated>", "exec"), namespace)  # a fresh code object each time
        exc = _caught(namespace[f"f{n}"])
        frames, _ = builder.frames(exc)
        assert frames[-1]["function"] == f"f{n}"
        del namespace, exc
