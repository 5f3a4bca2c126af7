"""The export route streams: text reaches the client while the store is still writing, and
a client that goes away stops the export instead of leaving it running."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from errorkit.server.app import _EXPORT_CHUNK, _stream_export


class SlowStore:
    """An export that writes one chunk, then waits to be told to go on."""

    def __init__(self) -> None:
        self.go_on = threading.Event()
        self.finished = threading.Event()
        self.stopped = threading.Event()
        self.waited: bool | None = None

    def export(self, out: Any, **_: Any) -> int:
        try:
            out.write("a" * _EXPORT_CHUNK)
            self.waited = self.go_on.wait(timeout=10)
            for _n in range(20):
                out.write("b" * _EXPORT_CHUNK)
            self.finished.set()
        except BaseException:
            self.stopped.set()
            raise
        return 1


def test_first_chunk_arrives_before_the_export_ends() -> None:
    store = SlowStore()
    stream = _stream_export(store, "jsonl", {})  # type: ignore[arg-type]
    first = next(stream)
    assert first == "a" * _EXPORT_CHUNK
    assert not store.finished.is_set()  # the rest is not written yet
    store.go_on.set()
    rest = "".join(stream)
    assert store.waited is True
    assert rest == "b" * _EXPORT_CHUNK * 20


def test_closing_the_stream_stops_the_export() -> None:
    store = SlowStore()
    stream = _stream_export(store, "jsonl", {})  # type: ignore[arg-type]
    next(stream)
    stream.close()  # what the server does when the client disconnects
    store.go_on.set()
    assert store.stopped.wait(timeout=10)
    assert not store.finished.is_set()


def test_an_export_failure_reaches_the_reader() -> None:
    class Broken:
        def export(self, out: Any, **_: Any) -> int:
            raise RuntimeError("disk on fire")

    stream = _stream_export(Broken(), "csv", {})  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="disk on fire"):
        next(stream)
