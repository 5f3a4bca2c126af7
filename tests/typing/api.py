"""The public API used the way users will; checked by `mypy --strict` in CI, never run."""

from __future__ import annotations

import errorkit
from errorkit import AppError, Classification, NotFoundError, Severity, classify


class HealthDataNotFound(NotFoundError):
    code = "HEALTH_DATA_NOT_FOUND"
    message = "No health data for {time_period}"


def raise_typed() -> None:
    raise HealthDataNotFound(time_period="7d")


def inspect(exc: BaseException) -> tuple[str, int, bool]:
    c: Classification = classify(exc)
    severity: Severity = c.severity
    return c.code, c.status, severity is Severity.CRITICAL or c.retriable


def answer(err: AppError) -> dict[str, object]:
    with errorkit.context_scope(request_id="r"):
        return err.to_dict()


def scrubbed(payload: dict[str, object]) -> object:
    return errorkit.Scrubber(extra_keys=["tenant"]).scrub(payload)
