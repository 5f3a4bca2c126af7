"""Typed errors: :class:`AppError` and the standard hierarchy.

Users define their own errors by subclassing with class attributes::

    class HealthDataNotFound(NotFoundError):
        code = "HEALTH_DATA_NOT_FOUND"
        message = "No health data for {time_period}"

    raise HealthDataNotFound(time_period="7d")   # details={"time_period": "7d"}

Every class that sets ``code`` registers it in :data:`errorkit.codes.catalog` when the
class is defined; a bad or duplicate code fails right there.
"""

from __future__ import annotations

import functools
import math
import os
import re
import string
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, ClassVar, Generic, Self, TypeVar, overload

from errorkit._state import STATE_ATTR, ErrorState, attach
from errorkit.codes import CatalogError, Category, Severity, catalog, validate_code
from errorkit.context import ErrorContext, current_context

__all__ = [
    "AppError",
    "AuthenticationError",
    "AuthorizationError",
    "BadRequestError",
    "BusinessRuleError",
    "CacheError",
    "CacheUnavailableError",
    "CapacityExceededError",
    "CircuitOpenError",
    "ClientError",
    "ConflictError",
    "CriticalError",
    "DatabaseError",
    "DatabaseUnavailableError",
    "DecryptionError",
    "DiskFullError",
    "EmailError",
    "EncryptionError",
    "ErrorType",
    "ExternalServiceError",
    "FieldError",
    "FileTooLargeError",
    "InternalError",
    "InvalidInputError",
    "InvalidTokenError",
    "LLMAPIError",
    "MaintenanceError",
    "MethodNotAllowedError",
    "NetworkError",
    "NotFoundError",
    "OperationTimeoutError",
    "OutOfMemoryError",
    "PayloadTooLargeError",
    "PaymentRequiredError",
    "PermissionDeniedError",
    "RateLimitError",
    "RenderingError",
    "ResourceUnavailableError",
    "SerializationError",
    "ServiceUnavailableError",
    "StorageError",
    "SystemPermissionError",
    "SystemResourceError",
    "ThirdPartyAPIError",
    "TokenExpiredError",
    "UnsupportedMediaTypeError",
    "UpstreamRateLimitedError",
    "UpstreamTimeoutError",
    "ValidationError",
    "VectorDBError",
    "VersionNotFoundError",
    "cause_chain",
    "error_id_of",
]


_T = TypeVar("_T")


class ErrorType(StrEnum):
    """Where an error comes from; the ``error_type`` column of the store."""

    HTTP = "http_error"
    STREAM = "stream_error"
    API = "api_error"
    DATABASE = "database_error"
    VALIDATION = "validation_error"
    HEALTH_CHECK = "health_check_error"
    NETWORK = "network_error"
    TIMEOUT = "timeout_error"
    SYSTEM = "system_error"
    UNKNOWN = "unknown_error"


class _SafeFormat(dict[str, Any]):
    """Leaves ``{missing}`` placeholders as they are instead of raising."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


_FORMATTER = string.Formatter()
_CLAUSE = re.compile(r"\s*\([^()]*\{[^()]*\)")


@functools.lru_cache(maxsize=512)
def template_fields(template: str) -> frozenset[str]:
    """The names a message template fills (``"{operation} timed out"`` -> ``{"operation"}``);
    empty for a template that does not parse."""
    if "{" not in template:
        return frozenset()
    names: set[str] = set()
    try:
        for _, field, _, _ in _FORMATTER.parse(template):
            if field:
                names.add(re.split(r"[.\[]", field, maxsplit=1)[0])
    except ValueError:
        return frozenset()
    return frozenset(names)


def _fill(template: str, details: Mapping[str, Any]) -> str:
    """``template`` filled from ``details``; a placeholder without a value stays as it is."""
    if "{" not in template:
        return template
    try:
        return template.format_map(_SafeFormat(details))
    except (ValueError, IndexError, AttributeError, KeyError, TypeError):
        return template


def _fill_class_message(cls: type[AppError], details: Mapping[str, Any]) -> str:
    """The class's message template filled from ``details``. A template whose fields were not
    all given never reaches a client as a template: a parenthesised clause that needs a
    missing field is dropped (``"too large (limit {max_size} bytes)."`` -> ``"too large."``);
    if that is not enough, the class's ``plain_message`` is used, else the nearest base
    class's message that has no fields."""
    template = cls.message
    if "{" not in template:
        return template
    missing = template_fields(template) - details.keys()
    if not missing:
        return _fill(template, details)

    def drop_if_missing(match: re.Match[str]) -> str:
        return "" if template_fields(match.group(0)) & missing else match.group(0)

    trimmed = _CLAUSE.sub(drop_if_missing, template)
    if not template_fields(trimmed) & missing:
        return _fill(trimmed, details)
    return _plain_message(cls)


def _plain_message(cls: type[AppError]) -> str:
    for klass in cls.__mro__:
        plain = klass.__dict__.get("plain_message")
        if isinstance(plain, str):
            return plain
        message = klass.__dict__.get("message")
        if isinstance(message, str) and "{" not in message:
            return message
    return AppError.message


_VARIANT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}


_HEX_BATCH = 64
_hex_pool: list[str] = []


def random_hex() -> str:
    """32 random hexadecimal digits (128 bits from ``os.urandom``). They are read 64 ids at
    a time, one system call instead of one per id (ids are made on every request and every
    error); a forked child drops what it inherited, so parent and child never share one."""
    try:
        return _hex_pool.pop()
    except IndexError:
        h = os.urandom(16 * _HEX_BATCH).hex()
        _hex_pool.extend([h[i : i + 32] for i in range(32, 32 * _HEX_BATCH, 32)])
        return h[:32]


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_hex_pool.clear)


def _new_error_id() -> str:
    """A random (version 4) UUID as text; the same as ``str(uuid.uuid4())`` at a fifth of
    the cost, since it skips building a ``UUID`` object."""
    h = random_hex()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"


def error_id_of(exc: BaseException) -> str:
    """The error id of ``exc``: an :class:`AppError`'s own, or one attached on first use so
    that every part of errorkit (answer, store, logs) names the same occurrence."""
    if isinstance(exc, AppError):
        return exc.error_id
    # The id lives in errorkit's one state on the exception (a type that refuses
    # attributes gets a detached state: a new id per call). state_of(), written out: this
    # runs on every error.
    state = getattr(exc, STATE_ATTR, None)
    if state.__class__ is ErrorState:
        error_id: str | None = state.error_id
        if error_id is not None:
            return error_id
    else:
        state = attach(exc)
    error_id = state.error_id = _new_error_id()
    return error_id


def error_class(exc: BaseException) -> str:
    """``exc``'s class as logs name it: ``ValueError``, ``httpx.ConnectError``."""
    cls = type(exc)
    module = cls.__module__
    return cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"


def cause_chain(exc: BaseException, limit: int = 32) -> list[BaseException]:
    """``exc`` followed by its causes (``raise ... from``) and contexts, oldest last,
    without loops and at most ``limit`` long."""
    chain: list[BaseException] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(chain) < limit:
        chain.append(current)
        seen.add(id(current))
        if current.__cause__ is not None:
            current = current.__cause__
        elif not current.__suppress_context__:
            current = current.__context__
        else:
            current = None
    return chain


@dataclass(frozen=True, slots=True)
class FieldError:
    """One invalid field: where (``loc``), what is wrong (``message``) and its kind."""

    loc: tuple[str | int, ...]
    message: str
    type: str = "value_error"

    @property
    def field(self) -> str:
        return ".".join(str(p) for p in self.loc)

    def as_dict(self) -> dict[str, Any]:
        return {
            "loc": list(self.loc),
            "field": self.field,
            "message": self.message,
            "type": self.type,
        }

    @classmethod
    def coerce(cls, value: FieldError | Mapping[str, Any]) -> FieldError:
        if isinstance(value, FieldError):
            return value
        loc = value.get("loc", value.get("field", ()))
        if isinstance(loc, str):
            loc = tuple(loc.split(".")) if loc else ()
        message = value.get("message", value.get("msg", "Invalid value"))
        return cls(tuple(loc), str(message), str(value.get("type", "value_error")))


class AppError(Exception):
    """The base of every errorkit error.

    Class attributes are the defaults of a kind of error; keyword arguments of one raise
    override them for that occurrence. Other keyword arguments are *detail fields*: they go
    to ``details`` (public: the answer shows them) and fill the ``message`` template. A class
    accepts the fields its message templates name and those it lists in ``detail_fields``
    (both inherited); any other keyword is a ``TypeError`` that names the accepted ones, so a
    mistyped or unplanned flag never leaks into an answer. ``details={...}`` takes any keys.
    """

    code: str = "INTERNAL_ERROR"
    status: int = 500
    message: str = "An internal error occurred."
    category: Category = Category.SERVER
    severity: Severity = Severity.ERROR
    retriable: bool = False
    error_type: str = ErrorType.HTTP
    description: ClassVar[str] = "An unexpected error on the server."
    detail_fields: ClassVar[Iterable[str]] = ()
    """Keyword arguments this class accepts as details besides its template's fields."""
    plain_message: ClassVar[str | None] = None
    """The message when the template's fields were not given (default: the nearest base
    class's message without fields)."""
    _detail_names: ClassVar[frozenset[str]] = frozenset()
    #: Names of ``details`` whose values make distinct issues: grouping (and the group's
    #: title) fills them into the ``message`` template; other placeholders stay unfilled.
    group_by: ClassVar[tuple[str, ...]] = ()
    expose_message: ClassVar[bool] = False
    """Whether an answer with a status >= 500 may show this instance's own message. Off by
    default: such a message often holds internals (a driver's error, a DSN), so the answer
    shows the class's ``message`` template instead; the store and the logs keep the text."""

    details: dict[str, Any]
    retry_after: float | None
    timestamp: datetime
    request_id: str | None
    correlation_id: str | None
    error_id: str
    headers: dict[str, str]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        owner = f"{cls.__module__}.{cls.__qualname__}"
        cls._detail_names = _declared_fields(cls, owner)
        if "code" in cls.__dict__ and not _inherits_code(cls):
            _register(cls, owner)
            return
        if "code" not in cls.__dict__:
            _check_one_code(cls, owner)
        registered = catalog.get(cls.code)
        if registered is not None and registered.status != cls.status:
            msg = (
                f"{owner} changes status to {cls.status} but keeps code {cls.code!r}, "
                f"which the catalog has with status {registered.status}; give {cls.__name__} "
                f"a code of its own, or set status = {registered.status} if it means "
                f"{cls.code!r}"
            )
            raise CatalogError(msg)

    def __init__(
        self,
        message: str | None = None,
        /,
        *,
        details: Mapping[str, Any] | None = None,
        code: str | None = None,
        status: int | None = None,
        retry_after: float | None = None,
        retriable: bool | None = None,
        severity: Severity | str | None = None,
        headers: Mapping[str, str] | None = None,
        **fields: Any,
    ) -> None:
        if fields and not fields.keys() <= self._detail_names:
            _refuse_fields(type(self), fields, message)
        if details:
            merged: dict[str, Any] = dict(details)
            merged.update(fields)
        else:
            merged = fields  # already a new dict, made for this call
        self.details = merged
        if code is not None:
            self.code = validate_code(code)
        if status is not None:
            self.status = int(status)
        if retriable is not None:
            self.retriable = bool(retriable)
        if severity is not None:
            self.severity = Severity(severity)
        if retry_after is not None and (not math.isfinite(retry_after) or retry_after < 0):
            msg = f"retry_after must be a finite number of seconds >= 0, not {retry_after!r}"
            raise ValueError(msg)
        self.retry_after = retry_after
        template = message if message is not None else type(self).message
        self._template = template  # what grouping reads: the text before it was filled
        self.message = (
            _fill_class_message(type(self), merged) if message is None else _fill(message, merged)
        )
        self.timestamp = datetime.now(UTC)
        ctx = current_context()
        self.request_id = ctx.request_id
        self.correlation_id = ctx.correlation_id or ctx.request_id
        self.error_id = _new_error_id()
        self.headers = dict(headers) if headers else {}
        super().__init__(self.message)

    def __reduce__(self) -> tuple[Any, ...]:
        # Keeps pickling (multiprocessing, caches) working with keyword-only arguments.
        return (_rebuild, (type(self), self.__dict__.copy()))

    def public_message(self) -> str:
        """The message an HTTP answer shows: the instance's own for statuses below 500 or
        when the class sets ``expose_message = True``; else the class's ``message`` template
        filled with ``details`` (the full text still goes to the store and the logs)."""
        if self.status < 500 or type(self).expose_message:
            return self.message
        return _fill_class_message(type(self), self.details)

    def response_headers(self) -> dict[str, str]:
        """Headers an HTTP answer for this error carries (``Retry-After`` when known)."""
        out = dict(self.headers)
        if self.retry_after is not None:
            out.setdefault("Retry-After", str(max(0, math.ceil(self.retry_after))))
        return out

    def causes(self) -> list[BaseException]:
        """The exceptions behind this one (``raise ... from``), nearest first."""
        return cause_chain(self)[1:]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view of the error. It holds no cause text, only cause types, so it is
        safe to log; scrub ``details`` before answering if they hold user data."""
        data: dict[str, Any] = {
            "type": type(self).__name__,
            "code": self.code,
            "message": self.message,
            "details": self.details,
            "status": self.status,
            "category": str(self.category),
            "severity": str(self.severity),
            "error_type": str(self.error_type),
            "retriable": self.retriable,
            "timestamp": self.timestamp.isoformat(),
            "request_id": self.request_id,
            "correlation_id": self.correlation_id,
            "error_id": self.error_id,
        }
        if self.retry_after is not None:
            data["retry_after"] = self.retry_after
        causes = self.causes()
        if causes:
            data["causes"] = [f"{type(c).__module__}.{type(c).__qualname__}" for c in causes]
        return data

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, message={self.message!r})"


def _rebuild(cls: type[AppError], state: dict[str, Any]) -> AppError:
    obj = cls.__new__(cls)
    obj.__dict__.update(state)
    Exception.__init__(obj, state.get("message", ""))
    return obj


def _inherits_code(cls: type[AppError]) -> bool:
    """Whether ``cls`` restates a code one of its errorkit bases already has (allowed, as
    long as the status stays that of the code)."""
    code = cls.__dict__["code"]
    return any(
        base.__dict__.get("code") == code
        for base in cls.__mro__[1:]
        if isinstance(base, type) and issubclass(base, AppError)
    )


def _check_one_code(cls: type[AppError], owner: str) -> None:
    """A class that names no code of its own must inherit exactly one: errorkit bases with
    different codes leave it to the base order which code (and status) an answer has."""
    bases = [b for b in cls.__bases__ if isinstance(b, type) and issubclass(b, AppError)]
    # A base that another base already derives from adds nothing of its own.
    leaves = [b for b in bases if not any(o is not b and issubclass(o, b) for o in bases)]
    codes = {b.code: b for b in leaves}
    if len(codes) > 1:
        named = ", ".join(f"{b.__name__} ({code} {b.status})" for code, b in codes.items())
        msg = (
            f"{owner} derives from errorkit errors with different codes: {named}; "
            f"set code (and status) on {cls.__name__} to say which one it answers with"
        )
        raise CatalogError(msg)


def _register(cls: type[AppError], owner: str) -> None:
    description = cls.__dict__.get("description") or (cls.__doc__ or "").strip().split("\n")[0]
    catalog.define(
        cls.code,
        status=cls.status,
        category=cls.category,
        severity=cls.severity,
        retriable=cls.retriable,
        description=description or cls.message,
        owner=owner,
    )


_register(AppError, f"{AppError.__module__}.{AppError.__qualname__}")


# --- client errors (4xx) -------------------------------------------------------------------


_INIT_KEYWORDS = ("details", "code", "status", "retry_after", "retriable", "severity", "headers")


def _declared_fields(cls: type[AppError], owner: str) -> frozenset[str]:
    own = cls.__dict__.get("detail_fields", ())
    if isinstance(own, str):
        msg = f"{owner}.detail_fields = {own!r}: list the names, e.g. ({own!r},)"
        raise TypeError(msg)
    names = {str(name) for name in own}
    reserved = names & {*_INIT_KEYWORDS, "message"}
    if reserved:
        msg = f"{owner}.detail_fields names {sorted(reserved)}, which are AppError arguments"
        raise TypeError(msg)
    message = cls.__dict__.get("message")
    if isinstance(message, str):
        names |= template_fields(message)
    for base in cls.__mro__[1:]:
        inherited = base.__dict__.get("_detail_names")
        if isinstance(inherited, frozenset):
            names |= inherited
    return frozenset(names)


def _refuse_fields(cls: type[AppError], fields: Mapping[str, Any], message: str | None) -> None:
    accepted = cls._detail_names | (template_fields(message) if message else frozenset())
    unknown = sorted(fields.keys() - accepted)
    if not unknown:
        return
    if accepted:
        also = "and the detail fields " + ", ".join(f"{name}=" for name in sorted(accepted))
    else:
        also = "and no detail fields"
    msg = (
        f"{cls.__name__}() got unexpected keyword argument(s) {', '.join(unknown)}: it accepts "
        f"the message, {', '.join(f'{k}=' for k in _INIT_KEYWORDS)} {also}. Declare more on "
        f"the class (detail_fields = {tuple(unknown)!r}) or pass details={{...}}"
    )
    raise TypeError(msg)


class ClientError(AppError):
    """The request is malformed or cannot be processed."""

    code = "INVALID_REQUEST"
    status = 400
    message = "The request is invalid."
    category = Category.CLIENT
    severity = Severity.WARNING


BadRequestError = ClientError


class ValidationError(ClientError):
    """One or more fields failed validation.

    ``ValidationError(field="email", reason="not an email")`` for one field;
    ``ValidationError(errors=[...])`` or :meth:`from_fields` for many at once.
    """

    code = "VALIDATION_ERROR"
    status = 422
    message = "The request failed validation."
    category = Category.VALIDATION
    error_type = ErrorType.VALIDATION

    def __init__(
        self,
        message: str | None = None,
        /,
        *,
        errors: Iterable[FieldError | Mapping[str, Any]] | None = None,
        field: str | Sequence[str | int] | None = None,
        reason: str | None = None,
        **kwargs: Any,
    ) -> None:
        items = [FieldError.coerce(e) for e in (errors or ())]
        if field is not None:
            loc = tuple(field.split(".")) if isinstance(field, str) else tuple(field)
            items.append(FieldError(loc, reason or message or "Invalid value"))
        details = dict(kwargs.pop("details", None) or {})
        if items:
            details["errors"] = [e.as_dict() for e in items]
        super().__init__(message, details=details, **kwargs)
        self.errors = items

    @classmethod
    def from_fields(cls, fields: Mapping[str, str], message: str | None = None) -> ValidationError:
        """Many invalid fields at once: ``{"email": "not an email", "age": "must be >= 0"}``."""
        return cls(message, errors=[{"loc": k, "message": v} for k, v in fields.items()])


class InvalidInputError(ValidationError):
    """The input is syntactically valid but not acceptable."""

    code = "VALIDATION_INVALID_INPUT"
    status = 400
    message = "The input is invalid."


class AuthenticationError(ClientError):
    """Authentication is required or failed."""

    code = "AUTH_REQUIRED"
    status = 401
    message = "Authentication is required."


class InvalidTokenError(AuthenticationError):
    """The credential token is malformed, forged or revoked."""

    code = "AUTH_TOKEN_INVALID"
    message = "The authentication token is invalid."


class TokenExpiredError(InvalidTokenError):
    """The credential token has expired."""

    code = "AUTH_TOKEN_EXPIRED"
    message = "The authentication token has expired."


class PaymentRequiredError(ClientError):
    """The action needs a paid plan or more credit."""

    code = "PAYMENT_REQUIRED"
    status = 402
    message = "Payment is required for this action."


class AuthorizationError(ClientError):
    """The caller is authenticated but not allowed to do this."""

    code = "PERMISSION_DENIED"
    status = 403
    message = "You do not have permission to do this."


PermissionDeniedError = AuthorizationError


class NotFoundError(ClientError):
    """The resource does not exist."""

    code = "NOT_FOUND"
    status = 404
    message = "The resource was not found."


class VersionNotFoundError(NotFoundError):
    """The requested version of a resource does not exist."""

    code = "VERSION_NOT_FOUND"
    message = "The requested version was not found."


class MethodNotAllowedError(ClientError):
    """The HTTP method is not supported here."""

    code = "METHOD_NOT_ALLOWED"
    status = 405
    message = "The method is not allowed for this resource."


class ConflictError(ClientError):
    """The request conflicts with the resource's current state (e.g. a version mismatch)."""

    code = "RESOURCE_CONFLICT"
    status = 409
    message = "The request conflicts with the current state of the resource."


class PayloadTooLargeError(ClientError):
    """The request body is larger than allowed."""

    code = "PAYLOAD_TOO_LARGE"
    status = 413
    message = "The request body is too large."


class FileTooLargeError(PayloadTooLargeError):
    """An uploaded file is larger than allowed."""

    code = "FILE_TOO_LARGE"
    message = "The file is too large (limit {max_size} bytes)."


class UnsupportedMediaTypeError(ClientError):
    """The request's content type is not supported."""

    code = "MEDIA_TYPE_UNSUPPORTED"
    status = 415
    message = "The media type is not supported."


class BusinessRuleError(ClientError):
    """A domain rule refuses the request."""

    code = "BUSINESS_RULE_VIOLATED"
    status = 422
    message = "The request breaks a business rule."
    category = Category.BUSINESS


class RateLimitError(ClientError):
    """Too many requests; ``retry_after`` says when to come back, ``limit`` and ``window``
    (details) what the limit is."""

    code = "RATE_LIMIT_EXCEEDED"
    status = 429
    message = "Too many requests."
    retriable = True
    detail_fields = ("limit", "window")


# --- server errors (5xx) -------------------------------------------------------------------


class InternalError(AppError):
    """An unexpected error on the server."""


class ServiceUnavailableError(AppError):
    """The service is temporarily unable to answer."""

    code = "SERVICE_UNAVAILABLE"
    status = 503
    message = "The service is temporarily unavailable."
    retriable = True


class MaintenanceError(ServiceUnavailableError):
    """The service is down for maintenance."""

    code = "SERVICE_MAINTENANCE"
    message = "The service is down for maintenance."
    severity = Severity.INFO


class CapacityExceededError(ServiceUnavailableError):
    """The service is at capacity; try again later."""

    code = "CAPACITY_EXCEEDED"
    message = "The service is at capacity."
    severity = Severity.WARNING


class ResourceUnavailableError(ServiceUnavailableError):
    """A resource needed to answer (a worker, a model, a pool) is not available."""

    code = "RESOURCE_UNAVAILABLE"
    message = "A required resource is unavailable."


class DatabaseError(AppError):
    """A database operation failed."""

    code = "DATABASE_ERROR"
    message = "A database operation failed."
    error_type = ErrorType.DATABASE
    detail_fields = ("operation",)


class DatabaseUnavailableError(DatabaseError):
    """The database cannot be reached or is overloaded."""

    code = "DATABASE_UNAVAILABLE"
    status = 503
    message = "The database is temporarily unavailable."
    retriable = True


class CacheError(AppError):
    """A cache operation failed."""

    code = "CACHE_ERROR"
    message = "A cache operation failed."
    error_type = ErrorType.DATABASE
    severity = Severity.WARNING


class CacheUnavailableError(CacheError):
    """The cache cannot be reached."""

    code = "CACHE_UNAVAILABLE"
    status = 503
    message = "The cache is temporarily unavailable."
    retriable = True


class StorageError(AppError):
    """A storage operation (files, object store) failed."""

    code = "STORAGE_ERROR"
    message = "A storage operation failed."


class SerializationError(AppError):
    """Data could not be serialised or deserialised."""

    code = "SERIALIZATION_ERROR"
    message = "Data could not be serialised."


class EncryptionError(AppError):
    """Encryption failed."""

    code = "ENCRYPTION_ERROR"
    message = "Encryption failed."


class DecryptionError(AppError):
    """Decryption failed."""

    code = "DECRYPTION_ERROR"
    message = "Decryption failed."


class RenderingError(AppError):
    """Rendering (a template, a video, a document) failed."""

    code = "RENDERING_FAILED"
    message = "Rendering failed."


class OperationTimeoutError(AppError):
    """An operation took longer than its limit."""

    code = "TIMEOUT_ERROR"
    status = 504
    message = "{operation} timed out after {timeout}s."
    plain_message = "The operation timed out."
    retriable = True
    error_type = ErrorType.TIMEOUT


class NetworkError(AppError):
    """A network call failed before an answer came back."""

    code = "NETWORK_ERROR"
    status = 503
    message = "A network error occurred."
    retriable = True
    category = Category.EXTERNAL
    error_type = ErrorType.NETWORK


# --- errors that need an operator ----------------------------------------------------------


class SystemResourceError(AppError):
    """The machine ran out of a resource (file handles, processes)."""

    code = "SYSTEM_RESOURCE_EXHAUSTED"
    status = 503
    message = "The server is out of resources."
    category = Category.SYSTEM
    severity = Severity.CRITICAL
    error_type = ErrorType.SYSTEM


class DiskFullError(SystemResourceError):
    """No space left on a device."""

    code = "SYSTEM_DISK_FULL"
    message = "The server is out of disk space."


class OutOfMemoryError(SystemResourceError):
    """The process ran out of memory."""

    code = "SYSTEM_OUT_OF_MEMORY"
    message = "The server is out of memory."


class SystemPermissionError(SystemResourceError):
    """The process lacks an operating-system permission it needs."""

    code = "SYSTEM_PERMISSION_DENIED"
    status = 500
    message = "The server lacks a permission it needs."


class CriticalError(AppError):
    """The service cannot work at all; page someone."""

    code = "CRITICAL_FAILURE"
    message = "A critical failure occurred."
    category = Category.CRITICAL
    severity = Severity.CRITICAL


# --- upstream errors -----------------------------------------------------------------------


class ExternalServiceError(AppError):
    """An upstream service failed; ``service`` names it."""

    code = "EXTERNAL_SERVICE_ERROR"
    status = 502
    message = "An upstream service failed."
    detail_fields = ("service",)
    retriable = True
    category = Category.EXTERNAL
    error_type = ErrorType.API


class LLMAPIError(ExternalServiceError):
    """A language-model provider's API failed."""

    code = "LLM_API_ERROR"
    message = "The language model provider failed."


class ThirdPartyAPIError(ExternalServiceError):
    """A third-party API failed."""

    code = "THIRD_PARTY_API_ERROR"
    message = "A third-party API failed."


class VectorDBError(ExternalServiceError):
    """The vector database failed."""

    code = "VECTOR_DB_ERROR"
    message = "The vector database failed."


class EmailError(ExternalServiceError):
    """An e-mail could not be sent."""

    code = "EMAIL_DELIVERY_FAILED"
    message = "The e-mail could not be sent."


class UpstreamTimeoutError(ExternalServiceError):
    """An upstream service did not answer in time."""

    code = "UPSTREAM_TIMEOUT"
    status = 504
    message = "An upstream service timed out."


class UpstreamRateLimitedError(ExternalServiceError):
    """An upstream service is rate limiting us; ``retry_after`` says when to come back."""

    code = "UPSTREAM_RATE_LIMITED"
    status = 429
    message = "An upstream service is rate limiting requests."
    severity = Severity.WARNING


class _MadeOnFirstRead(Generic[_T]):
    """A field of an error that is computed the first time it is read, then kept in the
    instance like any attribute (the next read finds it there). An instance that set the
    field itself, as ``AppError.__init__`` does, never calls ``make``."""

    __slots__ = ("_make", "_name")

    def __init__(self, make: Callable[[Any], _T]) -> None:
        self._make = make
        self._name = make.__name__

    def __set_name__(self, owner: type, name: str) -> None:
        self._name = name

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> Self: ...
    @overload
    def __get__(self, obj: object, owner: type | None = None) -> _T: ...
    def __get__(self, obj: object, owner: type | None = None) -> _T | Self:
        if obj is None:
            return self
        # setdefault: two threads reading it at once both get the one that was kept.
        value: _T = obj.__dict__.setdefault(self._name, self._make(obj))
        return value


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_time_ns = time.time_ns


class CircuitOpenError(AppError):
    """Calls to a failing dependency are refused until its breaker lets a probe through.

    A breaker raises one per refused call, made with :meth:`rejection`, which leaves the
    error id, the timestamp, the request and correlation ids and the headers to be made
    when first read (most refusals are caught and dropped unread)."""

    code = "CIRCUIT_OPEN"
    status = 503
    message = "{service} is unavailable (circuit open)."
    plain_message = "A dependency is unavailable (circuit open)."
    retriable = True
    category = Category.EXTERNAL
    severity = Severity.WARNING
    error_type = ErrorType.API

    _created_ns: int
    """When :meth:`rejection` made it, from ``time.time_ns()`` (its ``timestamp``)."""
    _context: ErrorContext
    """The context it was made in (its ``request_id`` and ``correlation_id``)."""

    @classmethod
    def rejection(cls, service: str, retry_after: float, message: str | None = None) -> Self:
        """The error for one call refused by the breaker named ``service``, with
        ``retry_after`` seconds until a probe may pass (a finite number >= 0).

        It reads the same as ``cls(service=service, retry_after=retry_after)`` in every field,
        answer, log line and stored row, but costs a few attribute stores: no ``__init__``,
        no template filling when ``message`` is given (``cls.message`` filled with
        ``service``, which a breaker makes once), and no error id, datetime, headers or ids
        until they are read. The timestamp is the time of this call."""
        if message is None:
            message = _fill_class_message(cls, {"service": service})
        error = cls.__new__(cls, message)  # args == (message,), as Exception.__init__ sets
        error.details = {"service": service}
        error.retry_after = retry_after
        error.message = message
        error._created_ns = _time_ns()
        error._context = current_context()
        return error

    # Made on first read for a rejection; an error built by __init__ has them all already.

    @_MadeOnFirstRead
    def error_id(self) -> str:
        return _new_error_id()

    @_MadeOnFirstRead
    def timestamp(self) -> datetime:
        # What datetime.now(UTC) gives at that nanosecond: microseconds, rounded down.
        return _EPOCH + timedelta(microseconds=self._created_ns // 1000)

    @_MadeOnFirstRead
    def request_id(self) -> str | None:
        return self._context.request_id

    @_MadeOnFirstRead
    def correlation_id(self) -> str | None:
        ctx = self._context
        return ctx.correlation_id or ctx.request_id

    @_MadeOnFirstRead
    def headers(self) -> dict[str, str]:
        return {}

    @_MadeOnFirstRead
    def _template(self) -> str:
        return type(self).message

    def __reduce__(self) -> tuple[Any, ...]:
        # A pickled copy names the same occurrence: every field is made before copying,
        # and the copy carries the fields only, as one built by __init__ does.
        state = self.__dict__
        if "_context" in state:
            for name in _LAZY_FIELDS:
                getattr(self, name)
            state = {k: v for k, v in state.items() if k not in ("_context", "_created_ns")}
        return (_rebuild, (type(self), state.copy()))


_LAZY_FIELDS = tuple(
    name for name, value in vars(CircuitOpenError).items() if isinstance(value, _MadeOnFirstRead)
)


def iter_error_classes() -> Iterator[type[AppError]]:
    """Every :class:`AppError` subclass defined so far (for the reference and tests)."""
    stack: list[type[AppError]] = [AppError]
    while stack:
        cls = stack.pop()
        yield cls
        stack.extend(cls.__subclasses__())
