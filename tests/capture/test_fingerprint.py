"""Grouping: one fingerprint per issue, stable across line shifts and message values."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from types import ModuleType

import pytest

from errorkit import AppError, NotFoundError
from errorkit.capturing.fingerprint import (
    DEFAULT_PLACEHOLDER,
    apply_override,
    group_exception,
    group_message,
    is_in_app,
    normalize_message,
)


def _module_from_source(tmp_path: Path, name: str, source: str) -> ModuleType:
    """Import ``source`` as a real module file (so frames have a file and a module name)."""
    path = tmp_path / f"{name}.py"
    path.write_text(source)
    module = ModuleType(name)
    module.__file__ = str(path)
    exec(compile(source, str(path), "exec"), module.__dict__)
    return module


def _raised(func: object, *args: object) -> BaseException:
    try:
        func(*args)  # type: ignore[operator]
    except BaseException as exc:
        return exc
    raise AssertionError("expected an exception")


SOURCE = """
def parse(value):
    return int(value)

def handler(value):
    return parse(value)
"""


def test_line_shifts_keep_the_fingerprint(tmp_path: Path) -> None:
    """The same code moved down a file (new lines above it) keeps its fingerprint."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    before = _module_from_source(tmp_path / "a", "orders", SOURCE)
    after = _module_from_source(tmp_path / "b", "orders", "\n\n# a comment\n\n" + SOURCE)
    first = group_exception(_raised(before.handler, "abc"), "shop")
    second = group_exception(_raised(after.handler, "abc"), "shop")
    assert first.fingerprint == second.fingerprint


def test_message_values_keep_the_fingerprint(tmp_path: Path) -> None:
    """Errors that differ only by a value in their message share a fingerprint."""
    module = _module_from_source(tmp_path, "parsing", SOURCE)
    a = group_exception(_raised(module.handler, "abc"), "shop")
    b = group_exception(_raised(module.handler, "xyz"), "shop")
    assert a == b
    assert a.title == "ValueError: invalid literal for int() with base <num>: <str>"


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("order 17 failed", "order <num> failed"),
        ("user 3f2a9c1e-7b1d-4c2e-9f3a-0123456789ab missing", "user <uuid> missing"),
        ("mail to ann@example.org bounced", "mail to <email> bounced"),
        ("GET https://api.example.com/v1/items/9 failed", "GET <url> failed"),
        ("key 'user_id' missing", "key <str> missing"),
        ('key "user_id" missing', "key <str> missing"),
        ("object at 0x7f3a2c1b", "object at <hex>"),
        ("digest deadbeef0123 mismatch", "digest <hex> mismatch"),
        ("took 1.5s (limit 80%)", "took <num> (limit <num>)"),
        ("utf-8 codec, int32 value, v2 api", "utf-8 codec, int32 value, v2 api"),
        ("retry 3 of 12.", "retry <num> of <num>."),
    ],
)
def test_normalize_message(message: str, expected: str) -> None:
    """Values are replaced by placeholders; names that contain digits are kept."""
    assert normalize_message(message) == expected


def test_different_messages_split_groups() -> None:
    """Errors raised at the same place with different texts are different issues."""

    def fail(text: str) -> None:
        raise RuntimeError(text)

    a = group_exception(_raised(fail, "disk full"), "svc")
    b = group_exception(_raised(fail, "permission denied"), "svc")
    assert a.fingerprint != b.fingerprint


def test_different_places_split_groups() -> None:
    """The same error raised from two different functions is two issues."""

    def one() -> None:
        raise KeyError("x")

    def two() -> None:
        raise KeyError("x")

    assert group_exception(_raised(one), "svc") != group_exception(_raised(two), "svc")


def test_service_is_part_of_the_fingerprint() -> None:
    """Two services never share an issue."""
    exc = _raised(int, "x")
    assert group_exception(exc, "a").fingerprint != group_exception(exc, "b").fingerprint


def test_cause_is_part_of_the_fingerprint() -> None:
    """A generic error raised from different causes is different issues."""

    def wrap(cause: BaseException) -> None:
        raise RuntimeError("request failed") from cause

    a = group_exception(_raised(wrap, KeyError("k")), "svc")
    b = group_exception(_raised(wrap, TimeoutError("t")), "svc")
    assert a.fingerprint != b.fingerprint


def test_recursion_depth_does_not_split_groups() -> None:
    """Collapsing repeated frames: a recursion 5 or 30 deep is the same issue."""

    def down(n: int) -> None:
        if n == 0:
            raise ValueError("bottom")
        down(n - 1)

    assert group_exception(_raised(down, 5), "s") == group_exception(_raised(down, 30), "s")


class HealthDataMissing(NotFoundError):
    code = "CAPTURE_TEST_HEALTH_MISSING"
    message = "No health data for {period}"


def test_app_error_without_stack_groups_by_code() -> None:
    """An AppError built but never raised groups by its code, whatever its details."""
    a = group_exception(HealthDataMissing(period="7d"), "svc")
    b = group_exception(HealthDataMissing(period="30d"), "svc")
    assert a.fingerprint == b.fingerprint
    assert a.title == "HealthDataMissing: No health data for <period>"


def test_app_error_code_separates_groups() -> None:
    """Two AppErrors raised at one place with different codes are two issues."""

    def fail(code: str) -> None:
        raise AppError("failed", code=code)

    a = group_exception(_raised(fail, "BILLING_CARD_DECLINED"), "svc")
    b = group_exception(_raised(fail, "BILLING_CARD_EXPIRED"), "svc")
    assert a.fingerprint != b.fingerprint


def test_exception_group_members_are_part_of_the_fingerprint() -> None:
    """ExceptionGroups with different member types are different issues."""

    def fail(*members: Exception) -> None:
        raise ExceptionGroup("many", list(members))

    a = group_exception(_raised(fail, ValueError("a"), KeyError("b")), "svc")
    b = group_exception(_raised(fail, ValueError("a"), ValueError("c")), "svc")
    assert a.fingerprint != b.fingerprint


@pytest.mark.parametrize(
    "override",
    ["checkout-timeout", ["checkout", "timeout"]],
)
def test_override_replaces_the_fingerprint(override: str | list[str]) -> None:
    """A ``fingerprint=`` string or list decides the group, whatever the error."""
    one = group_exception(_raised(int, "x"), "svc")
    other = group_exception(_raised({}.__getitem__, "k"), "svc")
    assert (
        apply_override(override, one, "svc").fingerprint
        == apply_override(override, other, "svc").fingerprint
    )


def test_override_with_default_placeholder_refines_the_default() -> None:
    """``[DEFAULT_PLACEHOLDER, "tenant-a"]`` splits the default group by tenant."""
    default = group_exception(_raised(int, "x"), "svc")
    a = apply_override([DEFAULT_PLACEHOLDER, "tenant-a"], default, "svc")
    b = apply_override([DEFAULT_PLACEHOLDER, "tenant-b"], default, "svc")
    assert a.fingerprint != b.fingerprint
    assert a.fingerprint != default.fingerprint


def test_messages_group_by_template_values_removed() -> None:
    """Captured messages group by their text with values replaced, per logger."""
    a = group_message("payment 17 declined", "svc", "billing")
    b = group_message("payment 4242 declined", "svc", "billing")
    c = group_message("payment 17 declined", "svc", "shipping")
    assert a == b
    assert a.fingerprint != c.fingerprint
    assert a.title == "payment <num> declined"


def test_in_app_frames() -> None:
    """The app's files are in-app; the standard library, site-packages and errorkit are not."""
    import json

    import errorkit

    assert is_in_app(__file__)
    assert not is_in_app(json.__file__)
    assert not is_in_app(errorkit.__file__)
    assert not is_in_app(os.path.join(sys.prefix, "lib", "site-packages", "x", "y.py"))
    assert not is_in_app("<frozen importlib._bootstrap>")


def test_template_titles_show_field_names_and_group_by_fields_split() -> None:
    """A templated AppError groups on its template and its title shows unfilled fields as
    ``<name>``; fields named in ``group_by`` are filled in and make issues of their own; an
    explicit message groups on that message, not on the class's template."""

    class QuotaLeft(AppError):
        code = "TEST_QUOTA_LEFT"
        message = "Quota of {tenant} for {user} is used up."
        group_by = ("tenant",)

    def boom(message: str | None, tenant: str, user: str) -> None:
        raise QuotaLeft(message, tenant=tenant, user=user)

    a = group_exception(_raised(boom, None, "acme", "ann"), "svc")
    b = group_exception(_raised(boom, None, "acme", "bob"), "svc")
    c = group_exception(_raised(boom, None, "umbrella", "ann"), "svc")
    d = group_exception(_raised(boom, "Quota checks are down.", "acme", "ann"), "svc")
    assert a == b
    assert a.title == "QuotaLeft: Quota of acme for <user> is used up."
    assert c.fingerprint != a.fingerprint
    assert c.title == "QuotaLeft: Quota of umbrella for <user> is used up."
    assert d.fingerprint != a.fingerprint
    assert d.title == "QuotaLeft: Quota checks are down."


def test_template_fingerprints_without_group_by_are_unchanged() -> None:
    """Classes that name no ``group_by`` field group on the raw template, as before."""
    from errorkit.capturing.fingerprint import _digest, _structures

    def boom(user: str) -> None:
        raise NotFoundError("No user {user}.", user=user)

    exc = _raised(boom, "ann")
    grouping = group_exception(exc, "svc")
    structures = [v for k, v in _structures.items() if k[:2] == ("svc", "NOT_FOUND")]
    assert grouping.fingerprint in {_digest(v, "No user {user}.") for v in structures}
    assert grouping.title == "NotFoundError: No user <user>."


def test_classified_code_splits_one_exception_type() -> None:
    """An upstream's 429 and its 401 are both httpx.HTTPStatusError with the status quoted
    (a placeholder after normalising); their classified codes make them two issues, while
    an unclassified exception's fingerprint does not depend on classification."""
    import httpx

    from errorkit.capturing.fingerprint import _digest, _structures

    def call(status: int) -> None:
        request = httpx.Request("POST", "https://llm.example/v1/chat")
        httpx.Response(status, request=request).raise_for_status()

    limited = group_exception(_raised(call, 429), "svc")
    again = group_exception(_raised(call, 429), "svc")
    refused = group_exception(_raised(call, 401), "svc")
    assert limited == again
    assert limited.title == refused.title
    assert limited.fingerprint != refused.fingerprint

    def plain() -> None:
        raise RuntimeError("boom")

    grouping = group_exception(_raised(plain), "svc-plain")
    structures = [v for k, v in _structures.items() if k[:2] == ("svc-plain", "")]
    assert grouping.fingerprint in {_digest(v, "boom") for v in structures}
