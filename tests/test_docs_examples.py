"""Every ```python block in README.md and docs/*.md runs as a new user would copy it.

A doc example that cannot run counts as a defect. Each block runs alone in a fresh
interpreter, from an empty temporary directory, with only errorkit's sources on the path:
no block may lean on names another block defined. A block that is deliberately a fragment is
fenced ```python fragment and is not run.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests._services import require_postgres, require_redis

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
TIMEOUT = 60

_OPEN = re.compile(r"^(?P<indent>[ \t]*)```(?P<info>[^`\n]*)$")

# Examples whose run shows a library bug: the page stays true to the documented behaviour
# and the test expects the failure until the code is fixed (strict: a fix makes it pass).
KNOWN_BUGS: dict[str, str] = {}


@dataclass(frozen=True)
class Example:
    page: str  # path relative to the repository root
    number: int  # 1-based position among the page's runnable python blocks
    line: int  # line of the opening fence
    code: str

    @property
    def id(self) -> str:
        return f"{self.page}:{self.number}"


def _fences(text: str) -> list[tuple[str, int, str]]:
    """(info string, line of the opening fence, dedented body) of each fenced block."""
    found: list[tuple[str, int, str]] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        opened = _OPEN.match(lines[i])
        if opened is None:
            i += 1
            continue
        indent, info, start = opened["indent"], opened["info"].strip(), i
        body: list[str] = []
        i += 1
        while i < len(lines) and lines[i].strip() != "```":
            body.append(lines[i])
            i += 1
        if i == len(lines):
            raise AssertionError(f"unclosed fence opened on line {start + 1}")
        i += 1
        dedented = [line[len(indent) :] if line.startswith(indent) else line for line in body]
        found.append((info, start + 1, textwrap.dedent("\n".join(dedented)) + "\n"))
    return found


def _examples() -> list[Example]:
    examples: list[Example] = []
    for path in PAGES:
        page = path.relative_to(ROOT).as_posix()
        runnable = [
            (line, code) for info, line, code in _fences(path.read_text()) if info == "python"
        ]
        examples += [
            Example(page, number, line, code) for number, (line, code) in enumerate(runnable, 1)
        ]
    return examples


EXAMPLES = _examples()


def _services(code: str) -> list[str]:
    """The real services a block talks to (the docs use 127.0.0.1's PostgreSQL and Redis)."""
    needs = []
    if "postgresql://" in code or "postgresql+psycopg://" in code:
        needs.append("postgres")
    if "redis://" in code or "import redis" in code:
        needs.append("redis")
    return needs


def _param(example: Example) -> object:
    marks = [getattr(pytest.mark, service) for service in _services(example.code)]
    reason = KNOWN_BUGS.get(example.id)
    if reason:
        marks.append(pytest.mark.xfail(strict=True, reason=reason))
    return pytest.param(example, id=example.id, marks=marks)


@pytest.mark.parametrize("example", [_param(e) for e in EXAMPLES])
def test_example_runs(example: Example, tmp_path: Path) -> None:
    services = _services(example.code)
    if "postgres" in services:
        require_postgres()
    if "redis" in services:
        require_redis()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ERRORKIT_")}
    env["PYTHONPATH"] = str(SRC)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    try:
        done = subprocess.run(
            [sys.executable, "-c", example.code],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{example.page} line {example.line}: still running after {exc.timeout} s")
    where = f"{example.page}, block opened on line {example.line}"
    if done.returncode != 0:
        pytest.fail(f"{where}, exited {done.returncode}:\n{done.stderr}", pytrace=False)
    # errorkit swallows its own failures to protect the app; an example must not cause one.
    if "errorkit: internal error in" in done.stderr:
        pytest.fail(f"{where}: errorkit reported an internal error:\n{done.stderr}", pytrace=False)


def test_every_python_block_is_collected() -> None:
    """The fence parser finds every plain ```python block, indented ones included."""
    for path in PAGES:
        page = path.relative_to(ROOT).as_posix()
        opened = sum(line.strip() == "```python" for line in path.read_text().splitlines())
        assert opened == sum(e.page == page for e in EXAMPLES), page
    assert any(e.page == "README.md" for e in EXAMPLES)


def test_every_python_fence_is_run_or_marked_fragment() -> None:
    """A typo in the info string (```py, ```Python) would silently stop a block being run."""
    for path in PAGES:
        for info, line, _ in _fences(path.read_text()):
            if info.lower().startswith("py"):
                assert info in {"python", "python fragment"}, f"{path.name}:{line} ```{info}"


def test_known_bugs_name_real_examples() -> None:
    assert set(KNOWN_BUGS) <= {e.id for e in EXAMPLES}
