"""The error-code catalog and `errorkit codes`."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

import errorkit
from errorkit import AppError, CatalogError, catalog, config
from errorkit.cli import cli
from errorkit.codes import Catalog, validate_code


@pytest.mark.parametrize(
    "code",
    [
        "lower_case",
        "NOTFOUND",
        "DOUBLE__UNDERSCORE",
        "_LEADING",
        "TRAILING_",
        "1ST_CODE",
        "A_B_C_D_E_F_G",
        "WITH-DASH",
        "X_" + "Y" * 70,
    ],
)
def test_bad_codes_fail_at_definition_naming_code_and_rule(code: str) -> None:
    """A class with a bad code fails when defined; the message names the code and the rule."""
    with pytest.raises(CatalogError) as info:
        type("Bad", (AppError,), {"code": code})
    assert repr(code) in str(info.value)
    assert "UPPER_SNAKE" in str(info.value)


def test_duplicate_code_fails_naming_both_owners() -> None:
    """Two classes cannot share a code."""
    with pytest.raises(CatalogError) as info:
        type("Again", (AppError,), {"code": "RATE_LIMIT_EXCEEDED", "__module__": "myapp.errors"})
    message = str(info.value)
    assert "'RATE_LIMIT_EXCEEDED' is defined twice" in message
    assert "errorkit.errors.RateLimitError" in message and "myapp.errors.Again" in message


def test_redefinition_by_the_same_owner_replaces() -> None:
    """Re-running a module (a reload) does not count as a duplicate."""
    local = Catalog()
    local.define(
        "ORDER_ITEM_MISSING",
        status=404,
        category="client",
        severity="warning",
        retriable=False,
        description="a",
        owner="shop.Err",
    )
    local.define(
        "ORDER_ITEM_MISSING",
        status=404,
        category="client",
        severity="warning",
        retriable=False,
        description="b",
        owner="shop.Err",
    )
    info = local.get("ORDER_ITEM_MISSING")
    assert info is not None and info.description == "b"


def test_status_must_be_http() -> None:
    """A status outside 100-599 is refused."""
    with pytest.raises(CatalogError, match="not an HTTP status"):
        Catalog().define(
            "ORDER_ITEM_MISSING",
            status=42,
            category="client",
            severity="warning",
            retriable=False,
            description="a",
        )


def test_every_entry_has_the_reference_columns() -> None:
    """Each code has status, category, severity, retriable and a description."""
    for info in catalog:
        assert info.description and info.title
        assert 100 <= info.status <= 599


def test_cli_prints_markdown_and_json() -> None:
    """`errorkit codes` prints the whole catalog as Markdown or JSON."""
    runner = CliRunner()
    md = runner.invoke(cli, ["codes"])
    assert md.exit_code == 0, md.output
    assert md.output.startswith("| Code | HTTP | Category | Severity | Retriable | Description |")
    js = runner.invoke(cli, ["codes", "--format", "json"])
    data = json.loads(js.output)
    codes = {row["code"] for row in data}
    assert {"INTERNAL_ERROR", "RATE_LIMIT_EXCEEDED", "CIRCUIT_OPEN", "VALIDATION_ERROR"} <= codes
    assert len(data) == len(catalog)
    assert md.output.count("\n") == len(catalog) + 2


def test_cli_imports_user_modules_and_reports_bad_ones() -> None:
    """--import pulls a user's error module in; a bad module name is a usage error."""
    runner = CliRunner()
    result = runner.invoke(cli, ["codes", "--import", "no_such_module_xyz"])
    assert result.exit_code == 2
    assert "could not import 'no_such_module_xyz'" in result.output


@pytest.mark.parametrize("code", ["HEALTH_DATA_LOST\n", "HEALTH_DATA_LOST\r\n", "\nNOT_FOUND"])
def test_code_rule_matches_the_whole_string(code: str) -> None:
    """A code with a trailing (or leading) newline breaks the rule."""
    with pytest.raises(CatalogError, match="is not valid"):
        validate_code(code)
    with pytest.raises(CatalogError, match="is not valid"):
        AppError("x", code=code)


@pytest.fixture
def own_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """The test's setting changes (the code rule) are undone afterwards, and the catalog
    holds only errorkit's own codes while it runs (other tests' codes are put back)."""
    monkeypatch.setattr(config, "_settings", config.load_settings(environ={}))
    own = {i.code: i for i in catalog if i.owner.startswith("errorkit.")}
    monkeypatch.setattr(catalog, "_codes", own)


@pytest.mark.usefixtures("own_settings")
def test_strict_code_rule_wants_exactly_three_segments() -> None:
    """Opted in, a project's codes are exactly {DOMAIN}_{RESOURCE}_{ISSUE}; errorkit's own
    codes and those already in the catalog stay usable."""
    validate_code("HEALTH_DATA_NOT_FOUND")
    errorkit.set_code_rule("strict")
    assert errorkit.get_settings().code_rule == "strict"
    for bad in ("HEALTH_MISSING", "HEALTH_DATA_NOT_FOUND"):
        with pytest.raises(CatalogError, match="strict code rule") as info:
            type("Bad", (AppError,), {"code": bad, "__module__": "myapp.errors"})
        assert repr(bad) in str(info.value)
    good = type("Good", (AppError,), {"code": "HEALTH_DATA_LOST", "__module__": "myapp.errors"})
    try:
        assert catalog.get("HEALTH_DATA_LOST") is not None
        assert errorkit.NotFoundError().code == "NOT_FOUND"  # errorkit's own: two segments
        assert AppError("x", code="NOT_FOUND").code == "NOT_FOUND"  # in the catalog
        errorkit.set_code_rule("default")
        validate_code("HEALTH_MISSING")
    finally:
        catalog.forget(good.code)


@pytest.mark.usefixtures("own_settings")
def test_strict_code_rule_refuses_codes_already_defined() -> None:
    """Switching to strict after a project defined codes that break it fails, naming them,
    and changes nothing."""
    type("Early", (AppError,), {"code": "BILLING_LATE", "__module__": "myapp.errors"})
    try:
        with pytest.raises(CatalogError, match=r"BILLING_LATE \(myapp.errors.Early\)"):
            errorkit.set_code_rule("strict")
        assert errorkit.get_settings().code_rule == "default"
    finally:
        catalog.forget("BILLING_LATE")


def test_code_rule_setting_comes_from_the_environment() -> None:
    """ERRORKIT_CODE_RULE=strict is the same setting; other values are refused."""
    assert config.load_settings(environ={"ERRORKIT_CODE_RULE": "strict"}).code_rule == "strict"
    with pytest.raises(errorkit.ConfigError, match="code_rule='loose'"):
        config.load_settings(environ={"ERRORKIT_CODE_RULE": "loose"})
