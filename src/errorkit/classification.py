"""Turn any exception into one :class:`Classification`.

Every path an error takes (HTTP answer, capture, retry decisions, metrics) asks this module
once. Built-in mappers know errorkit's own errors, the standard library, httpx, requests,
SQLAlchemy, sqlite3, psycopg, redis, pydantic, JSON decoding, Starlette and Werkzeug. They
never import a library: an exception of a library that is not imported cannot exist, so each
mapper looks the library up in ``sys.modules``.

Add your own with :func:`register_mapper`; it wins over the built-in ones.
"""

from __future__ import annotations

import errno
import json
import sqlite3
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from http import HTTPStatus
from typing import Any

from errorkit._cache import BoundedCache
from errorkit.codes import Category, Severity, catalog
from errorkit.errors import (
    AppError,
    CacheError,
    CacheUnavailableError,
    ConflictError,
    DatabaseError,
    DatabaseUnavailableError,
    DiskFullError,
    ErrorType,
    ExternalServiceError,
    FieldError,
    NetworkError,
    NotFoundError,
    OperationTimeoutError,
    OutOfMemoryError,
    SystemPermissionError,
    SystemResourceError,
    UpstreamRateLimitedError,
    UpstreamTimeoutError,
    ValidationError,
)

__all__ = [
    "Classification",
    "Mapper",
    "classify",
    "code_for_status",
    "parse_retry_after",
    "register_mapper",
    "unregister_mapper",
]


@dataclass(frozen=True, slots=True)
class Classification:
    """What errorkit decided about one exception.

    ``message`` and ``details`` are safe to show a client: for server errors of unknown
    origin the message is generic and details are empty.
    """

    error_type: str
    code: str
    status: int
    severity: Severity
    retriable: bool
    category: Category = Category.SERVER
    message: str = "An internal error occurred."
    details: Mapping[str, Any] = field(default_factory=dict)
    retry_after: float | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    errors: tuple[FieldError, ...] = ()

    @property
    def is_server_error(self) -> bool:
        return self.status >= 500


Mapper = Callable[[BaseException], Classification | None]
"""A mapper returns a :class:`Classification`, or ``None`` to let the next one try."""

_user_mappers: list[tuple[type[BaseException] | None, Mapper]] = []
_lock = threading.Lock()

_GENERIC_5XX = "An internal error occurred."


def register_mapper(mapper: Mapper, exc_type: type[BaseException] | None = None) -> Mapper:
    """Register ``mapper`` (for ``exc_type`` and its subclasses, or for every exception when
    ``exc_type`` is None). The last registered is tried first. Usable as a decorator via
    ``functools.partial`` or directly: ``register_mapper(fn, MyError)``."""
    if not callable(mapper):
        msg = (
            "register_mapper() needs a callable(exception) -> Classification | None, "
            f"not {mapper!r}"
        )
        raise TypeError(msg)
    with _lock:
        _user_mappers.insert(0, (exc_type, mapper))
    return mapper


def unregister_mapper(mapper: Mapper) -> None:
    with _lock:
        _user_mappers[:] = [(t, m) for t, m in _user_mappers if m is not mapper]


def classify(exc: BaseException) -> Classification:
    """Classify ``exc``. Never raises: a failing mapper is skipped."""
    if _user_mappers:
        for exc_type, mapper in tuple(_user_mappers):
            if exc_type is not None and not isinstance(exc, exc_type):
                continue
            try:
                result = mapper(exc)
            except Exception:  # noqa: BLE001 - a broken user mapper must not break error handling
                result = None
            if result is not None:
                return result
    for builtin in _builtins_for(type(exc)):
        try:
            result = builtin(exc)
        except Exception:  # noqa: BLE001 - same: classification must always answer
            result = None
        if result is not None:
            return result
    return _UNKNOWN


_MAX_CACHED_TYPES = 1024
_candidates: BoundedCache[type[BaseException], tuple[Mapper, ...]] = BoundedCache(_MAX_CACHED_TYPES)


def _builtins_for(cls: type[BaseException]) -> tuple[Mapper, ...]:
    """The built-in mappers that can map instances of ``cls``, remembered per class, so an
    unexpected ``RuntimeError`` skips all of them and an ``AppError`` goes straight to its
    own. A mapper is left out only when no instance of ``cls`` can ever match it: the class
    is not a subclass of the library's exception, or that library was not imported when
    ``cls`` was first seen (then ``cls`` was created before it and cannot derive from it)."""
    found = _candidates.get(cls)
    if found is None:
        found = tuple(mapper for accepts, mapper in _GATED if _accepts(accepts, cls))
        _candidates.put(cls, found)
    return found


def _accepts(accepts: Callable[[type[BaseException]], bool], cls: type[BaseException]) -> bool:
    try:
        return accepts(cls)
    except Exception:  # noqa: BLE001 - when unsure, keep the mapper: it checks again itself
        return True


# --- helpers ---------------------------------------------------------------------------------

_STATUS_CODES: dict[int, str] = {
    400: "INVALID_REQUEST",
    401: "AUTH_REQUIRED",
    402: "PAYMENT_REQUIRED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    406: "NOT_ACCEPTABLE",
    408: "REQUEST_TIMEOUT",
    409: "RESOURCE_CONFLICT",
    410: "RESOURCE_GONE",
    411: "LENGTH_REQUIRED",
    412: "PRECONDITION_FAILED",
    413: "PAYLOAD_TOO_LARGE",
    414: "URI_TOO_LONG",
    415: "MEDIA_TYPE_UNSUPPORTED",
    416: "RANGE_NOT_SATISFIABLE",
    422: "VALIDATION_ERROR",
    423: "RESOURCE_LOCKED",
    428: "PRECONDITION_REQUIRED",
    429: "RATE_LIMIT_EXCEEDED",
    431: "HEADERS_TOO_LARGE",
    500: "INTERNAL_ERROR",
    501: "NOT_IMPLEMENTED",
    502: "BAD_GATEWAY",
    503: "SERVICE_UNAVAILABLE",
    504: "GATEWAY_TIMEOUT",
}

for _status, _code in _STATUS_CODES.items():
    if _code not in catalog:
        catalog.define(
            _code,
            status=_status,
            category=Category.CLIENT if _status < 500 else Category.SERVER,
            severity=Severity.WARNING if _status < 500 else Severity.ERROR,
            retriable=_status in (408, 429, 502, 503, 504),
            description=f"HTTP {_status} {HTTPStatus(_status).phrase}.",
            owner="errorkit.classification",
        )
for _code, _status, _desc in (
    ("HTTP_CLIENT_ERROR", 400, "An HTTP client error without a more specific code."),
    ("INVALID_JSON", 400, "The body is not valid JSON."),
):
    catalog.define(
        _code,
        status=_status,
        category=Category.CLIENT,
        severity=Severity.WARNING,
        retriable=False,
        description=_desc,
        owner="errorkit.classification",
    )
catalog.define(
    "UPSTREAM_REQUEST_REJECTED",
    status=502,
    category=Category.EXTERNAL,
    severity=Severity.ERROR,
    retriable=False,
    description="An upstream service rejected our request (it answered 4xx).",
    owner="errorkit.classification",
)
catalog.define(
    "UPSTREAM_UNAVAILABLE",
    status=503,
    category=Category.EXTERNAL,
    severity=Severity.ERROR,
    retriable=True,
    description="An upstream service is unavailable (it answered 503 or refused the connection).",
    owner="errorkit.classification",
)


def code_for_status(status: int) -> str:
    """The catalog code for an HTTP status (``HTTP_CLIENT_ERROR`` / ``INTERNAL_ERROR`` for
    statuses without one of their own)."""
    code = _STATUS_CODES.get(status)
    if code is not None:
        return code
    return "HTTP_CLIENT_ERROR" if 400 <= status < 500 else "INTERNAL_ERROR"


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase + "."
    except ValueError:
        return "Error."


def parse_retry_after(value: object, now: datetime | None = None) -> float | None:
    """Seconds from a ``Retry-After`` value: delta-seconds or an HTTP date; None if absent
    or unparseable; never negative."""
    if value is None:
        return None
    text = str(value).strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if seconds != seconds or seconds in (float("inf"), float("-inf")):
        return None
    return max(0.0, seconds)


def _from_app_error_class(
    cls: type[AppError],
    *,
    message: str | None = None,
    retry_after: float | None = None,
    details: Mapping[str, Any] | None = None,
    error_type: str | None = None,
) -> Classification:
    return Classification(
        error_type=error_type or str(cls.error_type),
        code=cls.code,
        status=cls.status,
        severity=cls.severity,
        retriable=cls.retriable,
        category=cls.category,
        message=message or _fill_plain(cls.message),
        details=details or {},
        retry_after=retry_after,
    )


def _fill_plain(template: str) -> str:
    # Class templates like "{operation} timed out" have no values here: fall back to a phrase.
    return template if "{" not in template else "The operation failed."


def for_status(
    status: int,
    *,
    message: str | None = None,
    error_type: str = ErrorType.HTTP,
    headers: Mapping[str, str] | None = None,
    details: Mapping[str, Any] | None = None,
) -> Classification:
    """A classification for a bare HTTP status (a framework's HTTP exception)."""
    code = code_for_status(status)
    info = catalog.get(code)
    server = status >= 500
    retry_after = parse_retry_after((headers or {}).get("Retry-After"))
    return Classification(
        error_type=error_type,
        code=code,
        status=status,
        severity=info.severity if info else (Severity.ERROR if server else Severity.WARNING),
        retriable=info.retriable if info else False,
        category=info.category if info else (Category.SERVER if server else Category.CLIENT),
        message=(message if (message and not server) else _phrase(status)),
        details=details or {},
        retry_after=retry_after,
        headers=dict(headers or {}),
    )


# --- built-in mappers ----------------------------------------------------------------------


def _map_app_error(exc: BaseException) -> Classification | None:
    if not isinstance(exc, AppError):
        return None
    severity, category = exc.severity, exc.category
    return Classification(  # positional: this runs for every errorkit error answered
        str(exc.error_type),
        exc.code,
        exc.status,
        severity if type(severity) is Severity else Severity(severity),
        exc.retriable,
        category if type(category) is Category else Category(category),
        exc.message if exc.status < 500 else exc.public_message(),
        exc.details,
        exc.retry_after,
        exc.response_headers(),
        tuple(exc.errors) if isinstance(exc, ValidationError) else (),
    )


def _module_of(exc: BaseException) -> str:
    return type(exc).__module__ or ""


def _map_pydantic(exc: BaseException) -> Classification | None:
    pydantic_core = sys.modules.get("pydantic_core")
    if pydantic_core is None or not isinstance(exc, pydantic_core.ValidationError):
        return None
    return _validation_from_items(exc.errors(include_url=False, include_input=False))


def _validation_from_items(items: Any, location_prefix: tuple[str, ...] = ()) -> Classification:
    errors = tuple(
        FieldError(
            tuple(location_prefix) + tuple(item.get("loc", ())),
            str(item.get("msg", "Invalid value")),
            str(item.get("type", "value_error")),
        )
        for item in items
    )
    return Classification(
        error_type=ErrorType.VALIDATION,
        code=ValidationError.code,
        status=ValidationError.status,
        severity=ValidationError.severity,
        retriable=False,
        category=Category.VALIDATION,
        message=ValidationError.message,
        details={"errors": [e.as_dict() for e in errors]},
        errors=errors,
    )


def _map_framework_http(exc: BaseException) -> Classification | None:
    module = _module_of(exc)
    if module.startswith(("fastapi", "starlette")):
        fastapi_exc = sys.modules.get("fastapi.exceptions")
        if fastapi_exc is not None and isinstance(
            exc, fastapi_exc.RequestValidationError | fastapi_exc.WebSocketRequestValidationError
        ):
            return _validation_from_items(exc.errors())
        starlette_exc = sys.modules.get("starlette.exceptions")
        if starlette_exc is not None and isinstance(exc, starlette_exc.HTTPException):
            detail = exc.detail
            return for_status(
                exc.status_code,
                message=detail if isinstance(detail, str) else None,
                headers=exc.headers,
                details={"detail": detail} if isinstance(detail, dict | list) else None,
            )
    if module.startswith("werkzeug"):
        wexc = sys.modules.get("werkzeug.exceptions")
        if wexc is not None and isinstance(exc, wexc.HTTPException) and exc.code:
            headers: dict[str, str] = {}
            retry_after = getattr(exc, "retry_after", None)
            if retry_after is not None:
                headers["Retry-After"] = (
                    str(int(retry_after))
                    if isinstance(retry_after, int | float)
                    else str(retry_after)
                )
            allowed = getattr(exc, "valid_methods", None)
            if allowed:
                headers["Allow"] = ", ".join(allowed)
            description = exc.description if exc.description != type(exc).description else None
            return for_status(exc.code, message=description, headers=headers)
    return None


def _upstream(
    status: int | None, headers: Mapping[str, str] | None, service: str | None
) -> Classification:
    retry_after = parse_retry_after(
        (headers or {}).get("retry-after") or (headers or {}).get("Retry-After")
    )
    details: dict[str, Any] = {}
    if service:
        details["service"] = service
    if status is not None:
        details["upstream_status"] = status
    if status == 429:
        return _from_app_error_class(
            UpstreamRateLimitedError, retry_after=retry_after, details=details
        )
    if status == 503:
        return replace(
            for_status(503, error_type=ErrorType.API, details=details),
            code="UPSTREAM_UNAVAILABLE",
            category=Category.EXTERNAL,
            retry_after=retry_after,
            message="An upstream service is unavailable.",
        )
    if status in (504, 408):
        return _from_app_error_class(UpstreamTimeoutError, retry_after=retry_after, details=details)
    if status is not None and 400 <= status < 500:
        return Classification(
            error_type=ErrorType.API,
            code="UPSTREAM_REQUEST_REJECTED",
            status=502,
            severity=Severity.ERROR,
            retriable=False,
            category=Category.EXTERNAL,
            message="An upstream service rejected the request.",
            details=details,
        )
    return _from_app_error_class(ExternalServiceError, retry_after=retry_after, details=details)


def _host_of(request: Any) -> str | None:
    try:
        url = request.url
        host = getattr(url, "host", None)
        if host is None:
            from urllib.parse import urlsplit

            host = urlsplit(str(url)).hostname
        return str(host) if host else None
    except Exception:  # noqa: BLE001 - a request without a URL just has no service name
        return None


def _map_httpx(exc: BaseException) -> Classification | None:
    httpx = sys.modules.get("httpx")
    if httpx is None or not isinstance(exc, httpx.HTTPError):
        return None
    request = getattr(exc, "_request", None)
    service = _host_of(request) if request is not None else None
    if isinstance(exc, httpx.HTTPStatusError):
        response = exc.response
        return _upstream(response.status_code, response.headers, service)
    if isinstance(exc, httpx.TimeoutException):
        return _upstream(504, None, service)
    if isinstance(exc, httpx.NetworkError | httpx.ProxyError):
        return replace(_upstream(503, None, service), error_type=ErrorType.NETWORK)
    return _upstream(None, None, service)


def _map_requests(exc: BaseException) -> Classification | None:
    rexc = sys.modules.get("requests.exceptions")
    if rexc is None or not isinstance(exc, rexc.RequestException):
        return None
    request = getattr(exc, "request", None)
    service = _host_of(request) if request is not None else None
    response = getattr(exc, "response", None)
    if response is not None and getattr(response, "status_code", None):
        return _upstream(int(response.status_code), response.headers, service)
    if isinstance(exc, rexc.Timeout):
        return _upstream(504, None, service)
    if isinstance(exc, rexc.ConnectionError):
        return replace(_upstream(503, None, service), error_type=ErrorType.NETWORK)
    return _upstream(None, None, service)


_RETRIABLE_SQLSTATE_CLASSES = ("08", "40", "53", "57P0")


def _sqlstate_classification(sqlstate: str | None) -> Classification | None:
    if not sqlstate:
        return None
    if sqlstate.startswith("23"):
        return _from_app_error_class(ConflictError, error_type=ErrorType.DATABASE)
    if sqlstate == "57014":  # query_canceled: statement timeout
        return _from_app_error_class(
            DatabaseUnavailableError, message="The database did not answer in time."
        )
    if sqlstate.startswith(_RETRIABLE_SQLSTATE_CLASSES):
        return _from_app_error_class(DatabaseUnavailableError)
    return None


def _map_sqlalchemy(exc: BaseException) -> Classification | None:
    sa_exc = sys.modules.get("sqlalchemy.exc")
    if sa_exc is not None and isinstance(exc, sa_exc.SQLAlchemyError):
        orig = getattr(exc, "orig", None)
        if isinstance(orig, BaseException):
            inner = _map_dbapi(orig)
            if inner is not None:
                return inner
        if isinstance(exc, sa_exc.IntegrityError):
            return _from_app_error_class(ConflictError, error_type=ErrorType.DATABASE)
        if isinstance(
            exc, sa_exc.OperationalError | sa_exc.TimeoutError | sa_exc.DisconnectionError
        ):
            return _from_app_error_class(DatabaseUnavailableError)
        if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
            return _from_app_error_class(DatabaseUnavailableError)
        if isinstance(exc, sa_exc.NoResultFound):
            return _from_app_error_class(NotFoundError, error_type=ErrorType.DATABASE)
        return _from_app_error_class(DatabaseError)
    orm_exc = sys.modules.get("sqlalchemy.orm.exc")
    if orm_exc is not None and isinstance(exc, orm_exc.ObjectDeletedError):
        return _from_app_error_class(NotFoundError, error_type=ErrorType.DATABASE)
    return None


def _map_dbapi(exc: BaseException) -> Classification | None:
    if isinstance(exc, sqlite3.Error):
        if isinstance(exc, sqlite3.IntegrityError):
            return _from_app_error_class(ConflictError, error_type=ErrorType.DATABASE)
        if isinstance(exc, sqlite3.OperationalError):
            text = str(exc).lower()
            if "locked" in text or "busy" in text or "unable to open" in text:
                return _from_app_error_class(DatabaseUnavailableError)
            if "disk" in text and "full" in text:
                return _from_app_error_class(DiskFullError)
            if "readonly" in text or "read-only" in text:
                return _from_app_error_class(DatabaseUnavailableError)
        return _from_app_error_class(DatabaseError)
    psycopg = sys.modules.get("psycopg")
    if psycopg is not None and isinstance(exc, psycopg.Error):
        mapped = _sqlstate_classification(getattr(exc, "sqlstate", None))
        if mapped is not None:
            return mapped
        if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
            return _from_app_error_class(DatabaseUnavailableError)
        if isinstance(exc, psycopg.IntegrityError):
            return _from_app_error_class(ConflictError, error_type=ErrorType.DATABASE)
        return _from_app_error_class(DatabaseError)
    return None


def _map_redis(exc: BaseException) -> Classification | None:
    rexc = sys.modules.get("redis.exceptions")
    if rexc is None or not isinstance(exc, rexc.RedisError):
        return None
    if isinstance(exc, rexc.ConnectionError | rexc.TimeoutError | rexc.BusyLoadingError):
        return _from_app_error_class(CacheUnavailableError)
    return _from_app_error_class(CacheError)


_NETWORK_ERRNOS = {
    errno.ECONNREFUSED,
    errno.ECONNRESET,
    errno.ECONNABORTED,
    errno.EHOSTUNREACH,
    errno.ENETUNREACH,
    errno.ENETDOWN,
    errno.EPIPE,
    errno.ETIMEDOUT,
    errno.EHOSTDOWN,
}


def _map_stdlib(exc: BaseException) -> Classification | None:
    if isinstance(exc, json.JSONDecodeError):
        return Classification(
            error_type=ErrorType.VALIDATION,
            code="INVALID_JSON",
            status=400,
            severity=Severity.WARNING,
            retriable=False,
            category=Category.VALIDATION,
            message="The body is not valid JSON.",
            details={"line": exc.lineno, "column": exc.colno},
        )
    if isinstance(exc, TimeoutError):  # asyncio.TimeoutError is TimeoutError since 3.11
        return _from_app_error_class(OperationTimeoutError, message="The operation timed out.")
    if isinstance(exc, MemoryError):
        return _from_app_error_class(OutOfMemoryError)
    if isinstance(exc, ConnectionError):
        return _from_app_error_class(NetworkError)
    if isinstance(exc, OSError):
        code = exc.errno
        if code == errno.ENOSPC or code == errno.EDQUOT:
            return _from_app_error_class(DiskFullError)
        if code == errno.ENOMEM:
            return _from_app_error_class(OutOfMemoryError)
        if code in (errno.EACCES, errno.EPERM, errno.EROFS):
            return _from_app_error_class(SystemPermissionError)
        if code in (errno.EMFILE, errno.ENFILE, errno.EAGAIN):
            return _from_app_error_class(SystemResourceError)
        if code in _NETWORK_ERRNOS:
            return _from_app_error_class(NetworkError)
    return None


def _subclass_of(module: str, name: str) -> Callable[[type[BaseException]], bool]:
    """``cls`` derives from ``module.name`` (False while that module is not imported)."""

    def accepts(cls: type[BaseException]) -> bool:
        base = getattr(sys.modules.get(module), name, None)
        return isinstance(base, type) and issubclass(cls, base)

    return accepts


def _any_of(*tests: Callable[[type[BaseException]], bool]) -> Callable[[type[BaseException]], bool]:
    return lambda cls: any(test(cls) for test in tests)


_FRAMEWORK_MODULES = ("fastapi", "starlette", "werkzeug")

# Each built-in mapper with the class-level test that says it may apply (see _builtins_for);
# in the order they are tried.
_GATED: tuple[tuple[Callable[[type[BaseException]], bool], Mapper], ...] = (
    (lambda cls: issubclass(cls, AppError), _map_app_error),
    (lambda cls: (cls.__module__ or "").startswith(_FRAMEWORK_MODULES), _map_framework_http),
    (_subclass_of("pydantic_core", "ValidationError"), _map_pydantic),
    (_subclass_of("httpx", "HTTPError"), _map_httpx),
    # requests before stdlib: requests' errors are OSErrors without an errno
    (_subclass_of("requests.exceptions", "RequestException"), _map_requests),
    (
        _any_of(
            _subclass_of("sqlalchemy.exc", "SQLAlchemyError"),
            _subclass_of("sqlalchemy.orm.exc", "ObjectDeletedError"),
        ),
        _map_sqlalchemy,
    ),
    (
        _any_of(lambda cls: issubclass(cls, sqlite3.Error), _subclass_of("psycopg", "Error")),
        _map_dbapi,
    ),
    (_subclass_of("redis.exceptions", "RedisError"), _map_redis),
    (
        lambda cls: issubclass(cls, json.JSONDecodeError | TimeoutError | MemoryError | OSError),
        _map_stdlib,
    ),
)
_UNKNOWN = Classification(
    error_type=ErrorType.UNKNOWN,
    code="INTERNAL_ERROR",
    status=500,
    severity=Severity.ERROR,
    retriable=False,
    category=Category.SERVER,
    message=_GENERIC_5XX,
)


def _is_unexpected(c: Classification) -> bool:
    """Whether ``c`` is what :func:`classify` answers for an exception no mapper knows: an
    unexpected error, as opposed to one errorkit (or a registered mapper) classified."""
    return c is _UNKNOWN
