"""The real sentry-sdk, pointed at ``errorkit serve``'s ingest by its DSN: what an app sends
(capture_exception, capture_message, the logging integration, the FastAPI integration)
lands as errorkit groups with frames, tags, user and release, and every answer is a 200."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from tests.ingest.conftest import Served

CLIENT = Path(__file__).with_name("_sdk_client.py")
SCENARIOS = ("exception", "message", "logging", "fastapi")


def run_client(served: Served) -> dict[str, Any]:
    """Run the SDK in a process of its own (it patches logging and Starlette globally)."""
    done = subprocess.run(
        [sys.executable, str(CLIENT), served.dsn()],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@pytest.fixture
def sent(served: Served) -> dict[str, Any]:
    return run_client(served)


def test_the_sdk_transport_gets_200_for_everything(sent: dict[str, Any]) -> None:
    assert sent["app_status"] == 500  # the FastAPI app answered its own error
    assert sent["statuses"]
    assert set(sent["statuses"]) == {200}


def _frames(data: dict[str, Any]) -> list[str]:
    """Function names of the stored frames, wherever the record keeps them."""
    text = json.dumps(data)
    return [name for name in ("apply_discount", "order") if f'"{name}"' in text]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_each_way_of_sending_lands_as_a_group(
    served: Served, sent: dict[str, Any], scenario: str
) -> None:
    """The SDK's event id finds the stored event: service = project, release, environment,
    user, tags and frames are kept, and it belongs to a group."""
    eid = sent["events"][scenario]
    stored = served.store.get(eid)
    assert stored is not None, f"{scenario}: {eid} not stored"
    assert stored.service == "shop"
    assert stored.release == "shop@1.4.2"
    assert stored.environment == "staging"
    users = {
        "exception": "user-42",
        "message": "user-43",
        "logging": "user-44",
        "fastapi": "user-7",
    }
    assert stored.user_id == users[scenario]
    data = json.dumps(stored.data)
    assert '"scenario"' in data and f'"{scenario}"' in data
    if scenario == "exception":
        assert '"checkout"' in data
    if scenario != "message":
        assert _frames(stored.data), f"{scenario}: no frames in {data[:500]}"
    group = served.store.group(stored.fingerprint)
    assert group is not None
    # The same ValueError from the same place (exception, logging) is one issue.
    assert group.count == served.store.count(fingerprint=stored.fingerprint) >= 1
