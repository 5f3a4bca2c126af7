"""errorkit's own HTTP transport, the client side: report to a central ``errorkit serve``.

::

    errorkit.configure(store_url="http://<key>@tracker.internal:8080/<project_id>")

An ``http://`` or ``https://`` store URL is a tracker's address in the DSN form
(``<scheme>://<public_key>@<host>:<port>/<project_id>``, a key made with the tracker's
project keys). The capture pipeline then writes through :class:`HttpStore` instead of a
database: same queue, flood counting, spool and replay. Each batch is one gzip'd ``POST
/api/<project_id>/errorkit/batch/`` (the JSON of :mod:`errorkit.store.wire`), answered only
once the tracker has stored it.

What an answer means to the pipeline: 200 is the batch's :class:`WriteResult`; a refused
connection, a timeout, 429 or 5xx raise :class:`~errorkit.store.StoreUnavailable` (the batch
is spooled and retried, idempotently); 400/413/422 (the batch is malformed) raise
:class:`~errorkit.store.InvalidRecord` (the pipeline then writes item by item, so one bad
record loses only itself); 401/403 raise :class:`TrackerRefused` (spooled too: once the key
is fixed, nothing was lost). The key travels only in the ``X-Sentry-Auth`` header; ``url``,
``repr`` and every message show it as ``***``.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Self
from urllib.parse import urlsplit

from errorkit.store.errors import InvalidRecord, InvalidStoreURL, StoreError, StoreUnavailable
from errorkit.store.models import WriteResult
from errorkit.store.records import CountDelta, ErrorRecord, RequestCountRow, SlimRecord
from errorkit.store.wire import encode_message

if TYPE_CHECKING:
    import httpx

__all__ = [
    "CONNECT_TIMEOUT",
    "READ_TIMEOUT",
    "HttpStore",
    "TrackerRefused",
    "TrackerURL",
    "describe_tracker_url",
    "is_tracker_url",
    "parse_tracker_url",
]

#: Seconds to open a connection to the tracker (then: spool and back off).
CONNECT_TIMEOUT = 2.0
#: Seconds to send a batch and to wait for its answer, which comes once it is stored.
READ_TIMEOUT = 10.0

_SCHEMES = ("http://", "https://")
_KEY = re.compile(r"^[0-9a-f]{32}$")
_USERINFO = re.compile(r"^(https?://)[^@/?#]*@", re.IGNORECASE)
_MALFORMED = {400, 413, 422}
_REFUSED = {401, 403}
_FORM = "http://<public_key>@<host>:<port>/<project_id>"


class TrackerRefused(StoreError):
    """The tracker refused the key (401: unknown or missing, 403: revoked or of another
    project). The pipeline spools what it could not send: fix the key, nothing is lost."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


# --- the URL ---------------------------------------------------------------------------------


def is_tracker_url(url: object) -> bool:
    """Whether ``url`` is a tracker's address (``http://`` or ``https://``)."""
    return isinstance(url, str) and url[:8].lower().startswith(_SCHEMES)


def describe_tracker_url(url: str) -> str:
    """The tracker URL with its key hidden: ``http://***@host:8080/1``."""
    return _USERINFO.sub(r"\1***@", url.strip())


@dataclass(frozen=True, slots=True)
class TrackerURL:
    """A tracker's address, read from its DSN."""

    scheme: str
    host: str
    port: int
    project_id: int
    public_key: str

    @property
    def base(self) -> str:
        """``scheme://host:port`` (no key)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    @property
    def endpoint(self) -> str:
        """Where batches go: ``<base>/api/<project_id>/errorkit/batch/``."""
        return f"{self.base}/api/{self.project_id}/errorkit/batch/"

    @property
    def shown(self) -> str:
        """The DSN as it is safe to show (the key as ``***``)."""
        return f"{self.scheme}://***@{self.base.split('://', 1)[1]}/{self.project_id}"


def parse_tracker_url(url: str, *, key_required: bool = True) -> TrackerURL:
    """Read ``<scheme>://<public_key>@<host>[:<port>]/<project_id>``; raises
    :class:`InvalidStoreURL` naming what is wrong (never showing the key). Without
    ``key_required`` the key is not read (``public_key`` is empty): the address alone."""
    shown = describe_tracker_url(url)

    def refuse(why: str) -> InvalidStoreURL:
        return InvalidStoreURL(f"tracker URL {shown!r}: {why}; the form is {_FORM}")

    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise refuse(f"cannot be read ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise refuse("use http:// or https://")
    if not parts.hostname:
        raise refuse("it names no host")
    key = parts.username or ""
    if not key_required:
        key = ""
    elif not key:
        raise refuse("it carries no key before the host (a project key from the tracker)")
    elif parts.password is not None:
        raise refuse("the key is one value before '@', with no ':' and password")
    elif not _KEY.match(key):
        raise refuse("the key must be 32 lowercase hex characters, as the tracker made it")
    project = parts.path.strip("/")
    if not project.isdigit() or not project.isascii():
        raise refuse("the path must be the project's number, such as /1")
    if parts.query or parts.fragment:
        raise refuse("it takes no query or fragment")
    return TrackerURL(
        scheme,
        parts.hostname,
        port if port is not None else (443 if scheme == "https" else 80),
        int(project),
        key,
    )


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("errorkit")
    except PackageNotFoundError:  # pragma: no cover - a source tree without metadata
        return "0"


# --- the client ------------------------------------------------------------------------------


class HttpStore:
    """A :class:`~errorkit.capturing.delivery.BatchWriter` that sends to a tracker.

    One keep-alive ``httpx.Client`` (made again in a forked child), timeouts of
    :data:`CONNECT_TIMEOUT` to connect and :data:`READ_TIMEOUT` to send and be answered.
    Safe to share between threads. Creating one does not connect."""

    def __init__(
        self,
        url: str,
        *,
        connect_timeout: float = CONNECT_TIMEOUT,
        read_timeout: float = READ_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        from errorkit._extras import require

        require("httpx", extra="http", feature="an http(s):// store_url")
        self._target = parse_tracker_url(url)
        self._timeouts = (connect_timeout, read_timeout)
        self._transport = transport
        self._headers = {
            "X-Sentry-Auth": (
                f"Sentry sentry_key={self._target.public_key}, sentry_version=7, "
                f"sentry_client=errorkit/{_version()}"
            ),
            "User-Agent": f"errorkit/{_version()}",
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
        }
        self._lock = threading.Lock()
        self._client: httpx.Client | None = None
        self._pid = os.getpid()

    @property
    def url(self) -> str:
        """The tracker's DSN with the key hidden."""
        return self._target.shown

    @property
    def dialect(self) -> str:
        """``"http"``: this store is a tracker, not a database."""
        return "http"

    @property
    def endpoint(self) -> str:
        """The URL batches are posted to."""
        return self._target.endpoint

    def __repr__(self) -> str:
        return f"HttpStore({self.url!r})"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _http(self) -> httpx.Client:
        import httpx

        with self._lock:
            if self._pid != os.getpid():  # a forked child: the parent's sockets are not ours
                self._pid = os.getpid()
                self._client = None
            if self._client is None:
                connect, read = self._timeouts
                self._client = httpx.Client(
                    timeout=httpx.Timeout(read, connect=connect, pool=connect),
                    headers=self._headers,
                    transport=self._transport,
                    follow_redirects=False,
                    trust_env=False,
                )
            return self._client

    def close(self) -> None:
        """Close the connections; used again, the store reconnects."""
        with self._lock:
            client, self._client = self._client, None
        if client is not None and self._pid == os.getpid():
            client.close()

    # -- sending ----------------------------------------------------------------------

    def _post(self, body: bytes) -> dict[str, Any]:
        import httpx

        shown = self.url
        try:
            answer = self._http().post(self.endpoint, content=gzip.compress(body, 1, mtime=0))
        except httpx.HTTPError as exc:
            message = f"the tracker at {shown} is unreachable: {type(exc).__name__}: {exc}"
            raise StoreUnavailable(message) from None
        status = answer.status_code
        if status == 200:
            try:
                result = answer.json()
            except ValueError:
                result = None
            if not isinstance(result, dict):
                message = (
                    f"the tracker at {shown} answered 200 without a JSON result; does the "
                    "URL point at an errorkit tracker (errorkit serve)?"
                )
                raise StoreError(message)
            return result
        said = _said(answer)
        if status == 429 or status >= 500:
            wait = _retry_after(answer.headers.get("Retry-After"))
            after = f", retry after {wait:g}s" if wait is not None else ""
            message = f"the tracker at {shown} answered {status}{after}: {said}"
            raise StoreUnavailable(message, retry_after=wait)
        if status in _REFUSED:
            message = (
                f"the tracker at {shown} refused the key ({status}: {said}); put a valid key "
                "of this project in store_url (events wait in the spool until then)"
            )
            raise TrackerRefused(message, status)
        if status in _MALFORMED:
            message = f"the tracker at {shown} refused the batch ({status}): {said}"
            raise InvalidRecord(message)
        message = (
            f"the tracker at {shown} answered {status} to {self.endpoint}: {said}; is it an "
            "errorkit tracker of this version or newer?"
        )
        raise StoreError(message)

    def write_batch(
        self, records: Sequence[ErrorRecord], deltas: Sequence[CountDelta] = ()
    ) -> WriteResult:
        """Send ``records`` and ``deltas``; the tracker's :class:`WriteResult` once it has
        stored them (idempotent by ``error_id`` and ``delta_id``, so a retry is safe)."""
        result = self._post(encode_message(records, deltas))
        return WriteResult(
            inserted=_int(result, "inserted"),
            duplicates=_int(result, "duplicates"),
            deltas_applied=_int(result, "deltas_applied"),
            deltas_skipped=_int(result, "deltas_skipped"),
            occurrences=_int(result, "occurrences"),
            new_groups=tuple(str(g) for g in result.get("new_groups") or ()),
            regressed_groups=tuple(str(g) for g in result.get("regressed_groups") or ()),
        )

    def write_slim(self, rows: Sequence[SlimRecord]) -> int:
        """Send slim rows; how many were new to the tracker."""
        if not rows:
            return 0
        return _int(self._post(encode_message(slim=rows)), "slim_written")

    def write_request_counts(
        self, rows: Sequence[RequestCountRow], *, batch_id: str | None = None
    ) -> int:
        """Send request counts (the tracker applies a ``batch_id`` once); how many
        requests were added."""
        if not rows:
            return 0
        body = encode_message(request_counts=rows, counts_batch_id=batch_id)
        return _int(self._post(body), "requests_added")

    def ping(self) -> None:
        """Send an empty batch: raises unless the tracker answers and accepts the key."""
        self._post(encode_message())


#: The longest ``Retry-After`` taken from a tracker (seconds); a bigger one is read as this.
MAX_RETRY_AFTER = 300.0


def _retry_after(value: str | None) -> float | None:
    """A ``Retry-After`` of seconds, bounded to :data:`MAX_RETRY_AFTER`; None when absent
    or not a number of seconds (an HTTP date is not waited for: the backoff applies)."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    if seconds != seconds or seconds < 0:  # NaN or negative
        return None
    return min(seconds, MAX_RETRY_AFTER)


def _said(answer: httpx.Response) -> str:
    """What the tracker said: its error envelope's message, else the start of the body."""
    try:
        body = answer.json()
    except ValueError:
        return answer.text[:200].strip() or answer.reason_phrase
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])[:500]
        detail = body.get("detail")
        if isinstance(detail, str):
            return detail[:500]
    return json.dumps(body)[:200]


def _int(result: dict[str, Any], name: str) -> int:
    value = result.get(name, 0)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
