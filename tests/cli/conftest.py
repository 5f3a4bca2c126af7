"""The CLI tests that need a store use the store tests' fixtures: SQLite and PostgreSQL."""

from tests.store.conftest import (  # noqa: F401
    backend,
    make_record,
    postgres_database,
    store,
    store_url,
)
