"""The tracker's project routes: projects, their DSN keys and what ingest did not store,
under ``{prefix}/api/``.

A DSN is made of the address SDKs reach the tracker at: by default the one this request
came to; behind a proxy give ``base_url`` (the public address) instead.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Query, Request
from pydantic import BaseModel, Field

from errorkit.errors import ConflictError
from errorkit.server.auth import Admin, Reader
from errorkit.store import ErrorStore
from errorkit.store.projects import ProjectStore, check_base_url

__all__ = ["NewKey", "NewProject", "mount"]


class NewProject(BaseModel):
    """A project to make: letters, digits, '.', '_', '-' (it becomes the events' service)."""

    name: str = Field(examples=["shop"], max_length=200)


class NewKey(BaseModel):
    """A DSN key to make; ``base_url`` is where SDKs reach the tracker (default: the address
    of this request)."""

    label: str = Field(default="default", max_length=1000)
    rate_limit: int | None = Field(default=None, description="Events per minute; none: default")
    base_url: str | None = Field(default=None, examples=["https://errors.example.com"])


def _base(request: Request, given: str | None) -> str:
    """The start of the DSNs, checked before anything is written (400 when unusable)."""
    return check_base_url(given if given else str(request.base_url))


def mount(app: FastAPI, store: ErrorStore, *, prefix: str) -> ProjectStore:
    """Add the project routes to ``app`` under ``{prefix}/api``; the ProjectStore they use
    is kept as ``app.state.errorkit_projects`` (ingest shares it, and its key cache)."""
    from errorkit.server.app import _StoreRoute

    book = ProjectStore(store)
    app.state.errorkit_projects = book
    router = APIRouter(prefix=f"{prefix}/api", tags=["projects"], route_class=_StoreRoute)

    @router.get("/projects", summary="Projects")
    def list_projects(_: Reader) -> dict[str, Any]:
        """Every project, oldest first; its ``id`` ends its DSNs."""
        return {"items": [project.as_dict() for project in book.list_projects()]}

    @router.post("/projects", summary="Make a project", status_code=201)
    def create_project(_: Admin, body: NewProject) -> dict[str, Any]:
        """Make a project (a name already taken is a 409, a bad name a 400)."""
        name = body.name.strip()
        if not name.isdigit() and book.project(name) is not None:  # digits: refused below
            raise ConflictError(f"there is already a project named {name!r}")
        return book.create_project(name).as_dict()

    @router.get("/projects/{project}/keys", summary="A project's DSN keys")
    def list_keys(
        _: Reader,
        request: Request,
        project: str,
        base_url: Annotated[str | None, Query(description="Start of the DSNs")] = None,
    ) -> dict[str, Any]:
        """The project's keys (by project id or name), revoked ones too, with their DSNs
        and state (``active``, ``revoked``)."""
        base = _base(request, base_url)
        return {"items": [key.as_dict(base) for key in book.list_keys(project)]}

    @router.post("/projects/{project}/keys", summary="Make a DSN key", status_code=201)
    def create_key(
        _: Admin, request: Request, project: str, body: NewKey | None = None
    ) -> dict[str, Any]:
        """Make a key for the project and answer it with its ``dsn``; ``rate_limit`` is
        events per minute (none: the server's default)."""
        given = body or NewKey()
        base = _base(request, given.base_url)
        key = book.create_key(project, label=given.label, rate_limit=given.rate_limit)
        return key.as_dict(base)

    @router.post("/keys/{key}/revoke", summary="Revoke a DSN key")
    def revoke_key(_: Admin, request: Request, key: str) -> dict[str, Any]:
        """Revoke a key (its id or public key): this node's ingest refuses it at once,
        every other tracker node within a few seconds (its key cache's lifetime).
        Revoking twice keeps the first time."""
        revoked = book.revoke_key(key)
        ingest = getattr(request.app.state, "errorkit_ingest", None)
        if ingest is not None:
            ingest.keys.forget()
        return revoked.as_dict(str(request.base_url))

    @router.get("/projects/{project}/outcomes", summary="What ingest did not store")
    def outcomes(_: Reader, project: str) -> dict[str, Any]:
        """Counters of the project's items the tracker dropped (``source: dropped``) and of
        the events its SDKs reported lost (``source: client_report``), by category and
        reason."""
        found = book.project(project)
        rows = book.outcomes(project)
        return {
            "project": None if found is None else found.as_dict(),
            "outcomes": [
                {"source": source, "category": category, "reason": reason, "quantity": quantity}
                for _id, source, category, reason, quantity in rows
            ],
        }

    app.include_router(router)
    return book
