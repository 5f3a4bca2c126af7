"""The error-code registry: every code errorkit can answer with, in one place.

A code is UPPER_SNAKE in the ``{DOMAIN}_{RESOURCE}_{ISSUE}`` spirit: two to six segments of
capital letters and digits, each starting with a letter, at most 64 characters
(``HEALTH_DATA_NOT_FOUND``, ``RATE_LIMIT_EXCEEDED``, ``NOT_FOUND``). A bad or duplicate code
fails when it is defined, not when it is first raised.

A project may opt into the strict rule, exactly ``{DOMAIN}_{RESOURCE}_{ISSUE}`` (three
segments), with :func:`set_code_rule` or ``ERRORKIT_CODE_RULE=strict``; it applies to the
project's codes, not to errorkit's own.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Literal

__all__ = [
    "CODE_RULE",
    "STRICT_CODE_RULE",
    "Catalog",
    "CatalogError",
    "Category",
    "CodeInfo",
    "Severity",
    "catalog",
    "set_code_rule",
    "validate_code",
]


class Category(StrEnum):
    """Who has to act on an error."""

    CLIENT = "client"  # the caller sent something wrong (4xx)
    VALIDATION = "validation"  # the input failed validation (400/422)
    BUSINESS = "business"  # a domain rule refused the request (422)
    SERVER = "server"  # our code or an internal dependency failed (5xx)
    SYSTEM = "system"  # needs an operator: disk full, out of memory, permission denied
    EXTERNAL = "external"  # an upstream service failed
    CRITICAL = "critical"  # the service cannot work at all


class Severity(StrEnum):
    """How loud an error is; ordered from quietest to loudest."""

    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _SEVERITY_RANK[self]


_SEVERITY_RANK = {s: i for i, s in enumerate(Severity)}

# Matched against the whole string (fullmatch): "$" alone would accept a trailing newline.
_CODE_RE = re.compile(r"[A-Z][A-Z0-9]*(?:_[A-Z][A-Z0-9]*){1,5}")
_STRICT_CODE_RE = re.compile(r"[A-Z][A-Z0-9]*_[A-Z][A-Z0-9]*_[A-Z][A-Z0-9]*")
CODE_RULE = (
    "codes are UPPER_SNAKE like {DOMAIN}_{RESOURCE}_{ISSUE}: 2 to 6 segments of A-Z and 0-9, "
    "each starting with a letter, joined by single underscores, at most 64 characters "
    "(for example HEALTH_DATA_NOT_FOUND)"
)
STRICT_CODE_RULE = (
    "the strict code rule is on: codes are exactly {DOMAIN}_{RESOURCE}_{ISSUE}, three "
    "segments of A-Z and 0-9, each starting with a letter, joined by single underscores, at "
    "most 64 characters (for example HEALTH_DATA_MISSING)"
)
_OWN = "errorkit."  # errorkit's own codes keep the default rule under the strict one


class CatalogError(ValueError):
    """A code breaks the naming rule or is defined twice."""


def _strict() -> bool:
    # Imported here: the settings are read only when a project's code is checked.
    from errorkit.config import get_settings

    return get_settings().code_rule == "strict"


def validate_code(code: object, *, owner: str | None = None) -> str:
    """Return ``code`` if it follows the rule, else raise :class:`CatalogError` saying why.

    Under the strict rule (:func:`set_code_rule`) a code must have exactly three segments,
    unless errorkit itself defines it (``owner``) or it is already in the catalog."""
    if not isinstance(code, str):
        msg = f"error code {code!r} must be a str; {CODE_RULE}"
        raise CatalogError(msg)
    if len(code) > 64 or not _CODE_RE.fullmatch(code):
        msg = f"error code {code!r} is not valid: {CODE_RULE}"
        raise CatalogError(msg)
    if (
        not _STRICT_CODE_RE.fullmatch(code)
        and not (owner or "").startswith(_OWN)
        and code not in catalog
        and _strict()
    ):
        msg = f"error code {code!r} is not valid: {STRICT_CODE_RULE}"
        raise CatalogError(msg)
    return code


def set_code_rule(rule: Literal["default", "strict"]) -> None:
    """Choose the rule for the project's codes from now on: ``"default"`` (2 to 6 segments)
    or ``"strict"`` (exactly ``{DOMAIN}_{RESOURCE}_{ISSUE}``). The same as the setting
    ``code_rule`` (``ERRORKIT_CODE_RULE``), which is in force when classes are defined at
    import time. Switching to strict fails, changing nothing, if codes the project already
    defined break it: call it before importing the modules that define them."""
    from errorkit.config import ConfigError, update_settings

    if rule not in ("default", "strict"):
        msg = f"code rule {rule!r}: use 'default' or 'strict'"
        raise ConfigError(msg)
    if rule == "strict":
        breaking = sorted(
            f"{info.code} ({info.owner or 'define()'})"
            for info in catalog
            if not info.owner.startswith(_OWN) and not _STRICT_CODE_RE.fullmatch(info.code)
        )
        if breaking:
            msg = f"codes already defined break the strict rule: {', '.join(breaking)}"
            raise CatalogError(msg)
    update_settings(code_rule=rule)


@dataclass(frozen=True, slots=True)
class CodeInfo:
    """What the catalog knows about one code."""

    code: str
    status: int
    category: Category
    severity: Severity
    retriable: bool
    description: str
    title: str
    owner: str  # "module.QualName" of the class that defined it, or the caller of define()

    def as_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["category"] = str(self.category)
        data["severity"] = str(self.severity)
        return data


class Catalog:
    """A thread-safe registry of error codes."""

    def __init__(self) -> None:
        self._codes: dict[str, CodeInfo] = {}
        self._lock = threading.Lock()

    def define(
        self,
        code: str,
        *,
        status: int,
        category: Category | str,
        severity: Severity | str,
        retriable: bool,
        description: str,
        title: str | None = None,
        owner: str = "",
    ) -> CodeInfo:
        """Register ``code``. Defining the same code again from the same owner replaces it
        (a module reloaded in a test); from another owner it is an error."""
        validate_code(code, owner=owner)
        if not (100 <= int(status) <= 599):
            msg = f"error code {code!r}: status {status!r} is not an HTTP status (100-599)"
            raise CatalogError(msg)
        info = CodeInfo(
            code=code,
            status=int(status),
            category=Category(category),
            severity=Severity(severity),
            retriable=bool(retriable),
            description=" ".join(description.split()),
            title=title or _title_from_code(code),
            owner=owner,
        )
        with self._lock:
            existing = self._codes.get(code)
            if existing is not None and existing.owner != owner:
                msg = (
                    f"error code {code!r} is defined twice: by {existing.owner or 'define()'} "
                    f"and by {owner or 'define()'}; every code must be unique in the catalog "
                    "(pick a more specific {DOMAIN}_{RESOURCE}_{ISSUE} name)"
                )
                raise CatalogError(msg)
            self._codes[code] = info
        return info

    def get(self, code: str) -> CodeInfo | None:
        return self._codes.get(code)

    def __contains__(self, code: object) -> bool:
        return code in self._codes

    def __iter__(self) -> Iterator[CodeInfo]:
        return iter(sorted(self._codes.values(), key=lambda c: (c.status, c.code)))

    def __len__(self) -> int:
        return len(self._codes)

    def forget(self, code: str) -> None:
        """Remove a code (for tests that define throwaway errors)."""
        with self._lock:
            self._codes.pop(code, None)

    def reference(self, fmt: Literal["markdown", "json"] = "markdown") -> str:
        """The code reference as a Markdown table or a JSON list."""
        if fmt == "json":
            return json.dumps([c.as_dict() for c in self], indent=2)
        if fmt != "markdown":
            msg = f"unknown reference format {fmt!r}; use 'markdown' or 'json'"
            raise ValueError(msg)
        lines = [
            "| Code | HTTP | Category | Severity | Retriable | Description |",
            "|------|------|----------|----------|-----------|-------------|",
        ]
        for c in self:
            desc = c.description.replace("|", "\\|")
            lines.append(
                f"| `{c.code}` | {c.status} | {c.category} | {c.severity} | "
                f"{'yes' if c.retriable else 'no'} | {desc} |"
            )
        return "\n".join(lines) + "\n"


def _title_from_code(code: str) -> str:
    return code.replace("_", " ").capitalize()


catalog = Catalog()
"""The process-wide catalog every errorkit error registers into."""
