"""docs/observability.md: the way it shows to reach the capture store works."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "observability.md"


def _blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)


def test_docs_never_call_current_store_through_the_capture_function() -> None:
    """``errorkit.capture`` is the capture() function: ``errorkit.capture.current_store()``
    raises AttributeError, so the page must not write it."""
    import errorkit

    assert "errorkit.capture.current_store(" not in DOC.read_text()
    with pytest.raises(AttributeError):
        errorkit.capture.current_store()  # type: ignore[attr-defined]


def test_the_current_store_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    """The page's current_store example runs as written and gives capture's store."""
    from errorkit.capturing.api import current_store

    (block,) = [b for b in _blocks() if "current_store" in b]
    namespace: dict[str, object] = {}
    exec(compile(block, str(DOC), "exec"), namespace)
    assert namespace["store"] is current_store()
    assert capsys.readouterr().out == f"{current_store()}\n"
