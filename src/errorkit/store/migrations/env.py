"""Alembic environment for errorkit's store, configured from code (no alembic.ini).

:func:`errorkit.store.migrate.upgrade` passes an open connection, already inside the
transaction that holds the migration lock, in ``config.attributes["connection"]``.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from errorkit.store.migrate import VERSION_TABLE
from errorkit.store.schema import metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


_connection = context.config.attributes.get("connection")
if not isinstance(_connection, Connection):
    _message = (
        "errorkit's migrations run through errorkit.store.upgrade(url) or "
        "`errorkit db upgrade`, which pass the connection; the alembic command line "
        "is not wired up"
    )
    raise RuntimeError(_message)
_run(_connection)
