"""Projects and their DSN keys, for the tracker's Sentry-compatible ingest.

A project is what a service sends its errors as: its integer id ends the DSN, its name
becomes the ``service`` of every event it sends. A project has one or more keys; a key's
public part (32 lowercase hex characters) is the user part of the DSN::

    from errorkit.store import open_store
    from errorkit.store.projects import ProjectStore

    projects = ProjectStore(open_store("sqlite:///errorkit.db"))
    shop = projects.create_project("shop")
    key = projects.create_key(shop.id, label="production")
    print(key.dsn("http://127.0.0.1:8080"))   # http://<public_key>@127.0.0.1:8080/<id>
    projects.authenticate(shop.id, key.public_key)   # (Project, ProjectKey) or KeyRefused

:meth:`ProjectStore.authenticate` runs on every ingest request, so it remembers what it
found for ``cache_ttl`` seconds (5 by default): a key revoked on another tracker node is
refused there within that time (at once on the node that revoked it).
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

from sqlalchemy import func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError

from errorkit._cache import BoundedCache
from errorkit.store.errors import InvalidQuery, NotFound, StoreError
from errorkit.store.repository import ErrorStore
from errorkit.store.schema import ingest_outcomes, project_keys, projects

__all__ = [
    "DEFAULT_CACHE_SIZE",
    "DEFAULT_CACHE_TTL",
    "MAX_OUTCOME_FIELD",
    "MAX_RATE_LIMIT",
    "OUTCOME_SOURCES",
    "KeyRefused",
    "Outcome",
    "Project",
    "ProjectKey",
    "ProjectStore",
    "check_base_url",
]

#: Seconds :meth:`ProjectStore.authenticate` trusts what it last read about a key.
DEFAULT_CACHE_TTL = 5.0
#: Keys (known or not) :meth:`ProjectStore.authenticate` remembers at most.
DEFAULT_CACHE_SIZE = 10_000
#: The highest per-key rate limit (events per minute) accepted.
MAX_RATE_LIMIT = 1_000_000_000
#: The longest ``category`` or ``reason`` of an :class:`Outcome`.
MAX_OUTCOME_FIELD = 64
OUTCOME_SOURCES = ("dropped", "client_report")

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_PUBLIC_KEY = re.compile(r"^[0-9a-f]{32}$")
_LABEL_MAX = 200
_MAX_QUANTITY = 2**62


@dataclass(frozen=True, slots=True)
class Project:
    """A project: ``id`` ends its DSNs, ``name`` is the service its events are stored as."""

    id: int
    name: str
    created_at: datetime

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready fields, datetimes as ISO 8601 text."""
        return {"id": self.id, "name": self.name, "created_at": self.created_at.isoformat()}


@dataclass(frozen=True, slots=True)
class ProjectKey:
    """One DSN key of a project."""

    id: int
    project_id: int
    public_key: str
    label: str
    created_at: datetime
    revoked_at: datetime | None
    rate_limit: int | None  # events per minute for this key; None = the server default

    def state(self) -> Literal["active", "revoked"]:
        """Whether ingest accepts the key."""
        return "active" if self.revoked_at is None else "revoked"

    def dsn(self, base_url: str) -> str:
        """The DSN an SDK is given: ``base_url`` (where the tracker is reached, such as
        ``http://127.0.0.1:8080`` or ``https://errors.example.com/tracker``) with the
        public key as user and the project id as last path part."""
        scheme, rest = check_base_url(base_url).split("://", 1)
        return f"{scheme}://{self.public_key}@{rest}/{self.project_id}"

    def as_dict(self, base_url: str | None = None) -> dict[str, Any]:
        """JSON-ready fields, datetimes as ISO 8601 text, with the state and (given
        ``base_url``) the DSN."""
        values: dict[str, Any] = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            values[name] = value.isoformat() if isinstance(value, datetime) else value
        values["state"] = self.state()
        if base_url is not None:
            values["dsn"] = self.dsn(base_url)
        return values


class KeyRefused(Exception):
    """A DSN key ingest does not accept. ``status`` is 401 (no key, or no such key) or 403
    (the key is revoked, or is not a key of the project it was sent to); ``reason`` is
    ``missing``, ``unknown``, ``revoked`` or ``wrong_project``. The message never says
    which project a key belongs to."""

    _MESSAGES: ClassVar[dict[str, str]] = {
        "missing": "no DSN key was sent; send the key of the project's DSN",
        "unknown": "the DSN key is not known here; check the DSN",
        "revoked": "the DSN key was revoked; make a new one with `errorkit keys create`",
        "wrong_project": "the DSN key is not a key of this project; check the DSN",
    }

    def __init__(self, reason: Literal["missing", "unknown", "revoked", "wrong_project"]) -> None:
        super().__init__(self._MESSAGES[reason])
        self.reason = reason
        self.status = 401 if reason in {"missing", "unknown"} else 403


@dataclass(frozen=True, slots=True)
class Outcome:
    """One addition to the ``ingest_outcomes`` counters."""

    project_id: int
    source: str  # "dropped" (the server dropped an item) | "client_report" (an SDK lost it)
    category: str  # "transaction", "span", "error", "session", "attachment", ...
    reason: str  # "unsupported_item", "rate_limited", or a client report's reason
    quantity: int


def check_base_url(base_url: str) -> str:
    """``base_url`` checked (http or https, a host, no user or query) and without its
    trailing slash; InvalidQuery saying what is wrong otherwise."""
    try:
        parts = urlsplit(base_url.strip())
        port = parts.port
    except ValueError as exc:
        message = f"cannot read base URL {base_url!r} ({exc}); give http(s)://host[:port]"
        raise InvalidQuery(message) from None
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        message = (
            f"base URL {base_url!r} is not an http(s) address; give one such as "
            "http://127.0.0.1:8080 or https://errors.example.com"
        )
        raise InvalidQuery(message)
    if parts.username is not None or parts.password is not None or parts.query:
        message = f"base URL {base_url!r}: give it without user, password or query"
        raise InvalidQuery(message)
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    netloc = host if port is None else f"{host}:{port}"
    return f"{parts.scheme}://{netloc}{parts.path.rstrip('/')}"


def _check_name(name: object) -> str:
    if not isinstance(name, str) or not _NAME.match(name.strip()) or name.strip().isdigit():
        message = (
            f"a project name is 1 to 64 letters, digits, '.', '_' or '-', starting with a "
            f"letter or digit and not only digits (it becomes the events' service); "
            f"got {name!r}"
        )
        raise InvalidQuery(message)
    return name.strip()


def _check_rate_limit(rate_limit: object) -> int | None:
    if rate_limit is None:
        return None
    if (
        isinstance(rate_limit, bool)
        or not isinstance(rate_limit, int)
        or not 1 <= rate_limit <= MAX_RATE_LIMIT
    ):
        message = (
            f"rate_limit is events per minute, a whole number from 1 to {MAX_RATE_LIMIT:,} "
            f"(or none for the server's default); got {rate_limit!r}"
        )
        raise InvalidQuery(message)
    return rate_limit


def _check_label(label: object) -> str:
    if not isinstance(label, str) or not label.strip() or len(label.strip()) > _LABEL_MAX:
        message = f"a key label is 1 to {_LABEL_MAX} characters; got {label!r}"
        raise InvalidQuery(message)
    return label.strip()


def _check_outcome(outcome: Outcome) -> tuple[int, str, str, str]:
    if not isinstance(outcome, Outcome):
        message = f"add_outcomes takes Outcome values; got {type(outcome).__name__}"
        raise InvalidQuery(message)
    if outcome.source not in OUTCOME_SOURCES:
        message = (
            f"outcome source must be one of {', '.join(OUTCOME_SOURCES)}; got {outcome.source!r}"
        )
        raise InvalidQuery(message)
    for field in ("category", "reason"):
        value = getattr(outcome, field)
        if not isinstance(value, str) or not value or len(value) > MAX_OUTCOME_FIELD:
            message = f"outcome {field} is 1 to {MAX_OUTCOME_FIELD} characters; got {value!r}"
            raise InvalidQuery(message)
    quantity = outcome.quantity
    if (
        isinstance(quantity, bool)
        or not isinstance(quantity, int)
        or not 0 <= quantity < _MAX_QUANTITY
    ):
        message = f"outcome quantity is a whole number >= 0; got {quantity!r}"
        raise InvalidQuery(message)
    if isinstance(outcome.project_id, bool) or not isinstance(outcome.project_id, int):
        message = f"outcome project_id is a project's id; got {outcome.project_id!r}"
        raise InvalidQuery(message)
    return (outcome.project_id, outcome.source, outcome.category, outcome.reason)


_Found = tuple[Project, ProjectKey] | None


class ProjectStore:
    """Make and list projects and keys, check the key an ingest request sends, and count
    what ingest did not store, in an :class:`ErrorStore`'s database.

    ``authenticate`` remembers each key it looked up (found or not, at most ``cache_size``
    of them) for ``cache_ttl`` seconds by ``clock``; ``cache_ttl=0`` reads the database
    every time. Keys made or revoked through this object take effect on it at once.
    """

    def __init__(
        self,
        store: ErrorStore,
        *,
        cache_ttl: float = DEFAULT_CACHE_TTL,
        cache_size: int = DEFAULT_CACHE_SIZE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if cache_ttl < 0:
            message = f"cache_ttl={cache_ttl!r}: use seconds >= 0 (0 turns the cache off)"
            raise ValueError(message)
        self._store = store
        self._ttl = cache_ttl
        self._clock = clock
        self._cache: BoundedCache[str, tuple[float, _Found]] = BoundedCache(cache_size)

    @property
    def store(self) -> ErrorStore:
        return self._store

    # -- projects -------------------------------------------------------------------

    def create_project(self, name: str) -> Project:
        """Make project ``name``; InvalidQuery for a bad name or one already taken."""
        name = _check_name(name)
        taken = f"there is already a project named {name!r}"
        try:
            with self._store._write() as connection:
                if connection.execute(select(projects.c.id).where(projects.c.name == name)).first():
                    raise InvalidQuery(taken)
                ident = connection.execute(
                    insert(projects)
                    .values(name=name, created_at=datetime.now(UTC))
                    .returning(projects.c.id)
                ).scalar_one()
                row = connection.execute(select(projects).where(projects.c.id == ident)).one()
        except StoreError as exc:
            if isinstance(exc.__cause__, IntegrityError):  # made by another node meanwhile
                raise InvalidQuery(taken) from None
            raise
        return Project(**row._asdict())

    def list_projects(self) -> list[Project]:
        """Every project, oldest first."""
        with self._store._read() as connection:
            rows = connection.execute(select(projects).order_by(projects.c.id)).all()
        return [Project(**row._asdict()) for row in rows]

    def project(self, key: int | str) -> Project | None:
        """The project with this id (an int, or digits) or name; None when there is none."""
        with self._store._read() as connection:
            row = connection.execute(
                select(projects).where(self._project_clause(key))
            ).one_or_none()
        return None if row is None else Project(**row._asdict())

    @staticmethod
    def _project_clause(key: int | str) -> Any:
        if isinstance(key, bool) or not isinstance(key, int | str):
            message = f"a project is named by its id or name; got {key!r}"
            raise InvalidQuery(message)
        if isinstance(key, int):
            return projects.c.id == key
        if key.strip().isdigit():
            return projects.c.id == int(key.strip())
        return projects.c.name == key.strip()

    def _require(self, key: int | str) -> Project:
        found = self.project(key)
        if found is None:
            message = f"no project with id or name {key!r} in the store at {self._store.url}"
            raise NotFound(message)
        return found

    # -- keys -----------------------------------------------------------------------

    def create_key(
        self, project: int | str, *, label: str = "default", rate_limit: int | None = None
    ) -> ProjectKey:
        """Make a key for ``project`` (id or name); NotFound when there is no such
        project, InvalidQuery for a bad label or rate limit (events per minute, >= 1)."""
        label = _check_label(label)
        limit = _check_rate_limit(rate_limit)
        owner = self._require(project)
        public_key = secrets.token_hex(16)
        with self._store._write() as connection:
            ident = connection.execute(
                insert(project_keys)
                .values(
                    project_id=owner.id,
                    public_key=public_key,
                    label=label,
                    rate_limit=limit,
                    created_at=datetime.now(UTC),
                )
                .returning(project_keys.c.id)
            ).scalar_one()
            row = connection.execute(select(project_keys).where(project_keys.c.id == ident)).one()
        self._cache.pop(public_key, None)
        return _key(row)

    def list_keys(self, project: int | str | None = None) -> list[ProjectKey]:
        """Every key (revoked ones too) of ``project``, or of every project; oldest first.
        NotFound when the project named does not exist."""
        query = select(project_keys).order_by(project_keys.c.id)
        if project is not None:
            query = query.where(project_keys.c.project_id == self._require(project).id)
        with self._store._read() as connection:
            rows = connection.execute(query).all()
        return [_key(row) for row in rows]

    def revoke_key(self, key: int | str) -> ProjectKey:
        """Revoke a key, by id or public key: ingest refuses it at once on this object, and
        within ``cache_ttl`` seconds on every other. Revoking twice keeps the first time;
        NotFound when there is no such key."""
        if isinstance(key, bool) or not isinstance(key, int | str):
            message = f"a key is named by its id or its public key; got {key!r}"
            raise InvalidQuery(message)
        if isinstance(key, str) and _PUBLIC_KEY.match(key.strip().lower()):
            clause = project_keys.c.public_key == key.strip().lower()
        elif isinstance(key, int) or key.strip().isdigit():
            clause = project_keys.c.id == int(key)
        else:
            message = f"a key is named by its id or its 32-hex public key; got {key!r}"
            raise InvalidQuery(message)
        with self._store._write() as connection:
            result = connection.execute(
                update(project_keys)
                .where(clause)
                .values(revoked_at=func.coalesce(project_keys.c.revoked_at, datetime.now(UTC)))
            )
            if result.rowcount == 0:
                message = f"no DSN key {key!r} in the store at {self._store.url}"
                raise NotFound(message)
            row = connection.execute(select(project_keys).where(clause)).one()
        revoked = _key(row)
        self._cache.pop(revoked.public_key, None)
        return revoked

    def authenticate(self, project_id: int, public_key: str | None) -> tuple[Project, ProjectKey]:
        """The project and key an ingest request for ``project_id`` is sent with;
        KeyRefused (401: no key or an unknown one, 403: a revoked key or another
        project's) otherwise. What a key is found to be is remembered for ``cache_ttl``
        seconds, so a busy ingest reads the database about once per key per interval."""
        if not public_key:
            raise KeyRefused("missing")
        public_key = public_key.strip().lower()
        if not _PUBLIC_KEY.match(public_key):
            raise KeyRefused("unknown")
        found = self._lookup(public_key)
        if found is None:
            raise KeyRefused("unknown")
        project, key = found
        if project.id != project_id:
            raise KeyRefused("wrong_project")
        if key.revoked_at is not None:
            raise KeyRefused("revoked")
        return found

    def _lookup(self, public_key: str) -> _Found:
        now = self._clock()
        cached = self._cache.get(public_key)
        if cached is not None and now - cached[0] < self._ttl:
            return cached[1]
        query = (
            select(project_keys, projects.c.name, projects.c.created_at.label("project_created"))
            .join(projects, projects.c.id == project_keys.c.project_id)
            .where(project_keys.c.public_key == public_key)
        )
        with self._store._read() as connection:
            row = connection.execute(query).one_or_none()
        found: _Found = None
        if row is not None:
            values = row._asdict()
            project = Project(
                values.pop("project_id"), values.pop("name"), values.pop("project_created")
            )
            found = (project, ProjectKey(project_id=project.id, **values))
        if self._ttl > 0:
            self._cache.put(public_key, (now, found))
        return found

    # -- outcomes -------------------------------------------------------------------

    def add_outcomes(self, outcomes: Iterable[Outcome]) -> None:
        """Add each outcome's quantity to its counter (made when new), in one transaction:
        every outcome is counted or, on failure, none. Safe with many tracker nodes on one
        database (an upsert, rows taken in one order so writers never deadlock)."""
        merged: dict[tuple[int, str, str, str], int] = {}
        for outcome in outcomes:
            key = _check_outcome(outcome)
            merged[key] = merged.get(key, 0) + outcome.quantity
        rows = [
            {"project_id": k[0], "source": k[1], "category": k[2], "reason": k[3], "quantity": n}
            for k, n in sorted(merged.items())
            if n > 0
        ]
        if not rows:
            return
        with self._store._write() as connection:
            dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
            statement = dialect.insert(ingest_outcomes)
            statement = statement.on_conflict_do_update(
                index_elements=["project_id", "source", "category", "reason"],
                set_={"quantity": ingest_outcomes.c.quantity + statement.excluded.quantity},
            )
            connection.execute(statement, rows)

    def outcomes(self, project: int | str | None = None) -> list[tuple[int, str, str, str, int]]:
        """Every counter, ``(project_id, source, category, reason, quantity)``, of
        ``project`` (id or name; NotFound when unknown) or of every project."""
        table = ingest_outcomes
        query = select(
            table.c.project_id, table.c.source, table.c.category, table.c.reason, table.c.quantity
        ).order_by(table.c.project_id, table.c.source, table.c.category, table.c.reason)
        if project is not None:
            query = query.where(table.c.project_id == self._require(project).id)
        with self._store._read() as connection:
            rows = connection.execute(query).all()
        return [(int(r[0]), str(r[1]), str(r[2]), str(r[3]), int(r[4])) for r in rows]


def _key(row: Row[Any]) -> ProjectKey:
    return ProjectKey(**row._asdict())
