"""What ``errorkit serve --workers N`` runs once its checks are done (on Linux).

A small supervisor starts N worker processes, restarts one that dies and stops them all
on SIGINT/SIGTERM (each finishes what it holds: uvicorn's graceful shutdown, the ingest's
queued events). Each worker listens on a socket of its own, bound with ``SO_REUSEPORT``,
so the kernel spreads new connections over the workers. With one shared socket (uvicorn's
``--workers``) the worker that wakes first accepts every connection that arrives at once:
eight keep-alive clients connecting together all landed on one worker of two, and the
other stayed idle for the whole run.

The supervisor keeps a socket bound to the address without listening on it: that holds the
port (nothing else can take it while a worker restarts), and the kernel only hands
connections to listening sockets. It imports nothing of the tracker, so it costs little
memory; each worker builds the app from ``app`` (a ``module:factory`` path), as
``uvicorn --factory`` does.

    python -m errorkit._workers HOST PORT WORKERS module:factory
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time

__all__ = ["listener", "main"]

#: A worker that stops sooner than this after its start failed to start.
STARTUP_SECONDS = 10.0
#: Failed starts in a row after which the supervisor gives up (the cause is not passing).
MAX_FAILED_STARTS = 5
#: How long the workers have to finish once told to stop.
STOP_SECONDS = 30.0


def listener(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``(host, port)`` with ``SO_REUSEPORT`` (not listening yet)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def _die_with(parent: int) -> None:
    """Have the kernel send this process SIGTERM when ``parent`` dies (even of SIGKILL), so
    no worker outlives its supervisor holding the port; Linux only."""
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
    if os.getppid() != parent:  # it died before the request was made
        os.kill(os.getpid(), signal.SIGTERM)


def serve_one(host: str, port: int, app: str, parent: int) -> None:
    """One worker of supervisor ``parent``: its own listening socket, the app made by the
    factory ``app``."""
    import uvicorn

    if sys.platform == "linux":
        _die_with(parent)
    own = listener(host, port)
    config = uvicorn.Config(app, factory=True, log_config=None)
    uvicorn.Server(config).run(sockets=[own])


def _say(text: str) -> None:
    sys.stderr.write(f"errorkit serve: {text}\n")
    sys.stderr.flush()


class _Supervisor:
    def __init__(self, host: str, port: int, workers: int, app: str) -> None:
        self.command = [sys.executable, "-m", "errorkit._workers", "--one", host, str(port), app]
        self.command.append(str(os.getpid()))
        self.workers = workers
        self.stopping = threading.Event()
        self.processes: list[tuple[subprocess.Popen[bytes], float]] = []
        self.failed_starts = 0

    def start(self) -> tuple[subprocess.Popen[bytes], float]:
        return subprocess.Popen(self.command), time.monotonic()  # noqa: S603 - our own module

    def run(self) -> int:
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: self.stopping.set())
        self.processes = [self.start() for _ in range(self.workers)]
        while not self.stopping.wait(0.2):
            for index, (process, started) in enumerate(self.processes):
                code = process.poll()
                if code is None:
                    continue
                quick = time.monotonic() - started < STARTUP_SECONDS
                self.failed_starts = self.failed_starts + 1 if quick else 0
                _say(f"worker {process.pid} stopped (exit code {code}); starting another")
                if self.failed_starts >= MAX_FAILED_STARTS:
                    _say(
                        f"{self.failed_starts} workers in a row stopped while starting; "
                        "giving up (see their errors above)"
                    )
                    self.stop()
                    return 1
                if quick:
                    time.sleep(min(5.0, 0.5 * 2**self.failed_starts))
                self.processes[index] = self.start()
        self.stop()
        return 0

    def stop(self) -> None:
        for process, _ in self.processes:
            if process.poll() is None:
                process.terminate()
        deadline = time.monotonic() + STOP_SECONDS
        for process, _ in self.processes:
            try:
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def main(host: str, port: int, workers: int, app: str) -> int:
    """Run ``workers`` processes serving ``app`` on ``host:port`` until told to stop;
    the exit code."""
    held = listener(host, port)
    try:
        return _Supervisor(host, port, workers, app).run()
    finally:
        held.close()


if __name__ == "__main__":
    if sys.argv[1] == "--one":
        serve_one(sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5]))
    else:
        sys.exit(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]))
