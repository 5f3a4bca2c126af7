"""API tokens for the tracker, kept in the store's ``api_tokens`` table.

A token is shown once, when it is made; the store keeps only its SHA-256 (a token holds 256
random bits, so no slow KDF is needed to keep it from being guessed back). Each token has a
role (``read`` or ``admin``), an optional expiry, and can be revoked::

    from errorkit.store import open_store
    from errorkit.store.tokens import TokenStore

    tokens = TokenStore(open_store("sqlite:///errorkit.db"))
    made = tokens.create(role="admin", name="ops")
    print(made.secret)                         # shown this once
    tokens.verify(made.secret)                 # the ApiToken, or raises TokenRefused
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import Row

from errorkit.store._write import _aware
from errorkit.store.errors import InvalidQuery, NotFound
from errorkit.store.repository import ErrorStore
from errorkit.store.schema import TOKEN_ROLES, api_tokens

__all__ = ["TOKEN_PREFIX", "ApiToken", "NewToken", "Role", "TokenRefused", "TokenStore"]

Role = Literal["read", "admin"]

#: What every token starts with, so a leaked one is easy to recognise in a scanner.
TOKEN_PREFIX = "ekt_"  # noqa: S105 - a public marker, not a secret
_SHOWN_PREFIX = 12  # characters of the token kept in clear to tell tokens apart


@dataclass(frozen=True, slots=True)
class ApiToken:
    """A stored token, without its secret."""

    id: int
    name: str
    role: Role
    prefix: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None

    def state(self, now: datetime | None = None) -> Literal["active", "expired", "revoked"]:
        """Whether the token is accepted at ``now`` (default: the current time)."""
        if self.revoked_at is not None:
            return "revoked"
        moment = now or datetime.now(UTC)
        if self.expires_at is not None and self.expires_at <= moment:
            return "expired"
        return "active"

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready fields, datetimes as ISO 8601 text."""
        values: dict[str, Any] = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            values[name] = value.isoformat() if isinstance(value, datetime) else value
        values["state"] = self.state()
        return values


@dataclass(frozen=True, slots=True)
class NewToken:
    """A token just made: ``secret`` is the only copy of the token itself."""

    token: ApiToken
    secret: str


class TokenRefused(Exception):
    """A token that is not accepted; ``reason`` is ``unknown``, ``expired`` or ``revoked``."""

    def __init__(self, reason: Literal["unknown", "expired", "revoked"]) -> None:
        super().__init__(f"the token is {reason}")
        self.reason = reason


def hash_token(secret: str) -> str:
    """The SHA-256 (hex) under which ``secret`` is stored."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


class TokenStore:
    """Make, list, revoke and check API tokens in an :class:`ErrorStore`'s database."""

    def __init__(self, store: ErrorStore) -> None:
        self._store = store

    @property
    def store(self) -> ErrorStore:
        return self._store

    def create(
        self,
        *,
        role: Role,
        name: str | None = None,
        expires_at: datetime | None = None,
    ) -> NewToken:
        """Make a token with ``role``; its secret is returned this once."""
        if role not in TOKEN_ROLES:
            message = f"role must be one of {', '.join(TOKEN_ROLES)}; got {role!r}"
            raise InvalidQuery(message)
        expires = None if expires_at is None else _aware(expires_at, "expires_at", InvalidQuery)
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        now = datetime.now(UTC)
        values = {
            "name": name or f"{role} token",
            "role": role,
            "token_hash": hash_token(secret),
            "prefix": secret[:_SHOWN_PREFIX],
            "created_at": now,
            "expires_at": expires,
        }
        with self._store._write() as connection:
            ident = connection.execute(
                insert(api_tokens).values(**values).returning(api_tokens.c.id)
            ).scalar_one()
            row = connection.execute(select(api_tokens).where(api_tokens.c.id == ident)).one()
        return NewToken(_token(row), secret)

    def list(self) -> list[ApiToken]:
        """Every token, revoked and expired ones included, oldest first."""
        with self._store._read() as connection:
            rows = connection.execute(select(api_tokens).order_by(api_tokens.c.id)).all()
        return [_token(row) for row in rows]

    def revoke(self, token_id: int) -> ApiToken:
        """Revoke a token (at once, for every server on this store); NotFound if unknown.
        Revoking a revoked token keeps its first revocation time."""
        with self._store._write() as connection:
            result = connection.execute(
                update(api_tokens)
                .where(api_tokens.c.id == token_id)
                .values(revoked_at=func.coalesce(api_tokens.c.revoked_at, datetime.now(UTC)))
            )
            if result.rowcount == 0:
                message = f"no API token with id {token_id} in the store at {self._store.url}"
                raise NotFound(message)
            row = connection.execute(select(api_tokens).where(api_tokens.c.id == token_id)).one()
        return _token(row)

    def has_active(self, role: Role | None = "admin") -> bool:
        """Whether an unrevoked, unexpired token (of ``role``; None: any) exists."""
        now = datetime.now(UTC)
        query = select(func.count()).where(
            api_tokens.c.revoked_at.is_(None),
            (api_tokens.c.expires_at.is_(None)) | (api_tokens.c.expires_at > now),
        )
        if role is not None:
            query = query.where(api_tokens.c.role == role)
        with self._store._read() as connection:
            return int(connection.execute(query).scalar_one()) > 0

    def verify(self, secret: str) -> ApiToken:
        """The token ``secret`` belongs to, if it is accepted now; TokenRefused if not."""
        digest = hash_token(secret)
        with self._store._read() as connection:
            row = connection.execute(
                select(api_tokens).where(api_tokens.c.token_hash == digest)
            ).one_or_none()
        # The lookup is by hash (an index), so timing says nothing about the secret; the
        # comparison below only guards against a collation that compares loosely.
        if row is None or not hmac.compare_digest(row.token_hash, digest):
            raise TokenRefused("unknown")
        token = _token(row)
        state = token.state()
        if state != "active":
            raise TokenRefused(state)
        return token

    def touch(self, token_id: int) -> None:
        """Record that the token was just used."""
        with self._store._write() as connection:
            connection.execute(
                update(api_tokens)
                .where(api_tokens.c.id == token_id)
                .values(last_used_at=datetime.now(UTC))
            )


def _token(row: Row[Any]) -> ApiToken:
    values = row._asdict()
    values.pop("token_hash", None)
    return ApiToken(**values)
