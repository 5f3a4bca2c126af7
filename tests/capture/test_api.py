"""configure / capture / capture_message / flush / report: the public face of capture."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from tests.capture.conftest import stored_ids, total_count

from errorkit import NotFoundError, ServiceUnavailableError, ValidationError, error_id_of
from errorkit._reporting import report
from errorkit.capturing import api as capture
from errorkit.capturing.pipeline import CaptureSummary
from errorkit.config import ConfigError
from errorkit.store import ErrorStore, InvalidStoreURL


def _raised(exc: BaseException) -> BaseException:
    try:
        raise exc
    except BaseException as caught:
        return caught


@pytest.fixture
def configured(
    sqlite_url: str, tmp_path: Path, open_store: Callable[[str], ErrorStore]
) -> ErrorStore:
    """errorkit configured on a SQLite file; returns a reader of that store."""
    capture.configure(
        store_url=sqlite_url, service="shop", spool_dir=tmp_path / "spool", flush_interval=0.05
    )
    return open_store(sqlite_url)


# --- before configure --------------------------------------------------------------------------


def test_capture_before_configure_names_the_error_and_creates_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Unconfigured, capture returns the error's id, counts it and touches no disk."""
    monkeypatch.chdir(tmp_path)
    exc = _raised(ValueError("x"))
    assert capture.capture(exc) == error_id_of(exc)
    assert capture.capture_message("hello")
    assert capture.flush() is True
    assert list(tmp_path.iterdir()) == []
    stats = capture.stats()
    assert not stats.configured
    assert stats.dropped["not_configured"] >= 2
    assert capture.current_store() is None


def test_disabled_capture_is_counted_as_disabled(sqlite_url: str) -> None:
    """configure(enabled=False) keeps capture a no-op, counted under its own reason."""
    capture.configure(store_url=sqlite_url, enabled=False)
    capture.capture(_raised(ValueError("x")))
    assert not capture.is_configured()
    assert capture.stats().dropped["disabled"] >= 1


# --- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "fragment"),
    [
        ({"store_url": "mysql://db/x"}, InvalidStoreURL, "accepted forms"),
        ({"store_url": "sqlite:///:memory:"}, InvalidStoreURL, "in-memory"),
        ({"queue_size": 0}, ConfigError, "queue_size=0"),
        ({"flush_interval": 0}, ConfigError, "flush_interval"),
        ({"flood_per_minute": 0}, ConfigError, "flood_per_minute"),
        ({"store": object()}, TypeError, "write_batch"),
    ],
)
def test_configure_refuses_bad_input_with_the_fix(
    kwargs: dict[str, object], error: type[Exception], fragment: str
) -> None:
    """A value configure cannot use fails at once, saying what is accepted."""
    with pytest.raises(error, match=fragment):
        capture.configure(**kwargs)  # type: ignore[arg-type]
    assert not capture.is_configured()


# --- capturing ---------------------------------------------------------------------------------


def test_capture_stores_under_the_returned_id(configured: ErrorStore) -> None:
    """The id capture returns finds the stored row, with the configured service."""
    error_id = capture.capture(_raised(KeyError("sku")), endpoint="/cart", order=17)
    assert capture.flush(timeout=30)
    row = configured.get(error_id)
    assert row is not None
    assert (row.service, row.endpoint, row.exception_type) == ("shop", "/cart", "KeyError")
    assert row.data["extra"] == {"order": 17}


def test_capture_without_argument_takes_the_handled_exception(configured: ErrorStore) -> None:
    """Inside ``except``, capture() with no argument captures the exception being handled."""
    exc = LookupError("gone")
    try:
        raise exc
    except LookupError:
        error_id = capture.capture()
    assert error_id == error_id_of(exc)
    assert capture.flush(timeout=30)
    assert configured.get(error_id) is not None


def test_capture_outside_except_without_argument_is_counted() -> None:
    """capture() with nothing to capture returns an id and counts the mistake."""
    assert capture.capture()
    assert capture.stats().dropped["no_exception"] >= 1


def test_the_same_exception_is_captured_once(configured: ErrorStore) -> None:
    """Capturing one exception object twice (two layers) stores and counts it once."""
    exc = _raised(RuntimeError("once"))
    first = capture.capture(exc)
    second = capture.capture(exc)
    assert first == second
    assert capture.flush(timeout=30)
    assert stored_ids(configured) == [first]
    assert total_count(configured) == 1


def test_capture_never_raises_on_a_hostile_exception(configured: ErrorStore) -> None:
    """An exception whose __str__ and __repr__ raise is still captured."""

    class Hostile(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no str")

        def __repr__(self) -> str:
            raise RuntimeError("no repr")

    error_id = capture.capture(_raised(Hostile()))
    assert capture.flush(timeout=30)
    row = configured.get(error_id)
    assert row is not None and "unprintable" in row.error_message


def test_fingerprint_override_groups_different_errors(configured: ErrorStore) -> None:
    """fingerprint= puts different errors into one group."""
    capture.capture(_raised(KeyError("a")), fingerprint="cart-failures")
    capture.capture(_raised(ValueError("b")), fingerprint=["cart-failures"])
    assert capture.flush(timeout=30)
    (group,) = configured.groups().items
    assert group.count == 2


def test_capture_message(configured: ErrorStore) -> None:
    """capture_message stores a message event at the given level."""
    error_id = capture.capture_message("disk 91% full", level="warning", endpoint="/health")
    assert capture.flush(timeout=30)
    row = configured.get(error_id)
    assert row is not None
    assert (row.severity, row.error_code, row.error_message) == (
        "warning",
        "LOG_MESSAGE",
        "disk 91% full",
    )


def test_reconfigure_flushes_the_previous_pipeline(
    configured: ErrorStore, sqlite_url: str, tmp_path: Path
) -> None:
    """configure() again first stores what the old pipeline still held."""
    error_id = capture.capture(_raised(ValueError("before")))
    capture.configure(store_url=sqlite_url, spool_dir=tmp_path / "spool2")
    assert configured.get(error_id) is not None


def test_current_store_is_the_pipelines_store(configured: ErrorStore) -> None:
    """current_store() hands out the store errorkit writes to, for reading."""
    store = capture.current_store()
    assert isinstance(store, ErrorStore)
    assert store.url == configured.url


def test_listeners_registered_before_configure_are_kept(sqlite_url: str, tmp_path: Path) -> None:
    """add_listener() works before and across configure()."""
    heard: list[CaptureSummary] = []
    capture.add_listener(heard.append)
    try:
        capture.configure(store_url=sqlite_url, spool_dir=tmp_path / "spool")
        capture.capture(_raised(ValueError("x")))
        assert capture.flush(timeout=30)
        assert [s.count for s in heard] == [1]
    finally:
        capture.remove_listener(heard.append)


def test_add_listener_refuses_a_non_callable() -> None:
    """A listener must be callable; the message says what is expected."""
    with pytest.raises(TypeError, match="callable"):
        capture.add_listener("metrics")  # type: ignore[arg-type]


# --- the reporter seam (HTTP integrations, health checks, retries) ----------------------------


def test_report_stores_5xx_under_the_answers_error_id(configured: ErrorStore) -> None:
    """report() of a 5xx is stored under exactly the id the answer shows."""
    exc = _raised(ServiceUnavailableError())
    error_id = report(exc, endpoint="/pay", method="POST", status=503, request_id="r-1")
    assert capture.flush(timeout=30)
    row = configured.get(error_id)
    assert row is not None
    assert (row.status, row.method, row.request_id) == (503, "POST", "r-1")


def test_report_skips_4xx_by_default(configured: ErrorStore) -> None:
    """4xx answers are not captured unless capture_4xx is on."""
    report(_raised(NotFoundError()), status=404)
    assert capture.flush(timeout=30)
    assert stored_ids(configured) == []


def test_report_captures_4xx_and_validation_as_warning_when_asked(
    sqlite_url: str, tmp_path: Path, open_store: Callable[[str], ErrorStore]
) -> None:
    """With capture_4xx, 4xx answers are stored and validation errors are warnings."""
    capture.configure(store_url=sqlite_url, spool_dir=tmp_path / "spool", capture_4xx=True)
    not_found = report(_raised(NotFoundError()), status=404)
    invalid = report(
        _raised(ValidationError(field="email", reason="bad")),
        status=422,
        error_type="validation_error",
        severity="error",
    )
    assert capture.flush(timeout=30)
    reader = open_store(sqlite_url)
    assert reader.get(not_found) is not None
    row = reader.get(invalid)
    assert row is not None and row.severity == "warning"


def test_report_without_status_uses_the_classification(configured: ErrorStore) -> None:
    """A report from a health check (no HTTP status) is captured when it is a server error."""
    error_id = report(_raised(ConnectionError("db down")), error_type="health_check_error")
    assert capture.flush(timeout=30)
    row = configured.get(error_id)
    assert row is not None and row.error_type == "health_check_error"


def test_reporter_is_removed_on_shutdown(configured: ErrorStore) -> None:
    """After shutdown, report() only names the occurrence."""
    from errorkit import _reporting

    assert _reporting.get_reporter() is not None
    capture.shutdown()
    assert _reporting.get_reporter() is None
    error_id = report(_raised(RuntimeError("late")), status=500)
    assert error_id and configured.get(error_id) is None
