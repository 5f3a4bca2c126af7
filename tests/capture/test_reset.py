"""errorkit.reset(): every piece of the runtime back to what a fresh process has."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import errorkit
from errorkit import _reporting, classification, hooks, testing
from errorkit.capturing import api
from errorkit.classification import Classification
from errorkit.config import get_settings, update_settings
from errorkit.observe.health import default_health
from errorkit.observe.metrics import default_metrics
from errorkit.observe.tracing import enable_tracing
from errorkit.resilience import (
    ManualClock,
    add_breaker_listener,
    add_fallback_listener,
    add_retry_listener,
    chaos,
    circuit_breaker,
    clock,
)
from errorkit.resilience.breaker import MemoryBackend
from errorkit.scrubbing import Scrubber, set_default_scrubber
from errorkit.testing import MemoryStore

ROOT = Path(__file__).resolve().parents[2]


def view() -> dict[str, Any]:
    """What errorkit runs with, as plain data (the same in a fresh interpreter)."""
    runtime = errorkit.current_runtime()
    breakers = runtime.breakers
    return {
        "settings": dataclasses.asdict(runtime.settings),
        "repr": repr(runtime),
        "configured": api.is_configured(),
        "scrubbed": runtime.scrubber.scrub({"ticket_ref": "T-1", "note": "call 555-0100"}),
        "breakers": breakers.names(),
        "breaker_listeners": len(breakers._listeners),
        "breaker_backend": type(breakers._backend).__name__,
        "breaker_clock": breakers._clock is clock.SYSTEM_CLOCK,
        "health_checks": [check.name for check in runtime.health.checks],
        "testing_mode": [clock.is_testing(), clock.testing_attempts_cap()],
        "chaos": chaos.chaos_enabled(),
        "reporter": _reporting.get_reporter() is None,
        "hooks": {event: len(hooks.registered(event)) for event in sorted(hooks.EVENTS)},
        "user_mappers": len(classification._user_mappers),
        "early_drops": dict(api._early_drops),
    }


def _as_json(value: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(json.dumps(value))  # tuples read back as lists
    return result


def fresh_view(environ: dict[str, str]) -> dict[str, Any]:
    """view() as a new interpreter with this environment sees it."""
    code = (
        "import json, sys; sys.path.insert(0, sys.argv[1]); "
        "from tests.capture.test_reset import view; print(json.dumps(view()))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(ROOT)],
        env=environ,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


class _OtherBackend(MemoryBackend):
    """A breaker backend other than the default one."""


def _change_everything(tmp_path: Path) -> None:
    def mapper(exc: BaseException) -> Classification | None:
        return None

    errorkit.configure(
        store=MemoryStore(), service="billing", queue_size=7, spool_dir=tmp_path / "spool"
    )
    api.add_listener(lambda summary: None)
    errorkit.capture_message("before the reset")
    set_default_scrubber(Scrubber(extra_keys=("ticket_ref",)))
    update_settings(code_rule="strict")  # what set_code_rule() does, without its check
    circuit_breaker("upstream", failure_threshold=3)
    add_breaker_listener(lambda name, old, new: None)
    errorkit.current_runtime().breakers.add_listener(lambda name, old, new: None)
    errorkit.resilience.configure_breakers(backend=_OtherBackend(), clock=ManualClock())
    default_health().add("db", lambda: True)
    default_metrics().instrument()
    enable_tracing()
    add_retry_listener(lambda event: None)
    add_fallback_listener(lambda event: None)
    _reporting.add_observer(lambda exc, error_id, context: None)
    classification.register_mapper(mapper)
    clock.set_testing(True, attempts=1)
    chaos.set_chaos(True)
    api.shutdown(timeout=5)
    errorkit.capture_message("unconfigured: counted as dropped")


def test_reset_restores_every_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """After changing each part of the runtime, reset() leaves errorkit as a new process
    has it, with the settings read from the environment again."""
    monkeypatch.setenv("ERRORKIT_ENV", "from-environment")
    monkeypatch.delenv("ERRORKIT_CHAOS", raising=False)
    environ = dict(os.environ)
    baseline = fresh_view(environ)
    assert baseline["settings"]["environment"] == "from-environment"

    _change_everything(tmp_path)
    changed = _as_json(view())
    differing = {key for key in baseline if changed[key] != baseline[key]}
    # Shut down again at the end, so the pipeline's own state is already the default.
    assert differing == set(baseline) - {"configured", "reporter"}

    runtime = errorkit.reset()
    assert runtime is errorkit.current_runtime()
    assert _as_json(view()) == baseline
    assert get_settings().code_rule == "default"


def test_reset_stops_the_pipeline_after_storing_what_it_holds(tmp_path: Path) -> None:
    """reset() shuts the pipeline down the way shutdown() does: nothing queued is lost."""
    memory = MemoryStore()
    errorkit.configure(store=memory, spool_dir=tmp_path / "spool")
    errorkit.capture_message("held in the queue")
    testing.reset()
    assert not api.is_configured()
    assert [record.error_message for record in memory.records] == ["held in the queue"]


def test_the_documented_reset_example_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/capture.md's reset example runs as written."""
    monkeypatch.delenv("ERRORKIT_SERVICE", raising=False)
    doc = ROOT / "docs" / "capture.md"
    blocks = re.findall(r"```python\n(.*?)```", doc.read_text(), re.S)
    (block,) = [b for b in blocks if "reset()" in b]
    exec(compile(block, str(doc), "exec"), {})
