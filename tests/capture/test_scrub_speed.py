"""The writer's scrubbing shortcuts (pattern gates, caches) never change what is scrubbed.

The capture writer scrubs every message, payload string and key, so ``Scrubber.scrub_text``
skips patterns whose match needs text that is absent and remembers answers for short texts.
These properties compare it with running every pattern on every text.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from errorkit.scrub import Scrubber, _scrub_cards, neutralize_newlines

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
]

texts = st.lists(st.sampled_from(FRAGMENTS), max_size=12).map("".join)


def every_pattern(scrubber: Scrubber, text: str, single_line: bool) -> str:
    """What scrub_text did before its shortcuts: every pattern, then cards."""
    out = text
    if len(out) > scrubber.max_string:
        cut = len(out) - scrubber.max_string
        out = out[: scrubber.max_string] + f"...[truncated {cut} chars]"
    for pattern, replacement in scrubber._patterns:
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
