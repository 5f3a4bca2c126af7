"""Where an ingest request carries its DSN key, and the cache of what each key is.

A Sentry SDK sends the key (the user part of its DSN) in one of four places, tried in this
order: the ``X-Sentry-Auth: Sentry sentry_key=<key>, sentry_version=7, ...`` header, the
same value in ``Authorization: Sentry ...``, the ``sentry_key`` query parameter (browser
SDKs), and the envelope header's ``dsn`` (read only when none of the others is there).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from urllib.parse import parse_qsl, urlsplit

from errorkit.store.errors import StoreError
from errorkit.store.projects import KeyRefused, Project, ProjectKey, ProjectStore

__all__ = ["KeyCache", "dsn_key", "header_key", "query_key"]

#: A key longer than this is refused without a look-up (a real one has 32 characters).
MAX_KEY_CHARS = 64
#: Seconds a key's answer is trusted before it is read again.
DEFAULT_TTL = 5.0
#: Keys remembered at most (known or not).
DEFAULT_SIZE = 10_000

_Found = tuple[Project, ProjectKey]


def _sentry_key(value: str) -> str | None:
    """The ``sentry_key`` of a ``Sentry k=v, k=v`` auth value, else None."""
    head, _, rest = value.strip().partition(" ")
    if head.lower() != "sentry":
        return None
    for part in rest.split(","):
        name, sep, found = part.partition("=")
        if sep and name.strip().lower() == "sentry_key":
            return found.strip() or None
    return None


def header_key(x_sentry_auth: bytes | None, authorization: bytes | None) -> str | None:
    """The key of ``X-Sentry-Auth``, else of ``Authorization: Sentry ...``."""
    for value in (x_sentry_auth, authorization):
        if value:
            key = _sentry_key(value.decode("latin-1"))
            if key is not None:
                return key
    return None


def query_key(query_string: bytes) -> str | None:
    """The ``sentry_key`` query parameter, else None."""
    if b"sentry_key" not in query_string:
        return None
    for name, value in parse_qsl(query_string.decode("latin-1"), keep_blank_values=False):
        if name == "sentry_key" and value:
            return value
    return None


def dsn_key(dsn: object) -> str | None:
    """The public key in a DSN (``http://<key>@host/<project_id>``), else None."""
    if not isinstance(dsn, str) or "@" not in dsn or len(dsn) > 2048:
        return None
    try:
        return urlsplit(dsn).username or None
    except ValueError:
        return None


class KeyCache:
    """What :meth:`ProjectStore.authenticate` said about each (project, key), for ``ttl``
    seconds; looked up again on a worker thread so the event loop never waits on the
    database. While the store cannot be read, the last answer known for a key stands (an
    outage must not turn into refusals); a key never seen before is then unavailable."""

    def __init__(
        self,
        projects: ProjectStore,
        *,
        ttl: float = DEFAULT_TTL,
        size: int = DEFAULT_SIZE,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.projects = projects
        self.ttl = ttl
        self.size = size
        self._monotonic = monotonic
        self._entries: dict[tuple[int, str], tuple[float, _Found | KeyRefused]] = {}

    def forget(self) -> None:
        """Read every key from the store again on its next use."""
        self._entries.clear()

    async def authenticate(self, project_id: int, public_key: str | None) -> _Found:
        """The project and key, or KeyRefused; StoreError when the store cannot be read
        and nothing is known of this key."""
        if not public_key:
            raise KeyRefused("missing")
        if len(public_key) > MAX_KEY_CHARS:
            raise KeyRefused("unknown")
        entry_key = (project_id, public_key)
        now = self._monotonic()
        entry = self._entries.get(entry_key)
        if entry is not None and now - entry[0] < self.ttl:
            return _answer(entry[1])
        loop = asyncio.get_running_loop()
        try:
            found: _Found | KeyRefused = await loop.run_in_executor(
                None, _look_up, self.projects, project_id, public_key
            )
        except StoreError:
            if entry is None:
                raise
            return _answer(entry[1])  # stale, but the store cannot say otherwise now
        if len(self._entries) >= self.size:
            self._entries.clear()
        self._entries[entry_key] = (now, found)
        return _answer(found)


def _look_up(projects: ProjectStore, project_id: int, public_key: str) -> _Found | KeyRefused:
    try:
        return projects.authenticate(project_id, public_key)
    except KeyRefused as refused:
        return refused


def _answer(found: _Found | KeyRefused) -> _Found:
    if isinstance(found, KeyRefused):
        raise KeyRefused(found.reason)  # a fresh one: re-raising one instance grows its traceback
    return found
