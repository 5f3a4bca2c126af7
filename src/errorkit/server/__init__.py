"""The tracker: errorkit's JSON API over the errors store, breakers and health.

::

    from errorkit.server import create_app

    app = create_app("sqlite:///errorkit.db")     # an ASGI app; run it with uvicorn

Routes live under ``/admin/api/``; every one but ``/admin/api/health/live`` needs
``Authorization: Bearer <token>`` with a token made by ``errorkit tokens create``. See
docs/tracker.md for the routes. ``errorkit serve`` runs this app on its own.
"""

from __future__ import annotations

from errorkit._extras import require

require("fastapi", extra="server", feature="errorkit.server")

from errorkit.server.app import create_app  # noqa: E402 - after the extra check on purpose
from errorkit.server.breakers import (  # noqa: E402
    BreakerSource,
    RedisBreakers,
    RegistryBreakers,
)

__all__ = ["BreakerSource", "RedisBreakers", "RegistryBreakers", "create_app"]
