"""The demo keeps giving the answers it documents."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT)])
    env["ERRORKIT_STORE_URL"] = f"sqlite:///{tmp_path}/demo.db"
    env.pop("ERRORKIT_DEMO_CHECK", None)
    return env


def test_demo_check_mode_passes(tmp_path: Path) -> None:
    """`python -m examples.demo --check` runs every curl line and all answers match; every
    5xx answer's error id is found by `errorkit errors show`; /metrics counted them."""
    result = subprocess.run(
        [sys.executable, "-m", "examples.demo", "--check", "--port", "0"],
        cwd=ROOT,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "all answers match" in result.stdout
    assert "FAIL" not in result.stdout
    assert result.stdout.count("PASS  errorkit errors show") >= 5
    assert "PASS  /metrics counts the captured errors" in result.stdout
    for line in (
        "PASS  traffic: 300 requests sent",
        "PASS  the tracker answers",
        "PASS  the token logs in",
        "PASS  without the token the groups are refused",
        "PASS  the generated errors are listed as groups",
        "PASS  the dashboard's login page loads",
    ):
        assert line in result.stdout


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_demo_serves_until_interrupted(tmp_path: Path) -> None:
    """Without --check the demo prints its curl and CLI lines, the tracker's dashboard
    address and a login token, and stops cleanly on Ctrl-C."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "examples.demo", "--port", "0"],
        cwd=ROOT,
        env=_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # Ctrl-C as at a terminal, even when this run was started in the background (a
        # shell starts background jobs with SIGINT ignored, and children inherit that).
        preexec_fn=_default_sigint,
    )
    try:
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("Ctrl-C stops the demo"):
                break
        output = "".join(lines)
        assert "curl -s -i" in output
        assert "/v1/chat/completions" in output
        assert "errors list --store" in output
        assert "/metrics" in output
        assert "/demo/breakers" in output
        assert re.search(r"^Dashboard: http://127\.0\.0\.1:\d+/admin/", output, re.M)
        assert re.search(r"^Token: +ekt_\S+$", output, re.M)
        assert proc.poll() is None
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
