"""The dashboard's users, kept in the store's ``users`` table.

Passwords are hashed with argon2id (``argon2-cffi``, in the ``server`` extra); the store
never holds a password itself::

    from errorkit.store import open_store
    from errorkit.store.users import UserStore

    users = UserStore(open_store("sqlite:///errorkit.db"))
    users.add("ana", "a long passphrase", role="admin")
    users.verify("ana", "a long passphrase")   # the User, or None
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Row

from errorkit.store.errors import InvalidQuery, NotFound
from errorkit.store.repository import ErrorStore
from errorkit.store.schema import TOKEN_ROLES, users
from errorkit.store.tokens import Role

__all__ = ["MIN_PASSWORD", "User", "UserStore"]

#: The shortest password ``add`` accepts.
MIN_PASSWORD = 10
_NAME_MAX = 200


@dataclass(frozen=True, slots=True)
class User:
    """A stored user, without the password hash."""

    id: int
    name: str
    role: Role
    created_at: datetime
    last_login_at: datetime | None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready fields, datetimes as ISO 8601 text."""
        values: dict[str, Any] = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            values[name] = value.isoformat() if isinstance(value, datetime) else value
        return values


def _hasher() -> Any:
    from errorkit._extras import require

    require("argon2", extra="server", feature="dashboard users")
    from argon2 import PasswordHasher

    return PasswordHasher()


class UserStore:
    """Add, list, remove and check the dashboard's users in an :class:`ErrorStore`."""

    def __init__(self, store: ErrorStore) -> None:
        self._store = store
        self._hash = _hasher()
        self._decoy_hash: str | None = None

    @property
    def _decoy(self) -> str:
        """The hash checked against when the name is unknown, so both answers take as
        long. Made at the first login check, whoever it is for (so that first answer is
        as slow for a known name as for an unknown one), not when the store is opened:
        a hash takes the KDF's memory (64 MiB with argon2's defaults) and every server
        process opens one."""
        if self._decoy_hash is None:
            self._decoy_hash = self._hash.hash("errorkit decoy password")
        return self._decoy_hash

    def add(self, name: str, password: str, *, role: Role = "read") -> User:
        """Add user ``name``; InvalidQuery for a bad name, role or short password, or a
        name already taken."""
        name = name.strip()
        if not name or len(name) > _NAME_MAX or any(c.isspace() for c in name):
            message = f"a user name is 1 to {_NAME_MAX} characters without spaces"
            raise InvalidQuery(message)
        if role not in TOKEN_ROLES:
            message = f"role must be one of {', '.join(TOKEN_ROLES)}; got {role!r}"
            raise InvalidQuery(message)
        if len(password) < MIN_PASSWORD:
            message = f"the password needs at least {MIN_PASSWORD} characters"
            raise InvalidQuery(message)
        values = {
            "name": name,
            "role": role,
            "password_hash": self._hash.hash(password),
            "created_at": datetime.now(UTC),
        }
        taken = f"there is already a user named {name!r}"
        with self._store._write() as connection:
            if connection.execute(select(users.c.id).where(users.c.name == name)).first():
                raise InvalidQuery(taken)
            ident = connection.execute(
                insert(users).values(**values).returning(users.c.id)
            ).scalar_one()
            row = connection.execute(select(users).where(users.c.id == ident)).one()
        return _user(row)

    def list(self) -> list[User]:
        """Every user, oldest first."""
        with self._store._read() as connection:
            rows = connection.execute(select(users).order_by(users.c.id)).all()
        return [_user(row) for row in rows]

    def get(self, user_id: int) -> User | None:
        """The user with this id, or None."""
        with self._store._read() as connection:
            row = connection.execute(select(users).where(users.c.id == user_id)).one_or_none()
        return None if row is None else _user(row)

    def remove(self, name: str) -> User:
        """Remove user ``name`` (their sessions stop at their next request)."""
        with self._store._write() as connection:
            row = connection.execute(select(users).where(users.c.name == name)).one_or_none()
            if row is None:
                message = f"no user named {name!r} in the store at {self._store.url}"
                raise NotFound(message)
            connection.execute(delete(users).where(users.c.id == row.id))
        return _user(row)

    def verify(self, name: str, password: str) -> User | None:
        """The user, when ``password`` is theirs; None otherwise."""
        from argon2.exceptions import InvalidHashError, VerificationError

        decoy = self._decoy
        with self._store._read() as connection:
            row = connection.execute(select(users).where(users.c.name == name)).one_or_none()
        stored = decoy if row is None else row.password_hash
        try:
            self._hash.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return None
        if row is None:
            return None
        with self._store._write() as connection:
            values: dict[str, Any] = {"last_login_at": datetime.now(UTC)}
            if self._hash.check_needs_rehash(stored):
                values["password_hash"] = self._hash.hash(password)
            connection.execute(update(users).where(users.c.id == row.id).values(**values))
        return _user(row)


def _user(row: Row[Any]) -> User:
    values = row._asdict()
    values.pop("password_hash", None)
    return User(**values)
