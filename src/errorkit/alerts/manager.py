"""Evaluating rules against the store and sending what fires, once.

:class:`AlertManager` reads what the store holds (so it sees every process's errors),
decides per rule and scope whether an alert fires or resolves, records the decision in
``alert_events`` under a lock (so of several processes on one database only one sends a
given firing), and delivers it through each channel with errorkit's retry and a circuit
breaker per channel, recording every attempt. Nothing here runs on the request path: call
:meth:`AlertManager.evaluate` from a scheduler, or :meth:`AlertManager.start` a thread.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from errorkit.alerts.channels import Channel, DeliveryFailed, LogChannel, Notification
from errorkit.alerts.rules import Rule
from errorkit.errors import CircuitOpenError
from errorkit.resilience import CircuitBreaker, CircuitState, RetryPolicy
from errorkit.resilience import add_breaker_listener as _add_breaker_listener
from errorkit.resilience import remove_breaker_listener as _remove_breaker_listener
from errorkit.store.alerting import AlertClaim, AlertEvent
from errorkit.store.models import RequestCounts
from errorkit.store.repository import ErrorStore

__all__ = ["AlertManager", "Delivery", "Firing", "RequestCounts", "request_counts"]

logger = logging.getLogger("errorkit.alerts")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class _CountsSource(Protocol):
    def request_counts(
        self,
        since: datetime,
        until: datetime,
        *,
        service: str | None = None,
        environment: str | None = None,
        endpoint: str | None = None,
    ) -> Any: ...


def request_counts(
    store: object,
    since: datetime,
    until: datetime,
    *,
    service: str | None = None,
    environment: str | None = None,
    endpoint: str | None = None,
) -> RequestCounts | None:
    """The store's request counts for a window, or None when the store keeps none."""
    method = getattr(store, "request_counts", None)
    if method is None:
        return None
    counts = method(since, until, service=service, environment=environment, endpoint=endpoint)
    if isinstance(counts, RequestCounts):
        return counts
    return RequestCounts(int(counts.total), int(counts.client_errors), int(counts.server_errors))


@dataclass(frozen=True, slots=True)
class _Finding:
    scope: str
    title: str
    numbers: dict[str, Any]
    group: str | None = None
    window_start: datetime | None = None


@dataclass(frozen=True, slots=True)
class Delivery:
    """How sending one notification to one channel ended."""

    channel: str
    ok: bool
    attempts: int
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Firing:
    """A firing or resolution this process recorded (and so delivered)."""

    event: AlertEvent
    notification: Notification
    deliveries: tuple[Delivery, ...] = field(default=())


def _floor(moment: datetime, size: timedelta) -> datetime:
    seconds = size.total_seconds()
    elapsed = (moment - _EPOCH).total_seconds()
    return _EPOCH + timedelta(seconds=elapsed - elapsed % seconds)


def _pct(value: float) -> str:
    return f"{value:.2f}%"


def _whom(label: str) -> str:
    return "all requests" if label == "*" else label


def _span(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


class AlertManager:
    """Rules, channels and a store; evaluate, send, remember.

    ``now`` supplies the current time (inject a fixed one in tests). Deliveries make up to
    ``attempts`` tries, waiting ``retry_wait`` seconds (doubling) between them, through a
    circuit breaker per channel that opens after ``breaker_failures`` failed tries.
    """

    def __init__(
        self,
        store: ErrorStore,
        rules: Iterable[Rule] = (),
        channels: Iterable[Channel] = (),
        *,
        base_url: str | None = None,
        now: Callable[[], datetime] | None = None,
        attempts: int = 3,
        retry_wait: float = 0.5,
        breaker_failures: int = 5,
        breaker_recovery: float = 60.0,
    ) -> None:
        self.store = store
        self.rules: dict[str, Rule] = {}
        for rule in rules:
            self.add_rule(rule)
        self.channels: dict[str, Channel] = {}
        for channel in channels:
            self.add_channel(channel)
        self.base_url = base_url.rstrip("/") if base_url else None
        self._now = now or (lambda: datetime.now(UTC))
        self._retry = RetryPolicy(
            attempts=attempts,
            on=DeliveryFailed,
            wait_initial=retry_wait,
            wait_max=max(retry_wait, 30.0),
            capture=False,
            operation="alerts.deliver",
        )
        self._breaker_options = {
            "failure_threshold": breaker_failures,
            "recovery_timeout": breaker_recovery,
        }
        self._breakers: dict[str, CircuitBreaker] = {}
        self._breaker_states: dict[str, tuple[CircuitState, datetime]] = {}
        self._state_lock = threading.Lock()
        self._watching = False
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._warned: set[str] = set()

    # -- configuration ----------------------------------------------------------------

    def add_rule(self, rule: Rule) -> None:
        if not isinstance(rule, Rule):
            message = f"add_rule() takes an errorkit.alerts.Rule, not {type(rule).__name__}"
            raise TypeError(message)
        self.rules[rule.name] = rule

    def remove_rule(self, name: str) -> None:
        if name not in self.rules:
            message = f"no rule {name!r}; the rules are: {', '.join(self.rules) or 'none'}"
            raise KeyError(message)
        del self.rules[name]

    def add_channel(self, channel: Channel) -> None:
        if not isinstance(channel, Channel):
            message = f"add_channel() takes a Channel, not {type(channel).__name__}"
            raise TypeError(message)
        self.channels[channel.name] = channel

    def _channels_for(self, rule: Rule | None) -> list[Channel]:
        if rule is None or not rule.channels:
            chosen = list(self.channels.values())
        else:
            chosen = [self.channels[name] for name in rule.channels if name in self.channels]
        return chosen or [LogChannel("log")]

    # -- breakers ---------------------------------------------------------------------

    def watch_breakers(self) -> None:
        """Subscribe to every breaker's transitions, for ``breaker`` rules."""
        if not self._watching:
            _add_breaker_listener(self.on_breaker_transition)
            self._watching = True

    def on_breaker_transition(self, name: str, old: CircuitState, new: CircuitState) -> None:
        """Remember a breaker's state (cheap: this runs where the breaker tripped)."""
        with self._state_lock:
            self._breaker_states[name] = (CircuitState(new), self._now())

    # -- evaluating -------------------------------------------------------------------

    def evaluate(self, now: datetime | None = None) -> list[Firing]:
        """Evaluate every rule at ``now``; record and deliver what fires or resolves."""
        moment = now or self._now()
        fired: list[Firing] = []
        for rule in list(self.rules.values()):
            try:
                fired.extend(self._evaluate_rule(rule, moment))
            except Exception:
                logger.exception("alert rule %r could not be evaluated", rule.name)
        return fired

    def _evaluate_rule(self, rule: Rule, now: datetime) -> list[Firing]:
        findings = self._findings(rule, now)
        if findings is None:
            return []
        results: list[Firing] = []
        current = {finding.scope: finding for finding in findings}
        # One read of the rule's open firings: a finding still inside its cooldown (or
        # already sent) is decided here, without the locked write transaction per finding
        # that claim_alert costs. What might fire is still decided under the lock.
        open_firings = self._active(rule.name)
        open_now = {event.scope: event for event in open_firings}
        for finding in findings:
            decide = self._decide_fire(rule, finding, now)
            last = open_now.get(finding.scope)
            if last is not None and decide(last) is None:
                continue
            event = self.store.claim_alert(rule.name, finding.scope, decide)
            if event is not None:
                results.append(self._deliver(rule, event, finding, "firing"))
        if rule.is_event:
            return results
        for active in open_firings:
            if active.scope in current:
                continue
            if rule.kind == "breaker" and active.scope not in self._closed_breakers():
                continue  # another process's breaker: it resolves its own
            event = self.store.claim_alert(rule.name, active.scope, _decide_resolve(now))
            if event is not None:
                finding = _Finding(
                    scope=active.scope,
                    title=f"{rule.name}: resolved ({active.summary or active.scope})",
                    numbers=dict(event.data),
                    group=(active.data or {}).get("group"),
                )
                results.append(self._deliver(rule, event, finding, "resolved"))
        return results

    def _active(self, rule: str) -> Sequence[AlertEvent]:
        return self.store.open_alerts(rule)

    def _decide_fire(
        self, rule: Rule, finding: _Finding, now: datetime
    ) -> Callable[[AlertEvent | None], AlertClaim | None]:
        window_start = finding.window_start or _floor(now, rule.cooldown)
        data = dict(finding.numbers)
        if finding.group:
            data["group"] = finding.group

        def decide(last: AlertEvent | None) -> AlertClaim | None:
            if last is not None and last.kind == "fired":
                if finding.window_start is not None and last.window_start == window_start:
                    return None  # this very event (a new group, one regression) was sent
                if now < last.at + rule.cooldown:
                    return None
            elif last is not None and last.window_start == window_start:
                return None  # resolved within this cooldown window: no flapping storm
            return AlertClaim(
                kind="fired",
                at=now,
                claim=f"{rule.name}|{finding.scope}|fired|{window_start.isoformat()}",
                window_start=window_start,
                summary=finding.title,
                data=data,
            )

        return decide

    def _closed_breakers(self) -> set[str]:
        with self._state_lock:
            return {name for name, (state, _) in self._breaker_states.items() if state == "closed"}

    # -- the rule kinds ---------------------------------------------------------------

    def _findings(self, rule: Rule, now: datetime) -> list[_Finding] | None:
        since = now - rule.window
        scope = rule.scope.store_filters()
        label = rule.scope.label()
        if rule.kind == "error_rate":
            return self._error_rate(rule, since, now, label)
        if rule.kind == "error_budget":
            return self._error_budget(rule, now, label)
        if rule.kind == "repeat":
            counts = self.store.window_counts(
                since, now, by=rule.by, scope=scope, min_count=rule.count
            )
            return [
                _Finding(
                    scope=f"{label}|{rule.by}={item.key}",
                    title=(
                        f"{item.title or item.key} occurred {item.count} times in "
                        f"{_span(rule.window)} (limit {rule.count})"
                    ),
                    numbers={
                        "count": item.count,
                        "limit": rule.count,
                        "window": _span(rule.window),
                        rule.by: item.key,
                        "last_seen": item.last_seen.isoformat(),
                    },
                    group=item.fingerprint,
                )
                for item in counts
            ]
        if rule.kind == "critical":
            any_of = {
                "severity": rule.severities,
                "error_code": rule.codes,
                "error_type": rule.types,
            }
            counts = self.store.window_counts(since, now, scope=scope, any_of=any_of)
            return [
                _Finding(
                    scope=f"{label}|group={item.key}",
                    title=(
                        f"critical error: {item.title or item.key} "
                        f"({item.error_code}, {item.severity})"
                    ),
                    numbers={
                        "count": item.count,
                        "window": _span(rule.window),
                        "code": item.error_code,
                        "severity": item.severity,
                        "last_seen": item.last_seen.isoformat(),
                    },
                    group=item.fingerprint,
                )
                for item in counts
            ]
        if rule.kind == "new_group":
            groups = self.store.new_groups(since, now, scope=scope)
            return [
                _Finding(
                    scope=f"{label}|group={group.fingerprint}",
                    title=f"new error: {group.title}",
                    numbers={
                        "count": group.count,
                        "code": group.error_code,
                        "first_seen": group.first_seen.isoformat(),
                    },
                    group=group.fingerprint,
                    window_start=group.first_seen,
                )
                for group in groups
            ]
        if rule.kind == "regression":
            groups = self.store.regressed_groups(scope=scope)
            return [
                _Finding(
                    scope=f"{label}|group={group.fingerprint}",
                    title=f"regression: {group.title} is back after being resolved",
                    numbers={
                        "count": group.count,
                        "code": group.error_code,
                        "resolved_at": group.resolved_at.isoformat() if group.resolved_at else "",
                        "regressed_at": (
                            group.regressed_at.isoformat() if group.regressed_at else ""
                        ),
                    },
                    group=group.fingerprint,
                    window_start=group.regressed_at or group.last_seen,
                )
                for group in groups
            ]
        if rule.kind == "breaker":
            with self._state_lock:
                states = dict(self._breaker_states)
            return [
                _Finding(
                    scope=name,
                    title=f"circuit breaker {name} is {state.value}",
                    numbers={"breaker": name, "state": state.value, "since": since_.isoformat()},
                )
                for name, (state, since_) in sorted(states.items())
                if state != "closed" and (not rule.breakers or name in rule.breakers)
            ]
        return []  # pragma: no cover - Rule refuses other kinds

    def _counts(self, rule: Rule, since: datetime, until: datetime) -> RequestCounts | None:
        counts = request_counts(
            self.store,
            since,
            until,
            service=rule.scope.service,
            environment=rule.scope.environment,
            endpoint=rule.scope.endpoint,
        )
        if counts is None and rule.name not in self._warned:
            self._warned.add(rule.name)
            logger.warning(
                "alert rule %r needs request counts, which this store does not keep", rule.name
            )
        return counts

    def _error_rate(
        self, rule: Rule, since: datetime, now: datetime, label: str
    ) -> list[_Finding] | None:
        counts = self._counts(rule, since, now)
        if counts is None:
            return None
        rate = counts.failure_rate * 100
        if counts.total < rule.min_requests or rate <= rule.threshold:
            return []
        return [
            _Finding(
                scope=label,
                title=(
                    f"error rate {_pct(rate)} over {_span(rule.window)} "
                    f"(threshold {_pct(rule.threshold)}) for {_whom(label)}"
                ),
                numbers={
                    "error_rate": _pct(rate),
                    "threshold": _pct(rule.threshold),
                    "requests": counts.total,
                    "server_errors": counts.server_errors,
                    "client_errors": counts.client_errors,
                    "window": _span(rule.window),
                },
            )
        ]

    def _error_budget(self, rule: Rule, now: datetime, label: str) -> list[_Finding] | None:
        allowed = 1 - rule.objective / 100
        period = self._counts(rule, now - rule.period, now)
        if period is None:
            return None
        budget_left = 100.0 if period.total == 0 else (1 - period.failure_rate / allowed) * 100
        burning: list[str] = []
        numbers: dict[str, Any] = {
            "objective": f"{rule.objective:g}%",
            "period": _span(rule.period),
            "budget_left": _pct(budget_left),
        }
        for burn in rule.burn_windows:
            rates = []
            for span in (burn.long, burn.short):
                counts = self._counts(rule, now - span, now)
                total = 0 if counts is None else counts.total
                rate = 0.0 if counts is None or total == 0 else counts.failure_rate / allowed
                if total < rule.min_requests:
                    rate = 0.0
                rates.append(rate)
                numbers[f"burn_rate_{_span(span)}"] = round(rate, 2)
            if all(rate > burn.factor for rate in rates):
                burning.append(f"{burn.factor:g}x over {_span(burn.long)} and {_span(burn.short)}")
        if not burning:
            return []
        numbers["condition"] = "; ".join(burning)
        return [
            _Finding(
                scope=label,
                title=(
                    f"error budget of {rule.objective:g}% for {_whom(label)} is burning "
                    f"({burning[0]}); {_pct(budget_left)} of the budget left"
                ),
                numbers=numbers,
            )
        ]

    # -- delivering -------------------------------------------------------------------

    def _link(self, group: str | None) -> str | None:
        if self.base_url is None or not group:
            return None
        return f"{self.base_url}/groups/{group}"

    def _deliver(self, rule: Rule, event: AlertEvent, finding: _Finding, status: str) -> Firing:
        notification = Notification(
            rule=rule.name,
            kind=rule.kind,
            status="firing" if status == "firing" else "resolved",
            scope=finding.scope,
            title=finding.title,
            at=event.at,
            numbers=finding.numbers,
            group=finding.group,
            link=self._link(finding.group),
            description=rule.description,
        ).scrubbed()
        deliveries = tuple(
            self._send(channel, notification, event.id) for channel in self._channels_for(rule)
        )
        return Firing(event, notification, deliveries)

    def _breaker(self, channel: Channel) -> CircuitBreaker:
        breaker = self._breakers.get(channel.name)
        if breaker is None:
            breaker = CircuitBreaker(
                f"alerts.{channel.name}",
                failure_on=DeliveryFailed,
                **self._breaker_options,  # type: ignore[arg-type]
            )
            self._breakers[channel.name] = breaker
        return breaker

    def _send(
        self, channel: Channel, notification: Notification, firing_id: int | None
    ) -> Delivery:
        breaker = self._breaker(channel)
        tries = 0

        def once() -> None:
            nonlocal tries
            tries += 1
            try:
                breaker.call(channel.send, notification)
            except DeliveryFailed as exc:
                self._record(channel, notification, firing_id, tries, "failed", str(exc))
                raise
            except CircuitOpenError:
                self._record(channel, notification, firing_id, tries, "failed", "circuit open")
                raise
            self._record(channel, notification, firing_id, tries, "sent", "")

        try:
            self._retry.call(once)
        except (DeliveryFailed, CircuitOpenError) as exc:
            logger.warning(
                "alert %s for %s not delivered to %s after %d attempt(s): %s",
                notification.status,
                notification.rule,
                channel.name,
                tries,
                exc,
            )
            detail = "circuit open" if isinstance(exc, CircuitOpenError) else str(exc)
            return Delivery(channel.name, False, tries, detail)
        except Exception as exc:  # a channel's bug must not break the evaluator
            self._record(channel, notification, firing_id, tries, "failed", repr(exc))
            logger.exception("alert channel %s failed", channel.name)
            return Delivery(channel.name, False, tries, repr(exc))
        return Delivery(channel.name, True, tries)

    def _record(
        self,
        channel: Channel,
        notification: Notification,
        firing_id: int | None,
        attempt: int,
        status: str,
        detail: str,
    ) -> None:
        try:
            self.store.add_alert_event(
                rule=notification.rule,
                scope=notification.scope,
                kind="test" if notification.status == "test" else "delivery",
                status=status,
                at=self._now(),
                firing_id=firing_id,
                channel=channel.name,
                attempt=attempt,
                summary=notification.title,
                detail=detail or None,
            )
        except Exception:
            logger.exception("could not record an alert delivery to %s", channel.name)

    def send_test(self, channel: str | None = None) -> list[Delivery]:
        """Send a test notification to one channel (or every channel); recorded too."""
        if channel is not None and channel not in self.channels:
            message = f"no channel {channel!r}; the channels are: {', '.join(self.channels)}"
            raise KeyError(message)
        targets = [self.channels[channel]] if channel else self._channels_for(None)
        notification = Notification(
            rule="test",
            kind="test",
            status="test",
            scope="*",
            title="errorkit test alert: this channel works",
            at=self._now(),
            numbers={"rules": len(self.rules)},
        )
        return [self._send(target, notification, None) for target in targets]

    # -- running ----------------------------------------------------------------------

    def start(self, interval: float = 30.0) -> None:
        """Evaluate every ``interval`` seconds in a daemon thread until :meth:`stop`."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self.watch_breakers()

        def loop() -> None:
            while not self._stop.wait(interval):
                self.evaluate()

        self._thread = threading.Thread(target=loop, name="errorkit-alerts", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        if self._watching:
            _remove_breaker_listener(self.on_breaker_transition)
            self._watching = False


def _decide_resolve(now: datetime) -> Callable[[AlertEvent | None], AlertClaim | None]:
    def decide(last: AlertEvent | None) -> AlertClaim | None:
        if last is None or last.kind != "fired":
            return None
        return AlertClaim(
            kind="resolved",
            at=now,
            claim=f"{last.rule}|{last.scope}|resolved|{last.id}",
            window_start=last.window_start,
            firing_id=last.id,
            summary=last.summary,
            data=dict(last.data or {}),
        )

    return decide


def rules_by_name(rules: Sequence[Rule]) -> Mapping[str, Rule]:
    return {rule.name: rule for rule in rules}
