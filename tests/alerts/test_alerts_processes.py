"""Two processes evaluate the same rules on one PostgreSQL: each firing is sent once."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from tests.alerts._support import T0, CountingStore, Receiver, occurrences

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import sys, time
from datetime import timedelta
from pathlib import Path
from errorkit.alerts import AlertManager, Rule, WebhookChannel
from errorkit.store import ErrorStore
from tests.alerts._support import T0

url, hook, go = sys.argv[1], sys.argv[2], Path(sys.argv[3])
store = ErrorStore(url)
store.ping()
rule = Rule("repeats", "repeat", count=3, window=timedelta(days=1), cooldown=timedelta(minutes=10))
alerts = AlertManager(store, [rule], [WebhookChannel("hook", hook)])
while not go.exists():
    time.sleep(0.01)
sent = 0
for minute in range(35):
    sent += len(alerts.evaluate(T0 + timedelta(minutes=minute)))
print(sent)
"""


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_two_processes_send_each_firing_exactly_once(
    store: CountingStore, store_url: str, receiver: Receiver, tmp_path: Path
) -> None:
    occurrences(store, 3, T0)
    go = tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    env["PYTHONPATH"] += os.pathsep + os.environ.get("PYTHONPATH", "")
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", SCRIPT, store_url, receiver.url + "/hook", str(go)],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    time.sleep(0.5)  # let both connect; the flag then starts them together
    go.touch()
    outputs = [worker.communicate(timeout=120) for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0], outputs
    # Firings at minutes 0, 10, 20 and 30, whichever process won each.
    assert sum(int(out.strip()) for out, _ in outputs) == 4
    assert len(receiver.requests) == 4
    starts = [request.json()["at"] for request in receiver.requests]
    assert sorted(starts) == [(T0 + timedelta(minutes=m)).isoformat() for m in (0, 10, 20, 30)]
    fired = store.alert_events(kinds=("fired",))
    assert len(fired) == 4
