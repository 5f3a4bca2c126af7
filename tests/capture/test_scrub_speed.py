"""The writer's scrubbing shortcuts (pattern gates, caches) never change what is scrubbed.

The capture writer scrubs every message, payload string and key, so ``Scrubber.scrub_text``
skips patterns whose match needs text that is absent and remembers answers for short texts.
These properties compare it with running every pattern on every text.
"""

from __future__ import annotations

import json
import re
import string
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests._values import REFERENCE, reference_dumps, typed

from errorkit.capturing.event import RecordBuilder
from errorkit.scrubbing import (
    BUILTIN_RULES,
    CLEAN,
    DIRTY,
    Scrubber,
    ScrubRule,
    _scrub_cards,
    neutralize_newlines,
)
from errorkit.store._clean import json_dumps, json_plain, json_string, plain_json

FRAGMENTS = [
    "password",
    "PassWord",
    "pwd",
    "secret",
    "api_key",
    "Api-Key",
    "token",
    "auth",
    "session",
    "sig",
    "credentials",
    "Bearer ",
    "basic ",
    "Digest ",
    "eyJhbGciOiJIUzI1NiJ9",
    ".eyJzdWIiOiIxIn0",
    ".abc_def",
    "-----BEGIN RSA PRIVATE KEY-----",
    "-----END RSA PRIVATE KEY-----",
    "sk-proj-abcdefghijklmnop1234",
    "AKIAABCDEFGHIJKLMNOP",
    "https://",
    "user:pw@",
    "host",
    "=",
    ": ",
    '"',
    "'",
    " ",
    "\n",
    "4111 1111 1111 1111",
    "4111111111111111",
    "12345",
    "abcdef",
    "\u017f",  # long s: case-folds to "s" under re.IGNORECASE
    "pa\u017f\u017fword",
    "é",
    # What the API-key and scheme gates look for, whole and in pieces.
    "max_tokens",
    "token\t",
    "sk_live_abcdefghij0123",
    "pk_test_",
    "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
    "github_pat_abcdefghijklmnopqrstuvwxyz0123456789",
    "xoxb-abcdefghij12",
    "glpat-abcdefghijklmnopqrstuv",
    "hf_abcdefghijklmnopqrstuvwxyz0123456",
    "npm_abcdefghijklmnopqrstuvwxyz0123456",
    "whsec_abcdefghijklmnop",
    "AIzaabcdefghijklmnopqrstuvwxyz012345678",
    "SG.abcdefghijklmnop.abcdefghijklmnop",
    "ASIAABCDEFGHIJKLMNOP",
    "gh",
    "_",
    "-",
    "a_b-c_d-e_f-g_h-i_j-k_l-m_n-o_p-q_",
    "\x1f",
]

texts = st.lists(st.sampled_from(FRAGMENTS), max_size=12).map("".join)


def every_pattern(scrubber: Scrubber, text: str, single_line: bool) -> str:
    """What scrub_text did before its shortcuts: every pattern, then cards."""
    out = text
    if len(out) > scrubber.max_string:
        cut = len(out) - scrubber.max_string
        out = out[: scrubber.max_string] + f"...[truncated {cut} chars]"
    for pattern, replacement, _gate in scrubber._rules:
        out = pattern.sub(replacement, out)
    out = _scrub_cards(out)
    return neutralize_newlines(out) if single_line else out


@given(text=texts, single_line=st.booleans())
def test_gated_scrubbing_equals_every_pattern(text: str, single_line: bool) -> None:
    """For any text, the gated scrubber's answer is the one of running every pattern."""
    scrubber = Scrubber()
    assert scrubber.scrub_text(text, single_line=single_line) == every_pattern(
        scrubber, text, single_line
    )


@given(text=texts)
def test_cached_answer_equals_a_fresh_one(text: str) -> None:
    """Asking twice (the second answer comes from the cache) gives the same text."""
    scrubber = Scrubber(replacement="<secret token>")
    first = scrubber.scrub_text(text)
    assert scrubber.scrub_text(text) == first == every_pattern(scrubber, text, False)


@given(text=texts)
def test_custom_patterns_always_run(text: str) -> None:
    """A user's extra pattern is never skipped by the built-in gates."""
    scrubber = Scrubber(extra_patterns=[r"host"])
    assert "host" not in scrubber.scrub_text(text)


# --- is_clean(): one test over all the strings of a JSON value ----------------------------

keys = st.one_of(
    texts,
    st.sampled_from(["password", "api_key", "Set-Cookie", "model", "max_tokens", "a\nb"]),
)
leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(10**15), 10**20),
    st.sampled_from([4111111111111111, 10**12, 999_999_999_999]),
    texts,
)
json_values = st.recursive(
    leaves,
    lambda inner: st.one_of(st.lists(inner, max_size=5), st.dictionaries(keys, inner, max_size=5)),
    max_leaves=24,
)
SCRUBBERS = [Scrubber(), Scrubber(max_depth=3, max_items=3, max_string=40)]


@given(value=json_values, single_line=st.booleans(), bounded=st.booleans())
def test_a_value_called_clean_scrubs_to_itself(
    value: Any, single_line: bool, bounded: bool
) -> None:
    """Whenever is_clean() says so, scrub() gives back the very same JSON."""
    scrubber = SCRUBBERS[bounded]
    if scrubber.is_clean(value, single_line=single_line):
        scrubbed = scrubber.scrub(value, single_line=single_line)
        assert json.dumps(scrubbed) == json.dumps(value)


@pytest.mark.parametrize(
    "value",
    [
        {"model": "qwen", "max_tokens": 512, "temperature": 0.2, "stream": False},
        {"messages": [{"role": "user", "content": "Where is order 4711: still pending?"}]},
        ["a", 1, None, [2.5, {"note": "basic"}]],
        {f"option_{word}_name": f"value-of-{word}-here" for word in string.ascii_lowercase},
        "plain text",
        {},
    ],
)
def test_ordinary_bodies_are_clean(value: Any) -> None:
    """Bodies with nothing to remove take the shortcut."""
    assert Scrubber().is_clean(value)


@pytest.mark.parametrize(
    ("value", "scrubber"),
    [
        pytest.param({"password": "x"}, Scrubber(), id="sensitive key"),
        pytest.param({"note": "token=abc123"}, Scrubber(), id="pair in text"),
        pytest.param({"auth": "Bearer abcdef123456"}, Scrubber(), id="scheme"),
        pytest.param(["ghp_" + "a" * 36], Scrubber(), id="api key"),
        pytest.param(["4111 1111 1111 1111"], Scrubber(), id="card in text"),
        pytest.param([4111111111111111], Scrubber(), id="card as number"),
        pytest.param({"a\nb": 1}, Scrubber(), id="newline in key"),
        pytest.param(["caf\u00e9 token=x"], Scrubber(), id="not ascii"),
        pytest.param([[[["deep"]]]], Scrubber(max_depth=3), id="too deep"),
        pytest.param([1, 2, 3, 4], Scrubber(max_items=3), id="too many items"),
        pytest.param(["x" * 41], Scrubber(max_string=40), id="too long"),
        pytest.param({1: "a"}, Scrubber(), id="key not text"),
        pytest.param((1, 2), Scrubber(), id="tuple"),
        pytest.param(["host"], Scrubber(extra_patterns=["nothing-like-it"]), id="own patterns"),
    ],
)
def test_values_scrub_would_change_are_not_clean(value: Any, scrubber: Scrubber) -> None:
    """Anything scrub() would change (or might: own patterns, other scripts) is not clean."""
    assert not scrubber.is_clean(value)


def _full_payload(builder: RecordBuilder, text: str) -> str:
    """What payload() stored before the shortcut: parse, scrub every node, serialise, cap."""
    scrubber = replace(builder.scrubber, max_string=builder.max_payload_bytes)
    cleaned = scrubber.scrub(json.loads(text))
    out = json.dumps(cleaned, ensure_ascii=False, default=str, separators=(",", ":"))
    data = out.encode("utf-8", "surrogatepass")
    if len(data) <= builder.max_payload_bytes:
        return out
    cut = data[: builder.max_payload_bytes].decode("utf-8", "ignore")
    return f"{cut}...[truncated {len(data) - builder.max_payload_bytes} bytes]"


@given(value=json_values, limit=st.sampled_from([64, 16_384]))
def test_payload_shortcut_stores_what_full_scrubbing_stores(value: Any, limit: int) -> None:
    """A JSON body is stored exactly as parsing and scrubbing every node would store it."""
    builder = RecordBuilder(
        service="app",
        environment=None,
        release=None,
        max_payload_bytes=limit,
        scrubber=Scrubber(),
    )
    text = json.dumps(value)
    if len(text) > 4 * limit or text[:1] not in "{[":
        return  # not parsed as JSON (too big to parse, or not an object or array)
    assert builder.payload(text) == _full_payload(builder, text)
    assert builder.payload(text.encode()) == _full_payload(builder, text)


@given(text=texts)
def test_one_call_gate_check_agrees_with_every_gate(text: str) -> None:
    """The single-call gate check used for plain text opens exactly when some rule's opens."""
    lower = text.lower()
    scrubber = Scrubber()
    gates = [rule.gate for rule in BUILTIN_RULES if rule.gate is not None]
    assert len(gates) == len(BUILTIN_RULES)
    assert scrubber._any_gate_open(text, lower) == any(gate(text, lower) for gate in gates)


# One secret of each built-in rule's shape, and what must no longer be there after scrubbing.
RULE_SECRETS = {
    "private_key": (
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n-----END RSA PRIVATE KEY-----",
        "MIIEowIBAAKCAQEA",
    ),
    "jwt": ("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl", "eyJzdWIiOiIxIn0"),
    "authorization_scheme": ("Bearer abcdef123456", "abcdef123456"),
    "api_key": ("sk-proj-abcdefghijklmnop1234", "abcdefghijklmnop1234"),
    "url_credentials": ("postgresql://app:hunter2xyz@db/x", "hunter2xyz"),
    "key_value": ("password=hunter2xyz", "hunter2xyz"),
}


def _marker_rule(number: int, gated: bool) -> ScrubRule:
    """A rule of the user's own, for ZZQ<number> tokens (in no built-in secret)."""
    token = f"ZZQ{number}"
    gate = (lambda text, lower: token in text) if gated else None
    return ScrubRule(f"marker{number}", re.compile(re.escape(token) + r"\w*"), gate=gate)


@given(
    position=st.integers(min_value=0, max_value=len(BUILTIN_RULES)),
    number=st.integers(min_value=0, max_value=999),
    gated=st.booleans(),
    names=st.lists(st.sampled_from(sorted(RULE_SECRETS)), min_size=1, max_size=4),
    filler=st.sampled_from(["", "x ", "note: ", "id=7 "]),
)
def test_a_rule_added_anywhere_keeps_every_other_rules_secrets_scrubbed(
    position: int, number: int, gated: bool, names: list[str], filler: str
) -> None:
    """Inserting a rule at any position keeps each built-in rule paired with its own gate."""
    rules = list(BUILTIN_RULES)
    rules.insert(position, _marker_rule(number, gated))
    scrubber = Scrubber(rules=rules)
    assert {rule.name for rule in BUILTIN_RULES} == set(RULE_SECRETS)
    token = f"ZZQ{number}abc"
    text = filler + " ".join(RULE_SECRETS[name][0] for name in names) + " " + token
    out = scrubber.scrub_text(text)
    for name in names:
        assert RULE_SECRETS[name][1] not in out, name
    assert token not in out
    for name in names:
        value = {"message": filler + RULE_SECRETS[name][0], "other": token}
        assert not scrubber.is_clean(value)
        assert RULE_SECRETS[name][1] not in json.dumps(scrubber.scrub(value))


def test_a_rule_needs_a_compiled_pattern() -> None:
    """ScrubRule with a plain string is refused with a message saying what to pass."""
    with pytest.raises(TypeError, match=r"re\.compile"):
        ScrubRule("mine", "secret-[0-9]+")  # type: ignore[arg-type]


def test_rules_must_be_scrub_rules() -> None:
    """Scrubber(rules=...) names the entry that is not a ScrubRule."""
    with pytest.raises(TypeError, match="is not a ScrubRule"):
        Scrubber(rules=[("pattern", "replacement")])  # type: ignore[list-item]


API_KEYS = [
    "sk-proj-abcdefghijklmnop1234",
    "sk_live_abcdefghij0123",
    "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
    "github_pat_abcdefghijklmnopqrstuvwxyz0123456789",
    "xoxb-abcdefghij12",
    "xoxp-abcdefghij12",
    "glpat-abcdefghijklmnopqrstuv",
    "hf_abcdefghijklmnopqrstuvwxyz0123456",
    "npm_abcdefghijklmnopqrstuvwxyz0123456",
    "whsec_abcdefghijklmnop",
]


@pytest.mark.parametrize("key", API_KEYS)
def test_api_key_after_many_underscores_and_dashes_is_found(key: str) -> None:
    """A text full of "_" and "-" (past the per-mark look) still has its API key removed."""
    text = "snake_case-and-kebab-case_" * 10 + " " + key
    scrubber = Scrubber()
    assert key not in scrubber.scrub_text(text)
    assert not scrubber.is_clean({"note": text})


# --- cleanness(): clean values are stored as they are, and serialised by orjson ------------


class _Text(str):
    """A subclass: scrub() gives back plain text for it."""


def _has_float(value: Any) -> bool:
    if isinstance(value, dict):
        return any(_has_float(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_has_float(v) for v in value)
    return isinstance(value, float)


# Beside JSON's own: what a Python caller may pass (tuples, subclasses, bytes, big numbers).
odd_leaves = st.one_of(
    leaves,
    st.sampled_from([b"x", bytearray(b"x"), _Text("plain"), 2**70, -(2**70), 1.0, 1e-05]),
)
odd_values = st.recursive(
    odd_leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5),
        st.lists(inner, max_size=3).map(tuple),
        st.dictionaries(keys, inner, max_size=5),
        st.dictionaries(st.integers(0, 3), inner, max_size=2),
    ),
    max_leaves=24,
)


@given(values=st.lists(st.tuples(odd_values, st.booleans()), min_size=1, max_size=4))
def test_a_clean_value_is_what_scrub_gives_back(values: list[tuple[Any, bool]]) -> None:
    """Whatever cleanness() calls clean, scrub() gives back equal, node for node and type
    for type; asked of several values at once, of each alone, with a cache that has seen
    them or not, the answers are the same; "no float" is exactly that."""
    for scrubber in SCRUBBERS:
        cold = replace(scrubber)
        together = cold.cleanness_all(values)
        alone = [cold.cleanness(value, single_line=line) for value, line in values]
        assert together == alone == cold.cleanness_all(values)
        for (value, line), state in zip(values, together, strict=True):
            if state != DIRTY:
                assert typed(scrubber.scrub(value, single_line=line)) == typed(value)
                assert (state == CLEAN) == _has_float(value)


def test_json_string_writes_each_character_as_json_does() -> None:
    """orjson's text of a string is the json module's for every code point (and lone
    surrogates and NUL, which orjson refuses or json_dumps replaces, still are)."""
    for start in range(0, 0x110000, 512):
        text = "".join(chr(c) for c in range(start, start + 512) if not 0xD800 <= c <= 0xDFFF)
        assert json_string(text) == reference_dumps(text)
        assert json_dumps(text) == reference_dumps(text)
    for text in ("a\ud800b", "\x00", "a\\u0000", "\udfff\x00"):
        assert json_string(text) == reference_dumps(text) == json_dumps(text)


plain_values = st.recursive(
    st.none() | st.booleans() | st.integers() | texts | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=24,
)


@given(plain_values)
def test_plain_json_is_what_json_dumps_writes(value: Any) -> None:
    """Without floats, orjson's compact text is json_dumps()'s (big numbers, surrogates
    and NUL go the old way)."""
    assert json_plain(value) == reference_dumps(value) == json_dumps(value)
    text = plain_json(value)
    assert text is None or text == REFERENCE(value)


@pytest.mark.parametrize(
    "name", ["Authorization", "X-Api-Key", "cookie", "Host", "user-agent", "X_Forwarded_For"]
)
def test_sensitive_header_answers_are_remembered_as_computed(name: str) -> None:
    """The header cache answers what the rule does, first time and after."""
    scrubber = Scrubber()
    expected = scrubber._is_sensitive_header(name)
    assert scrubber.is_sensitive_header(name) == expected == scrubber.is_sensitive_header(name)
