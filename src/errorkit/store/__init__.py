"""The persistent errors store: SQLite by default, PostgreSQL for a central tracker.

from errorkit.store import open_store

store = open_store("sqlite:///errorkit.db")
store.write_batch(records)            # from the capture pipeline's writer
page = store.groups(status="unresolved", sort="count")
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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
    from errorkit.store.models import (
        ErrorGroup,
        Page,
        RequestCounts,
        SlimError,
        Stats,
        StoredError,
        WriteResult,
    )
    from errorkit.store.records import CountDelta, ErrorRecord, RequestCountRow, SlimRecord
    from errorkit.store.repository import ErrorFilters, ErrorStore, open_store

# Where each public name lives. They are imported on first use: `import errorkit` (through
# capture, which needs only the records) must not pay for SQLAlchemy and Alembic until a
# store is really opened.
_LOCATIONS = {
    "create_store_engine": "engine",
    "describe_url": "engine",
    "normalize_url": "engine",
    "InvalidQuery": "errors",
    "InvalidRecord": "errors",
    "InvalidStoreURL": "errors",
    "NotFound": "errors",
    "SchemaTooNew": "errors",
    "StoreError": "errors",
    "StoreUnavailable": "errors",
    "head_revision": "migrate",
    "upgrade": "migrate",
    "ErrorGroup": "models",
    "Page": "models",
    "RequestCounts": "models",
    "SlimError": "models",
    "Stats": "models",
    "StoredError": "models",
    "WriteResult": "models",
    "CountDelta": "records",
    "ErrorRecord": "records",
    "RequestCountRow": "records",
    "SlimRecord": "records",
    "ErrorFilters": "repository",
    "ErrorStore": "repository",
    "open_store": "repository",
}


def __getattr__(name: str) -> Any:
    module = _LOCATIONS.get(name)
    if module is None:
        msg = f"module 'errorkit.store' has no attribute {name!r}"
        raise AttributeError(msg)
    value = getattr(importlib.import_module(f"errorkit.store.{module}"), name)
    globals()[name] = value
    return value


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
    "RequestCountRow",
    "RequestCounts",
    "SchemaTooNew",
    "SlimError",
    "SlimRecord",
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
