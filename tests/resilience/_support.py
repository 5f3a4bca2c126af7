"""Helpers shared by the recovery tests."""

from __future__ import annotations

from typing import Any


class Reports(list[tuple[BaseException, dict[str, Any]]]):
    """What the reporter received: (exception, context) pairs."""

    def __call__(self, exc: BaseException, *, error_id: str, **context: Any) -> None:
        self.append((exc, {"error_id": error_id, **context}))
