"""Uncaught exceptions: the ones that end a script or a thread without anyone handling them.

``configure()`` (with ``capture_uncaught``, on by default) chains errorkit in front of
:data:`sys.excepthook` and :data:`threading.excepthook`. Each hook captures the exception
(``severity="critical"``, ``tags={"mechanism": ...}``, ``handled=False``) and then calls the
hook that was installed before, so Python still prints the traceback, and an app's own hook
still runs. ``KeyboardInterrupt`` and ``SystemExit`` are not errors and are passed through.

The capture only queues the event; the exit flush (``atexit``, SIGTERM) writes it. A hook
installed by the app *after* ``configure()`` replaces errorkit's, as it would replace
Python's; uninstalling puts back what was there only if errorkit's hook is still the one in
force, so a later hook is never undone.
"""

from __future__ import annotations

import sys
import threading
from types import TracebackType
from typing import Any

from errorkit._guard import guard

__all__ = ["install", "installed", "uninstall"]

_PASS_THROUGH = (KeyboardInterrupt, SystemExit)

_lock = threading.Lock()
_previous_sys: Any = None
_previous_thread: Any = None


def _capture(exc: BaseException, mechanism: str, **context: Any) -> None:
    if isinstance(exc, _PASS_THROUGH):
        return
    from errorkit.capturing.api import capture

    with guard("capture.uncaught"):
        capture(exc, severity="critical", tags={"mechanism": mechanism}, handled=False, **context)


def _sys_hook(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
    _capture(exc, "excepthook")
    previous = _previous_sys or sys.__excepthook__
    previous(exc_type, exc, tb)


def _thread_hook(args: threading.ExceptHookArgs) -> None:
    if args.exc_value is not None:
        thread = args.thread
        _capture(args.exc_value, "threading", thread=thread.name if thread else None)
    previous = _previous_thread or threading.__excepthook__
    previous(args)


def install() -> None:
    """Chain errorkit in front of ``sys.excepthook`` and ``threading.excepthook`` (once)."""
    global _previous_sys, _previous_thread
    with _lock:
        if sys.excepthook is not _sys_hook:
            _previous_sys = sys.excepthook
            sys.excepthook = _sys_hook
        if threading.excepthook is not _thread_hook:
            _previous_thread = threading.excepthook
            threading.excepthook = _thread_hook


def uninstall() -> None:
    """Put back the hooks errorkit found, where errorkit's are still the ones in force."""
    global _previous_sys, _previous_thread
    with _lock:
        if sys.excepthook is _sys_hook:
            sys.excepthook = _previous_sys or sys.__excepthook__
        if threading.excepthook is _thread_hook:
            threading.excepthook = _previous_thread or threading.__excepthook__
        _previous_sys = _previous_thread = None


def installed() -> bool:
    """Whether errorkit's hooks are the ones in force."""
    return sys.excepthook is _sys_hook and threading.excepthook is _thread_hook
