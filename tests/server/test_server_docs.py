"""docs/tracker.md: its opening example runs and prints what the page says; the route table
lists every route of the app."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "tracker.md"


def _first_python_block() -> str:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)[0]


def test_the_opening_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    block = _first_python_block()
    expected = [line.removeprefix("# ") for line in block.splitlines() if line.startswith("# ")]
    namespace: dict[str, object] = {}
    exec(compile(block, str(DOC), "exec"), namespace)
    namespace["store"].close()  # type: ignore[attr-defined]
    assert capsys.readouterr().out.splitlines() == expected
    assert expected == ["200 RuntimeError: gateway refused the charge", "AUTH_REQUIRED"]


def test_every_route_is_in_the_route_table(tmp_path: Path) -> None:
    from errorkit.server import create_app

    app = create_app(f"sqlite:///{tmp_path / 'e.db'}")
    text = DOC.read_text()
    missing = []
    for path, operations in app.openapi()["paths"].items():
        short = path.removeprefix("/admin/api")
        short = re.sub(r"\{group_id\}", "{id}", short)
        for method in operations:
            if f"`{method.upper()} {short}`" not in text:
                missing.append(f"{method.upper()} {short}")
    assert missing == []
