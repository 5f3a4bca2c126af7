"""The error-code catalog and `errorkit codes`."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from errorkit import AppError, CatalogError, catalog
from errorkit.catalog import Catalog
from errorkit.cli import cli


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
