"""Building the stored record: frames, chain, groups, classification, scrubbing and caps."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from errorkit import DatabaseError, ValidationError
from errorkit.capturing.event import (
    MAX_CHAIN,
    MAX_FRAMES,
    MAX_GROUP_MEMBERS,
    ErrorEvent,
    RecordBuilder,
    normalize_severity,
)
from errorkit.context import ErrorContext, context_scope, current_context
from errorkit.scrubbing import default_scrubber


def _builder(max_payload_bytes: int = 16_384) -> RecordBuilder:
    return RecordBuilder(
        service="shop",
        environment="test",
        release="1.2.3",
        max_payload_bytes=max_payload_bytes,
        scrubber=default_scrubber(),
    )


def _event(
    exc: BaseException | None = None,
    *,
    message: str | None = None,
    level: str | None = None,
    context: ErrorContext | None = None,
    **fields: Any,
) -> ErrorEvent:
    return ErrorEvent(
        "0b6f3b1e-8e0f-4c41-9d7a-3a1f0c2d4e5f",
        exc,
        message,
        level,
        time.time(),
        context or current_context(),
        fields,
        "f" * 32,
        "Title",
    )


def _raised(func: Any, *args: Any) -> BaseException:
    try:
        func(*args)
    except BaseException as exc:
        return exc
    raise AssertionError("expected an exception")


def _fail_parse(value: str) -> int:
    return int(value)


def test_frames_have_file_line_function_source_and_in_app() -> None:
    """Each frame says where it is, its source line, and whether it is the app's."""
    record = _builder().build(_event(_raised(_fail_parse, "abc")))
    frames = record.data["exceptions"][0]["frames"]
    last = frames[-1]
    assert last["function"] == "_fail_parse"
    assert last["filename"] == __file__
    assert last["source"] == "return int(value)"
    assert last["module"] == __name__
    assert last["in_app"] is True
    assert isinstance(last["lineno"], int)


def test_record_columns_from_the_exception() -> None:
    """Message, type, classification, service fields and the Python-style stack trace."""
    record = _builder().build(_event(_raised(_fail_parse, "abc")))
    assert record.error_message == "invalid literal for int() with base 10: 'abc'"
    assert record.exception_type == "ValueError"
    assert record.error_type == "unknown_error"
    assert record.error_code == "INTERNAL_ERROR"
    assert record.status == 500
    assert record.severity == "error"
    assert (record.service, record.environment, record.release) == ("shop", "test", "1.2.3")
    assert record.stack_trace is not None
    assert record.stack_trace.startswith("Traceback (most recent call last):")
    assert "in _fail_parse\n    return int(value)" in record.stack_trace
    assert record.stack_trace.rstrip().endswith(
        "ValueError: invalid literal for int() with base 10: 'abc'"
    )


def test_app_error_classification() -> None:
    """An AppError's own type, code and severity are stored."""
    record = _builder().build(_event(_raised(_raise, DatabaseError("db gone"))))
    assert (record.error_type, record.error_code, record.severity) == (
        "database_error",
        "DATABASE_ERROR",
        "error",
    )
    assert record.exception_type == "errorkit.errors.DatabaseError"


def _raise(exc: BaseException) -> None:
    raise exc


def _wrap(cause: BaseException) -> None:
    try:
        raise cause
    except BaseException as inner:
        raise RuntimeError("wrapped") from inner


def test_cause_chain_is_kept_in_python_order() -> None:
    """``raise ... from`` keeps the cause; the text reads oldest first like Python's."""
    record = _builder().build(_event(_raised(_wrap, ValueError("root cause"))))
    chain = record.data["exceptions"]
    assert [e["type"] for e in chain] == ["RuntimeError", "ValueError"]
    assert chain[0]["relation"] == "cause"
    text = record.stack_trace or ""
    assert (
        text.index("ValueError: root cause")
        < text.index("direct cause")
        < text.index("RuntimeError: wrapped")
    )


def test_implicit_context_is_kept() -> None:
    """An error raised while handling another keeps the first as its context."""

    def during() -> None:
        try:
            raise ValueError("first")
        except ValueError:
            raise KeyError("second")  # noqa: B904 - the implicit context is what is tested

    record = _builder().build(_event(_raised(during)))
    assert [e["type"] for e in record.data["exceptions"]] == ["KeyError", "ValueError"]
    assert record.data["exceptions"][0]["relation"] == "context"
    assert "During handling of the above exception" in (record.stack_trace or "")


def test_chain_is_bounded() -> None:
    """A very long cause chain keeps only the nearest MAX_CHAIN exceptions."""
    exc: BaseException = ValueError("0")
    for i in range(1, MAX_CHAIN + 10):
        new = ValueError(str(i))
        new.__cause__ = exc
        exc = new
    record = _builder().build(_event(exc))
    assert len(record.data["exceptions"]) == MAX_CHAIN


def test_exception_group_members() -> None:
    """ExceptionGroup members are kept (bounded), with their own frames."""
    members = [ValueError(f"m{i}") for i in range(MAX_GROUP_MEMBERS + 3)]
    record = _builder().build(_event(_raised(_raise, ExceptionGroup("batch failed", members))))
    top = record.data["exceptions"][0]
    assert len(top["members"]) == MAX_GROUP_MEMBERS
    assert top["members_omitted"] == 3
    assert top["members"][0]["message"] == "m0"
    assert "| ValueError: m0" in (record.stack_trace or "")


def test_deep_recursion_keeps_a_bounded_number_of_frames() -> None:
    """A RecursionError's thousand frames are cut to MAX_FRAMES, saying how many went."""

    def down(n: int) -> None:
        down(n + 1)

    record = _builder().build(_event(_raised(down, 0)))
    top = record.data["exceptions"][0]
    assert len(top["frames"]) == MAX_FRAMES
    assert top["frames_omitted"] > 0
    assert "frames omitted" in (record.stack_trace or "")


def test_context_from_contextvars_and_fields() -> None:
    """Context fields come from contextvars; passed fields win."""
    with context_scope(request_id="req-1", session_id="sess-1", tags={"tenant": "a"}):
        event = _event(_raised(_fail_parse, "x"), endpoint="/orders/{id}", method="POST")
    record = _builder().build(event)
    assert (record.request_id, record.session_id) == ("req-1", "sess-1")
    assert (record.endpoint, record.method) == ("/orders/{id}", "POST")
    assert record.data["tags"] == {"tenant": "a"}


def test_message_event() -> None:
    """A captured message has no stack, the message code and the given level."""
    record = _builder().build(_event(message="queue 7 is backing up", level="warning"))
    assert record.stack_trace is None
    assert (record.error_code, record.severity, record.error_type) == (
        "LOG_MESSAGE",
        "warning",
        "unknown_error",
    )
    assert record.error_message == "queue 7 is backing up"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("WARNING", "warning"),
        ("warn", "warning"),
        ("fatal", "critical"),
        (40, "error"),
        (50, "critical"),
        (10, "debug"),
        ("loud", "error"),
        (None, "error"),
    ],
)
def test_normalize_severity(value: object, expected: str) -> None:
    """Logging level names and numbers map onto errorkit's severities."""
    assert normalize_severity(value) == expected


def test_fields_override_classification() -> None:
    """error_type, code, status and severity passed by the caller win."""
    event = _event(
        _raised(_fail_parse, "x"),
        error_type="stream_error",
        code="STREAM_ABORTED",
        status=502,
        severity="critical",
    )
    record = _builder().build(event)
    assert (record.error_type, record.error_code, record.status, record.severity) == (
        "stream_error",
        "STREAM_ABORTED",
        502,
        "critical",
    )


def test_validation_error_details_are_not_lost() -> None:
    """A ValidationError keeps its code and the message of its first field."""
    record = _builder().build(_event(ValidationError(field="email", reason="not an email")))
    assert record.error_code == "VALIDATION_ERROR"
    assert record.severity == "warning"


# --- payloads, headers, scrubbing, caps -------------------------------------------------------

SECRET = "hunter2-Zq9"


@pytest.mark.parametrize(
    "payload",
    [
        {"user": "ann", "password": SECRET},
        json.dumps({"user": "ann", "password": SECRET}).encode(),
        json.dumps({"user": "ann", "password": SECRET}),
        f"user=ann&password={SECRET}",
        f"user=ann&password={SECRET}".encode(),
    ],
)
def test_request_payload_is_scrubbed(payload: object) -> None:
    """JSON (parsed or raw bytes) and form bodies lose their secrets, keep the rest."""
    record = _builder().build(_event(_raised(_fail_parse, "x"), request_payload=payload))
    assert record.request_payload is not None
    assert SECRET not in record.request_payload
    assert "ann" in record.request_payload


def test_payload_is_capped_in_bytes() -> None:
    """A huge body is cut to max_payload_bytes and says by how much."""
    body = b"x" * 100_000
    record = _builder(max_payload_bytes=1000).build(
        _event(_raised(_fail_parse, "x"), request_payload=body)
    )
    assert record.request_payload is not None
    assert record.request_payload.startswith("x" * 1000)
    assert "truncated" in record.request_payload
    assert len(record.request_payload.encode()) < 1100


def test_headers_extra_and_message_are_scrubbed() -> None:
    """Sensitive headers, extra keys and secrets inside the message are filtered."""
    exc = _raised(_raise, RuntimeError(f"login failed: password={SECRET}"))
    record = _builder().build(
        _event(
            exc,
            headers={"Authorization": f"Bearer {SECRET}", "Accept": "json"},
            extra={"api_key": SECRET, "order": 17},
            user_agent=f"curl token={SECRET}",
        )
    )
    blob = json.dumps(record.data) + record.error_message + (record.stack_trace or "")
    blob += record.user_agent or ""
    assert SECRET not in blob
    assert record.data["headers"]["Accept"] == "json"
    assert record.data["extra"]["order"] == 17


def test_unknown_keywords_go_to_extra() -> None:
    """Keywords without a column of their own land in data['extra']."""
    record = _builder().build(_event(_raised(_fail_parse, "x"), order_id=17, job="sync"))
    assert record.data["extra"] == {"order_id": 17, "job": "sync"}


def test_unprintable_exception_still_builds() -> None:
    """An exception whose __str__ raises is stored with a stand-in message."""

    class Broken(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no")

    record = _builder().build(_event(_raised(_raise, Broken())))
    assert record.error_message == "<unprintable Broken>"


def test_a_failing_build_yields_a_minimal_record(monkeypatch: pytest.MonkeyPatch) -> None:
    """If building fails the occurrence is still stored, with its id and group."""
    from errorkit import _guard

    builder = _builder()
    monkeypatch.setattr(builder, "_build", _explode)
    monkeypatch.setattr(_guard, "_strict", False)
    event = _event(_raised(_fail_parse, "x"))
    record = builder.build(event)
    assert record.error_id == event.error_id
    assert record.fingerprint == event.fingerprint
    assert "could not build" in record.error_message


def _explode(event: ErrorEvent) -> Any:
    raise RuntimeError("boom")
