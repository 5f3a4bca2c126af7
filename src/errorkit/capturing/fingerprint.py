"""Grouping: which occurrences are the same issue.

A fingerprint is a hash of the service, the exception type and its code (an
:class:`~errorkit.errors.AppError`'s own, or the one :func:`~errorkit.classification.classify`
gives a foreign exception), the *in-app* frames as ``module:function`` (never line
numbers), the types and frames of the exception chain, and the message with its values
(numbers, ids, quoted values, e-mail addresses, URLs) replaced by placeholders. So a
fingerprint survives code moving down a file and messages that carry ids.

It is computed on the caller's thread, because exact counting under a flood needs it before
the event is queued (or dropped), so it is built to be cheap: the traceback is walked once
(attribute reads only), and everything derived from code objects and message text is cached
in bounded dictionaries.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import site
import sys
import sysconfig
from collections.abc import Sequence
from typing import Any, NamedTuple

from errorkit._cache import BoundedCache
from errorkit.classification import classify
from errorkit.errors import AppError

__all__ = [
    "DEFAULT_PLACEHOLDER",
    "ChainLink",
    "Grouping",
    "apply_override",
    "chain_grouping",
    "chain_structure",
    "frames_signature",
    "group_chain",
    "group_exception",
    "group_message",
    "is_in_app",
    "normalize_message",
]

#: Placeholder in a ``fingerprint=[...]`` override that stands for the default fingerprint.
DEFAULT_PLACEHOLDER = "{{ default }}"

#: The most frames of one traceback that take part in grouping (the innermost ones).
MAX_GROUPING_FRAMES = 50
#: The most exceptions of a cause chain that take part in grouping.
MAX_GROUPING_CHAIN = 5
#: Only the start of a message is normalised and grouped on.
MAX_GROUPING_MESSAGE = 512
#: Titles are cut to this length.
MAX_TITLE = 200
#: The code of an exception no mapper knows (it does not take part in its fingerprint).
_UNCLASSIFIED = "INTERNAL_ERROR"
#: Size of each cache before it is emptied and refilled.
_CACHE_SIZE = 4096


class Grouping(NamedTuple):
    """The fingerprint of an occurrence and the title of its group."""

    fingerprint: str
    title: str


# --- in-app frames ---------------------------------------------------------------------------


def _library_prefixes() -> tuple[str, ...]:
    paths: set[str] = set()
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        with contextlib.suppress(Exception):
            paths.add(sysconfig.get_paths()[key])
    with contextlib.suppress(Exception):
        paths.update(site.getsitepackages())
    with contextlib.suppress(Exception):
        paths.add(site.getusersitepackages())
    for prefix in {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}:
        paths.add(os.path.join(prefix, "lib"))
        paths.add(os.path.join(prefix, "Lib"))
    paths.add(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # errorkit itself
    cleaned = {os.path.normcase(os.path.abspath(p)).rstrip(os.sep) + os.sep for p in paths if p}
    return tuple(sorted(cleaned))


_LIBRARY_PREFIXES = _library_prefixes()
_LIBRARY_MARKERS = (f"{os.sep}site-packages{os.sep}", f"{os.sep}dist-packages{os.sep}")
_in_app: BoundedCache[str, bool] = BoundedCache(_CACHE_SIZE)


def is_in_app(filename: str) -> bool:
    """Whether a frame in ``filename`` is the app's own code (not the standard library, an
    installed package or errorkit). Cached per file name."""
    cached = _in_app.get(filename)
    if cached is not None:
        return cached
    if filename.startswith("<"):
        result = False  # <frozen ...>, <string>: no file of the app
    else:
        path = os.path.normcase(os.path.abspath(filename))
        result = not (
            any(marker in path for marker in _LIBRARY_MARKERS) or path.startswith(_LIBRARY_PREFIXES)
        )
    _in_app.put(filename, result)
    return result


# --- messages --------------------------------------------------------------------------------

_URL = re.compile(r"(?i)\b[a-z][a-z0-9+.\-]*://[^\s'\"<>]+")
_EMAIL = re.compile(r"(?i)\b[a-z0-9._%+\-]+@[a-z0-9.\-]+\.[a-z]{2,}\b")
_QUOTED = re.compile(r"'(?:[^'\\\n]|\\.){0,200}'|\"(?:[^\"\\\n]|\\.){0,200}\"")
_DIGIT = re.compile(r"\d")
_WITH_DIGITS: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(r"(?i)\b[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}\b"),
        "<uuid>",
    ),
    (re.compile(r"(?i)\b0x[0-9a-f]+\b"), "<hex>"),
    (re.compile(r"(?i)\b(?=[0-9a-f]*[0-9])(?=[0-9a-f]*[a-f])[0-9a-f]{8,}\b"), "<hex>"),
    # A number, with a short unit ("1.5s", "10ms", "80%"); not a digit inside a name
    # ("utf-8", "v2", "int32").
    (re.compile(r"(?<![\w.\-])[-+]?\d+(?:[.,:]\d+)*(?:[a-zA-Z]{1,3}|%)?(?!\w|\.\d)"), "<num>"),
)
_normalised: BoundedCache[str, str] = BoundedCache(_CACHE_SIZE)


def normalize_message(text: str) -> str:
    """``text`` with values replaced: ``"user 42 at a@b.io"`` -> ``"user <num> at <email>"``.

    Only the first :data:`MAX_GROUPING_MESSAGE` characters count. Cached."""
    text = text[:MAX_GROUPING_MESSAGE]
    cached = _normalised.get(text)
    if cached is not None:
        return cached
    out = text
    # Each pattern runs only when the text can hold a match: most messages skip most.
    if "://" in out:
        out = _URL.sub("<url>", out)
    if "@" in out:
        out = _EMAIL.sub("<email>", out)
    if "'" in out or '"' in out:
        out = _QUOTED.sub("<str>", out)
    if _DIGIT.search(out) is not None:
        for pattern, replacement in _WITH_DIGITS:
            out = pattern.sub(replacement, out)
    out = " ".join(out.split())
    _normalised.put(text, out)
    return out


# --- fingerprints ----------------------------------------------------------------------------

_groupings: BoundedCache[tuple[Any, ...], Grouping] = BoundedCache(_CACHE_SIZE)
# Code objects and types whose id() is part of a cache key are kept alive here, so an id is
# never reused by another object while a key holds it. Emptied together with the cache.
_pinned: dict[int, Any] = {}
_structures: BoundedCache[tuple[Any, ...], str] = BoundedCache(_CACHE_SIZE, on_clear=_pinned.clear)


def _digest(*parts: str) -> str:
    h = hashlib.blake2b(digest_size=16)
    for part in parts:
        h.update(part.encode("utf-8", "surrogatepass"))
        h.update(b"\x1f")
    return h.hexdigest()


def _type_name(exc_type: type[BaseException]) -> str:
    module = exc_type.__module__
    name = exc_type.__qualname__
    return name if module in ("builtins", "__main__") else f"{module}.{name}"


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and its causes/contexts, without loops, at most :data:`MAX_GROUPING_CHAIN`."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and len(chain) < MAX_GROUPING_CHAIN:
        for seen in chain:
            if seen is current:
                return chain
        chain.append(current)
        if current.__cause__ is not None:
            current = current.__cause__
        elif not current.__suppress_context__:
            current = current.__context__
        else:
            current = None
    return chain


def _key(chain: list[BaseException]) -> list[int]:
    """Identities of everything grouping reads from ``chain`` except messages: cheap to
    build (attribute reads and ``id()``) and to hash (integers)."""
    key: list[int] = []
    for member in chain:
        key.append(id(type(member)))
        tb = member.__traceback__
        while tb is not None:
            key.append(id(tb.tb_frame.f_code))
            tb = tb.tb_next
        if isinstance(member, BaseExceptionGroup):
            key.extend(id(type(m)) for m in member.exceptions[:10])
        key.append(0)
    return key


def _pin(chain: list[BaseException]) -> None:
    for member in chain:
        _pinned[id(type(member))] = type(member)
        tb = member.__traceback__
        while tb is not None:
            _pinned[id(tb.tb_frame.f_code)] = tb.tb_frame.f_code
            tb = tb.tb_next
        if isinstance(member, BaseExceptionGroup):
            for m in member.exceptions[:10]:
                _pinned[id(type(m))] = type(m)


def _members(exc: BaseException) -> tuple[str, ...]:
    if isinstance(exc, BaseExceptionGroup):
        return tuple(sorted({_type_name(type(m)) for m in exc.exceptions[:10]}))
    return ()


def _frame_entries(exc: BaseException) -> list[tuple[str, str, bool]]:
    """``(module, function, in_app)`` of the innermost frames of ``exc``'s traceback."""
    frames = []
    tb = exc.__traceback__
    while tb is not None:
        frames.append(tb.tb_frame)
        tb = tb.tb_next
    return [
        (f.f_globals.get("__name__", "?"), f.f_code.co_qualname, is_in_app(f.f_code.co_filename))
        for f in frames[-MAX_GROUPING_FRAMES:]
    ]


def frames_signature(frames: Sequence[tuple[str, str, bool]]) -> str:
    """``module:function`` of the in-app frames among ``frames`` (``(module, function,
    in_app)``, outermost first; all of them when none is in-app), with consecutive repeats
    collapsed so the depth of a recursion does not split a group. Only the innermost
    :data:`MAX_GROUPING_FRAMES` count."""
    frames = frames[-MAX_GROUPING_FRAMES:]
    entries = [(m, f) for m, f, in_app in frames if in_app] or [(m, f) for m, f, _ in frames]
    collapsed: list[str] = []
    for module, function in entries:
        text = f"{module}:{function}"
        if not collapsed or collapsed[-1] != text:
            collapsed.append(text)
    return "|".join(collapsed)


class ChainLink(NamedTuple):
    """One exception of a chain as grouping reads it: its type's dotted name (bare for
    builtins), its frames as ``(module, function, in_app)`` (outermost first) and, for an
    exception group, its members' type names."""

    type_name: str
    frames: Sequence[tuple[str, str, bool]]
    members: tuple[str, ...] = ()


def chain_structure(chain: Sequence[ChainLink], service: str, code: str) -> str:
    """The digest of everything but the message that groups an exception chain (the raised
    exception first, at most :data:`MAX_GROUPING_CHAIN`): the service, the code and each
    link's type, in-app frames and members."""
    structure = "\x1e".join(
        f"{link.type_name}\x1d{frames_signature(link.frames)}\x1d{','.join(link.members)}"
        for link in chain[:MAX_GROUPING_CHAIN]
    )
    return _digest("exception", service, code, structure)


def _grouping(structure: str, message: str, shown: str, name: str) -> Grouping:
    title = f"{name}: {shown}" if shown else name
    return Grouping(_digest(structure, message), title[:MAX_TITLE])


def group_chain(chain: Sequence[ChainLink], service: str, code: str, message: str) -> Grouping:
    """The fingerprint and title of an exception known only as data (an SDK's event), by
    the rule of :func:`group_exception`: ``chain`` holds the raised exception first, then
    its causes; ``code`` is its classification's code (``""`` when unclassified);
    ``message`` is the raised exception's text."""
    if not chain:
        msg = "group_chain() needs at least the raised exception"
        raise ValueError(msg)
    return chain_grouping(chain_structure(chain, service, code), chain[0].type_name, message)


def chain_grouping(structure: str, type_name: str, message: str) -> Grouping:
    """:func:`group_chain`'s answer from the chain's :func:`chain_structure`, the raised
    exception's type name and its text."""
    norm = normalize_message(message)
    return _grouping(structure, norm, norm, type_name.rpartition(".")[2])


class _Keep(dict[str, Any]):
    """Fills a template's ``group_by`` fields and leaves every other ``{field}`` as is."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


class _Shown(dict[str, Any]):
    """Like :class:`_Keep`, for a title: an unfilled field is shown as ``<field>``."""

    def __missing__(self, key: str) -> str:
        return f"<{key}>"


def _app_error_message(exc: AppError, fill: type[dict[str, Any]]) -> str:
    template = getattr(exc, "_template", None)
    if not isinstance(template, str):
        template = type(exc).message
    if "{" not in template:
        return str(exc.message)
    # A template groups on its text, not on the values filled in, except the fields the
    # class names in ``group_by``: those split issues (a health check's name).
    details = exc.details
    known = {k: details[k] for k in type(exc).group_by if k in details}
    if not known and fill is _Keep:
        return template
    try:
        return template.format_map(fill(known))
    except (ValueError, IndexError, AttributeError, KeyError, TypeError):
        return template


def _grouping_message(exc: BaseException, fill: type[dict[str, Any]] = _Keep) -> str:
    if isinstance(exc, AppError):
        return _app_error_message(exc, fill)
    try:
        return str(exc)
    except Exception:  # noqa: BLE001 - a broken __str__ must not break capture
        return "<unprintable>"


def _classified_code(exc: BaseException) -> str:
    """The code :func:`~errorkit.classification.classify` gives a foreign exception, so that one
    exception type that means different things (an upstream's 429 and its 401) makes
    different issues. Unclassified exceptions (``INTERNAL_ERROR``) add nothing: their
    fingerprints stay what they were."""
    code = classify(exc).code
    return "" if code == _UNCLASSIFIED else code


def group_exception(exc: BaseException, service: str) -> Grouping:
    """The fingerprint and title of ``exc`` (see the module documentation)."""
    chain = _chain(exc)
    code = exc.code if isinstance(exc, AppError) else _classified_code(exc)
    key = (service, code, *_key(chain))
    structure = _structures.get(key)
    if structure is None:
        links = [ChainLink(_type_name(type(m)), _frame_entries(m), _members(m)) for m in chain]
        structure = chain_structure(links, service, code)
        _pin(chain)
        _structures.put(key, structure)
    if isinstance(exc, AppError) and exc.__traceback__ is None and not type(exc).group_by:
        message = ""  # an AppError built but never raised: its code is its identity
    else:
        message = normalize_message(_grouping_message(exc))
    final_key = (structure, message)
    found = _groupings.get(final_key)
    if found is not None:
        return found
    shown = normalize_message(_grouping_message(exc, _Shown))
    grouping = _grouping(structure, message, shown, type(exc).__name__)
    _groupings.put(final_key, grouping)
    return grouping


def group_message(message: str, service: str, logger: str | None = None) -> Grouping:
    """The fingerprint and title of a captured message (a log record's template)."""
    final_key = ("message", service, logger, message[:MAX_GROUPING_MESSAGE])
    found = _groupings.get(final_key)
    if found is not None:
        return found
    norm = normalize_message(message)
    fingerprint = _digest("message", service, logger or "", norm)
    grouping = Grouping(fingerprint, (norm or "message")[:MAX_TITLE])
    _groupings.put(final_key, grouping)
    return grouping


def apply_override(override: str | Sequence[Any], default: Grouping, service: str) -> Grouping:
    """A user's ``fingerprint=`` (a string or a list of parts; ``"{{ default }}"`` in the
    list stands for the default fingerprint) turned into the fingerprint to use."""
    parts = [override] if isinstance(override, str) else list(override)
    texts = [default.fingerprint if p == DEFAULT_PLACEHOLDER else str(p) for p in parts]
    return Grouping(_digest("custom", service, *texts), default.title)
