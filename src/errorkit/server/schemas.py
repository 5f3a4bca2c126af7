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

__all__ = [
    "ErrorAnswer",
    "ErrorPage",
    "Group",
    "GroupDetail",
    "GroupPage",
    "Requests",
    "StatsAnswer",
    "StoredErrorOut",
    "TopGroup",
    "ok",
]


def _model(cls: type, name: str, doc: str) -> type[BaseModel]:
    hints = typing.get_type_hints(cls)
    model: type[BaseModel] = create_model(  # type: ignore[call-overload]
        name, __doc__=doc, **{field: (kind, ...) for field, kind in hints.items()}
    )
    return model


Group = _model(ErrorGroup, "Group", "One group (issue): occurrences sharing a fingerprint.")
StoredErrorOut = _model(StoredError, "StoredError", "One stored occurrence.")
TopGroup: type[BaseModel] = create_model(
    "TopGroup",
    __base__=Group,
    __doc__="A group and its stored occurrences in the stats window (``occurrences``).",
    occurrences=(int, ...),
)


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


class Requests(BaseModel):
    """HTTP requests answered in the window: all, 4xx, 5xx, and the 5xx share."""

    total: int
    client_errors: int
    server_errors: int
    failure_rate: float


class StatsAnswer(BaseModel):
    """Stored errors in a window counted by type, severity, code, endpoint and service,
    per ``bucket``; the top groups, new and regressed groups; the requests answered and
    the error rate (5xx share), both null when the store holds no request counts."""

    total: int
    unresolved: int
    by_type: dict[str, int]
    by_severity: dict[str, int]
    by_code: dict[str, int]
    by_endpoint: dict[str, int]
    by_service: dict[str, int]
    buckets: list[tuple[str, int]]
    bucket: Literal["hour", "day"]
    since: str | None
    until: str | None
    top_groups: list[TopGroup]  # type: ignore[valid-type]
    new_groups: list[Group]  # type: ignore[valid-type]
    regressed_groups: list[Group]  # type: ignore[valid-type]
    requests: Requests | None
    error_rate: float | None


def ok(model: type[BaseModel]) -> dict[int | str, dict[str, Any]]:
    """``responses=`` documenting a 200 answer of ``model``."""
    return {200: {"model": model}}
