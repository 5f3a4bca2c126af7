"""What an evaluation costs the store: a finding still inside its cooldown (or a new group
already announced) is decided from one read of the rule's open firings, not by a locked
write transaction per finding."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from tests.alerts._support import T0, CountingStore, occurrences

from errorkit.alerts import AlertManager, LogChannel, Rule


def test_quiet_findings_take_no_claim_transaction(
    store: CountingStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    for n in range(5):
        occurrences(store, 3, T0, fingerprint=f"fp-{n}", title=f"boom {n}")
    rules = [
        Rule("repeats", "repeat", count=3, window=timedelta(minutes=5)),
        Rule("new", "new_group", window=timedelta(hours=1)),
    ]
    alerts = AlertManager(store, rules, [LogChannel("log")], now=lambda: T0)
    claims: list[tuple[str, str]] = []
    real = store.claim_alert

    def counting(rule: str, scope: str, decide: Any) -> Any:
        claims.append((rule, scope))
        return real(rule, scope, decide)

    monkeypatch.setattr(store, "claim_alert", counting)
    first = alerts.evaluate(T0)
    assert sorted(f.event.rule for f in first) == ["new"] * 5 + ["repeats"] * 5
    assert len(claims) == 10
    claims.clear()
    later = T0 + timedelta(minutes=1)
    assert alerts.evaluate(later) == []  # all still firing, inside the cooldown
    assert claims == []
    # Past the cooldown the one repeat still found is decided under the lock again and
    # fires; the four gone resolve (each a claim); the announced new groups take none.
    occurrences(store, 3, T0 + timedelta(minutes=31), fingerprint="fp-0", title="boom 0")
    again = alerts.evaluate(T0 + timedelta(minutes=31))
    assert sorted((f.event.kind, f.event.scope) for f in again) == [
        ("fired", "*|group=fp-0"),
        *(("resolved", f"*|group=fp-{n}") for n in range(1, 5)),
    ]
    assert sorted(claims) == [("repeats", f"*|group=fp-{n}") for n in range(5)]
