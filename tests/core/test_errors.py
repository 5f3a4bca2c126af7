"""AppError and the standard hierarchy."""

from __future__ import annotations

import gc
import pickle
from collections.abc import Iterator

import pytest

import errorkit
from errorkit import (
    AppError,
    CatalogError,
    Category,
    NotFoundError,
    RateLimitError,
    Severity,
    ValidationError,
    catalog,
    context_scope,
    error_id_of,
)
from errorkit.errors import cause_chain, iter_error_classes


@pytest.fixture
def forget_codes() -> Iterator[list[str]]:
    """Codes defined by a test are removed from the catalog afterwards."""
    codes: list[str] = []
    yield codes
    for code in codes:
        catalog.forget(code)


def test_subclass_with_class_attributes(forget_codes: list[str]) -> None:
    """A user error is a subclass with code, status and a message template."""

    class HealthDataNotFound(NotFoundError):
        code = "HEALTH_DATA_NOT_FOUND"
        message = "No health data for {time_period}"

    forget_codes.append("HEALTH_DATA_NOT_FOUND")
    err = HealthDataNotFound(time_period="7d")
    assert (err.code, err.status, err.message) == (
        "HEALTH_DATA_NOT_FOUND",
        404,
        "No health data for 7d",
    )
    assert err.details == {"time_period": "7d"}
    assert str(err) == "No health data for 7d"
    info = catalog.get("HEALTH_DATA_NOT_FOUND")
    assert info is not None and info.status == 404 and info.category is Category.CLIENT


def test_a_template_whose_values_are_missing_never_shows_a_placeholder() -> None:
    """A clause that needs a missing value is dropped; otherwise the plain message is used."""
    assert errorkit.FileTooLargeError().message == "The file is too large."
    assert errorkit.FileTooLargeError(max_size=10).message == (
        "The file is too large (limit 10 bytes)."
    )
    assert errorkit.OperationTimeoutError(operation="fetch").message == "The operation timed out."
    assert errorkit.OperationTimeoutError(operation="fetch", timeout=2).message == (
        "fetch timed out after 2s."
    )

    class ReportMissing(errorkit.NotFoundError):
        code = "REPORT_MISSING"
        message = "No report for {period}"

    assert ReportMissing().message == errorkit.NotFoundError.message
    assert ReportMissing(period="7d").message == "No report for 7d"


def test_unknown_keyword_arguments_are_refused_naming_the_accepted_ones() -> None:
    """An unplanned keyword (the plan's recoverable=True) must not leak into public details."""
    with pytest.raises(TypeError) as caught:
        errorkit.PaymentRequiredError("Card declined.", recoverable=True)
    text = str(caught.value)
    assert "recoverable" in text and "details=" in text and "detail_fields" in text
    with pytest.raises(TypeError, match="max_size="):
        errorkit.FileTooLargeError(max_bytes=10)

    class CardDeclined(errorkit.PaymentRequiredError):
        code = "PAYMENT_DECLINED_WITH_FIELDS"
        detail_fields = ("recoverable",)

    assert CardDeclined(recoverable=True).details == {"recoverable": True}

    class SpecificCard(CardDeclined):  # declared fields are inherited
        code = "PAYMENT_EXPIRED_WITH_FIELDS"

    assert SpecificCard(recoverable=False).details == {"recoverable": False}
    # Any key still goes through details={...}; fields named by a per-raise message too.
    assert errorkit.NotFoundError(details={"item_id": 7}).details == {"item_id": 7}
    assert errorkit.NotFoundError("No item {item_id}.", item_id=7).message == "No item 7."


def test_detail_fields_must_be_names_and_not_appError_arguments() -> None:
    with pytest.raises(TypeError, match="list the names"):

        class OneString(errorkit.NotFoundError):
            code = "ONE_STRING_FIELDS"
            detail_fields = "item_id"  # type: ignore[assignment]

    with pytest.raises(TypeError, match="AppError arguments"):

        class Reserved(errorkit.NotFoundError):
            code = "RESERVED_FIELDS"
            detail_fields = ("status",)


def test_carries_context_ids_and_timestamp() -> None:
    """request and correlation ids come from the context; each error has its own id."""
    with context_scope(request_id="req-1", correlation_id="corr-1"):
        err = AppError("boom")
    assert (err.request_id, err.correlation_id) == ("req-1", "corr-1")
    assert err.timestamp.tzinfo is not None
    assert err.error_id != AppError("other").error_id


def test_cause_chain_and_to_dict_hold_no_cause_text() -> None:
    """raise ... from keeps the chain; to_dict names cause types but not their text."""

    def fail() -> None:
        try:
            raise KeyError("secret-in-cause")
        except KeyError as inner:
            raise errorkit.DatabaseError(operation="insert") from inner

    with pytest.raises(errorkit.DatabaseError) as info:
        fail()
    assert isinstance(info.value.causes()[0], KeyError)
    data = info.value.to_dict()
    assert data["causes"] == ["builtins.KeyError"]
    assert "secret-in-cause" not in repr(data)
    assert {
        "code",
        "message",
        "details",
        "status",
        "category",
        "severity",
        "retriable",
        "timestamp",
        "request_id",
        "error_id",
    } <= set(data)


def test_rate_limit_sets_retry_after_header() -> None:
    """retry_after becomes a whole-second Retry-After header."""
    err = RateLimitError(retry_after=2.5)
    assert err.status == 429 and err.retriable
    assert err.response_headers()["Retry-After"] == "3"
    assert err.to_dict()["retry_after"] == 2.5


@pytest.mark.parametrize("bad", [-1, float("nan"), float("inf")])
def test_bad_retry_after_is_rejected(bad: float) -> None:
    """retry_after must be a finite, non-negative number of seconds."""
    with pytest.raises(ValueError, match="retry_after"):
        RateLimitError(retry_after=bad)


def test_validation_one_field_and_many() -> None:
    """ValidationError takes one field or many at once."""
    one = ValidationError(field="user.email", reason="not an email")
    many = ValidationError.from_fields({"email": "not an email", "age": "must be >= 0"})
    assert one.details["errors"] == [
        {
            "loc": ["user", "email"],
            "field": "user.email",
            "message": "not an email",
            "type": "value_error",
        }
    ]
    assert [e.field for e in many.errors] == ["email", "age"]
    assert many.status == 422 and many.category is Category.VALIDATION


def test_instance_overrides() -> None:
    """A single raise may override code, status, severity and retriable."""
    err = AppError(
        "x", code="BILLING_QUOTA_EXHAUSTED", status=402, severity="warning", retriable=True
    )
    assert (err.code, err.status, err.severity, err.retriable) == (
        "BILLING_QUOTA_EXHAUSTED",
        402,
        Severity.WARNING,
        True,
    )
    with pytest.raises(CatalogError, match="not valid"):
        AppError("x", code="lower-case")


def test_server_error_public_message_is_the_class_template() -> None:
    """A 5xx error's public message is its class's template filled from details; a 4xx
    error's, and an opted-in class's, is the instance's own text."""
    db = errorkit.DatabaseError("query failed: password authentication failed")
    assert db.message == "query failed: password authentication failed"
    assert db.public_message() == "A database operation failed."
    timeout = errorkit.OperationTimeoutError("socket read stalled", operation="fetch", timeout=2)
    assert timeout.public_message() == "fetch timed out after 2s."
    assert NotFoundError("no user 7").public_message() == "no user 7"
    assert AppError("disk /dev/sda1 failed").public_message() == "An internal error occurred."
    assert errorkit.classify(db).message == "A database operation failed."

    class Outage(errorkit.ServiceUnavailableError):
        expose_message = True

    assert Outage("Back at 14:00 UTC.").public_message() == "Back at 14:00 UTC."
    assert errorkit.classify(Outage("Back at 14:00 UTC.")).message == "Back at 14:00 UTC."


def test_changing_status_without_a_code_is_refused() -> None:
    """A subclass that changes status must bring its own code."""
    with pytest.raises(CatalogError, match="give Gone a code of its own"):

        class Gone(NotFoundError):
            status = 410


def test_restating_an_inherited_code_is_allowed() -> None:
    """A subclass may restate the code it inherits (same status): no "defined twice"."""

    class ResourceRateLimited(RateLimitError):
        code = "RATE_LIMIT_EXCEEDED"

    assert ResourceRateLimited().status == 429
    info = catalog.get("RATE_LIMIT_EXCEEDED")
    assert info is not None and info.owner == "errorkit.errors.RateLimitError"

    with pytest.raises(CatalogError, match="set status = 429"):

        class Relabelled(RateLimitError):
            code = "RATE_LIMIT_EXCEEDED"
            status = 503


def test_mixing_errorkit_bases_with_different_codes_needs_a_code(
    forget_codes: list[str],
) -> None:
    """Two errorkit bases with different codes and no code of its own: refused at class
    definition, naming both; naming the code (and status) settles it."""

    class ResourceError(errorkit.ServiceUnavailableError):
        code = "PLAN_RESOURCE_ERROR"

    forget_codes.append("PLAN_RESOURCE_ERROR")
    with pytest.raises(CatalogError, match=r"ResourceError \(PLAN_RESOURCE_ERROR 503\)"):

        class Ambiguous(ResourceError, RateLimitError):
            pass

    class PlanRateLimitError(ResourceError, RateLimitError):
        code = "RATE_LIMIT_EXCEEDED"
        status = 429

    err = PlanRateLimitError()
    assert (err.code, err.status) == ("RATE_LIMIT_EXCEEDED", 429)
    assert isinstance(err, ResourceError) and isinstance(err, RateLimitError)

    class Narrower(NotFoundError, errorkit.ClientError):  # a base and its own base: one code
        pass

    assert Narrower().code == "NOT_FOUND"


def test_pickle_round_trip() -> None:
    """Errors survive pickling (multiprocessing, job queues)."""
    err = errorkit.FileTooLargeError(max_size=10)
    back = pickle.loads(pickle.dumps(err))
    assert back.to_dict() == err.to_dict()


def test_error_id_of_is_stable_per_exception() -> None:
    """Any exception gets one error id, the same every time it is asked."""
    exc = ValueError("x")
    assert error_id_of(exc) == error_id_of(exc)
    app = AppError()
    assert error_id_of(app) == app.error_id


def test_cause_chain_stops_on_loops() -> None:
    """A cyclic __context__ chain terminates."""
    a, b = ValueError("a"), ValueError("b")
    a.__context__, b.__context__ = b, a
    assert cause_chain(a) == [a, b]


REQUIRED = {
    "validation": errorkit.ValidationError,
    "invalid input": errorkit.InvalidInputError,
    "not found": errorkit.NotFoundError,
    "version not found": errorkit.VersionNotFoundError,
    "conflict": errorkit.ConflictError,
    "authentication": errorkit.AuthenticationError,
    "token": errorkit.InvalidTokenError,
    "token expiry": errorkit.TokenExpiredError,
    "authorization": errorkit.AuthorizationError,
    "payment": errorkit.PaymentRequiredError,
    "rate limit": errorkit.RateLimitError,
    "capacity": errorkit.CapacityExceededError,
    "resource unavailable": errorkit.ResourceUnavailableError,
    "payload too large": errorkit.PayloadTooLargeError,
    "file size": errorkit.FileTooLargeError,
    "media type": errorkit.UnsupportedMediaTypeError,
    "maintenance": errorkit.MaintenanceError,
    "service unavailable": errorkit.ServiceUnavailableError,
    "database": errorkit.DatabaseError,
    "cache": errorkit.CacheError,
    "storage": errorkit.StorageError,
    "network": errorkit.NetworkError,
    "timeout": errorkit.OperationTimeoutError,
    "serialization": errorkit.SerializationError,
    "encryption": errorkit.EncryptionError,
    "decryption": errorkit.DecryptionError,
    "internal": errorkit.InternalError,
    "external": errorkit.ExternalServiceError,
    "llm": errorkit.LLMAPIError,
    "third party": errorkit.ThirdPartyAPIError,
    "vector db": errorkit.VectorDBError,
    "email": errorkit.EmailError,
    "circuit open": errorkit.CircuitOpenError,
    "disk full": errorkit.DiskFullError,
    "out of memory": errorkit.OutOfMemoryError,
    "permission": errorkit.SystemPermissionError,
    "business": errorkit.BusinessRuleError,
    "critical": errorkit.CriticalError,
}


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_standard_hierarchy_is_complete_and_consistent(name: str) -> None:
    """Every error class the source plans name exists, is registered and is raisable."""
    cls = REQUIRED[name]
    assert issubclass(cls, AppError)
    info = catalog.get(cls.code)
    assert info is not None and info.status == cls.status
    assert 400 <= cls.status <= 599
    err = cls()
    assert err.message and "{" not in err.message


def test_categories_cover_the_plans() -> None:
    """Categories include business (422) and system (needs an operator)."""
    assert {c.value for c in Category} >= {
        "client",
        "validation",
        "business",
        "server",
        "system",
        "external",
        "critical",
    }
    assert errorkit.BusinessRuleError.status == 422
    assert errorkit.DiskFullError.category is Category.SYSTEM


def test_every_class_code_is_in_the_catalog() -> None:
    """No error class escapes the catalog."""
    gc.collect()  # classes other tests defined in their bodies, and whose codes they forgot
    for cls in iter_error_classes():
        assert cls.code in catalog, cls


def _circuit_view(error: errorkit.CircuitOpenError) -> dict[str, object]:
    """Everything an answer, a log line or a stored row reads from the error, but its id."""
    data = error.to_dict()
    data.pop("error_id")
    return {
        **data,
        "str": str(error),
        "repr": repr(error),
        "args": error.args,
        "public": error.public_message(),
        "headers": error.response_headers(),
        "template": error._template,
    }


def test_a_rejection_reads_like_a_constructed_circuit_open_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """CircuitOpenError.rejection() gives the same fields, answer, headers and text as
    CircuitOpenError(service=, retry_after=) made at the same instant in the same context."""
    import errorkit.errors as errors_module

    monkeypatch.setattr(errors_module, "_time_ns", lambda: 1_700_000_000_123_456_789)
    with context_scope(request_id="req-1"):
        quick = errorkit.CircuitOpenError.rejection("payments", 12.5)
        given = errorkit.CircuitOpenError.rejection(
            "payments", 12.5, message="payments is unavailable (circuit open)."
        )
        built = errorkit.CircuitOpenError(service="payments", retry_after=12.5)
    built.timestamp = built.timestamp.replace(
        year=2023, month=11, day=14, hour=22, minute=13, second=20, microsecond=123456
    )
    assert _circuit_view(quick) == _circuit_view(built) == _circuit_view(given)
    assert quick.timestamp.isoformat() == "2023-11-14T22:13:20.123456+00:00"
    assert (quick.request_id, quick.correlation_id) == ("req-1", "req-1")
    assert quick.response_headers() == {"Retry-After": "13"}
    assert type(quick) is errorkit.CircuitOpenError
    assert errorkit.classify(quick) == errorkit.classify(built)


def test_a_rejection_makes_no_id_and_no_datetime_until_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A refusal that is caught and dropped never pays for an error id or a datetime; once
    read, each field keeps its value, and a pickled copy names the same occurrence."""
    import errorkit.errors as errors_module

    made: list[str] = []
    real = errors_module._new_error_id

    def counting() -> str:
        made.append(real())
        return made[-1]

    monkeypatch.setattr(errors_module, "_new_error_id", counting)
    error = errorkit.CircuitOpenError.rejection("payments", 3.0)
    assert made == []
    assert {"error_id", "timestamp", "headers", "request_id"}.isdisjoint(vars(error))
    first = error.error_id
    assert made == [first]
    assert error.error_id == first
    assert error.timestamp is error.timestamp
    error.headers["X-Test"] = "1"
    assert error.response_headers() == {"X-Test": "1", "Retry-After": "3"}
    copy = pickle.loads(pickle.dumps(errorkit.CircuitOpenError.rejection("db", 1.0)))
    assert copy.to_dict()["details"] == {"service": "db"}
    again = pickle.loads(pickle.dumps(error))
    assert (again.error_id, again.timestamp, again.headers) == (
        first,
        error.timestamp,
        {"X-Test": "1"},
    )
    assert "_context" not in vars(again)


def test_a_rejection_field_read_twice_at_once_keeps_one_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two readers of a rejection's error id racing (one reads it while the other is making
    it) both get the one that is kept: answer, logs and store name one occurrence."""
    import errorkit.errors as errors_module

    error = errorkit.CircuitOpenError.rejection("payments", 3.0)
    ids = iter(["first-made", "second-made"])
    seen_inside: list[str] = []

    def racing() -> str:
        made = next(ids)
        if made == "first-made":  # another reader comes in before this one stores its id
            seen_inside.append(error.error_id)
        return made

    monkeypatch.setattr(errors_module, "_new_error_id", racing)
    outer = error.error_id
    assert seen_inside == ["second-made"]
    assert outer == error.error_id == "second-made"
