"""The local spool: where batches wait while the store is down.

A spool is a directory of JSON-lines files, one line per batch (``{"v": 1, "records": [...],
"deltas": [...]}``, the form :mod:`errorkit.store.wire` writes), written with one ``fsync``
per batch, never per event. Each process appends to its own ``active-<pid>-<token>.jsonl``;
a file is *sealed* (renamed to ``sealed-...``) when it grows large, when its process
replays, and when it closes. Replaying *claims* a file by renaming it (atomic, so two
processes never replay the same file), writes its batches to the store and deletes it.
Writes are idempotent by ``error_id`` and ``delta_id``, so a replay interrupted half-way is
simply replayed again.

The spool is bounded by ``max_bytes`` over all its files; :meth:`Spool.append` raises
:class:`SpoolFull` instead of growing past it.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

from errorkit.store.records import CountDelta, ErrorRecord
from errorkit.store.wire import decode_batch, encode_batch

__all__ = [
    "ReplayResult",
    "Spool",
    "SpoolFull",
    "SpoolStatus",
    "decode_batch",
    "default_spool_dir",
    "encode_batch",
]

#: An active file is sealed once it is this large (or an eighth of the spool's cap).
SEAL_BYTES = 8 * 1024 * 1024
_NAME = re.compile(r"^(active|sealed|claimed)-(.+)\.jsonl$")


# One token per process (renewed in a forked child): a file named with our pid but another
# token was left by an earlier process that had the same pid (containers reuse pids).
_process = {"pid": os.getpid(), "token": uuid.uuid4().hex[:12]}
_instances = itertools.count(1)


def _process_token() -> str:
    if _process["pid"] != os.getpid():
        _process["pid"] = os.getpid()
        _process["token"] = uuid.uuid4().hex[:12]
    return str(_process["token"])


class SpoolFull(Exception):
    """Appending would grow the spool past its ``max_bytes``."""


@dataclass(frozen=True, slots=True)
class SpoolStatus:
    """What a spool holds. ``records`` and ``deltas`` are None unless counted."""

    directory: str
    files: int
    bytes: int
    max_bytes: int
    batches: int | None = None
    records: int | None = None
    deltas: int | None = None
    corrupt_lines: int | None = None
    oldest: datetime | None = None


@dataclass(frozen=True, slots=True)
class ReplayResult:
    """What one replay did; ``error`` is set when the store failed part-way."""

    files: int = 0
    batches: int = 0
    records: int = 0
    deltas: int = 0
    corrupt_lines: int = 0
    error: BaseException | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


# --- locations -------------------------------------------------------------------------------


def default_spool_dir(store_url: str) -> Path:
    """Where the spool of ``store_url`` lives unless ``spool_dir`` is set.

    A SQLite store spools beside its file (``errors.db`` -> ``errors.db-spool/``); any
    other store (a tracker's URL too) spools in the user's cache directory, one folder per
    store."""
    from errorkit.store.engine import describe_url, normalize_url
    from errorkit.store.http import is_tracker_url, parse_tracker_url

    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    if is_tracker_url(store_url):
        # A tracker's spool is named after its address and project, never its key.
        tracker = parse_tracker_url(store_url, key_required=False)
        digest = hashlib.sha256(tracker.endpoint.encode()).hexdigest()[:16]
        where = f"{tracker.host}-{tracker.port}-{tracker.project_id}"
        label = re.sub(r"[^A-Za-z0-9]+", "-", where).strip("-")
        return Path(base) / "errorkit" / "spool" / f"{label}-{digest}"
    url = normalize_url(store_url)
    if url.drivername == "sqlite" and url.database and not url.database.startswith("file:"):
        path = Path(url.database).expanduser().resolve()
        return path.with_name(path.name + "-spool")
    shown = describe_url(url)
    digest = hashlib.sha256(shown.encode()).hexdigest()[:16]
    label = re.sub(r"[^A-Za-z0-9]+", "-", f"{url.host or ''}-{url.database or ''}").strip("-")
    return Path(base) / "errorkit" / "spool" / f"{label or 'store'}-{digest}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


# --- the spool -------------------------------------------------------------------------------


class Spool:
    """A size-capped, append-only spool directory (created on first append)."""

    def __init__(self, directory: str | os.PathLike[str], max_bytes: int) -> None:
        if max_bytes < 1:
            message = f"Spool(max_bytes={max_bytes!r}): must be a whole number of bytes >= 1"
            raise ValueError(message)
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._token = _process_token()
        self._instance = next(_instances)
        self._file: BinaryIO | None = None
        self._active: Path | None = None
        self._active_bytes = 0

    def __repr__(self) -> str:
        return f"Spool({str(self.directory)!r}, max_bytes={self.max_bytes})"

    # -- files ----------------------------------------------------------------------------

    def _files(self) -> list[tuple[Path, int]]:
        try:
            entries = list(os.scandir(self.directory))
        except FileNotFoundError:
            return []
        out = []
        for entry in entries:
            if _NAME.match(entry.name):
                with contextlib.suppress(FileNotFoundError):
                    out.append((Path(entry.path), entry.stat().st_size))
        return out

    def size_bytes(self) -> int:
        """Bytes held by all of the spool's files (every process's)."""
        return sum(size for _, size in self._files())

    def is_empty(self) -> bool:
        return not any(size for _, size in self._files())

    def _check_fork(self) -> None:
        if os.getpid() != self._pid:  # a forked child must not write its parent's file
            self._pid = os.getpid()
            self._token = _process_token()
            self._file = None
            self._active = None
            self._active_bytes = 0

    def _open_active(self) -> BinaryIO:
        if self._file is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            name = f"active-{self._pid}-{self._token}-{self._instance}.jsonl"
            self._active = self.directory / name
            self._file = open(self._active, "ab")  # noqa: SIM115 - kept open between batches
            self._active_bytes = self._file.tell()
            _fsync_dir(self.directory)
        return self._file

    def _sealed_name(self) -> Path:
        unique = uuid.uuid4().hex[:8]
        return self.directory / f"sealed-{time.time_ns()}-{self._pid}-{self._token}-{unique}.jsonl"

    def _seal(self) -> None:
        if self._file is None or self._active is None:
            return
        with contextlib.suppress(OSError):
            self._file.close()
        sealed = self._sealed_name()
        with contextlib.suppress(FileNotFoundError):
            if self._active_bytes:
                os.replace(self._active, sealed)
            else:
                self._active.unlink()
            _fsync_dir(self.directory)
        self._file = None
        self._active = None
        self._active_bytes = 0

    # -- writing --------------------------------------------------------------------------

    def append(self, records: Sequence[ErrorRecord], deltas: Sequence[CountDelta]) -> int:
        """Append one batch durably (one fsync); returns its size in bytes.

        Raises :class:`SpoolFull` when the spool would grow past ``max_bytes`` (nothing is
        written then) and OSError when the disk refuses."""
        line = encode_batch(records, deltas)
        with self._lock:
            self._check_fork()
            if self.size_bytes() + len(line) > self.max_bytes:
                message = (
                    f"the spool at {self.directory} holds its maximum of {self.max_bytes} "
                    "bytes; raise spool_max_bytes or bring the store back"
                )
                raise SpoolFull(message)
            handle = self._open_active()
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())
            self._active_bytes += len(line)
            if self._active_bytes >= min(SEAL_BYTES, max(self.max_bytes // 8, 1)):
                self._seal()
        return len(line)

    def close(self) -> None:
        """Seal this process's file so that any process can replay it."""
        with self._lock:
            self._check_fork()
            self._seal()

    # -- replaying ------------------------------------------------------------------------

    def _replayable(self) -> list[Path]:
        """Sealed files, and active/claimed files whose process is gone, oldest first."""
        out = []
        for path, _size in self._files():
            match = _NAME.match(path.name)
            if match is None:
                continue
            kind, rest = match.groups()
            if kind == "sealed":
                out.append(path)
                continue
            pid_text, _, remainder = rest.partition("-")
            token = remainder.split("-", 1)[0]
            try:
                pid = int(pid_text)
            except ValueError:
                continue
            if pid == self._pid:
                # Our own pid with another token was a process that ran before us.
                if token != self._token:
                    out.append(path)
            elif not _pid_alive(pid):
                out.append(path)
        return sorted(out, key=lambda p: p.stat().st_mtime if p.exists() else 0.0)

    def _claim(self, path: Path) -> Path | None:
        unique = uuid.uuid4().hex[:8]
        claimed = self.directory / f"claimed-{self._pid}-{self._token}-{unique}.jsonl"
        try:
            os.replace(path, claimed)
        except FileNotFoundError:
            return None  # another process claimed it first
        return claimed

    def replay(
        self,
        write: Callable[[list[ErrorRecord], list[CountDelta]], object],
        *,
        on_progress: Callable[[int], None] | None = None,
    ) -> ReplayResult:
        """Write every replayable batch with ``write`` (the store's ``write_batch``).

        A file is deleted once all its batches are written. When ``write`` raises, the file
        is put back (its written batches are idempotent duplicates next time) and the
        result carries the error. ``on_progress(n)`` hears the records and deltas of each
        batch written."""
        with self._lock:
            self._check_fork()
            self._seal()
            candidates = self._replayable()
        files = batches = records = deltas = corrupt = 0
        for path in candidates:
            claimed = self._claim(path)
            if claimed is None:
                continue
            try:
                for line in _lines(claimed):
                    try:
                        batch_records, batch_deltas = decode_batch(line)
                    except (ValueError, KeyError, TypeError):
                        corrupt += 1  # a line torn by a crash mid-write was never fsynced
                        continue
                    if batch_records or batch_deltas:
                        write(batch_records, batch_deltas)
                    batches += 1
                    records += len(batch_records)
                    deltas += len(batch_deltas)
                    if on_progress is not None:
                        on_progress(len(batch_records) + len(batch_deltas))
            except Exception as exc:  # noqa: BLE001 - reported in the result, file kept
                back = self._sealed_name()
                with contextlib.suppress(OSError):
                    os.replace(claimed, back)
                return ReplayResult(files, batches, records, deltas, corrupt, exc)
            with contextlib.suppress(FileNotFoundError):
                claimed.unlink()
            files += 1
        return ReplayResult(files, batches, records, deltas, corrupt)

    # -- looking --------------------------------------------------------------------------

    def status(self, *, count: bool = False) -> SpoolStatus:
        """Files and bytes; with ``count=True`` also batches, records and deltas (reads all)."""
        listed = self._files()
        total = sum(size for _, size in listed)
        if not count:
            return SpoolStatus(str(self.directory), len(listed), total, self.max_bytes)
        batches = records = deltas = corrupt = 0
        oldest: datetime | None = None
        for path, _size in listed:
            try:
                for line in _lines(path):
                    try:
                        batch_records, batch_deltas = decode_batch(line)
                    except (ValueError, KeyError, TypeError):
                        corrupt += 1
                        continue
                    batches += 1
                    records += len(batch_records)
                    deltas += len(batch_deltas)
                    for when in [r.timestamp for r in batch_records] + [
                        d.first_seen for d in batch_deltas
                    ]:
                        if oldest is None or when < oldest:
                            oldest = when
            except FileNotFoundError:
                continue
        return SpoolStatus(
            str(self.directory),
            len(listed),
            total,
            self.max_bytes,
            batches,
            records,
            deltas,
            corrupt,
            oldest,
        )


def _lines(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as handle:
        for line in handle:
            if line.strip():
                yield line


def _fsync_dir(directory: Path) -> None:
    """Make a file's creation or rename durable (POSIX); a no-op where unsupported."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
