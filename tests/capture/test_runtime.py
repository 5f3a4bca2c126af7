"""configure() returns the runtime: one object naming what errorkit runs with."""

from __future__ import annotations

import re
from pathlib import Path

import errorkit
from errorkit.capturing import api
from errorkit.observe.health import default_health
from errorkit.resilience.registry import default_registry
from errorkit.runtime import Runtime
from errorkit.scrubbing import default_scrubber
from errorkit.testing import MemoryStore


def test_configure_returns_the_runtime_in_force(tmp_path: Path) -> None:
    """Top-level and capturing.configure() both return the runtime current_runtime() names,
    holding the settings, scrubber, pipeline, breakers and health in force."""
    runtime = errorkit.configure(store=MemoryStore(), service="billing", spool_dir=tmp_path)
    assert isinstance(runtime, Runtime)
    assert errorkit.current_runtime() is runtime
    assert errorkit.capturing.configure(store=MemoryStore(), spool_dir=tmp_path) is runtime
    assert runtime.settings.service == "billing"
    assert runtime.pipeline is api._pipeline is not None
    assert runtime.scrubber is default_scrubber()
    assert runtime.breakers is default_registry()
    assert runtime.health is default_health()


def test_the_repr_names_the_service_environment_store_and_state(
    sqlite_url: str, tmp_path: Path
) -> None:
    """The repr reads as the configuration: the store URL shows no password."""
    runtime = errorkit.configure(
        store_url="postgresql://app:hunter2@127.0.0.1:1/errors",
        service="billing",
        environment="staging",
        spool_dir=tmp_path,
    )
    text = repr(runtime)
    assert text == (
        "Runtime(service='billing', environment='staging', "
        "store='postgresql://app:***@127.0.0.1:1/errors', pipeline='running')"
    )
    assert "hunter2" not in text
    api.shutdown(timeout=0.1)
    assert "pipeline='not configured'" in repr(runtime)
    errorkit.configure(store_url=sqlite_url, enabled=False)
    assert "pipeline='disabled'" in repr(errorkit.current_runtime())


def test_a_store_object_is_named_by_its_class(tmp_path: Path) -> None:
    """configure(store=...) with no URL of its own shows the store's class."""
    runtime = errorkit.configure(store=MemoryStore(), spool_dir=tmp_path)
    assert "store='MemoryStore'" in repr(runtime)


def test_the_documented_runtime_example_runs() -> None:
    """docs/capture.md's runtime example runs as written."""
    doc = Path(__file__).resolve().parents[2] / "docs" / "capture.md"
    blocks = re.findall(r"```python\n(.*?)```", doc.read_text(), re.S)
    (block,) = [b for b in blocks if "current_runtime()" in b and "reset" not in b]
    exec(compile(block, str(doc), "exec"), {})
