"""OpenTelemetry: spans read back from an in-memory exporter."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode, Tracer

from errorkit import _reporting
from errorkit.context import current_context
from errorkit.errors import NotFoundError, error_id_of
from errorkit.observe.tracing import (
    current_trace_ids,
    disable_tracing,
    enable_tracing,
    record_error,
    trace_context,
)

from .conftest import Lines

SECRET = "hunter2-very-secret"


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def tracer(exporter: InMemorySpanExporter) -> Tracer:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider.get_tracer("errorkit-tests")


def _raised(exc: BaseException) -> BaseException:
    """``exc`` after a real raise, so it has a traceback."""
    try:
        raise exc
    except BaseException as caught:
        return caught


def only_span(exporter: InMemorySpanExporter) -> ReadableSpan:
    (span,) = exporter.get_finished_spans()
    return span


def test_error_is_recorded_with_semantic_convention_attributes(
    tracer: Tracer, exporter: InMemorySpanExporter
) -> None:
    """The span gets an ``exception`` event, ``error.type`` and status ERROR."""
    caught = _raised(NotFoundError("Order 7 not found"))
    with tracer.start_as_current_span("GET /orders"):
        assert record_error(caught) is True
    span = only_span(exporter)
    (event,) = span.events
    assert event.name == "exception"
    assert event.attributes is not None and span.attributes is not None
    assert event.attributes["exception.type"] == "errorkit.errors.NotFoundError"
    assert event.attributes["exception.message"] == "Order 7 not found"
    assert "in _raised" in str(event.attributes["exception.stacktrace"])
    assert span.attributes["error.type"] == "errorkit.errors.NotFoundError"
    assert span.attributes["errorkit.error_id"] == error_id_of(caught)
    assert span.attributes["errorkit.error_code"] == "NOT_FOUND"
    assert span.status.status_code is StatusCode.ERROR


def test_secrets_are_scrubbed_from_the_span(tracer: Tracer, exporter: InMemorySpanExporter) -> None:
    """Message, stack trace and status description carry no secret."""
    with tracer.start_as_current_span("login"):
        try:
            raise RuntimeError(f"auth failed password={SECRET}")
        except RuntimeError as exc:
            record_error(exc)
    span = only_span(exporter)
    texts = [str(v) for v in (span.events[0].attributes or {}).values()]
    texts.append(span.status.description or "")
    assert texts and all(SECRET not in t for t in texts)


def test_builtin_exception_type_is_unqualified(
    tracer: Tracer, exporter: InMemorySpanExporter
) -> None:
    """Builtins are named as Python names them (``ValueError``)."""
    with tracer.start_as_current_span("parse"):
        record_error(ValueError("bad"))
    assert (only_span(exporter).attributes or {})["error.type"] == "ValueError"


def test_without_a_recording_span_nothing_happens() -> None:
    """No current span: record_error returns False."""
    assert record_error(RuntimeError("x")) is False


def test_reported_errors_mark_the_current_span(
    tracer: Tracer, exporter: InMemorySpanExporter
) -> None:
    """With enable_tracing(), every error errorkit reports marks the span where it happens."""
    assert enable_tracing() is True
    try:
        with tracer.start_as_current_span("job"):
            _reporting.report(TimeoutError("upstream slow"))
    finally:
        disable_tracing()
    span = only_span(exporter)
    assert span.status.status_code is StatusCode.ERROR
    assert (span.attributes or {})["errorkit.error_code"] == "TIMEOUT_ERROR"


def test_disable_tracing_stops_marking_spans(
    tracer: Tracer, exporter: InMemorySpanExporter
) -> None:
    """After disable_tracing(), reported errors leave spans alone."""
    enable_tracing()
    disable_tracing()
    with tracer.start_as_current_span("job"):
        _reporting.report(RuntimeError("x"))
    assert only_span(exporter).status.status_code is StatusCode.UNSET


def test_current_trace_ids_are_the_span_ids_in_hex(tracer: Tracer) -> None:
    """Trace id is 32 hex digits, span id 16, as W3C traceparent writes them."""
    assert current_trace_ids() == (None, None)
    with tracer.start_as_current_span("op") as span:
        ctx = span.get_span_context()
        assert current_trace_ids() == (f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}")


def test_trace_context_binds_ids_into_errorkit_context(tracer: Tracer) -> None:
    """Inside trace_context(), errorkit's context carries the span's ids."""
    with tracer.start_as_current_span("op"), trace_context():
        trace_id, span_id = current_trace_ids()
        ctx = current_context()
        assert (ctx.trace_id, ctx.span_id) == (trace_id, span_id)
    assert current_context().trace_id is None


def test_log_lines_carry_the_trace_ids(tracer: Tracer, json_lines: Lines) -> None:
    """A line logged inside a span has its trace and span ids."""
    import structlog

    with tracer.start_as_current_span("op"):
        trace_id, span_id = current_trace_ids()
        structlog.get_logger("app").info("inside")
    (record,) = json_lines.records()
    assert (record["trace_id"], record["span_id"]) == (trace_id, span_id)


@pytest.fixture(autouse=True)
def _tracing_off() -> Iterator[None]:
    yield
    disable_tracing()
