"""One scrubber for everything errorkit answers, stores, logs or sends.

It removes the values of sensitive keys (matched case- and separator-insensitively),
sensitive headers, and secrets found inside any string: bearer/basic credentials, JWTs,
common API-key shapes, private keys, ``password=...`` pairs, URL passwords, sensitive query
parameters and Luhn-valid card numbers. It bounds depth, items and string length, never
mutates its input and never raises: what it cannot scrub it replaces.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from itertools import compress
from operator import ne
from typing import Any, NamedTuple

from errorkit._cache import BoundedCache

__all__ = [
    "BUILTIN_RULES",
    "CLEAN",
    "CLEAN_NO_FLOAT",
    "DEFAULT_SENSITIVE_HEADERS",
    "DEFAULT_SENSITIVE_KEYS",
    "DIRTY",
    "FILTERED",
    "ScrubRule",
    "Scrubber",
    "default_scrubber",
    "neutralize_newlines",
    "normalize_key",
    "scrub",
    "set_default_scrubber",
]

FILTERED = "[Filtered]"

#: What :meth:`Scrubber.cleanness` says: scrub() would change the value; it would not; it
#: would not and the value holds no float.
DIRTY, CLEAN, CLEAN_NO_FLOAT = 0, 1, 2

# Keys whose value is always removed, compared after normalize_key(). At least as broad as
# Sentry's default denylist, plus card and bank data.
DEFAULT_SENSITIVE_KEYS: frozenset[str] = frozenset(
    {
        "password",
        "passwd",
        "pwd",
        "pass",
        "passphrase",
        "secret",
        "apikey",
        "auth",
        "authorization",
        "credentials",
        "credential",
        "mysqlpwd",
        "privatekey",
        "token",
        "accesstoken",
        "refreshtoken",
        "idtoken",
        "authtoken",
        "bearer",
        "session",
        "sessionid",
        "sessiontoken",
        "sessionkey",
        "csrftoken",
        "csrf",
        "xcsrftoken",
        "xsrftoken",
        "xxsrftoken",
        "xforwardedfor",
        "xrealip",
        "setcookie",
        "cookie",
        "cookies",
        "xapikey",
        "xauthtoken",
        "aiohttpsession",
        "connectsid",
        "phpsessid",
        "symfony",
        "usersession",
        "xsrf",
        "jwt",
        "signature",
        "sig",
        "otp",
        "totp",
        "pin",
        "ssn",
        "socialsecuritynumber",
        "card",
        "creditcard",
        "cardnumber",
        "ccnumber",
        "cvv",
        "cvc",
        "cvv2",
        "iban",
        "accountnumber",
        "routingnumber",
        "clientsecret",
        "awssecretaccesskey",
        "awssessiontoken",
        "dsn",
        "databaseurl",
        "connectionstring",
        "encryptionkey",
        "signingkey",
        "secretkey",
        "accesskey",
        "accesskeyid",
        "apisecret",
        "webhooksecret",
        "masterkey",
        "salt",
        "nonce",
    }
)
# Fragments that mark a key sensitive wherever they appear in it (after normalisation).
_SENSITIVE_FRAGMENTS: tuple[str, ...] = (
    "password",
    "passwd",
    "secret",
    "apikey",
    "privatekey",
    "credential",
    "cookie",
    "authorization",
    "sessionid",
    "creditcard",
    "cardnumber",
    "accesstoken",
    "refreshtoken",
    "authtoken",
    "bearertoken",
    "csrftoken",
    "xsrftoken",
)
# Suffixes that mark a key sensitive ("github_token", "stripe_api_key" -> "...apikey").
# "token" is a suffix rule, not a fragment, so "max_tokens" and "token_count" stay readable.
_SENSITIVE_SUFFIXES: tuple[str, ...] = ("token", "apikey", "secret", "password", "pwd")

DEFAULT_SENSITIVE_HEADERS: frozenset[str] = frozenset(
    {
        "authorization",
        "proxyauthorization",
        "cookie",
        "setcookie",
        "xapikey",
        "apikey",
        "xauthtoken",
        "xaccesstoken",
        "xcsrftoken",
        "xxsrftoken",
        "xamzsecuritytoken",
        "xgoogapikey",
        "xsessiontoken",
        "xforwardedfor",
        "xrealip",
        "forwarded",
    }
)

_SEPARATORS = re.compile(r"[\s_\-.:]+")


def normalize_key(key: object) -> str:
    """``"X-Api_Key"`` -> ``"xapikey"``: how keys are compared."""
    return _SEPARATORS.sub("", str(key)).lower()


def neutralize_newlines(text: str) -> str:
    """Make a value safe inside a one-line log record (no forged lines)."""
    if "\r" not in text and "\n" not in text and "\u2028" not in text and "\u0085" not in text:
        return text
    return (
        text.replace("\r", "\\r")
        .replace("\n", "\\n")
        .replace("\u2028", "\\u2028")
        .replace("\u0085", "\\u0085")
    )


# --- patterns found inside strings -----------------------------------------------------------

_KEYWORD = (
    r"(?:password|passwd|pwd|pass|secret|token|access[_-]?token|refresh[_-]?token|"
    r"api[_-]?key|apikey|access[_-]?key|secret[_-]?key|private[_-]?key|client[_-]?secret|"
    r"auth|session(?:id)?|sig|signature|credentials?)"
)

# The gates: what a match of each built-in rule needs, as cheap substring tests on ASCII
# text and its lower-case form. They only skip work, never a match. Each is also
# monotone: if it fails on a text, it fails on every part of it, which lets is_clean()
# test many strings at once. (`in` beats a regular expression of alternatives here.)
_AUTH_WORDS = ("bearer", "basic", "token", "digest", "apikey")
_KEYWORD_STEMS = ("pass", "pwd", "secret", "token", "key", "auth", "session", "sig", "credential")
# Every API-key shape above holds one of _KEY_MARKS, or a "_" or "-" that ends (or, for
# Stripe's keys, starts) one of these.
_KEY_MARKS = ("AKIA", "ASIA", "AIza", "SG.")
_BEFORE_UNDERSCORE = ("whsec", "ghp", "gho", "ghu", "ghs", "ghr", "github_pat", "hf", "npm")
_FROM_UNDERSCORE = ("_live_", "_test_")
_BEFORE_DASH = ("sk", "glpat", "xoxa", "xoxb", "xoxp", "xoxo", "xoxs", "xoxr")
# Past this many "_" or "-", looking at each costs more than searching for every prefix.
_MAX_MARKS = 16
_KEY_PREFIXES = (
    "sk-",
    "_live_",
    "_test_",
    "whsec_",
    "ghp_",
    "gho_",
    "ghu_",
    "ghs_",
    "ghr_",
    "github_pat_",
    "glpat-",
    "xoxa-",
    "xoxb-",
    "xoxp-",
    "xoxo-",
    "xoxs-",
    "xoxr-",
    "hf_",
    "npm_",
)


def _holds_any(text: str, words: tuple[str, ...]) -> bool:
    for word in words:  # noqa: SIM110 - a plain loop costs less than any() over a generator
        if word in text:
            return True
    return False


def _may_hold_scheme(text: str, lower: str) -> bool:
    """An authorization scheme's name followed by white space ("max_tokens" is not)."""
    for word in _AUTH_WORDS:
        start = lower.find(word)
        while start >= 0:
            end = start + len(word)
            if lower[end : end + 1].isspace():
                return True
            start = lower.find(word, end)
    return False


def _may_hold_api_key(text: str, lower: str) -> bool:
    if _holds_any(text, _KEY_MARKS):
        return True
    seen = 0
    at = text.find("_")
    while at >= 0:
        if text.startswith(_FROM_UNDERSCORE, at) or text.endswith(_BEFORE_UNDERSCORE, 0, at):
            return True
        seen += 1
        if seen > _MAX_MARKS:
            return _holds_any(text, _KEY_PREFIXES)
        at = text.find("_", at + 1)
    at = text.find("-")
    while at >= 0:
        if text.endswith(_BEFORE_DASH, 0, at):
            return True
        seen += 1
        if seen > _MAX_MARKS:
            return _holds_any(text, _KEY_PREFIXES)
        at = text.find("-", at + 1)
    return False


def _may_hold_pair(text: str, lower: str) -> bool:
    return ("=" in text or ":" in text) and _holds_any(lower, _KEYWORD_STEMS)


def _has_pem(text: str, lower: str) -> bool:
    return "-----BEGIN" in text


def _has_jwt(text: str, lower: str) -> bool:
    return "eyJ" in text


def _has_url_credentials(text: str, lower: str) -> bool:
    return "://" in text and "@" in text


@dataclass(frozen=True)
class ScrubRule:
    """One secret shape found inside strings: what to look for, what to put instead, and a
    cheap test that says when looking is useless.

    ``pattern`` is searched in every string; its matches become ``replacement`` (which may
    refer to the pattern's groups, as in :func:`re.sub`; ``[Filtered]`` in it becomes the
    scrubber's own replacement). ``gate(text, lower)`` gets ASCII text and its lower-case
    form and answers False only when ``pattern`` cannot match; it must also answer False for
    every part of a text it answers False for (texts are tested joined together). Without a
    gate the pattern runs on every string and the scrubber takes no shortcut.
    """

    name: str
    pattern: re.Pattern[str]
    replacement: str = FILTERED
    gate: Callable[[str, str], bool] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.pattern, re.Pattern):
            msg = (
                f"ScrubRule({self.name!r}): pattern must be a compiled regular expression "
                f"(re.compile(...)), not {type(self.pattern).__name__}"
            )
            raise TypeError(msg)


# The built-in rules, in the order they run. Each rule carries its own gate, so a rule added
# anywhere in a list keeps every other rule paired with the test that belongs to it.
BUILTIN_RULES: tuple[ScrubRule, ...] = (
    ScrubRule(
        "private_key",  # PEM private keys (whole block).
        re.compile(
            r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|\Z)",
            re.DOTALL,
        ),
        gate=_has_pem,
    ),
    ScrubRule(
        "jwt",  # JSON Web Tokens: header.payload[.signature]
        re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]{4,}(?:\.[A-Za-z0-9_-]*)?"),
        gate=_has_jwt,
    ),
    ScrubRule(
        "authorization_scheme",  # "Bearer abc", "Basic dXNlcjpw", "Token abc" inside text.
        re.compile(r"(?i)\b(bearer|basic|token|digest|apikey)(\s+)[A-Za-z0-9\-._~+/=:]{6,}"),
        r"\1\2" + FILTERED,
        gate=_may_hold_scheme,
    ),
    ScrubRule(
        "api_key",  # Common API-key shapes.
        re.compile(
            r"\b(?:"
            r"sk-(?:proj-|ant-|live-|test-)?[A-Za-z0-9_\-]{16,}"  # OpenAI, Anthropic
            r"|(?:sk|pk|rk)_(?:live|test)_[A-Za-z0-9]{10,}"  # Stripe
            r"|whsec_[A-Za-z0-9]{16,}"  # Stripe webhook secrets
            r"|(?:AKIA|ASIA)[0-9A-Z]{16}"  # AWS access key ids
            r"|gh[pousr]_[A-Za-z0-9]{30,}"  # GitHub tokens
            r"|github_pat_[A-Za-z0-9_]{30,}"
            r"|glpat-[A-Za-z0-9_\-]{20,}"  # GitLab
            r"|xox[abposr]-[A-Za-z0-9\-]{10,}"  # Slack
            r"|AIza[0-9A-Za-z_\-]{35}"  # Google API keys
            r"|SG\.[A-Za-z0-9_\-]{16,}\.[A-Za-z0-9_\-]{16,}"  # SendGrid
            r"|hf_[A-Za-z0-9]{30,}"  # Hugging Face
            r"|npm_[A-Za-z0-9]{30,}"
            r")"
        ),
        gate=_may_hold_api_key,
    ),
    ScrubRule(
        "url_credentials",  # scheme://user:password@host
        re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://[^\s:/@]*:)[^\s@/]+@"),
        r"\1" + FILTERED + "@",
        gate=_has_url_credentials,
    ),
    ScrubRule(
        "key_value",  # key=value / key: value pairs (query strings, log text, DSNs).
        re.compile(
            r"(?i)(?<![A-Za-z0-9])((?:[A-Za-z0-9]+[_-])*"
            + _KEYWORD
            + r"(?:[_-][A-Za-z0-9]+)*)(\"?'?\s*[=:]\s*\"?'?)(?!\[Filtered\])([^\s\"'&,;)}\]]+)"
        ),
        r"\1\2" + FILTERED,
        gate=_may_hold_pair,
    ),
)


def _any_gate(gates: tuple[Callable[[str, str], bool], ...]) -> Callable[[str, str], bool]:
    """One test that opens when any of ``gates`` opens (the scrubber's common-case check)."""

    def any_open(text: str, lower: str) -> bool:
        for gate in gates:  # noqa: SIM110 - a plain loop costs less than any() over a generator
            if gate(text, lower):
                return True
        return False

    return any_open


_DIGITS = b"0123456789"
# A card number has at least this many digits (and as a JSON number, is at least _CARD_FLOOR).
_CARD_DIGITS = 13
_CARD_FLOOR = 10**12
# Joins texts for the gates: in no gate's literal, so no match can span two texts.
_JOIN = "\x1f"
# scrub_text() remembers its answer for texts up to this long, this many at a time.
_CACHED_TEXT = 256
_CACHE_ENTRIES = 4096

_ONLY_TEXT = frozenset((str,))
# Every digit as "0", to find 13 of them in a row with one substring search.
_DIGITS_AS_ZERO = bytes.maketrans(_DIGITS, b"0" * len(_DIGITS))
_DIGIT_RUN = b"0" * _CARD_DIGITS


def _has_line_break(text: str) -> bool:
    return "\n" in text or "\r" in text


_CARD_CANDIDATE = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")


def _digits(ascii_text: str) -> int:
    """How many digits an ASCII text holds (bytes.translate deletes them fastest)."""
    data = ascii_text.encode("ascii")
    return len(data) - len(data.translate(None, _DIGITS))


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _looks_like_card(digits: str) -> bool:
    """13-19 digits, a card network's first digit (2-6; 13 digits only for Visa's 4) and a
    valid Luhn checksum: epoch-millisecond timestamps and most ids do not qualify."""
    n = len(digits)
    if not 13 <= n <= 19 or digits[0] not in "23456":
        return False
    if n == 13 and digits[0] != "4":
        return False
    return _luhn_ok(digits)


def _scrub_cards(text: str) -> str:
    def replace(match: re.Match[str]) -> str:
        digits = re.sub(r"\D", "", match.group(0))
        return FILTERED if _looks_like_card(digits) else match.group(0)

    return _CARD_CANDIDATE.sub(replace, text)


class _Compiled(NamedTuple):
    """A rule as the scrubber runs it: its replacement made the scrubber's own."""

    pattern: re.Pattern[str]
    replacement: str
    gate: Callable[[str, str], bool] | None


@dataclass(frozen=True)
class Scrubber:
    """Configurable scrubbing. Instances are immutable and safe to share between threads.

    ``extra_keys`` and ``extra_headers`` add names (any case or separator);
    ``extra_patterns`` add regular expressions whose matches are replaced;
    ``keep_keys`` un-marks keys the defaults would remove (for example ``"session"`` when it
    holds a session *name* in your app); ``rules`` replaces the built-in secret shapes
    (:data:`BUILTIN_RULES`, a tuple of :class:`ScrubRule`: add one anywhere with
    ``rules=(*BUILTIN_RULES, ScrubRule(...))``).
    """

    extra_keys: Iterable[str] = ()
    extra_headers: Iterable[str] = ()
    extra_patterns: Iterable[str | re.Pattern[str]] = ()
    keep_keys: Iterable[str] = ()
    rules: Iterable[ScrubRule] = BUILTIN_RULES
    max_depth: int = 10
    max_items: int = 200
    max_string: int = 8192
    replacement: str = FILTERED
    _keys: frozenset[str] = field(init=False, repr=False)
    _headers: frozenset[str] = field(init=False, repr=False)
    _keep: frozenset[str] = field(init=False, repr=False)
    _rules: tuple[_Compiled, ...] = field(init=False, repr=False)
    _gates: tuple[Callable[[str, str], bool], ...] = field(init=False, repr=False)
    _any_gate_open: Callable[[str, str], bool] = field(init=False, repr=False, compare=False)
    _cache: tuple[BoundedCache[str, str], BoundedCache[str, str]] = field(
        init=False, repr=False, compare=False
    )
    _key_cache: BoundedCache[str, bool] = field(init=False, repr=False, compare=False)
    _header_cache: BoundedCache[str, bool] = field(init=False, repr=False, compare=False)
    _gated: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in ("max_depth", "max_items", "max_string"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                msg = f"Scrubber({name}={value!r}): must be a whole number >= 1"
                raise ValueError(msg)
        keep = frozenset(normalize_key(k) for k in self.keep_keys)
        object.__setattr__(self, "_keep", keep)
        object.__setattr__(
            self,
            "_keys",
            (DEFAULT_SENSITIVE_KEYS | {normalize_key(k) for k in self.extra_keys}) - keep,
        )
        object.__setattr__(
            self,
            "_headers",
            DEFAULT_SENSITIVE_HEADERS | {normalize_key(h) for h in self.extra_headers},
        )
        rules = tuple(self.rules)
        for rule in rules:
            if not isinstance(rule, ScrubRule):
                msg = f"Scrubber(rules=...): {rule!r} is not a ScrubRule"
                raise TypeError(msg)
        extra: list[ScrubRule] = []
        for pattern in self.extra_patterns:
            try:
                compiled = re.compile(pattern) if isinstance(pattern, str) else pattern
            except re.error as exc:
                msg = (
                    f"Scrubber(extra_patterns=...): {pattern!r} is not a valid regular "
                    f"expression: {exc}"
                )
                raise ValueError(msg) from exc
            extra.append(ScrubRule(f"extra_patterns[{len(extra)}]", compiled))
        own = self.replacement.replace("\\", "\\\\")  # literal in re.sub's replacement
        compiled_rules = tuple(
            _Compiled(rule.pattern, rule.replacement.replace(FILTERED, own), rule.gate)
            for rule in (*rules, *extra)
        )
        gates = tuple(rule.gate for rule in compiled_rules if rule.gate is not None)
        object.__setattr__(self, "_rules", compiled_rules)
        object.__setattr__(self, "_gates", gates)
        object.__setattr__(self, "_any_gate_open", _any_gate(gates))
        # Shortcuts only when every rule says when it cannot match.
        object.__setattr__(self, "_gated", len(gates) == len(compiled_rules))
        # (as is, single line): keyed by the text alone, no tuple made per lookup.
        object.__setattr__(
            self, "_cache", (BoundedCache(_CACHE_ENTRIES), BoundedCache(_CACHE_ENTRIES))
        )
        object.__setattr__(self, "_key_cache", BoundedCache(_CACHE_ENTRIES))
        object.__setattr__(self, "_header_cache", BoundedCache(_CACHE_ENTRIES))

    # -- keys ---------------------------------------------------------------------------------

    def is_sensitive_key(self, key: object) -> bool:
        if not isinstance(key, str) or len(key) > _CACHED_TEXT:
            return self._is_sensitive_key(key)
        cached = self._key_cache.get(key)
        if cached is None:
            cached = self._key_cache.put(key, self._is_sensitive_key(key))
        return cached

    def _is_sensitive_key(self, key: object) -> bool:
        norm = normalize_key(key)
        if norm in self._keep:
            return False
        if norm in self._keys:
            return True
        if any(f in norm for f in _SENSITIVE_FRAGMENTS):
            return True
        return norm.endswith(_SENSITIVE_SUFFIXES)

    def is_sensitive_header(self, name: object) -> bool:
        if type(name) is not str or len(name) > _CACHED_TEXT:
            return self._is_sensitive_header(name)
        cached = self._header_cache.get(name)
        if cached is None:
            cached = self._header_cache.put(name, self._is_sensitive_header(name))
        return cached

    def _is_sensitive_header(self, name: object) -> bool:
        norm = normalize_key(name)
        return norm in self._headers or self.is_sensitive_key(name)

    # -- strings ------------------------------------------------------------------------------

    def scrub_text(self, text: str, *, single_line: bool = False) -> str:
        """Remove secrets found inside ``text``; cap its length; optionally make it one line."""
        if len(text) > _CACHED_TEXT:
            return self._scrub_text(text, single_line)
        # Short texts (keys, names, ids, messages) recur: the answer is kept, bounded.
        cache = self._cache[single_line]
        cached = cache.get(text)
        if cached is None:
            cached = cache.put(text, self._scrub_text(text, single_line))
        return cached

    def _scrub_text(self, text: str, single_line: bool) -> str:
        try:
            out = text
            if len(out) > self.max_string:
                cut = len(out) - self.max_string
                out = out[: self.max_string] + f"...[truncated {cut} chars]"
            # Each built-in pattern runs only when the text holds what a match needs (exact
            # for ASCII text; other text runs every pattern, as case folding could match).
            plain = out.isascii()
            lower = out.lower()
            if plain and self._gated and not self._any_gate_open(out, lower):
                # The common case: nothing to look for (same as each gate saying no).
                if _digits(out) >= _CARD_DIGITS:
                    out = _scrub_cards(out)
                return neutralize_newlines(out) if single_line else out
            for pattern, repl, gate in self._rules:
                if plain and gate is not None and not gate(out, lower):
                    continue
                new = pattern.sub(repl, out)
                if new != out:
                    out = new
                    plain = out.isascii()
                    lower = out.lower()
            if not plain or _digits(out) >= _CARD_DIGITS:
                out = _scrub_cards(out)
            if single_line:
                out = neutralize_newlines(out)
            return out
        except Exception:  # noqa: BLE001 - never raise, never return the unscrubbed text
            return self.replacement

    # -- structures ---------------------------------------------------------------------------

    def scrub(self, value: Any, *, single_line: bool = False) -> Any:
        """A scrubbed, bounded, JSON-ready copy of ``value`` (mappings, sequences, scalars)."""
        try:
            return self._walk(value, 0, single_line)
        except Exception:  # noqa: BLE001 - the guarantee is: no secret and no exception
            return self.replacement

    def is_clean(self, value: Any, *, single_line: bool = False) -> bool:
        """True when :meth:`scrub` would give back ``value`` unchanged.

        Only for JSON-shaped values (dicts with text keys, lists, text, numbers, booleans,
        None), with all of their strings tested at once. False means "scrub it", not "it
        holds a secret"; a scrubber with patterns of its own always says False."""
        return self.cleanness(value, single_line=single_line) != DIRTY

    def cleanness(self, value: Any, *, single_line: bool = False) -> int:
        """:data:`DIRTY`, :data:`CLEAN` or :data:`CLEAN_NO_FLOAT`: like :meth:`is_clean`,
        also saying whether a clean ``value`` holds no float. Such a value is made of exact
        ``dict`` (with text keys), ``list``, ``str``, ``int``, ``bool`` and None only, so
        any compact JSON encoder that keeps non-ASCII text writes it as :mod:`json` does
        (floats' text is where encoders differ)."""
        return self.cleanness_all([(value, single_line)])[0]

    def cleanness_all(self, values: Iterable[tuple[Any, bool]]) -> list[int]:
        """:meth:`cleanness` of each ``(value, single_line)``.

        A value is clean when its shape is one scrub() keeps, no key is sensitive and
        :meth:`scrub_text` gives back each key (as one line) and each text as it is. Most
        texts are answered by scrub_text()'s own cache; the others, of all the values, are
        tested at once by the rules' gates (and remembered when they pass)."""
        items = [(value, bool(line)) for value, line in values]
        if not self._gated:
            return [DIRTY] * len(items)
        # The texts of every value, by kind (as is, one line), and all keys; each value's
        # part of them as (kind, first text, end, first key, end), None when not clean.
        texts: tuple[list[str], list[str]] = ([], [])
        keys: list[Any] = []
        spans: list[tuple[bool, int, int, int, int] | None] = []
        with_floats: list[bool] = []
        for value, single_line in items:
            bucket = texts[single_line]
            start, key_start = len(bucket), len(keys)
            floats: list[float] = []
            try:
                shaped = self._collect(value, 0, bucket, keys, floats)
            except RecursionError:
                shaped = False
            with_floats.append(bool(floats))
            if shaped:
                spans.append((single_line, start, len(bucket), key_start, len(keys)))
            else:
                spans.append(None)
                del bucket[start:], keys[key_start:]
        if keys and not self._keys_clean(keys):
            for index, span in enumerate(spans):
                if (
                    span is not None
                    and span[4] > span[3]
                    and not self._keys_clean(keys[span[3] : span[4]])
                ):
                    spans[index] = None
        for single_line in (False, True):
            self._texts_known(texts[single_line], single_line, spans)
        return [
            DIRTY if span is None else CLEAN if floats else CLEAN_NO_FLOAT
            for span, floats in zip(spans, with_floats, strict=True)
        ]

    def _texts_known(
        self,
        texts: list[str],
        single_line: bool,
        spans: list[tuple[bool, int, int, int, int] | None],
    ) -> None:
        """Mark (in ``spans``, as None) each value of this kind with a text scrub_text()
        does not give back as it is."""
        if not texts:
            return
        cache = self._cache[single_line]
        found = list(map(cache.get, texts))
        if found == texts:
            return  # the common case: each text seen before, and kept
        changed: list[int] = []
        unseen: list[int] = []
        for index in compress(range(len(texts)), map(ne, found, texts)):
            (unseen if found[index] is None else changed).append(index)
        if unseen:
            fresh = [texts[index] for index in unseen]
            try:
                passed = self._texts_clean(fresh, [], single_line)
            except Exception:  # noqa: BLE001 - a rule's own gate failed: ask scrub_text()
                passed = False
            if passed:
                for text in fresh:
                    if len(text) <= _CACHED_TEXT:
                        cache.put(text, text)
            else:
                scrub_text = self.scrub_text
                changed += (
                    i for i in unseen if scrub_text(texts[i], single_line=single_line) != texts[i]
                )
        for index in changed:
            for position, span in enumerate(spans):
                if span is not None and span[0] is single_line and span[1] <= index < span[2]:
                    spans[position] = None

    def _any_sensitive(self, keys: list[str]) -> bool:
        """Whether a key is sensitive: the cached answers first, then asked of the rest."""
        known = set(map(self._key_cache.get, keys))
        return True in known or (None in known and any(map(self.is_sensitive_key, keys)))

    def _keys_clean(self, keys: list[Any]) -> bool:
        """Whether every key is text, not sensitive, and kept as it is (as one line)."""
        if not _ONLY_TEXT.issuperset(map(type, keys)):
            return False
        if self._any_sensitive(keys):
            return False
        cache = self._cache[True]
        if list(map(cache.get, keys)) == keys:
            return True
        scrub_text = self.scrub_text
        return all(scrub_text(key, single_line=True) == key for key in keys)

    def _collect(
        self, value: Any, depth: int, texts: list[str], keys: list[Any], floats: list[float]
    ) -> bool:
        """Gather the strings, keys and floats of ``value``; False if scrub() would change its
        shape (too deep, too many items, a number that may be a card, a type JSON does not
        have). Keys are gathered whatever their type: the caller wants text."""
        kind = type(value)
        if kind is str:
            texts.append(value)
            return True
        if kind is int:
            return bool(value < _CARD_FLOOR)
        if kind is float:
            floats.append(value)
            return True
        if value is None or kind is bool:
            return True
        if depth >= self.max_depth:
            return False
        if kind is dict:
            if len(value) > self.max_items:
                return False
            keys += value
            items: Iterable[Any] = value.values()
        elif kind is list:
            if len(value) > self.max_items:
                return False
            items = value
        else:
            return False
        for item in items:
            kind = type(item)
            if kind is str:
                texts.append(item)
            elif kind is int:
                if item >= _CARD_FLOOR:
                    return False
            elif kind is dict or kind is list:
                if not self._collect(item, depth + 1, texts, keys, floats):
                    return False
            elif kind is float:
                floats.append(item)
            elif item is not None and kind is not bool:
                return False
        return True

    def _texts_clean(self, texts: list[str], keys: list[str], single_line: bool) -> bool:
        """Whether scrub_text() keeps every text (and every key, as one line) as it is and
        no key is sensitive: no pattern's gate opens on any of them."""
        if keys and self._any_sensitive(keys):
            return False
        joined_keys = _JOIN.join(keys)
        if _has_line_break(joined_keys):
            return False
        body = _JOIN.join(texts)
        if single_line and _has_line_break(body):
            return False
        everything = f"{joined_keys}{_JOIN}{body}"
        if not everything.isascii():
            return False  # every pattern runs on other text: no shortcut
        limit = self.max_string
        if len(everything) > limit and max(map(len, (*texts, *keys)), default=0) > limit:
            return False
        lower = everything.lower()
        for gate in self._gates:
            # A gate that stays shut on all the texts joined stays shut on each of them (see
            # ScrubRule). One that opens may do so only across texts: ask each text alone.
            if gate(everything, lower) and any(gate(t, t.lower()) for t in (*keys, *texts)):
                return False
        # A card is a run of 13+ digits, each but the first after at most one space or dash:
        # texts may hold more digits than that in all (ids, times) without such a run. A run
        # cannot span two texts (_JOIN is no digit, space or dash, as the start and end of a
        # text are to the pattern). Without spaces and dashes, a run is 13 digits in a row.
        data = everything.encode("ascii")
        if len(data) - len(data.translate(None, _DIGITS)) < _CARD_DIGITS:
            return True
        if _DIGIT_RUN not in data.translate(_DIGITS_AS_ZERO, b" -"):
            return True
        return _CARD_CANDIDATE.search(everything) is None

    def scrub_headers(
        self, headers: Mapping[str, Any] | Iterable[tuple[Any, Any]] | None
    ) -> dict[str, str]:
        """Headers as a dict with sensitive ones filtered and secrets removed from the rest.

        Accepts a mapping, a list of pairs, or ASGI's list of ``(bytes, bytes)``."""
        out: dict[str, str] = {}
        if headers is None:
            return out
        try:
            items = headers.items() if isinstance(headers, Mapping) else headers
            for count, (raw_name, raw_value) in enumerate(items):
                if count >= self.max_items:
                    out["..."] = f"[{count}+ headers, rest dropped]"
                    break
                name = raw_name if type(raw_name) is str else _as_text(raw_name)
                if self.is_sensitive_header(name):
                    value = self.replacement
                else:
                    text = raw_value if type(raw_value) is str else _as_text(raw_value)
                    value = self.scrub_text(text, single_line=True)
                out[name] = value if name not in out else f"{out[name]}, {value}"
        except Exception:  # noqa: BLE001 - partial but clean is better than raising
            out["..."] = self.replacement
        return out

    def _walk(self, value: Any, depth: int, single_line: bool) -> Any:
        if value is None or isinstance(value, bool | float):
            return value
        if isinstance(value, int):
            # A card number sent as a JSON number is still a card number.
            if value >= _CARD_FLOOR and _looks_like_card(str(value)):
                return self.replacement
            return value
        if isinstance(value, str):
            return self.scrub_text(value, single_line=single_line)
        if isinstance(value, bytes | bytearray | memoryview):
            return self.scrub_text(bytes(value).decode("utf-8", "replace"), single_line=single_line)
        if depth >= self.max_depth:
            return "[Truncated: too deep]"
        if isinstance(value, Mapping):
            out: dict[str, Any] = {}
            for count, (k, v) in enumerate(value.items()):
                if count >= self.max_items:
                    out["..."] = f"[{len(value) - count} more items dropped]"
                    break
                key = self.scrub_text(k if isinstance(k, str) else str(k), single_line=True)
                if self.is_sensitive_key(k):
                    out[key] = self.replacement
                else:
                    out[key] = self._walk(v, depth + 1, single_line)
            return out
        if isinstance(value, list | tuple | set | frozenset):
            items: list[Any] = []
            for count, item in enumerate(value):
                if count >= self.max_items:
                    items.append(f"[{len(value) - count} more items dropped]")
                    break
                items.append(self._walk(item, depth + 1, single_line))
            return items
        # Anything else (objects, dataclasses, exceptions): its text, scrubbed.
        try:
            text = repr(value)
        except Exception:  # noqa: BLE001 - a broken __repr__ must not break scrubbing
            text = f"<unrepresentable {type(value).__name__}>"
        return self.scrub_text(text, single_line=single_line)


def _as_text(value: Any) -> str:
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("latin-1")
    return str(value)


_default = Scrubber()


def default_scrubber() -> Scrubber:
    """The scrubber errorkit uses unless configured otherwise."""
    return _default


def set_default_scrubber(scrubber: Scrubber) -> None:
    """Replace the process-wide scrubber (``errorkit.configure`` calls this)."""
    global _default
    if not isinstance(scrubber, Scrubber):
        msg = f"set_default_scrubber() needs a Scrubber, not {type(scrubber).__name__}"
        raise TypeError(msg)
    _default = scrubber


def scrub(value: Any, *, single_line: bool = False) -> Any:
    """Scrub ``value`` with the process-wide scrubber."""
    return _default.scrub(value, single_line=single_line)
