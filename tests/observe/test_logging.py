"""Structured logging: what setup_logging really writes, parsed back."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import structlog
from hypothesis import assume, given
from hypothesis import strategies as st

from errorkit import _guard
from errorkit.config import ConfigError
from errorkit.context import context_scope
from errorkit.errors import error_id_of
from errorkit.observe.logging import (
    LoggingSetup,
    log_performance_metric,
    log_security_event,
    scrub_event,
    setup_logging,
)

from .conftest import Lines

SECRET = "hunter2-very-secret"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJlc2ln"


def _native(name: str = "app.orders") -> Any:
    return structlog.get_logger(name)


def test_json_line_has_the_standard_fields_and_the_request_context(json_lines: Lines) -> None:
    """A structlog line carries time, level, event, logger, category and the context ids."""
    with context_scope(request_id="req-42", correlation_id="corr-7", session_id="sess-1"):
        _native().info("order_created", order_id=17)
    (record,) = json_lines.records()
    assert record["event"] == "order_created"
    assert record["level"] == "info"
    assert record["logger"] == "app.orders"
    assert record["category"] == "app"
    assert record["order_id"] == 17
    assert record["timestamp"].endswith("Z")
    assert (record["request_id"], record["correlation_id"], record["session_id"]) == (
        "req-42",
        "corr-7",
        "sess-1",
    )


def test_stdlib_and_third_party_lines_look_the_same(json_lines: Lines) -> None:
    """A plain logging.getLogger() record goes through the same processors."""
    with context_scope(request_id="req-1"):
        _native().warning("from_structlog")
        logging.getLogger("urllib3.connectionpool").warning("retrying %s", "GET /x")
    native, foreign = json_lines.records()
    assert foreign["event"] == "retrying GET /x"
    assert foreign["logger"] == "urllib3.connectionpool"
    assert set(native) == set(foreign)


def test_stdlib_extra_fields_are_kept(json_lines: Lines) -> None:
    """``extra={...}`` of a stdlib call becomes fields of the line."""
    logging.getLogger("lib").info("payment", extra={"amount": 12.5})
    assert json_lines.records()[0]["amount"] == 12.5


@pytest.mark.parametrize(
    ("emit", "leaked"),
    [
        (lambda: _native().info("login", password=SECRET), SECRET),
        (lambda: _native().info(f"login failed password={SECRET}"), SECRET),
        (lambda: _native().info("call", headers={"Authorization": f"Bearer {SECRET}"}), SECRET),
        (lambda: _native().info("token", value=JWT), JWT),
        (lambda: _native().info("card", note="paid with 4111 1111 1111 1111"), "4111 1111"),
        (lambda: logging.getLogger("lib").info("k", extra={"api_key": SECRET}), SECRET),
        (lambda: logging.getLogger("lib").info("dsn postgres://u:%s@db/x", SECRET), SECRET),
    ],
    ids=["kwarg", "message", "nested-header", "jwt", "card", "stdlib-extra", "stdlib-args"],
)
def test_secrets_never_reach_the_line(
    json_lines: Lines, emit: Callable[[], None], leaked: str
) -> None:
    """Every record is scrubbed before it is rendered, whichever way it was logged."""
    emit()
    text = json_lines.getvalue()
    assert text.strip()
    assert leaked not in text
    assert "[Filtered]" in text


def test_secret_in_an_exception_message_is_scrubbed(json_lines: Lines) -> None:
    """The rendered exception goes through the scrubber too."""
    try:
        raise RuntimeError(f"connect failed password={SECRET}")
    except RuntimeError:
        _native().exception("db_down")
    assert SECRET not in json_lines.getvalue()


def test_exception_is_structured_and_names_the_occurrence(json_lines: Lines) -> None:
    """``log.exception`` renders the exception as data with the error id errorkit uses."""
    try:
        raise KeyError("missing")
    except KeyError as exc:
        caught = exc
        _native().exception("lookup_failed")
    (record,) = json_lines.records()
    assert record["category"] == "errors"
    assert record["error_id"] == error_id_of(caught)
    assert record["error_code"] == "INTERNAL_ERROR"
    (exc_data,) = record["exception"]
    assert exc_data["exc_type"] == "KeyError"
    assert exc_data["frames"][-1]["name"] == "test_exception_is_structured_and_names_the_occurrence"


def test_stdlib_exception_is_structured_too(json_lines: Lines) -> None:
    """``logging.exception`` from any library gives the same structured exception."""
    try:
        1 / 0  # noqa: B018
    except ZeroDivisionError:
        logging.getLogger("lib").exception("math")
    (record,) = json_lines.records()
    assert record["exception"][0]["exc_type"] == "ZeroDivisionError"
    assert record["error_type"] == "unknown_error"


def test_newlines_cannot_forge_lines(json_lines: Lines) -> None:
    """A value with line breaks stays on its own single line."""
    _native().info("user input", name='alice\n{"level": "critical"}')
    assert len(json_lines.getvalue().splitlines()) == 1


def test_level_filters_records(configure_logging: Callable[..., LoggingSetup]) -> None:
    """Records below the level are dropped for structlog and stdlib alike."""
    stream = Lines()
    configure_logging(stream=stream, level="WARNING", renderer="json")
    _native().info("quiet")
    logging.getLogger("lib").info("quiet too")
    _native().warning("loud")
    assert [r["event"] for r in stream.records()] == ["loud"]


def test_log_level_comes_from_the_environment(
    configure_logging: Callable[..., LoggingSetup], fresh_settings: Callable[..., None]
) -> None:
    """``LOG_LEVEL`` sets the level when no argument does."""
    fresh_settings(LOG_LEVEL="ERROR")
    setup = configure_logging(stream=Lines())
    assert setup.level == logging.ERROR


@pytest.mark.parametrize(
    ("env", "renderer"),
    [("production", "json"), ("staging", "json"), ("development", "console"), ("local", "console")],
)
def test_environment_picks_the_renderer(
    configure_logging: Callable[..., LoggingSetup],
    fresh_settings: Callable[..., None],
    env: str,
    renderer: str,
) -> None:
    """``ERRORKIT_ENV``: JSON lines in production, a readable console in development."""
    fresh_settings(ERRORKIT_ENV=env)
    stream = Lines()
    setup = configure_logging(stream=stream)
    _native().warning("hello", request="r1")
    assert setup.renderer == renderer
    line = stream.getvalue().strip()
    if renderer == "json":
        assert json.loads(line)["event"] == "hello"
    else:
        assert "hello" in line and "request=r1" in line and not line.startswith("{")


def test_console_lines_are_scrubbed(configure_logging: Callable[..., LoggingSetup]) -> None:
    """The development renderer is scrubbed like the JSON one."""
    stream = Lines()
    configure_logging(stream=stream, renderer="console", colors=False)
    _native().info("login", password=SECRET)
    try:
        raise ValueError(f"token={SECRET}")
    except ValueError:
        _native().exception("failed")
    assert SECRET not in stream.getvalue()
    assert "ValueError" in stream.getvalue()


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"level": "LOUD"}, "LOG_LEVEL"),
        ({"backup_count": 0}, "backup_count"),
        ({"max_bytes": 10}, "max_bytes"),
        ({"categories": ["audit"]}, "unknown log categories"),
        ({"renderer": "xml"}, "renderer"),
        ({"processors": ["not callable"]}, "not callable"),
    ],
)
def test_bad_settings_say_what_to_fix(
    configure_logging: Callable[..., LoggingSetup], kwargs: dict[str, Any], fragment: str
) -> None:
    """Bad arguments raise ConfigError naming the setting."""
    with pytest.raises(ConfigError, match=fragment):
        configure_logging(stream=Lines(), **kwargs)


def test_bad_log_level_in_the_environment_is_named(
    configure_logging: Callable[..., LoggingSetup], fresh_settings: Callable[..., None]
) -> None:
    """An unknown LOG_LEVEL says which variable and which values work."""
    fresh_settings(LOG_LEVEL="chatty")
    with pytest.raises(ConfigError, match=r"'chatty'.*DEBUG, INFO"):
        configure_logging(stream=Lines())


def _file_records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_category_files_hold_only_their_category(
    configure_logging: Callable[..., LoggingSetup], tmp_path: Path
) -> None:
    """app, errors, security and performance files each get only their own records."""
    setup = configure_logging(stream=Lines(), log_dir=tmp_path, level="DEBUG")
    _native().info("started")
    logging.getLogger("lib").warning("slow disk")
    _native().error("payment_failed")
    logging.getLogger("lib").error("lib broke")
    log_security_event("failed_login", "three failed logins", user_id="u1", ip_address="10.0.0.1")
    logging.getLogger("lib").warning("audit", extra={"category": "security"})
    log_performance_metric("render_time", 1234.5, unit="ms", video="v1")
    for handler in setup.handlers:
        handler.flush()
    by_file = {c: _file_records(p) for c, p in setup.files.items()}
    assert [r["event"] for r in by_file["app"]] == ["started", "slow disk"]
    assert [r["event"] for r in by_file["errors"]] == ["payment_failed", "lib broke"]
    assert [r["event"] for r in by_file["security"]] == ["three failed logins", "audit"]
    assert [r["metric"] for r in by_file["performance"]] == ["render_time"]
    for category, records in by_file.items():
        assert {r["category"] for r in records} == {category}


def test_security_event_fields(json_lines: Lines) -> None:
    """log_security_event writes the event type, who and from where, at warning."""
    log_security_event("token_reuse", "refresh token reused", user_id="u9", ip_address="1.2.3.4")
    (record,) = json_lines.records()
    assert record["security_event"] == "token_reuse"
    assert (record["user_id"], record["ip_address"], record["level"]) == (
        "u9",
        "1.2.3.4",
        "warning",
    )
    assert record["logger"] == "errorkit.security"


def test_performance_metric_fields(json_lines: Lines) -> None:
    """log_performance_metric writes name, value and unit."""
    log_performance_metric("db_query", 12.5, unit="ms", table="orders")
    (record,) = json_lines.records()
    assert (record["metric"], record["value"], record["unit"], record["table"]) == (
        "db_query",
        12.5,
        "ms",
        "orders",
    )
    assert record["category"] == "performance"


def test_category_files_rotate_and_keep_a_bounded_number(
    configure_logging: Callable[..., LoggingSetup], tmp_path: Path
) -> None:
    """A category file rotates at max_bytes and keeps only backup_count old files."""
    setup = configure_logging(
        console=False, log_dir=tmp_path, categories=["app"], max_bytes=1024, backup_count=2
    )
    for i in range(200):
        _native().info("line", i=i, padding="x" * 50)
    for handler in setup.handlers:
        handler.flush()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["app.log", "app.log.1", "app.log.2"]
    assert all(p.stat().st_size <= 1024 for p in tmp_path.iterdir())
    assert _file_records(tmp_path / "app.log")[-1]["i"] == 199


def test_unwritable_log_dir_is_a_clear_error(
    configure_logging: Callable[..., LoggingSetup], tmp_path: Path
) -> None:
    """A log_dir that cannot be created names itself and the fix."""
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(ConfigError, match="writable"):
        configure_logging(stream=Lines(), log_dir=blocker / "logs")


def test_failing_processor_never_reaches_the_caller(
    configure_logging: Callable[..., LoggingSetup],
) -> None:
    """A user processor that raises is skipped and counted; the line is still written."""

    def broken(logger: Any, method: str, event: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError("processor bug")

    stream = Lines()
    configure_logging(stream=stream, renderer="json", processors=[broken])
    before = _guard.internal_error_counts().get("logging.processor", 0)
    _native().info("still_logged", password=SECRET)
    logging.getLogger("lib").info("stdlib too")
    assert [r["event"] for r in stream.records()] == ["still_logged", "stdlib too"]
    assert SECRET not in stream.getvalue()
    assert _guard.internal_error_counts()["logging.processor"] == before + 2


def test_processor_returning_something_else_is_skipped(
    configure_logging: Callable[..., LoggingSetup],
) -> None:
    """A processor that forgets to return the event dict does not lose the line."""

    def forgetful(logger: Any, method: str, event: dict[str, Any]) -> None:
        event["seen"] = True

    stream = Lines()
    configure_logging(stream=stream, renderer="json", processors=[forgetful])
    _native().info("kept")
    assert stream.records()[0]["event"] == "kept"


def test_user_processors_run_before_scrubbing(
    configure_logging: Callable[..., LoggingSetup],
) -> None:
    """What a user processor adds is scrubbed like the rest."""

    def add_secret(logger: Any, method: str, event: dict[str, Any]) -> dict[str, Any]:
        event["client_secret"] = SECRET
        event["deploy"] = "blue"
        return event

    stream = Lines()
    configure_logging(stream=stream, renderer="json", processors=[add_secret])
    _native().info("x")
    (record,) = stream.records()
    assert record["deploy"] == "blue"
    assert record["client_secret"] == "[Filtered]"


class _BrokenStream(io.StringIO):
    def write(self, s: str) -> int:
        raise OSError("disk full")


def test_failing_output_never_reaches_the_caller(
    configure_logging: Callable[..., LoggingSetup],
) -> None:
    """A stream that fails to write is counted, not raised or printed per record."""
    configure_logging(stream=_BrokenStream(), renderer="json")
    before = _guard.internal_error_counts().get("logging.handler", 0)
    _native().error("lost")
    logging.getLogger("lib").error("lost too")
    assert _guard.internal_error_counts()["logging.handler"] == before + 2


def test_setting_up_twice_does_not_duplicate_lines(
    configure_logging: Callable[..., LoggingSetup],
) -> None:
    """The second setup replaces the first; each record is written once."""
    first, second = Lines(), Lines()
    configure_logging(stream=first, renderer="json")
    cached = _native("cached")
    cached.info("one")
    configure_logging(stream=second, renderer="json")
    cached.info("two")
    logging.getLogger("lib").info("three")
    assert [r["event"] for r in first.records()] == ["one"]
    assert [r["event"] for r in second.records()] == ["two", "three"]


def test_close_restores_the_previous_root_handlers(
    configure_logging: Callable[..., LoggingSetup],
) -> None:
    """close() removes errorkit's handlers and puts back the ones it replaced."""
    root = logging.getLogger()
    original = list(root.handlers)
    setup = configure_logging(stream=Lines())
    assert set(root.handlers) == set(setup.handlers)
    setup.close()
    assert root.handlers == original


def test_server_loggers_are_routed_through_the_setup(
    configure_logging: Callable[..., LoggingSetup],
) -> None:
    """uvicorn's own handlers are replaced so its lines look like the app's."""
    uvicorn_logger = logging.getLogger("uvicorn.error")
    own = logging.StreamHandler(io.StringIO())
    uvicorn_logger.addHandler(own)
    uvicorn_logger.propagate = False
    try:
        stream = Lines()
        configure_logging(stream=stream, renderer="json")
        uvicorn_logger.warning("Application startup complete.")
        assert stream.records()[0]["logger"] == "uvicorn.error"
    finally:
        uvicorn_logger.removeHandler(own)
        uvicorn_logger.propagate = True


def test_scrub_event_keeps_context_identifiers() -> None:
    """session_id is an identifier errorkit carries: kept, but its value is still scrubbed."""
    out = scrub_event({"session_id": "s-1", "request_id": JWT, "password": SECRET})
    assert out == {"session_id": "s-1", "request_id": "[Filtered]", "password": "[Filtered]"}


def test_scrub_event_cleans_odd_keys() -> None:
    """A key with a line break cannot forge a line either."""
    out = scrub_event({"a\nb": 1})
    assert list(out) == ["a\\nb"]


def test_scrub_cache_is_bounded() -> None:
    """Thousands of distinct values never grow the remembered scrub results past the cap."""
    from errorkit.observe import logging as observe_logging

    for i in range(5_000):
        scrub_event({"event": f"distinct value {i}"})
    caches = observe_logging._caches_for(observe_logging.default_scrubber())
    assert len(caches.texts) <= observe_logging._CACHE_ITEMS


def test_a_new_scrubber_is_not_served_stale_results(
    configure_logging: Callable[..., LoggingSetup],
) -> None:
    """Results remembered for one scrubber are not reused by another."""
    from errorkit.scrubbing import Scrubber

    first, second = Lines(), Lines()
    configure_logging(stream=first, renderer="json")
    _native().info("ticket", ref="INTERNAL-4242")
    configure_logging(
        stream=second, renderer="json", scrubber=Scrubber(extra_patterns=[r"INTERNAL-\d+"])
    )
    _native().info("ticket", ref="INTERNAL-4242")
    assert first.records()[0]["ref"] == "INTERNAL-4242"
    assert second.records()[0]["ref"] == "[Filtered]"


_secret_chars = st.text(
    alphabet=st.characters(
        min_codepoint=48, max_codepoint=122, whitelist_categories=("Lu", "Ll", "Nd")
    ),
    min_size=12,
    max_size=40,
)


@given(
    prefix=st.text(max_size=40),
    suffix=st.text(max_size=40),
    secret=_secret_chars,
    shape=st.sampled_from(["password={}", "Bearer {}", "api_key: {}", "https://u:{}@h/"]),
)
def test_planted_secrets_never_reach_a_line(
    prefix: str, suffix: str, secret: str, shape: str
) -> None:
    """Whatever surrounds it, a planted credential is not written, and a record is one line."""
    assume(secret not in prefix and secret not in suffix)
    stream = Lines()
    setup = setup_logging(stream=stream, renderer="json", level="INFO")
    try:
        message = f"{prefix} {shape.format(secret)} {suffix}"
        _native().info(message, note=message)
        logging.getLogger("lib").warning(message)
    finally:
        setup.close()
    text = stream.getvalue()
    assert secret not in text
    assert len(text.splitlines()) == 2


def test_uvicorn_from_code_keeps_the_setup_only_with_log_config_none(
    configure_logging: Callable[..., LoggingSetup],
) -> None:
    """What docs/observability.md says: a uvicorn config built in code applies uvicorn's own
    logging (its lines bypass errorkit) unless ``log_config=None``."""
    import uvicorn

    doc = Path(__file__).resolve().parents[2] / "docs" / "observability.md"
    assert "log_config=None" in doc.read_text()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        return None

    names = ("uvicorn", "uvicorn.error", "uvicorn.access")
    saved = {n: (logging.getLogger(n).handlers[:], logging.getLogger(n).propagate) for n in names}
    try:
        stream = Lines()
        configure_logging(stream=stream, renderer="json")
        uvicorn.Config(app, log_config=None)
        logging.getLogger("uvicorn.error").warning("kept")
        uvicorn.Config(app)  # uvicorn's default log_config
        logging.getLogger("uvicorn.error").warning("bypassed")
        assert [r["event"] for r in stream.records()] == ["kept"]
    finally:
        for name, (handlers, propagate) in saved.items():
            logger = logging.getLogger(name)
            logger.handlers[:] = handlers
            logger.propagate = propagate
