"""errorkit uses only the public API of structlog and of the json module: any release of
either may change the rest."""

from __future__ import annotations

import ast
import logging
import re
import sys
from pathlib import Path

import pytest
import structlog
import structlog.stdlib

import errorkit

SRC = Path(errorkit.__file__).parent

# The json module's public API is ``json.dumps/loads/dump/load``, ``JSONEncoder``,
# ``JSONDecoder`` and ``JSONDecodeError``; its submodules and their helpers are internals.
_JSON_PRIVATE = re.compile(
    r"\bc_make_encoder\b|\bencode_basestring\w*|\bpy_\w+encode\w*|\bc_scanstring\b"
    r"|\bjson\.(?:encoder|decoder|scanner)\b|\bfrom json\.\w+ import\b"
)


def _sources() -> list[tuple[str, str]]:
    return [(str(p.relative_to(SRC)), p.read_text("utf-8")) for p in sorted(SRC.rglob("*.py"))]


def _hits(pattern: re.Pattern[str], sources: list[tuple[str, str]]) -> list[str]:
    return [
        f"{name}:{number}: {line.strip()}"
        for name, text in sources
        for number, line in enumerate(text.splitlines(), 1)
        if pattern.search(line)
    ]


def test_the_sources_are_found() -> None:
    names = [name for name, _ in _sources()]
    assert "http/envelope.py" in names
    assert "store/_clean.py" in names


def test_no_private_api_of_the_json_module() -> None:
    assert _hits(_JSON_PRIVATE, _sources()) == []


def test_the_json_pattern_finds_what_it_forbids() -> None:
    samples = [
        ("a.py", "from json.encoder import encode_basestring"),
        ("b.py", 'make = getattr(json.encoder, "c_make_encoder", None)'),
        ("c.py", "return encode_basestring_ascii(value)"),
    ]
    assert len(_hits(_JSON_PRIVATE, samples)) == 3
    assert _hits(_JSON_PRIVATE, [("d.py", "json.JSONEncoder(ensure_ascii=False).encode")]) == []


# A private module or name reached through structlog: ``structlog._config``,
# ``structlog.stdlib._FixedFindCallerLogger``, ``from structlog.stdlib import _x``.
_STRUCTLOG_PRIVATE_PATH = re.compile(
    r"\bstructlog(?:\.\w+)*\._\w|\bfrom structlog(?:\.\w+)* import [^#]*\b_\w"
)


def _structlog_private_names() -> frozenset[str]:
    """The private attributes of structlog's loggers, proxies and formatter, as structlog
    itself defines them (class members and what an instance holds)."""
    bound = structlog.stdlib.BoundLogger(logging.getLogger("errorkit.test"), [], {})
    instances: list[object] = [
        bound,
        structlog.get_logger("errorkit.test"),
        structlog.stdlib.LoggerFactory(),
        structlog.stdlib.ProcessorFormatter(processors=[structlog.dev.ConsoleRenderer()]),
    ]
    names: set[str] = set()
    for instance in instances:
        names |= {n for n in vars(instance) if n.startswith("_")}
        for cls in type(instance).__mro__:
            if cls.__module__.startswith("structlog"):
                names |= {n for n in vars(cls) if n.startswith("_") and not n.endswith("__")}
                names |= {n for n in getattr(cls, "__slots__", ()) if n.startswith("_")}
    for module in list(sys.modules.values()):
        if getattr(module, "__name__", "").startswith("structlog"):
            names |= {n for n in vars(module) if n.startswith("_") and not n.endswith("__")}
    names |= {"_processors", "_logger", "_context", "_proxy_to_logger", "_process_event"}
    return frozenset(names)


def _private_structlog_uses(name: str, text: str, private: frozenset[str]) -> list[str]:
    """Where a module that imports structlog reads one of structlog's private attributes
    (``x._logger``, ``getattr(x, "_logger")``) or reaches a private name through it."""
    found = [
        f"{name}:{number}: {line.strip()}"
        for number, line in enumerate(text.splitlines(), 1)
        if _STRUCTLOG_PRIVATE_PATH.search(line)
    ]
    if "structlog" not in text:
        return found
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Attribute) and node.attr in private:
            found.append(f"{name}:{node.lineno}: .{node.attr}")
        elif isinstance(node, ast.Constant) and node.value in private:
            found.append(f"{name}:{node.lineno}: {node.value!r}")
        elif isinstance(node, ast.FunctionDef) and node.name in private:
            found.append(f"{name}:{node.lineno}: def {node.name} (overrides structlog's)")
    return found


def test_structlog_private_names_are_known() -> None:
    private = _structlog_private_names()
    assert {"_processors", "_logger", "_context", "_proxy_to_logger"} <= private


def test_no_private_api_of_structlog() -> None:
    private = _structlog_private_names()
    found = [
        hit for name, text in _sources() for hit in _private_structlog_uses(name, text, private)
    ]
    assert found == []


@pytest.mark.parametrize(
    "line",
    [
        "ours = self._processors is _PROCESSORS",
        "logger = self._logger",
        "event = self._context.copy()",
        'logger = attrs.get("_logger")',
        "def _proxy_to_logger(self, method_name, event=None):",
        'getattr(structlog.stdlib, "_FixedFindCallerLogger", logging.Logger)',
        "from structlog._frames import _find_first_app_frame_and_name",
    ],
)
def test_the_structlog_check_finds_what_it_forbids(line: str) -> None:
    text = f"import structlog\n\n\nclass L:\n    def m(self):\n        {line}\n"
    if line.startswith("def "):
        text = f"import structlog\n\n\nclass L:\n    {line}\n        pass\n"
    assert _private_structlog_uses("x.py", text, _structlog_private_names()) != []
