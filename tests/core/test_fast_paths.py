"""The cheaper paths under every request and every error keep the behaviour of the plain ones.

Error ids, the internal guard, context binding and classification run for each request or
error; each was rewritten for speed, and these tests pin what must not change.
"""

from __future__ import annotations

import json
import multiprocessing
import sys
import types
import uuid
from typing import Any

import pytest

import errorkit
from errorkit import _guard
from errorkit.classification import _MAX_CACHED_TYPES, _candidates, classify
from errorkit.context import (
    ErrorContext,
    bind_context,
    current_context,
    replace_context,
    reset_context,
)
from errorkit.errors import AppError, NotFoundError, error_id_of, random_hex

# --- ids -----------------------------------------------------------------------------------


def test_error_ids_are_distinct_version_4_uuids() -> None:
    """Every error id is a canonical random UUID (version 4, RFC 4122 variant), never reused."""
    ids = [NotFoundError().error_id for _ in range(500)] + [
        error_id_of(RuntimeError()) for _ in range(500)
    ]
    assert len(set(ids)) == len(ids)
    for text in ids:
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122


def test_random_hex_is_128_bits_of_hex() -> None:
    """random_hex() gives 32 lowercase hex digits, different each time."""
    values = [random_hex() for _ in range(300)]  # more than one batch
    assert len(set(values)) == len(values)
    assert all(len(v) == 32 and int(v, 16) >= 0 and v == v.lower() for v in values)


def _child_id(queue: Any) -> None:
    queue.put(random_hex())


@pytest.mark.skipif(sys.platform == "win32", reason="fork is POSIX only")
def test_forked_child_never_reuses_the_parents_ids() -> None:
    """A forked worker draws new ids instead of the batch it inherited from its parent."""
    random_hex()  # the parent now holds a batch
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_child_id, args=(queue,))
    child.start()
    from_child = queue.get(timeout=30)
    child.join(timeout=30)
    assert from_child != random_hex()


class _NoAttributes(Exception):
    __slots__ = ()

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(name)


def test_exception_refusing_attributes_still_gets_an_id() -> None:
    """error_id_of() answers for an exception type that refuses attributes (a new id each time)."""
    exc = _NoAttributes()
    first, second = error_id_of(exc), error_id_of(exc)
    assert uuid.UUID(first) and uuid.UUID(second)
    assert first != second


def test_app_error_details_are_its_own() -> None:
    """Keyword details and a details mapping end up in a dict the caller does not share."""
    given = {"a": 1}
    err = errorkit.FileTooLargeError(details=given, max_size=2)
    assert err.details == {"a": 1, "max_size": 2}
    assert given == {"a": 1}
    assert NotFoundError(details={"item": 1}).details == {"item": 1}
    assert NotFoundError().details == {}


# --- the guard -----------------------------------------------------------------------------


@pytest.fixture
def lenient() -> Any:
    _guard.set_strict(False)
    yield
    _guard.set_strict(True)


def test_guard_swallows_and_counts_outside_tests(
    lenient: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """Outside strict mode a failure inside guard() is counted and does not propagate."""
    before = _guard.internal_error_counts().get("test.fast_guard", 0)
    for _ in range(2):
        with _guard.guard("test.fast_guard"):
            raise ValueError("inside")
    assert _guard.internal_error_counts()["test.fast_guard"] == before + 2
    assert capsys.readouterr().err.count("test.fast_guard") <= 1


def test_guard_reraises_in_strict_mode() -> None:
    """In strict mode (the test suite) the same exception comes out of guard()."""
    error = ValueError("inside")
    with pytest.raises(ValueError) as caught, _guard.guard("test.fast_guard_strict"):
        raise error
    assert caught.value is error


@pytest.mark.parametrize("exc_type", [KeyboardInterrupt, SystemExit, GeneratorExit])
def test_guard_never_swallows_base_exceptions(lenient: None, exc_type: type) -> None:
    """Interrupts and exits pass through guard() untouched."""
    with pytest.raises(exc_type), _guard.guard("test.fast_guard_base"):
        raise exc_type()


# --- context -------------------------------------------------------------------------------


def test_bind_keeps_unnamed_fields_and_tags() -> None:
    """bind_context() changes only the fields it names; tags=None keeps the tags."""
    outer = bind_context(session_id="s1", tags={"tenant": "t"})
    try:
        token = bind_context(request_id="r1", tags=None)
        ctx = current_context()
        assert (ctx.session_id, ctx.request_id, dict(ctx.tags)) == ("s1", "r1", {"tenant": "t"})
        reset_context(token)
    finally:
        reset_context(outer)


def test_bind_turns_values_into_text() -> None:
    """Values are stored as text, None clears a field."""
    token = bind_context(user_id=42, session_id=None)
    try:
        assert current_context().user_id == "42"
        assert current_context().session_id is None
    finally:
        reset_context(token)


def test_replace_context_sets_the_whole_context() -> None:
    """replace_context() makes one ErrorContext current until its token is reset."""
    before = current_context()
    token = replace_context(ErrorContext(request_id="whole"))
    assert current_context().request_id == "whole"
    reset_context(token)
    assert current_context() is before


# --- classification ------------------------------------------------------------------------


def test_classification_cache_stays_bounded() -> None:
    """Classifying many distinct exception classes keeps the per-class cache bounded."""
    for i in range(_MAX_CACHED_TYPES + 50):
        classify(type(f"Dynamic{i}", (RuntimeError,), {})())
    assert len(_candidates) <= _MAX_CACHED_TYPES


def test_subclass_seen_after_its_parent_is_classified_as_its_own() -> None:
    """A class first seen after its parent still gets its own classification."""
    assert classify(OSError()).code == "INTERNAL_ERROR"

    class Full(OSError):
        pass

    assert classify(Full(28, "no space")).code == classify(OSError(28, "x")).code
    assert classify(json.JSONDecodeError("bad", "{", 0)).code == "INVALID_JSON"


def test_library_error_classified_after_its_library_is_imported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A library's exception classes made after its import are mapped (the cache is per class)."""
    fake = types.ModuleType("redis.exceptions")

    class RedisError(Exception):
        pass

    class ConnectionError(RedisError):
        pass

    fake.RedisError = RedisError  # type: ignore[attr-defined]
    fake.ConnectionError = ConnectionError  # type: ignore[attr-defined]
    fake.TimeoutError = type("TimeoutError", (RedisError,), {})  # type: ignore[attr-defined]
    fake.BusyLoadingError = type("BusyLoadingError", (RedisError,), {})  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "redis.exceptions", fake)
    assert classify(ConnectionError()).code == "CACHE_UNAVAILABLE"
    assert classify(RedisError()).code == "CACHE_ERROR"


def test_app_error_with_plain_severity_text_is_classified() -> None:
    """An error class whose severity is plain text still classifies with the enum."""

    class Texty(AppError):
        code = "TEST_TEXTY_SEVERITY"
        status = 500
        severity = "critical"  # type: ignore[assignment]

    c = classify(Texty())
    assert c.severity == "critical"
    assert type(c.severity).__name__ == "Severity"
