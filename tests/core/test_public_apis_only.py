"""errorkit uses only the public API of the json module: any release may change the rest."""

from __future__ import annotations

import re
from pathlib import Path

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
