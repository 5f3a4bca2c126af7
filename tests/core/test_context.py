"""Context survives await, tasks and threads started with a copied context."""

from __future__ import annotations

import asyncio
import contextvars
import threading

import pytest

from errorkit import bind_context, context_scope, current_context, reset_context, set_tag


def test_scope_binds_and_restores() -> None:
    """A scope binds fields and restores the previous ones after it."""
    with context_scope(request_id="a", tags={"tenant": "t1"}):
        with context_scope(session_id="s"):
            ctx = current_context()
            assert (ctx.request_id, ctx.session_id, dict(ctx.tags)) == ("a", "s", {"tenant": "t1"})
        assert current_context().session_id is None
    assert current_context().request_id is None


def test_tokens_reset() -> None:
    """bind_context returns a token that undoes it."""
    token = bind_context(user_id=42)
    assert current_context().user_id == "42"
    set_tag("k", "v")
    reset_context(token)
    assert current_context().user_id is None


def test_unknown_field_is_a_clear_error() -> None:
    """A misspelt field names the known ones."""
    with pytest.raises(TypeError, match="unknown context field"):
        bind_context(requestid="x")


async def test_survives_await_and_tasks() -> None:
    """Context crosses awaits and is inherited by tasks, which cannot leak back."""

    async def child() -> str | None:
        await asyncio.sleep(0)
        bind_context(session_id="child-only")
        return current_context().request_id

    with context_scope(request_id="r1"):
        await asyncio.sleep(0)
        assert await asyncio.create_task(child()) == "r1"
        assert current_context().session_id is None
        assert await asyncio.to_thread(lambda: current_context().request_id) == "r1"


def test_threads_with_copied_context() -> None:
    """A thread started with a copied context sees the caller's fields."""
    seen: list[str | None] = []
    with context_scope(request_id="r2"):
        ctx = contextvars.copy_context()
        thread = threading.Thread(
            target=ctx.run, args=(lambda: seen.append(current_context().request_id),)
        )
        thread.start()
        thread.join()
    assert seen == ["r2"]


def test_as_dict_has_only_set_fields() -> None:
    """The snapshot dict omits unset fields."""
    with context_scope(request_id="r", tags={"a": 1}):
        assert current_context().as_dict() == {"request_id": "r", "tags": {"a": "1"}}
