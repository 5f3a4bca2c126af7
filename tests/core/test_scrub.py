"""The scrubber removes every planted secret, never raises and never mutates its input."""

from __future__ import annotations

import copy
import json
import re
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from errorkit.scrubbing import FILTERED, Scrubber, neutralize_newlines, normalize_key

SCRUBBER = Scrubber()

# Secrets of every shape the scrubber promises to find, each with a unique marker so a leak
# of any part of it is visible.
_alnum = st.text(string.ascii_letters + string.digits, min_size=24, max_size=40)


def _luhn_complete(prefix: str) -> str:
    digits = [int(c) for c in prefix]
    for check in range(10):
        total = 0
        for i, d in enumerate(reversed([*digits, check])):
            if i % 2 == 1:
                d *= 2
                if d > 9:
                    d -= 9
            total += d
        if total % 10 == 0:
            return prefix + str(check)
    raise AssertionError("unreachable")


cards = st.builds(
    lambda first, body: _luhn_complete(first + body),
    st.sampled_from(["4", "51", "37", "6011"]),
    st.text("0123456789", min_size=11, max_size=11),
)
secret_values = st.one_of(
    _alnum.map(lambda s: f"sk-proj-{s}"),
    _alnum.map(lambda s: f"ghp_{s}{s}"[:40]),
    _alnum.map(lambda s: "AKIA" + s.upper()[:16].ljust(16, "Q")),
    _alnum.map(lambda s: f"eyJhbGciOiJIUzI1NiJ9.eyJ{s}.{s}"),
    _alnum.map(lambda s: f"xoxb-{s}"),
    cards,
)
sensitive_keys = st.sampled_from(
    [
        "password",
        "Password",
        "PASSWORD",
        "user_password",
        "db-password",
        "api_key",
        "API-KEY",
        "apiKey",
        "x-api-key",
        "secret",
        "client_secret",
        "access_token",
        "refreshToken",
        "Authorization",
        "cookie",
        "Set-Cookie",
        "session_id",
        "csrf_token",
        "credit_card",
        "card_number",
        "cvv",
        "private_key",
        "github_token",
        "stripe_api_key",
        "jwt",
    ]
)
plain_keys = st.sampled_from(["name", "items", "count", "query", "model", "max_tokens", "note"])
# Free text values that carry a secret inside ordinary words.
carrier = st.sampled_from(
    [
        "{s}",
        "failed with {s} at step 3",
        "Authorization: Bearer {s}",
        "token={s}&page=2",
        "https://user:{s}@db.example.com/app",
        "postgres://app:{s}@10.0.0.1:5432/db",
        "GET /callback?api_key={s}&x=1",
        "password: {s}",
        '{{"password": "{s}"}}',
        "card {s} declined",
    ]
)


def _leaks(secret: str, value: object) -> bool:
    text = json.dumps(value, default=str)
    # The secret itself or any 12-char window of it must not survive.
    core = re.sub(r"[^A-Za-z0-9]", "", secret)
    windows = {core[i : i + 12] for i in range(max(1, len(core) - 11))}
    return secret in text or any(w in re.sub(r"[^A-Za-z0-9]", "", text) for w in windows)


@st.composite
def planted(draw: st.DrawFn) -> tuple[object, list[str]]:
    """A nested payload with secrets under sensitive keys and inside strings."""
    secrets: list[str] = []

    def leaf() -> object:
        kind = draw(st.integers(0, 3))
        if kind == 0:
            return draw(st.one_of(st.integers(-1000, 1000), st.booleans(), st.none()))
        if kind == 1:
            return draw(st.text(string.ascii_lowercase + " ", max_size=20))
        secret = draw(secret_values)
        secrets.append(secret)
        return draw(carrier).format(s=secret)

    def node(depth: int) -> object:
        if depth >= 4 or draw(st.booleans()):
            return leaf()
        if draw(st.booleans()):
            out: dict[str, object] = {}
            for _ in range(draw(st.integers(1, 4))):
                if draw(st.booleans()):
                    secret = draw(secret_values)
                    secrets.append(secret)
                    out[draw(sensitive_keys)] = secret
                else:
                    out[draw(plain_keys)] = node(depth + 1)
            return out
        return [node(depth + 1) for _ in range(draw(st.integers(1, 4)))]

    return node(0), secrets


@given(planted())
def test_every_planted_secret_is_removed(case: tuple[object, list[str]]) -> None:
    """No planted secret, nor a 12-character piece of it, survives scrubbing."""
    payload, secrets = case
    scrubbed = SCRUBBER.scrub(payload)
    for secret in secrets:
        assert not _leaks(secret, scrubbed), (secret, scrubbed)


@given(planted())
def test_scrub_never_mutates_its_input(case: tuple[object, list[str]]) -> None:
    """The caller's payload is left exactly as it was."""
    payload, _ = case
    before = copy.deepcopy(payload)
    SCRUBBER.scrub(payload)
    assert payload == before


@given(
    st.recursive(
        st.none() | st.booleans() | st.floats() | st.integers() | st.text() | st.binary(),
        lambda children: st.lists(children) | st.dictionaries(st.text(), children),
        max_leaves=40,
    )
)
def test_scrub_never_raises_and_is_json_ready(value: object) -> None:
    """Arbitrary nested input scrubs to JSON-serialisable output without raising."""
    json.dumps(SCRUBBER.scrub(value), allow_nan=True)


@given(st.lists(st.tuples(sensitive_keys, secret_values), min_size=1, max_size=5))
def test_sensitive_headers_are_filtered(pairs: list[tuple[str, str]]) -> None:
    """Sensitive headers are filtered whatever their case; ASGI byte pairs work too."""
    raw = [(k.encode(), v.encode()) for k, v in pairs] + [(b"accept", b"application/json")]
    out = SCRUBBER.scrub_headers(raw)
    assert out["accept"] == "application/json"
    for _, secret in pairs:
        assert not _leaks(secret, out)


@given(secret_values, carrier)
def test_secrets_inside_plain_header_values_are_removed(secret: str, text: str) -> None:
    """A secret inside an ordinary header's value is removed too."""
    out = SCRUBBER.scrub_headers({"x-debug": text.format(s=secret)})
    assert not _leaks(secret, out)


def test_objects_that_break_repr_do_not_break_scrubbing() -> None:
    """An object whose __repr__ raises is replaced, not propagated."""

    class Evil:
        def __repr__(self) -> str:
            raise RuntimeError("no")

    assert SCRUBBER.scrub({"x": Evil()}) == {"x": "<unrepresentable Evil>"}


@pytest.mark.parametrize(
    ("key", "sensitive"),
    [
        ("password", True),
        ("X-Api-Key", True),
        ("userPassword", True),
        ("db.password", True),
        ("github_token", True),
        ("max_tokens", False),
        ("tokens_used", False),
        ("author", False),
        ("cache_key", False),
        ("name", False),
    ],
)
def test_key_matching_is_case_and_separator_insensitive(key: str, sensitive: bool) -> None:
    """Key rules ignore case and separators but keep LLM fields like max_tokens readable."""
    assert SCRUBBER.is_sensitive_key(key) is sensitive


def test_timestamps_and_ids_are_not_mistaken_for_cards() -> None:
    """Epoch milliseconds and invalid Luhn numbers stay; a Luhn-valid card goes."""
    out = SCRUBBER.scrub(
        {"ts": 1700000000000, "id": "order 4111111111111112", "c": 4111111111111111}
    )
    assert out == {"ts": 1700000000000, "id": "order 4111111111111112", "c": FILTERED}


def test_bounds_depth_items_and_length() -> None:
    """Depth, item count and string length are capped with visible markers."""
    scrubber = Scrubber(max_depth=3, max_items=5, max_string=10)
    deep: object = "x"
    for _ in range(10):
        deep = [deep]
    out = scrubber.scrub({"deep": deep, "many": list(range(50)), "long": "a" * 100})
    assert "[Truncated: too deep]" in json.dumps(out)
    assert len(out["many"]) == 6 and "more items dropped" in out["many"][-1]
    assert out["long"].startswith("a" * 10) and "truncated 90 chars" in out["long"]


def test_cycles_terminate() -> None:
    """A self-referencing payload is cut at the depth limit instead of looping."""
    loop: dict[str, object] = {}
    loop["self"] = loop
    assert "too deep" in json.dumps(SCRUBBER.scrub(loop))


def test_newlines_are_neutralised_for_log_lines() -> None:
    """CR/LF cannot forge a second log line."""
    forged = "ok\r\n2026-01-01 INFO admin logged in"
    assert "\n" not in SCRUBBER.scrub_text(forged, single_line=True)
    assert neutralize_newlines("a\nb\rc") == "a\\nb\\rc"


def test_extra_keys_patterns_and_keep_keys() -> None:
    """Extra keys and patterns are added; keep_keys un-marks a default key."""
    scrubber = Scrubber(
        extra_keys=["tenant-code"], extra_patterns=[r"ACME-\d{6}"], keep_keys=["session"]
    )
    out = scrubber.scrub({"TENANT_CODE": "t1", "note": "ref ACME-123456", "session": "blue"})
    assert out == {"TENANT_CODE": FILTERED, "note": f"ref {FILTERED}", "session": "blue"}


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"max_depth": 0}, "max_depth"),
        ({"extra_patterns": ["("]}, "not a valid regular expression"),
    ],
)
def test_bad_configuration_is_a_clear_error(kwargs: dict[str, object], fragment: str) -> None:
    """A bad scrubber setting fails at construction, naming the setting."""
    with pytest.raises(ValueError, match=re.escape(fragment)):
        Scrubber(**kwargs)  # type: ignore[arg-type]


def test_normalize_key() -> None:
    """Keys compare without case or separators."""
    assert normalize_key("X-Api_Key.v2") == "xapikeyv2"
