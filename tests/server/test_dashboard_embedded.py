"""``install(app, admin=True)``: the tracker mounted inside the app, on its own store and
breakers (FastAPI and Starlette)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from errorkit.capturing import api as capture
from errorkit.resilience.registry import default_registry
from errorkit.store import open_store
from errorkit.store.tokens import TokenStore


def _fastapi_app() -> Any:
    from fastapi import FastAPI

    import errorkit.fastapi

    app = FastAPI()

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("boom from the app <b>bold</b>")

    errorkit.fastapi.install(app, admin=True)
    return app


def _starlette_app() -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.routing import Route

    import errorkit.starlette

    def boom(request: Request) -> None:
        raise RuntimeError("boom from the app <b>bold</b>")

    app = Starlette(routes=[Route("/boom", boom)])
    errorkit.starlette.install(app, admin=True)
    return app


@pytest.mark.parametrize("make", [_fastapi_app, _starlette_app], ids=["fastapi", "starlette"])
def test_admin_true_mounts_the_tracker_on_the_apps_store(make: Any, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'app.db'}"
    capture.configure(store_url=url, service="shop", spool_dir=tmp_path / "spool")
    breaker = default_registry().circuit_breaker("embedded-payments", failure_threshold=1)
    try:
        app = make()
        with open_store(url) as store:
            secret = TokenStore(store).create(role="admin").secret
        with TestClient(app, raise_server_exceptions=False) as client:
            assert client.get("/boom").status_code == 500
            assert capture.flush(timeout=30)
            assert client.get("/admin/api/health/live").status_code == 200
            assert client.get("/admin/api/groups").status_code == 401
            groups = client.get(
                "/admin/api/groups", headers={"Authorization": f"Bearer {secret}"}
            ).json()
            assert [g["title"] for g in groups["items"]] == [
                "RuntimeError: boom from the app <b>bold</b>"
            ]
            first = client.get("/admin/", follow_redirects=False)
            assert first.status_code == 303
            assert first.headers["location"] == "/admin/login?next=%2Fadmin%2F"
            login = client.get("/admin/login")
            assert 'href="/admin/static/dashboard.css"' in login.text
            assert client.get("/admin/static/dashboard.css").status_code == 200
            nonce = re.search(r'name="nonce" value="([^"]+)"', login.text)
            assert nonce is not None
            done = client.post(
                "/admin/login",
                data={"nonce": nonce.group(1), "token": secret},
                follow_redirects=False,
            )
            assert done.status_code == 303
            listing = client.get("/admin/")
            assert "boom from the app &lt;b&gt;bold&lt;/b&gt;" in listing.text
            assert 'href="/admin/issues/' in listing.text
            assert "embedded-payments" in client.get("/admin/breakers").text
    finally:
        default_registry().remove(breaker.name)
        capture.shutdown(timeout=5)
