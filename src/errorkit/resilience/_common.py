"""Small pieces every recovery tool shares: which errors a tool acts on, names, summaries."""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeAlias, TypeVar, cast

from errorkit.classification import Classification, classify
from errorkit.errors import cause_chain
from errorkit.scrubbing import default_scrubber

ErrorTypes: TypeAlias = type[BaseException] | tuple[type[BaseException], ...]
ErrorPredicate: TypeAlias = Callable[[BaseException], bool]
ErrorFilter: TypeAlias = ErrorTypes | ErrorPredicate

_MESSAGE_LIMIT = 300


def is_error_types(value: object) -> bool:
    if isinstance(value, type):
        return issubclass(value, BaseException)
    return (
        isinstance(value, tuple)
        and len(value) > 0
        and all(isinstance(t, type) and issubclass(t, BaseException) for t in value)
    )


def error_matcher(
    on: ErrorFilter | None, default: ErrorPredicate, *, owner: str, argument: str = "on"
) -> ErrorPredicate:
    """A predicate from ``on=``: exception types, a callable, or None for ``default``."""
    if on is None:
        return default
    if is_error_types(on):
        types = cast("ErrorTypes", on)

        def matches(exc: BaseException) -> bool:
            return isinstance(exc, types)

        return matches
    if callable(on) and not isinstance(on, type):
        return on
    msg = (
        f"{owner}({argument}={on!r}): pass an exception class, a tuple of exception classes, or a "
        "callable(exception) -> bool"
    )
    raise TypeError(msg)


# The client errors that say "the same request may work later": timeout and rate limit.
_REPEATABLE_CLIENT_STATUSES = frozenset({408, 429})


def repeatable(c: Classification) -> bool:
    """Whether the *server* may repeat the call that failed so: the classification calls it
    retriable and it is not a client error, except 408 and 429. ``retriable=True`` on a 4xx
    (a declined card the client may try again with another) is advice for the client, shown
    in the answer; repeating the same request would fail the same way."""
    if not c.retriable:
        return False
    return not 400 <= c.status < 500 or c.status in _REPEATABLE_CLIENT_STATUSES


def server_side(exc: BaseException) -> bool:
    """Whether ``exc`` says a dependency is failing (not that the request was wrong).

    True for what the server may repeat (timeouts, 408, 429, 503, connection errors, see
    :func:`repeatable`) and for every server-side (5xx) error; False for other client
    errors (4xx), whatever their ``retriable`` says.
    """
    c = classify(exc)
    return c.status >= 500 or repeatable(c)


# Failures that prove the request never left: the connection was refused or never made,
# the name did not resolve, no pooled connection was free. Matched by class name so that
# checking them imports no client library.
_NOT_SENT: frozenset[tuple[str, str]] = frozenset(
    {
        ("builtins", "ConnectionRefusedError"),
        ("socket", "gaierror"),
        ("httpx", "ConnectError"),
        ("httpx", "ConnectTimeout"),
        ("httpx", "PoolTimeout"),
        ("requests.exceptions", "ConnectTimeout"),
        ("urllib3.exceptions", "NewConnectionError"),
        ("urllib3.exceptions", "NameResolutionError"),
        ("urllib3.exceptions", "ConnectTimeoutError"),
        ("aiohttp", "ClientConnectorError"),
    }
)


def never_sent(exc: BaseException) -> bool:
    """Whether ``exc`` (or one of its causes) proves the request was never sent, so that
    even a non-idempotent call (a charge, an e-mail) can be repeated safely."""
    for error in cause_chain(exc):
        for klass in type(error).__mro__:
            module = klass.__module__
            top = module.split(".", 1)[0]
            if (module, klass.__qualname__) in _NOT_SENT or (top, klass.__qualname__) in _NOT_SENT:
                return True
    return False


def operation_name(fn: Callable[..., Any]) -> str:
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None)
    if isinstance(name, str):
        module = getattr(fn, "__module__", None)
        return f"{module}.{name}" if isinstance(module, str) else name
    return type(fn).__name__


def safe_message(exc: BaseException) -> str:
    """``str(exc)`` scrubbed of secrets, on one line, at most a few hundred characters."""
    try:
        text = str(exc)
    except Exception:  # noqa: BLE001 - a broken __str__ must not break error handling
        text = f"<unprintable {type(exc).__name__}>"
    text = default_scrubber().scrub_text(text, single_line=True)
    if len(text) > _MESSAGE_LIMIT:
        text = text[:_MESSAGE_LIMIT] + "..."
    return text


def is_async_callable(fn: object) -> bool:
    """Whether calling ``fn`` returns a coroutine (async def, a partial of one, or an object
    whose ``__call__`` is async)."""
    if inspect.iscoroutinefunction(fn):
        return True
    if inspect.isfunction(fn) or inspect.ismethod(fn) or not callable(fn):
        return False
    return inspect.iscoroutinefunction(type(fn).__call__)


def reject_generators(fn: Callable[..., Any], owner: str) -> None:
    if inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn):
        msg = (
            f"{owner} cannot wrap the generator function {operation_name(fn)}: its body runs "
            "only while it is iterated. Wrap the function that consumes it instead."
        )
        raise TypeError(msg)


def check_seconds(owner: str, name: str, value: object, *, allow_zero: bool = True) -> float:
    """``value`` as seconds (a number or a timedelta), or a TypeError/ValueError saying why."""
    from datetime import timedelta

    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, int | float):
        msg = f"{owner}({name}={value!r}): pass seconds as a number or a timedelta"
        raise TypeError(msg)
    seconds = float(value)
    if not math.isfinite(seconds) or seconds < 0 or (seconds == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        msg = f"{owner}({name}={value!r}): must be a finite number of seconds {bound}"
        raise ValueError(msg)
    return seconds


def check_count(owner: str, name: str, value: object, *, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        msg = f"{owner}({name}={value!r}): must be a whole number >= {minimum}"
        raise ValueError(msg)
    return value


_P = ParamSpec("_P")
_T = TypeVar("_T")


def wrap_calls(
    fn: Callable[_P, _T],
    call: Callable[..., Any],
    call_async: Callable[..., Awaitable[Any]],
    owner: str,
) -> Callable[_P, _T]:
    """Decorate ``fn`` so each call goes through ``call`` (sync) or ``call_async`` (async),
    keeping its name and signature; generators are refused (they would escape the guard)."""
    reject_generators(fn, owner)
    if is_async_callable(fn):

        @functools.wraps(fn)
        async def async_wrapper(*args: _P.args, **kwargs: _P.kwargs) -> Any:
            return await call_async(fn, *args, **kwargs)

        return cast("Callable[_P, _T]", async_wrapper)

    @functools.wraps(fn)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> Any:
        return call(fn, *args, **kwargs)

    return cast("Callable[_P, _T]", wrapper)
