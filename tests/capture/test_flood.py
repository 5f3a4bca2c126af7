"""A flood: 1,000,000 captures of 1,000 distinct errors stay within bounded memory and
every occurrence is counted exactly.

The flood runs in a child process so that its memory is measured alone: resident memory
(RSS) may grow by at most ``MEMORY_BOUND_MB`` over the process's size once errorkit is
configured and warmed up. What keeps it bounded: the queue (``queue_size``), the flood
limiter's table and the pending counts (at most 10,000 fingerprints each), and the
fingerprint caches (4,096 entries each).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.capture.conftest import total_count

from errorkit.store import ErrorStore

CAPTURES = 1_000_000
DISTINCT = 1_000
MEMORY_BOUND_MB = 32

FLOOD = textwrap.dedent(
    """
    import json, sys
    from errorkit.capturing import api as capture

    def rss_mb():
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        import os
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20

    def peak_mb():  # VmHWM, unlike ru_maxrss, is not inherited from the parent process
        with open("/proc/self/status") as f:
            return next(int(l.split()[1]) for l in f if l.startswith("VmHWM:")) / 1024

    store_url, spool_dir, captures, distinct = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:])
    capture.configure(store_url=store_url, spool_dir=spool_dir, flood_per_minute=2,
                      queue_size=10_000, batch_size=500)
    letters = "abcdefghijklmnopqrstuvwxyz"
    words = ["".join(letters[(i // 26 ** k) % 26] for k in range(3)) for i in range(distinct)]
    messages = [f"stage {w} failed" for w in words]

    def fail(i):
        raise RuntimeError(messages[i % distinct])

    # Warm up: every distinct error once, so that caches and groups exist.
    for i in range(distinct):
        try:
            fail(i)
        except RuntimeError as exc:
            capture.capture(exc)
    assert capture.flush(timeout=120)
    baseline = rss_mb()
    for i in range(captures - distinct):
        try:
            fail(i)
        except RuntimeError as exc:
            capture.capture(exc)
    during = rss_mb()
    ok = capture.flush(timeout=300)
    stats = capture.stats()
    print(json.dumps({
        "baseline_mb": baseline, "during_mb": during, "peak_mb": peak_mb(),
        "flushed": ok, "written": stats.events_written, "dropped": stats.dropped,
    }))
    """
)


@pytest.mark.slow
def test_flood_memory_is_bounded_and_counts_are_exact(
    sqlite_url: str, tmp_path: Path, open_store: Callable[[str], ErrorStore]
) -> None:
    """1,000,000 captures of 1,000 errors: RSS grows by less than the bound, each group
    counts exactly 1,000 and the total is exactly 1,000,000."""
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            FLOOD,
            sqlite_url,
            str(tmp_path / "spool"),
            str(CAPTURES),
            str(DISTINCT),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["flushed"] is True
    grown = max(report["during_mb"], report["peak_mb"]) - report["baseline_mb"]
    assert grown < MEMORY_BOUND_MB, report
    store = open_store(sqlite_url)
    groups = store.groups(limit=10_000).items
    assert len(groups) == DISTINCT
    assert {group.count for group in groups} == {CAPTURES // DISTINCT}
    assert total_count(store) == CAPTURES
    dropped = report["dropped"]
    assert report["written"] + dropped.get("sampled", 0) + dropped.get("queue_full", 0) == (
        CAPTURES
    )
