"""The persistent errors store: SQLite by default, PostgreSQL for a central tracker.

from errorkit.store import open_store

store = open_store("sqlite:///errorkit.db")
store.write_batch(records)            # from the capture pipeline's writer
page = store.groups(status="unresolved", sort="count")
"""

from errorkit.store.engine import create_store_engine, describe_url, normalize_url
from errorkit.store.errors import (
    InvalidQuery,
    InvalidRecord,
    InvalidStoreURL,
    NotFound,
    SchemaTooNew,
    StoreError,
    StoreUnavailable,
)
from errorkit.store.migrate import head_revision, upgrade
from errorkit.store.models import ErrorGroup, Page, Stats, StoredError, WriteResult
from errorkit.store.records import CountDelta, ErrorRecord
from errorkit.store.repository import ErrorFilters, ErrorStore, open_store

__all__ = [
    "CountDelta",
    "ErrorFilters",
    "ErrorGroup",
    "ErrorRecord",
    "ErrorStore",
    "InvalidQuery",
    "InvalidRecord",
    "InvalidStoreURL",
    "NotFound",
    "Page",
    "SchemaTooNew",
    "Stats",
    "StoreError",
    "StoreUnavailable",
    "StoredError",
    "WriteResult",
    "create_store_engine",
    "describe_url",
    "head_revision",
    "normalize_url",
    "open_store",
    "upgrade",
]
