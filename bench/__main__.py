"""Run every ``bench/bench_*.py`` module's ``main()``, in name order.

``python -m bench`` runs them all, each in a fresh interpreter so that one benchmark's
set-up (sentry-sdk patching logging, a warm heap, started threads) cannot distort the next;
``python -m bench store retry`` runs the ones whose name contains any of the words.
"""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys
import time
import traceback

import bench


def main(argv: list[str]) -> int:
    names = sorted(
        m.name for m in pkgutil.iter_modules(bench.__path__) if m.name.startswith("bench_")
    )
    if argv:
        names = [n for n in names if any(word in n for word in argv)]
        if not names:
            print(f"no benchmark matches {argv}; known: {', '.join(names) or 'none'}")
            return 2
    if len(names) == 1:
        return _run_here(names[0])
    failed = []
    for name in names:
        print(f"\n=== {name} ===", flush=True)
        started = time.perf_counter()
        code = subprocess.call([sys.executable, "-m", "bench", name])
        if code != 0:
            failed.append(name)
        print(f"--- {name}: {time.perf_counter() - started:.1f}s", flush=True)
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
        return 1
    return 0


def _run_here(name: str) -> int:
    try:
        importlib.import_module(f"bench.{name}").main()
    except Exception:
        traceback.print_exc()
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
