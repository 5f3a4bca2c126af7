"""A transaction that rolls back on error and raises a typed database error naming it.

::

    with transaction(session, "create order") as tx:
        tx.add(order)
        tx.add(payment)
    # committed; or rolled back and DatabaseError("create order" failed) raised from the cause

Works with SQLAlchemy sessions, connections and engines (sync) and their async versions
(:func:`transaction_async`). Already inside a transaction, it uses a savepoint, so only the
block's work is undone. Database errors become :class:`errorkit.DatabaseError` (or
:class:`errorkit.DatabaseUnavailableError` when classification says the database is down or
busy, so retries apply; :class:`DatabaseConflictError` for constraint violations), with the
original error as ``__cause__``. Anything else raised in the block (your own errors, a
:class:`errorkit.NotFoundError`, a bug) is rolled back and propagates unchanged.
"""

from __future__ import annotations

import logging
import sqlite3
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from errorkit.classification import classify
from errorkit.codes import Category, Severity
from errorkit.errors import DatabaseError, DatabaseUnavailableError, error_class

if TYPE_CHECKING:
    from sqlalchemy import Connection, Engine
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession
    from sqlalchemy.orm import Session

__all__ = ["DatabaseConflictError", "transaction", "transaction_async"]

logger = logging.getLogger("errorkit.transaction")

S = TypeVar("S")


class DatabaseConflictError(DatabaseError):
    """A write broke a constraint (unique, foreign key, check) and was rolled back."""

    code = "DATABASE_CONFLICT"
    status = 409
    message = "{operation} conflicts with existing data."
    category = Category.CLIENT
    severity = Severity.WARNING


def _is_database_error(exc: BaseException) -> bool:
    if isinstance(exc, sqlite3.Error):
        return True
    for module, name in (
        ("sqlalchemy.exc", "SQLAlchemyError"),
        ("psycopg", "Error"),
    ):
        found = sys.modules.get(module)
        if found is not None and isinstance(exc, getattr(found, name)):
            return True
    return False


def _typed(operation: str, exc: BaseException) -> DatabaseError:
    c = classify(exc)
    details = {"operation": operation, "cause": error_class(exc)}
    if c.status == 409:
        return DatabaseConflictError(operation=operation, details=details)
    if c.retriable:
        return DatabaseUnavailableError(
            f"{operation} failed: the database is unavailable; it was rolled back.",
            details=details,
        )
    return DatabaseError(f"{operation} failed and was rolled back.", details=details)


def _log(operation: str, exc: BaseException) -> None:
    logger.warning(
        "transaction %r rolled back: %s",
        operation,
        error_class(exc),
        extra={"operation": operation, "error_class": error_class(exc)},
    )


def _check(operation: object) -> str:
    if not isinstance(operation, str) or not operation.strip():
        msg = (
            f"transaction(..., operation={operation!r}): name the operation, e.g. "
            "transaction(session, 'create order'); the name appears in the error"
        )
        raise ValueError(msg)
    return operation


@contextmanager
def transaction(target: Session | Connection | Engine, operation: str) -> Iterator[Any]:
    """Run the block in a transaction on ``target`` (a Session, Connection or Engine).

    Yields the session or connection to use. Commits at the end of the block (a savepoint
    is released when a transaction was already open); rolls back on any error."""
    operation = _check(operation)
    from sqlalchemy import Connection, Engine
    from sqlalchemy.orm import Session

    if not isinstance(target, Session | Connection | Engine):
        msg = (
            f"transaction() needs a SQLAlchemy Session, Connection or Engine, not "
            f"{type(target).__name__}; for AsyncSession/AsyncConnection use "
            "`async with transaction_async(...)`"
        )
        raise TypeError(msg)
    try:
        if isinstance(target, Engine):
            with target.begin() as conn:
                yield conn
        else:
            scope = target.begin_nested() if target.in_transaction() else target.begin()
            with scope:
                yield target
    except Exception as exc:
        _log(operation, exc)
        if _is_database_error(exc):
            raise _typed(operation, exc) from exc
        raise


@asynccontextmanager
async def transaction_async(
    target: AsyncSession | AsyncConnection | AsyncEngine, operation: str
) -> AsyncIterator[Any]:
    """The async version of :func:`transaction` (AsyncSession, AsyncConnection, AsyncEngine)."""
    operation = _check(operation)
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

    if not isinstance(target, AsyncSession | AsyncConnection | AsyncEngine):
        msg = (
            f"transaction_async() needs a SQLAlchemy AsyncSession, AsyncConnection or "
            f"AsyncEngine, not {type(target).__name__}; for sync ones use "
            "`with transaction(...)`"
        )
        raise TypeError(msg)
    try:
        if isinstance(target, AsyncEngine):
            async with target.begin() as conn:
                yield conn
        else:
            scope = target.begin_nested() if target.in_transaction() else target.begin()
            async with scope:
                yield target
    except Exception as exc:
        _log(operation, exc)
        if _is_database_error(exc):
            raise _typed(operation, exc) from exc
        raise
