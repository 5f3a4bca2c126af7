"""The public face of capture: configure once, then capture from anywhere.

::

    from errorkit.capturing import capture, configure

    configure(store_url="sqlite:///errors.db", service="billing")
    try:
        charge(order)
    except Exception as exc:
        error_id = capture(exc, endpoint="/charge", request_payload=body)

``capture`` returns at once and never raises. Before :func:`configure` it only names the
occurrence (and counts it as dropped, reason ``not_configured``), so libraries and tests that
never configure errorkit never create a file.
"""

from __future__ import annotations

import atexit
import inspect
import os
import signal
import sys
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import fields
from typing import TYPE_CHECKING, Any

from errorkit import _guard, _reporting, hooks
from errorkit._guard import guard
from errorkit._state import state_of
from errorkit.classification import classify
from errorkit.config import Settings, update_settings
from errorkit.errors import AppError, ErrorType, error_id_of
from errorkit.errors import _new_error_id as _new_id
from errorkit.scrubbing import Scrubber, default_scrubber, set_default_scrubber

from .event import normalize_severity
from .pipeline import BatchWriter, CaptureStats, Listener, Pipeline
from .request_counts import default_request_counter
from .spool import Spool, default_spool_dir

if TYPE_CHECKING:
    from errorkit.runtime import Runtime

__all__ = [
    "EXIT_FLUSH_TIMEOUT",
    "add_listener",
    "capture",
    "capture_message",
    "configure",
    "current_store",
    "flush",
    "is_configured",
    "remove_listener",
    "shutdown",
    "stats",
]

#: How long interpreter exit waits for the writer to store what is left (then: spool).
EXIT_FLUSH_TIMEOUT = 10.0

_pipeline: Pipeline | None = None
_disabled = False  # configure(enabled=False) was called
_given_store: BatchWriter | None = None  # configure(store=...): shown by the runtime's repr
_early_drops: Counter[str] = Counter()
_lock = threading.RLock()
_atexit_registered = False


def _drop_early(reason: str) -> None:
    # Counter increments are not atomic across threads; this path is only statistics.
    _early_drops[reason] += 1


# --- configuration ---------------------------------------------------------------------------


#: configure()'s keywords that name a setting differently (the rest are the settings' names).
SETTING_OF = {"enabled": "capture_enabled"}


def configure(
    store_url: str | None = None,
    *,
    service: str | None = None,
    environment: str | None = None,
    release: str | None = None,
    capture_4xx: bool | None = None,
    enabled: bool | None = None,
    queue_size: int | None = None,
    batch_size: int | None = None,
    flush_interval: float | None = None,
    max_payload_bytes: int | None = None,
    spool_dir: str | os.PathLike[str] | None = None,
    spool_max_bytes: int | None = None,
    flood_per_minute: int | None = None,
    slim_per_minute: int | None = None,
    scrubber: Scrubber | None = None,
    store: BatchWriter | None = None,
) -> Runtime:
    """Start capturing into the store at ``store_url`` (or into ``store``, any object with
    ``write_batch``). Arguments left out keep their value from the environment
    (``ERRORKIT_*``) or the defaults. Calling it again flushes and replaces the pipeline.

    Raises :class:`~errorkit.config.ConfigError` or
    :class:`~errorkit.store.InvalidStoreURL` for a value it cannot use; it does not connect
    (the writer does, so an app starts even while its store is down).

    Returns the :class:`~errorkit.runtime.Runtime` (its ``settings`` are the ones in force
    now)."""
    given = dict(locals())
    given.pop("scrubber")
    given.pop("store")
    overrides: dict[str, Any] = {
        SETTING_OF.get(name, name): value for name, value in given.items() if value is not None
    }
    if "spool_dir" in overrides:
        overrides["spool_dir"] = os.fspath(overrides["spool_dir"])
    if store is not None and not callable(getattr(store, "write_batch", None)):
        message = (
            f"configure(store=...) needs an object with write_batch(records, deltas), such "
            f"as errorkit.store.ErrorStore; got {type(store).__name__}"
        )
        raise TypeError(message)
    settings = update_settings(**overrides)
    _check_store_url(settings.store_url)  # a bad URL fails here, with the accepted forms
    if scrubber is not None:
        set_default_scrubber(scrubber)
    elif settings.scrub_keys or settings.scrub_patterns:
        set_default_scrubber(
            Scrubber(extra_keys=settings.scrub_keys, extra_patterns=settings.scrub_patterns)
        )
    global _disabled, _given_store
    pipeline = None
    if settings.capture_enabled:
        pipeline = _build(settings, store)
    _disabled = not settings.capture_enabled
    _given_store = store
    _install(pipeline)
    from errorkit.runtime import current_runtime

    return current_runtime()


def _check_store_url(url: str) -> None:
    """A database URL, or a tracker's (``http(s)://<key>@host:port/<project_id>``, which
    needs the ``http`` extra); raises InvalidStoreURL or MissingExtraError."""
    from errorkit.store.http import is_tracker_url

    if is_tracker_url(url):
        from errorkit._extras import require
        from errorkit.store.http import parse_tracker_url

        parse_tracker_url(url)
        require("httpx", extra="http", feature="an http(s):// store_url")
        return
    from errorkit.store.engine import normalize_url

    normalize_url(url)


def _open_store(url: str) -> BatchWriter:
    """The writer of ``url``: a tracker's :class:`~errorkit.store.http.HttpStore` or a
    database's :class:`~errorkit.store.ErrorStore` (neither connects yet)."""
    from errorkit.store.http import HttpStore, is_tracker_url

    if is_tracker_url(url):
        return HttpStore(url)
    from errorkit.store.repository import ErrorStore

    return ErrorStore(url)


#: The settings the pipeline takes, by the name of its parameter.
_PIPELINE_SETTINGS = frozenset(inspect.signature(Pipeline).parameters) & {
    f.name for f in fields(Settings)
}


def _build(settings: Settings, store: BatchWriter | None) -> Pipeline:
    # A store passed in spools beside itself (its URL), not beside the default URL.
    where = getattr(store, "url", None) if store is not None else None
    directory = settings.spool_dir or default_spool_dir(
        where if isinstance(where, str) else settings.store_url
    )
    spool = Spool(directory, settings.spool_max_bytes)
    url = settings.store_url

    def open_store() -> BatchWriter:
        return _open_store(url)

    pipeline = Pipeline(
        store,
        store_factory=None if store is not None else open_store,
        scrubber=default_scrubber(),
        spool=spool,
        requests=default_request_counter(),
        **{name: getattr(settings, name) for name in _PIPELINE_SETTINGS},
    )
    # One listener that hands each summary to the "capture" hooks of the moment.
    pipeline.add_listener(hooks._channel("capture").emit)
    return pipeline


def _install(pipeline: Pipeline | None) -> None:
    """Make ``pipeline`` the process's pipeline (flushing and stopping the previous one)."""
    global _pipeline, _atexit_registered
    with _lock:
        previous, _pipeline = _pipeline, pipeline
        if pipeline is not None:
            _reporting.set_reporter(_report)
            if not _atexit_registered:
                atexit.register(_at_exit)
                _atexit_registered = True
                _handle_sigterm()
        elif _reporting.get_reporter() is _report:
            _reporting.set_reporter(None)
    if previous is not None and previous is not pipeline:
        previous.shutdown(EXIT_FLUSH_TIMEOUT)


def _swap(pipeline: Pipeline | None) -> Pipeline | None:
    """Replace the pipeline without stopping the old one (the testing helpers use this)."""
    global _pipeline
    with _lock:
        previous, _pipeline = _pipeline, pipeline
        if pipeline is not None:
            _reporting.set_reporter(_report)
        elif _reporting.get_reporter() is _report:
            _reporting.set_reporter(None)
    return previous


def is_configured() -> bool:
    """Whether :func:`configure` installed a pipeline (and capture is enabled)."""
    return _pipeline is not None


# --- capturing -------------------------------------------------------------------------------


def capture(
    exc: BaseException | None = None,
    /,
    *,
    fingerprint: str | Sequence[Any] | None = None,
    **context: Any,
) -> str:
    """Capture ``exc`` (default: the exception being handled) and return its error id.

    Returns at once and never raises. ``context`` fields with a column of their own:
    ``error_type, code, status, severity, endpoint, method, user_agent, request_id,
    session_id, correlation_id, trace_id, user_id, request_payload, response_payload``;
    ``headers``, ``tags`` and ``extra`` go to the event's data, scrubbed, as does any other
    keyword. ``fingerprint`` (a string or a list, where ``"{{ default }}"`` stands for the
    default) overrides grouping. The same exception object is captured once; capturing it
    again fills the fields the first capture left empty while its event waits to be
    written."""
    if exc is None:
        exc = sys.exception()
        if exc is None:
            _drop_early("no_exception")
            return _new_id()
    try:
        error_id = error_id_of(exc)
    except Exception:  # noqa: BLE001 - not an exception object: still answer with an id
        _drop_early("not_an_exception")
        return _new_id()
    # Metrics and tracing see a captured error as they see a reported one, store or not.
    _reporting.notify_observers(exc, error_id, context)
    pipeline = _pipeline
    if pipeline is None:
        _drop_early("disabled" if _disabled else "not_configured")
        return error_id
    # The guard, written out: this is the hot path and a context manager costs a microsecond.
    try:
        state = state_of(exc)
        if state.captured:
            pipeline.amend(error_id, context)  # fills what the first capture left empty
            return error_id
        state.captured = True
        pipeline.submit(error_id, exc, context, fingerprint=fingerprint)
    except Exception as internal:
        _guard.report_internal_error("capture", internal)
        if _guard._strict:  # the test suite wants errorkit's own bugs to fail tests
            raise
    return error_id


def capture_message(
    message: str,
    level: str = "error",
    *,
    fingerprint: str | Sequence[Any] | None = None,
    **context: Any,
) -> str:
    """Capture a message without an exception (``level``: debug ... critical); returns its
    error id. Messages group by their text with values (numbers, ids) replaced."""
    error_id = _new_id()
    pipeline = _pipeline
    if pipeline is None:
        _drop_early("disabled" if _disabled else "not_configured")
        return error_id
    with guard("capture_message"):
        text = message if isinstance(message, str) else str(message)
        template = context.pop("template", None)
        pipeline.submit(
            error_id,
            None,
            context,
            message=text,
            level=normalize_severity(level, "error"),
            template=template if isinstance(template, str) else None,
            fingerprint=fingerprint,
        )
    return error_id


class _Reporter:
    """The reporter behind :func:`errorkit._reporting.report`: the capture policy.

    Every 5xx is captured; 4xx only with ``capture_4xx``; validation errors then as
    warnings. Reports without a status (jobs, health checks, retries that gave up) use the
    exception's own classification. A later report of the same exception (the HTTP layer's,
    after a retry gave up) fills the fields its event still lacks (:meth:`amend`)."""

    def __call__(self, exc: BaseException, *, error_id: str, **context: Any) -> None:
        _capture_report(exc, error_id, context)

    def amend(self, exc: BaseException, *, error_id: str, **context: Any) -> None:
        pipeline = _pipeline
        if pipeline is not None:
            pipeline.amend(error_id, context)


_report = _Reporter()


def _capture_report(exc: BaseException, error_id: str, context: dict[str, Any]) -> None:
    pipeline = _pipeline
    if pipeline is None:
        return
    state = state_of(exc)
    if state.captured:
        pipeline.amend(error_id, context)
        return
    status = context.get("status")
    if not isinstance(status, int) or isinstance(status, bool):
        status = exc.status if isinstance(exc, AppError) else classify(exc).status
    if status < 500:
        from errorkit.config import get_settings

        if not get_settings().capture_4xx:
            return
        error_type = context.get("error_type") or (
            exc.error_type if isinstance(exc, AppError) else classify(exc).error_type
        )
        if error_type == ErrorType.VALIDATION:
            context["severity"] = "warning"
    context.setdefault("status", status)
    state.captured = True
    pipeline.submit(error_id, exc, context)


# --- control ---------------------------------------------------------------------------------


def flush(timeout: float | None = 5.0) -> bool:
    """Store everything captured so far: the queue, the pending counts and a replay of the
    spool. True when all of it is in the store; False on timeout or while the store is down
    (then it waits in the spool). Safe to call from framework shutdown hooks."""
    pipeline = _pipeline
    if pipeline is None:
        return True
    with guard("flush"):
        return pipeline.flush(timeout)
    return False


def shutdown(timeout: float | None = 5.0) -> bool:
    """Flush, stop the writer and uninstall the pipeline (capture becomes a no-op)."""
    global _pipeline, _disabled, _given_store
    with _lock:
        pipeline, _pipeline = _pipeline, None
        _disabled = False
        _given_store = None
        if _reporting.get_reporter() is _report:
            _reporting.set_reporter(None)
    if pipeline is None:
        return True
    with guard("shutdown"):
        return pipeline.shutdown(timeout)
    return False


def _reset(timeout: float | None) -> None:
    """Shut down and forget the counts of drops before configure() (the listeners are
    hooks: ``errorkit.hooks.clear()`` forgets them)."""
    shutdown(timeout)
    with _lock:
        _early_drops.clear()


def _at_exit() -> None:
    pipeline = _pipeline
    if pipeline is not None:
        with guard("atexit"):
            pipeline.shutdown(EXIT_FLUSH_TIMEOUT)


def _handle_sigterm() -> None:
    """Flush (or spool) on SIGTERM as at a normal exit, then let the signal do what it did
    before: call the handler the app or server installed, or, with none, end the process by
    the signal as the default action would. A process that ignores SIGTERM keeps ignoring it;
    outside the main thread no handler can be installed and the exit flush alone remains."""
    if not hasattr(signal, "SIGTERM") or threading.current_thread() is not threading.main_thread():
        return
    with guard("capture.sigterm_install"):
        previous = signal.getsignal(signal.SIGTERM)
        if previous == signal.SIG_IGN:
            return

        def on_sigterm(signum: int, frame: Any) -> None:
            _flush_for_signal()
            if callable(previous):
                previous(signum, frame)
                return
            # The default action: end the process by the signal, exit status unchanged.
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.raise_signal(signal.SIGTERM)

        signal.signal(signal.SIGTERM, on_sigterm)


def _flush_for_signal() -> None:
    """Shut the pipeline down from a signal handler. It runs on a helper thread: the main
    thread may have been interrupted while holding a lock the flush needs, and the wait is
    bounded either way."""
    pipeline = _pipeline
    if pipeline is None:
        return

    def stop() -> None:
        with guard("capture.sigterm"):
            pipeline.shutdown(EXIT_FLUSH_TIMEOUT)

    helper = threading.Thread(target=stop, name="errorkit-sigterm-flush", daemon=True)
    helper.start()
    helper.join(EXIT_FLUSH_TIMEOUT + 2.0)


def _after_fork_in_child() -> None:
    pipeline = _pipeline
    if pipeline is not None:
        pipeline.after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def current_store() -> Any:
    """The store the pipeline writes to (an ``errorkit.store.ErrorStore`` unless another
    was configured), or None before :func:`configure`."""
    pipeline = _pipeline
    return None if pipeline is None else pipeline.store


def stats() -> CaptureStats:
    """Queue depth, dropped samples by reason, spool size, events written, internal errors."""
    pipeline = _pipeline
    if pipeline is None:
        from errorkit._guard import internal_error_counts

        return CaptureStats(
            configured=False,
            dropped=dict(_early_drops),
            internal_errors=internal_error_counts(),
        )
    current = pipeline.stats()
    if _early_drops:
        dropped = Counter(current.dropped)
        dropped.update(_early_drops)
        from dataclasses import replace

        current = replace(current, dropped=dict(dropped))
    return current


def add_listener(listener: Listener) -> None:
    """Call ``listener(summary)`` on the writer's thread for every stored event and every
    count of sampled-out occurrences (for metrics such as ``errorkit_errors_total``), in
    this pipeline and every later one: ``errorkit.hooks.add("capture", listener)``."""
    hooks.add("capture", listener)


def remove_listener(listener: Listener) -> None:
    """Stop calling ``listener``: ``errorkit.hooks.remove("capture", listener)``."""
    hooks.remove("capture", listener)
