"""Capturing errors in background jobs and scripts.

::

    from errorkit.capturing import capture_errors

    @capture_errors(job="nightly-report")
    def nightly_report() -> None: ...

    async def worker():
        async with capture_errors(job="queue-consumer", reraise=False):
            await consume()

    with capture_errors(job="migrate"):   # in a script
        migrate()

Errors (``Exception`` subclasses) are captured with the job's name as a tag, then re-raised
unchanged unless ``reraise=False``. ``KeyboardInterrupt``, ``SystemExit`` and task
cancellation pass through untouched: they are not errors.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, Literal, ParamSpec, TypeVar, cast, overload

from errorkit._guard import guard

from . import api

__all__ = ["JobGuard", "SuppressingJobGuard", "capture_errors"]

P = ParamSpec("P")
R = TypeVar("R")


class JobGuard:
    """Captures an error raised inside it; a decorator and a (sync or async) context
    manager. Build one with :func:`capture_errors`."""

    def __init__(
        self, job: str | None, *, reraise: bool, flush: bool, context: dict[str, Any]
    ) -> None:
        self.job = job
        self.reraise = reraise
        self.flush = flush
        self.context = context
        self.error_id: str | None = None

    def _capture(self, exc: BaseException, job: str | None) -> str:
        fields = dict(self.context)
        tags = dict(fields.pop("tags", None) or {})
        if job:
            tags.setdefault("job", job)
        error_id = api.capture(exc, mechanism="job", tags=tags, **fields)
        if self.flush:
            with guard("job_flush"):
                api.flush()
        return error_id

    # -- context manager ------------------------------------------------------------------

    def __enter__(self) -> JobGuard:
        self.error_id = None
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        if exc is None or not isinstance(exc, Exception):
            return False
        self.error_id = self._capture(exc, self.job)
        return not self.reraise

    async def __aenter__(self) -> JobGuard:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        return self.__exit__(exc_type, exc, tb)

    # -- decorator ------------------------------------------------------------------------

    def __call__(self, func: Callable[P, R]) -> Callable[P, R]:
        return cast("Callable[P, R]", self._wrap(func))

    def _wrap(self, func: Callable[..., Any]) -> Callable[..., Any]:
        job = self.job or getattr(func, "__qualname__", None) or repr(func)

        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                try:
                    return await cast("Callable[..., Awaitable[Any]]", func)(*args, **kwargs)
                except Exception as exc:
                    self._capture(exc, job)
                    if self.reraise:
                        raise
                    return None

            return async_wrapper

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return func(*args, **kwargs)
            except Exception as exc:
                self._capture(exc, job)
                if self.reraise:
                    raise
                return None

        return wrapper


class SuppressingJobGuard(JobGuard):
    """A :class:`JobGuard` with ``reraise=False``: a failed call returns None."""

    def __call__(self, func: Callable[P, R]) -> Callable[P, R | None]:  # type: ignore[override]
        return cast("Callable[P, R | None]", self._wrap(func))


@overload
def capture_errors(func: Callable[P, R], /) -> Callable[P, R]: ...


@overload
def capture_errors(
    *,
    job: str | None = None,
    reraise: Literal[True] = True,
    flush: bool = False,
    **context: Any,
) -> JobGuard: ...


@overload
def capture_errors(
    *,
    job: str | None = None,
    reraise: Literal[False],
    flush: bool = False,
    **context: Any,
) -> SuppressingJobGuard: ...


def capture_errors(
    func: Callable[..., Any] | None = None,
    /,
    *,
    job: str | None = None,
    reraise: bool = True,
    flush: bool = False,
    **context: Any,
) -> Any:
    """Capture errors of a job: ``@capture_errors``, ``@capture_errors(job=...)``,
    ``with capture_errors(...)`` or ``async with capture_errors(...)``.

    ``job`` names it (default: the function's name) as the ``job`` tag; ``reraise=False``
    swallows the error after capturing it (a decorated function then returns None);
    ``flush=True`` stores the event before going on (for short scripts); other keywords
    are context fields, as for :func:`errorkit.capturing.capture`."""
    if func is not None:
        if not callable(func):
            message = (
                f"capture_errors() takes a function to decorate or keywords only, not {func!r}"
            )
            raise TypeError(message)
        return JobGuard(job, reraise=reraise, flush=flush, context=context)(func)
    cls = JobGuard if reraise else SuppressingJobGuard
    return cls(job, reraise=reraise, flush=flush, context=context)
