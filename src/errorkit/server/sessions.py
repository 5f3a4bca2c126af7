"""The dashboard's sessions: a signed cookie, CSRF tokens and failed-login limiting.

The cookie holds who logged in (an API token's id or a user's id), the session's CSRF token
and when it ends, signed with itsdangerous (HMAC-SHA256); the credential itself is checked
again on every request, so a revoked token or a removed user loses the dashboard at once.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Literal

from itsdangerous import BadSignature, Signer, URLSafeSerializer

__all__ = ["LoginLimiter", "Session", "SessionSigner", "Viewer"]

COOKIE = "errorkit_session"
LOGIN_COOKIE = "errorkit_login"
#: How long a dashboard session lasts.
SESSION_SECONDS = 12 * 3600


@dataclass(frozen=True, slots=True)
class Session:
    """What the session cookie says."""

    kind: Literal["token", "user"]
    id: int
    csrf: str
    expires: int


@dataclass(frozen=True, slots=True)
class Viewer:
    """Who is looking at the dashboard, checked against the store on this request."""

    kind: Literal["token", "user"]
    id: int
    name: str
    role: str
    csrf: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


class SessionSigner:
    """Signs and checks session cookies with ``secret`` (random per app when not given:
    sessions then end when the tracker restarts, and each worker has its own). The signing is
    itsdangerous' (HMAC-SHA256 over the cookie's JSON, with its own salt per use)."""

    def __init__(self, secret: str | bytes | None = None) -> None:
        if secret is None:
            key = secrets.token_bytes(32)
        elif isinstance(secret, str):
            key = secret.encode("utf-8")
        else:
            key = secret
        if len(key) < 16:
            message = "the session secret needs at least 16 bytes"
            raise ValueError(message)
        options: dict[str, Any] = {"signer_kwargs": {"digest_method": hashlib.sha256}}
        self._sessions = URLSafeSerializer(key, salt="errorkit-session", **options)
        self._nonces = Signer(key, salt="errorkit-login", digest_method=hashlib.sha256)

    def sign(self, kind: Literal["token", "user"], ident: int) -> tuple[str, Session]:
        session = Session(
            kind, ident, secrets.token_urlsafe(24), int(time.time()) + SESSION_SECONDS
        )
        payload = {"k": kind, "i": ident, "c": session.csrf, "e": session.expires}
        return str(self._sessions.dumps(payload)), session

    def read(self, cookie: str | None) -> Session | None:
        """The session in ``cookie``, or None when it is missing, forged or over."""
        if not cookie:
            return None
        try:
            payload: dict[str, Any] = self._sessions.loads(cookie)
            session = Session(payload["k"], int(payload["i"]), str(payload["c"]), int(payload["e"]))
        except (BadSignature, ValueError, KeyError, TypeError):
            return None
        if session.kind not in ("token", "user") or session.expires <= time.time():
            return None
        return session

    def login_nonce(self) -> tuple[str, str]:
        """A CSRF value for the login form: (cookie value, form value)."""
        nonce = secrets.token_urlsafe(24)
        return nonce, self._nonces.get_signature(nonce).decode("ascii")

    def check_login_nonce(self, cookie: str | None, form: str | None) -> bool:
        if not cookie or not form:
            return False
        return self._nonces.verify_signature(cookie, form)


class LoginLimiter:
    """At most ``failures`` failed logins per (who, client address) in ``window`` seconds;
    more are refused without checking the credentials."""

    def __init__(self, failures: int = 5, window: float = 15 * 60) -> None:
        self.failures = failures
        self.window = window
        self._seen: dict[tuple[str, str], deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: tuple[str, str], now: float) -> deque[float]:
        times = self._seen.setdefault(key, deque())
        while times and times[0] <= now - self.window:
            times.popleft()
        return times

    def blocked(self, who: str, address: str) -> bool:
        with self._lock:
            key = (who, address)
            times = self._recent(key, time.monotonic())
            if not times:
                self._seen.pop(key, None)
            return len(times) >= self.failures

    def failed(self, who: str, address: str) -> int:
        """Record a failure; returns how many there were in the window."""
        with self._lock:
            now = time.monotonic()
            if len(self._seen) > 10_000:  # bounded: forget everyone whose window is over
                for key in list(self._seen):
                    if not self._recent(key, now):
                        del self._seen[key]
            times = self._recent((who, address), now)
            times.append(now)
            return len(times)

    def succeeded(self, who: str, address: str) -> None:
        with self._lock:
            self._seen.pop((who, address), None)
