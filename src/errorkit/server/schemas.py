"""The shapes of the API's answers, for its OpenAPI schema.

They are made from the store's own dataclasses, so the schema cannot drift from what the
store returns. They document the answers only: routes return the store's ``as_dict()``
without validating them again.
"""

from __future__ import annotations

import typing
from typing import Any, Literal

from pydantic import BaseModel, create_model

from errorkit.store.models import ErrorGroup, StoredError

__all__ = ["ErrorAnswer", "ErrorPage", "Group", "GroupDetail", "GroupPage", "StoredErrorOut", "ok"]


def _model(cls: type, name: str, doc: str) -> type[BaseModel]:
    hints = typing.get_type_hints(cls)
    model: type[BaseModel] = create_model(  # type: ignore[call-overload]
        name, __doc__=doc, **{field: (kind, ...) for field, kind in hints.items()}
    )
    return model


Group = _model(ErrorGroup, "Group", "One group (issue): occurrences sharing a fingerprint.")
StoredErrorOut = _model(StoredError, "StoredError", "One stored occurrence.")


class GroupPage(BaseModel):
    """One page of groups; pass ``next_cursor`` as ``cursor`` for the next."""

    items: list[Group]  # type: ignore[valid-type]
    total: int | None
    limit: int
    next_cursor: str | None


class ErrorPage(BaseModel):
    """One page of stored errors, newest first; pass ``next_cursor`` as ``cursor``."""

    items: list[StoredErrorOut]  # type: ignore[valid-type]
    total: int | None
    limit: int
    next_cursor: str | None


class GroupDetail(BaseModel):
    """A group and its newest stored occurrence."""

    group: Group  # type: ignore[valid-type]
    latest: StoredErrorOut | None  # type: ignore[valid-type]


class ErrorAnswer(BaseModel):
    """An error and its group; ``kind`` is ``slim`` when only a slim row was kept (then
    ``error`` holds ``error_id``, ``timestamp``, ``fingerprint``, ``request_id``,
    ``session_id``, ``endpoint``, ``status`` and ``sample_kept: false``)."""

    kind: Literal["error", "slim"]
    error: dict[str, Any]
    group: Group | None  # type: ignore[valid-type]


def ok(model: type[BaseModel]) -> dict[int | str, dict[str, Any]]:
    """``responses=`` documenting a 200 answer of ``model``."""
    return {200: {"model": model}}
