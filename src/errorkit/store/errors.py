"""Exceptions the store raises; every message names what went wrong and the fix."""

from __future__ import annotations

__all__ = [
    "InvalidQuery",
    "InvalidRecord",
    "InvalidStoreURL",
    "NotFound",
    "SchemaTooNew",
    "StoreError",
    "StoreUnavailable",
]


class StoreError(Exception):
    """Base class of every error raised by :mod:`errorkit.store`."""


class InvalidStoreURL(StoreError, ValueError):
    """The store URL is malformed or names a database errorkit does not support."""


class InvalidRecord(StoreError, ValueError):
    """A record or delta handed to ``write_batch`` breaks the store's contract."""


class InvalidQuery(StoreError, ValueError):
    """A filter, sort key, cursor or format passed to a query is not accepted."""


class NotFound(StoreError, LookupError):
    """No error or group has the id that was asked for."""

    @classmethod
    def error(cls, error_id: str, url: str) -> NotFound:
        """No stored error has ``error_id`` in the store at ``url``."""
        return cls(f"no stored error has error_id {error_id!r} in the store at {url}")

    @classmethod
    def group(cls, key: str | int, url: str) -> NotFound:
        """No error group has the fingerprint or id ``key`` in the store at ``url``."""
        return cls(f"no error group has fingerprint or id {key!r} in the store at {url}")


class StoreUnavailable(StoreError, ConnectionError):
    """The database cannot be reached or opened.

    ``retry_after`` is how many seconds the store asked to be left alone (a tracker's
    ``Retry-After``), None when it did not say."""

    def __init__(self, message: str = "", retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class SchemaTooNew(StoreError):
    """The database was migrated by a newer errorkit than the one running."""
