"""API tokens: shown once, stored as a hash, with a role, an expiry and revocation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from errorkit.store import ErrorStore, InvalidQuery, NotFound
from errorkit.store.schema import api_tokens
from errorkit.store.tokens import TOKEN_PREFIX, TokenRefused, TokenStore, hash_token


def test_token_is_stored_only_as_its_hash(store: ErrorStore) -> None:
    tokens = TokenStore(store)
    made = tokens.create(role="admin", name="ops")
    assert made.secret.startswith(TOKEN_PREFIX)
    assert len(made.secret) > 40
    with store.engine.connect() as connection:
        rows = connection.execute(select(api_tokens)).all()
    assert len(rows) == 1
    stored = rows[0]._asdict()
    assert made.secret not in [str(v) for v in stored.values()]
    assert stored["token_hash"] == hash_token(made.secret)
    assert made.token.name == "ops"
    assert made.token.role == "admin"
    assert tokens.verify(made.secret).id == made.token.id


def test_unknown_expired_and_revoked_tokens_are_refused(store: ErrorStore) -> None:
    tokens = TokenStore(store)
    past = datetime.now(UTC) - timedelta(seconds=1)
    expired = tokens.create(role="read", expires_at=past)
    revoked = tokens.create(role="admin")
    later = tokens.create(role="read", expires_at=datetime.now(UTC) + timedelta(days=1))
    tokens.revoke(revoked.token.id)
    with pytest.raises(TokenRefused) as refused:
        tokens.verify(expired.secret)
    assert refused.value.reason == "expired"
    with pytest.raises(TokenRefused) as refused:
        tokens.verify(revoked.secret)
    assert refused.value.reason == "revoked"
    with pytest.raises(TokenRefused) as refused:
        tokens.verify(TOKEN_PREFIX + "x" * 43)
    assert refused.value.reason == "unknown"
    assert tokens.verify(later.secret).role == "read"
    states = {t.id: t.state() for t in tokens.list()}
    assert states == {
        expired.token.id: "expired",
        revoked.token.id: "revoked",
        later.token.id: "active",
    }


def test_has_active_admin_ignores_read_expired_and_revoked(store: ErrorStore) -> None:
    tokens = TokenStore(store)
    assert not tokens.has_active()
    tokens.create(role="read")
    tokens.create(role="admin", expires_at=datetime.now(UTC) - timedelta(minutes=1))
    assert not tokens.has_active()
    assert tokens.has_active(None)
    admin = tokens.create(role="admin")
    assert tokens.has_active()
    tokens.revoke(admin.token.id)
    assert not tokens.has_active()


def test_revoke_unknown_and_bad_role(store: ErrorStore) -> None:
    tokens = TokenStore(store)
    with pytest.raises(NotFound, match="no API token with id 42"):
        tokens.revoke(42)
    with pytest.raises(InvalidQuery, match="role must be one of read, admin"):
        tokens.create(role="owner")  # type: ignore[arg-type]


def test_revoking_twice_keeps_the_first_time(store: ErrorStore) -> None:
    tokens = TokenStore(store)
    made = tokens.create(role="read")
    first = tokens.revoke(made.token.id).revoked_at
    assert first is not None
    assert tokens.revoke(made.token.id).revoked_at == first
