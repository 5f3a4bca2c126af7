"""The breaker checked against a model of its state machine by hypothesis.

Steps: calls that succeed, fail, or get a client error; permits held open (calls in flight)
and finished later in any order; time passing; resets. After every step the breaker's
state, consecutive failures and probes in flight must equal the model's.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import errorkit
from errorkit.resilience import CircuitBreaker, ManualClock, Permit

THRESHOLD = 3
RECOVERY = 10.0
SUCCESSES = 2
MAX_PROBES = 2
PROBE_TIMEOUT = 25.0

OUTCOMES = {
    "ok": None,
    "fail": errorkit.ServiceUnavailableError,
    "client": errorkit.NotFoundError,
}


@dataclass
class Model:
    """The breaker as the documentation describes it."""

    state: str = "closed"
    generation: int = 0
    failures: int = 0
    successes: int = 0
    opened_at: float = 0.0
    probes: dict[int, float] = field(default_factory=dict)
    next_probe: int = 0

    def move(self, state: str, now: float) -> None:
        self.state = state
        self.generation += 1
        self.successes = 0
        self.probes.clear()
        if state == "open":
            self.opened_at = now
        if state == "closed":
            self.failures = 0

    def admit(self, now: float) -> tuple[int, int | None] | None:
        """(generation, probe id) for an admitted call, None for a refusal."""
        if self.state == "closed":
            return self.generation, None
        if self.state == "open":
            if now < self.opened_at + RECOVERY:
                return None
            self.move("half_open", now)
        self.probes = {k: v for k, v in self.probes.items() if v > now}
        if len(self.probes) >= MAX_PROBES:
            return None
        self.next_probe += 1
        self.probes[self.next_probe] = now + PROBE_TIMEOUT
        return self.generation, self.next_probe

    def finish(self, ticket: tuple[int, int | None], outcome: str, now: float) -> None:
        generation, probe = ticket
        if probe is not None:
            self.probes.pop(probe, None)
        if generation != self.generation:
            return
        good = outcome != "fail"
        if self.state == "closed":
            self.failures = 0 if good else self.failures + 1
            if self.failures >= THRESHOLD:
                self.move("open", now)
        elif self.state == "half_open" and probe is not None:
            if not good:
                self.move("open", now)
            else:
                self.successes += 1
                if self.successes >= SUCCESSES:
                    self.move("closed", now)

    def live_probes(self, now: float) -> int:
        return sum(1 for expiry in self.probes.values() if expiry > now)


class BreakerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.clock = ManualClock()
        self.breaker = CircuitBreaker(
            "model",
            failure_threshold=THRESHOLD,
            recovery_timeout=RECOVERY,
            success_threshold=SUCCESSES,
            half_open_max_calls=MAX_PROBES,
            probe_timeout=PROBE_TIMEOUT,
            clock=self.clock,
        )
        self.model = Model()
        self.held: list[tuple[Permit, tuple[int, int | None]]] = []

    @property
    def now(self) -> float:
        return self.clock.monotonic()

    @rule(outcome=st.sampled_from(sorted(OUTCOMES)))
    def call(self, outcome: str) -> None:
        ticket = self.model.admit(self.now)
        error = OUTCOMES[outcome]

        def work() -> str:
            if error is not None:
                raise error()
            return "ok"

        if ticket is None:
            with pytest.raises(errorkit.CircuitOpenError):
                self.breaker.call(work)
            return
        if error is None:
            assert self.breaker.call(work) == "ok"
        else:
            with pytest.raises(error):
                self.breaker.call(work)
        self.model.finish(ticket, outcome, self.now)

    @precondition(lambda self: self.model.state == "closed" and not self.held)
    @rule()
    def fail_until_open(self) -> None:
        while self.model.state == "closed":
            self.call("fail")

    @precondition(lambda self: len(self.held) < 4)
    @rule()
    def start_call(self) -> None:
        ticket = self.model.admit(self.now)
        if ticket is None:
            with pytest.raises(errorkit.CircuitOpenError):
                self.breaker.acquire()
            return
        self.held.append((self.breaker.acquire(), ticket))

    @precondition(lambda self: bool(self.held))
    @rule(data=st.data(), outcome=st.sampled_from(sorted(OUTCOMES)))
    def finish_call(self, data: st.DataObject, outcome: str) -> None:
        index = data.draw(st.integers(0, len(self.held) - 1))
        permit, ticket = self.held.pop(index)
        error = OUTCOMES[outcome]
        permit.release(None if error is None else error())
        self.model.finish(ticket, outcome, self.now)

    @rule(seconds=st.sampled_from([1.0, 9.99, 10.0, 12.0, 30.0]))
    def wait(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule()
    def reset(self) -> None:
        self.breaker.reset()
        self.model.move("closed", self.now)

    @invariant()
    def matches_the_model(self) -> None:
        status = self.breaker.status()
        assert str(status.state) == self.model.state
        assert status.failures == self.model.failures
        assert status.successes == self.model.successes
        assert status.probes_in_flight == self.model.live_probes(self.now)
        assert status.probes_in_flight <= MAX_PROBES


BreakerMachine.TestCase.settings = settings(max_examples=200, stateful_step_count=50)
TestBreakerAgainstModel = BreakerMachine.TestCase
