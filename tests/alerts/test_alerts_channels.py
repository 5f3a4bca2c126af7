"""Real deliveries: a local HTTP receiver and a local SMTP server check what is sent."""

from __future__ import annotations

import hashlib
import hmac
import logging
import shutil
import socket
import ssl
import subprocess
from collections.abc import Iterator
from datetime import timedelta
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from tests.alerts._support import T0, CountingStore, Receiver, occurrences

from errorkit.alerts import (
    SIGNATURE_HEADER,
    AlertManager,
    EmailChannel,
    LogChannel,
    Notification,
    PagerDutyChannel,
    Rule,
    SlackChannel,
    WebhookChannel,
)

REPEAT = Rule("repeats", "repeat", count=3, window=timedelta(minutes=5))


def fire_and_resolve(store: CountingStore, *channels: Any, base_url: str | None = None) -> None:
    alerts = AlertManager(store, [REPEAT], channels, base_url=base_url, now=lambda: T0)
    occurrences(store, 3, T0)
    assert len(alerts.evaluate(T0)) == 1
    assert len(alerts.evaluate(T0 + timedelta(minutes=10))) == 1


def test_webhook_posts_json_signed_with_hmac(store: CountingStore, receiver: Receiver) -> None:
    channel = WebhookChannel("hook", receiver.url + "/hook", secret="s3cret")
    fire_and_resolve(store, channel, base_url="https://errors.example.com/")
    firing, resolved = receiver.requests
    expected = "sha256=" + hmac.new(b"s3cret", firing.body, hashlib.sha256).hexdigest()
    assert firing.headers[SIGNATURE_HEADER] == expected
    body = firing.json()
    assert body["status"] == "firing"
    assert body["rule"] == "repeats"
    assert body["numbers"]["count"] == 3
    assert body["group"] == "fp-boom"
    assert body["link"] == "https://errors.example.com/groups/fp-boom"
    assert resolved.json()["status"] == "resolved"
    assert resolved.json()["dedup_key"] == body["dedup_key"]


def test_slack_gets_the_incoming_webhook_shape(store: CountingStore, receiver: Receiver) -> None:
    fire_and_resolve(store, SlackChannel("slack", receiver.url + "/slack"), base_url="https://e.x")
    body = receiver.requests[0].json()
    assert body["text"].startswith("[firing] RuntimeError: boom occurred 3 times")
    assert [block["type"] for block in body["blocks"]] == ["section", "section", "context"]
    assert {"type": "mrkdwn", "text": "*count*\n3"} in body["blocks"][1]["fields"]
    assert "<https://e.x/groups/fp-boom|open the group>" in body["blocks"][2]["elements"][0]["text"]


def test_pagerduty_triggers_then_resolves_with_one_dedup_key(
    store: CountingStore, receiver: Receiver
) -> None:
    channel = PagerDutyChannel("pd", routing_key="R0UT1NG", url=receiver.url + "/v2/enqueue")
    fire_and_resolve(store, channel)
    trigger, resolve = (request.json() for request in receiver.requests)
    assert receiver.requests[0].path == "/v2/enqueue"
    assert trigger["event_action"] == "trigger"
    assert trigger["routing_key"] == "R0UT1NG"
    assert trigger["payload"]["severity"] == "error"
    assert trigger["payload"]["source"] == "errorkit"
    assert trigger["payload"]["custom_details"]["count"] == 3
    assert resolve == {
        "routing_key": "R0UT1NG",
        "event_action": "resolve",
        "dedup_key": trigger["dedup_key"],
    }


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[int, _Inbox]]:
    controller_module = pytest.importorskip("aiosmtpd.controller")
    inbox = _Inbox()
    with socket.socket() as probe:  # a free port (aiosmtpd checks its port by connecting)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = controller_module.Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port, inbox
    finally:
        controller.stop()


@pytest.mark.parametrize("html", [False, True], ids=["plain", "html"])
def test_email_goes_through_a_real_smtp_server(
    store: CountingStore, smtp: tuple[int, _Inbox], html: bool
) -> None:
    port, inbox = smtp
    channel = EmailChannel(
        "mail",
        host="127.0.0.1",
        port=port,
        sender="errorkit@example.com",
        to=["ops@example.com"],
        html=html,
    )
    fire_and_resolve(store, channel, base_url="https://errors.example.com")
    firing, resolved = inbox.messages
    assert firing["Subject"].startswith("[firing] RuntimeError: boom occurred 3 times")
    assert firing["To"] == "ops@example.com"
    assert resolved["Subject"].startswith("[resolved]")
    parts = {part.get_content_type(): part for part in firing.walk()}
    plain = parts["text/plain"].get_payload(decode=True).decode()
    assert "count: 3" in plain
    assert "https://errors.example.com/groups/fp-boom" in plain
    assert ("text/html" in parts) is html
    if html:
        assert (
            "<th align='left'>count</th><td>3</td>"
            in parts["text/html"].get_payload(decode=True).decode()
        )


def test_log_channel_writes_the_alert(
    store: CountingStore, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="errorkit.alerts"):
        fire_and_resolve(store, LogChannel("log"))
    messages = [r.getMessage() for r in caplog.records if r.name == "errorkit.alerts"]
    assert messages[0].startswith("alert firing: RuntimeError: boom occurred 3 times")
    assert messages[1].startswith("alert resolved:")


def test_secrets_are_scrubbed_from_what_is_sent(store: CountingStore, receiver: Receiver) -> None:
    alerts = AlertManager(store, [REPEAT], [WebhookChannel("hook", receiver.url)], now=lambda: T0)
    occurrences(store, 3, T0, title="login failed password=hunter2 for db")
    alerts.evaluate(T0)
    body = receiver.requests[0].body.decode()
    assert "hunter2" not in body
    assert "login failed" in body


def test_a_notification_scrubs_its_numbers_too() -> None:
    note = Notification(
        "r", "repeat", "firing", "*", "t", T0, numbers={"url": "postgres://u:pw1234@db/x"}
    )
    assert "pw1234" not in str(note.scrubbed().numbers)


def test_a_channel_that_is_down_is_retried_and_the_history_shows_it(
    store: CountingStore, receiver: Receiver
) -> None:
    receiver.status = 503
    alerts = AlertManager(
        store, [REPEAT], [WebhookChannel("hook", receiver.url)], attempts=3, now=lambda: T0
    )
    occurrences(store, 3, T0)
    fired = alerts.evaluate(T0)  # does not raise
    assert len(receiver.requests) == 3
    assert fired[0].deliveries[0].ok is False
    assert fired[0].deliveries[0].attempts == 3
    attempts = store.alert_events(kinds=("delivery",))
    assert [(e.attempt, e.status) for e in reversed(attempts)] == [
        (1, "failed"),
        (2, "failed"),
        (3, "failed"),
    ]
    assert attempts[0].detail == "127.0.0.1 answered HTTP 503"
    assert all(e.firing_id == fired[0].event.id for e in attempts)


def test_a_channel_unreachable_opens_its_breaker_and_stops_calling(store: CountingStore) -> None:
    dead = WebhookChannel("dead", "http://127.0.0.1:9/hook", timeout=0.5)
    alerts = AlertManager(
        store,
        [Rule("critical", "critical", severities=("error",))],
        [dead],
        attempts=2,
        breaker_failures=2,
        now=lambda: T0,
    )
    occurrences(store, 1, T0, fingerprint="fp-1")
    occurrences(store, 1, T0, fingerprint="fp-2")
    fired = alerts.evaluate(T0)
    details = [d.detail for f in fired for d in f.deliveries]
    assert details[0].startswith("could not reach 127.0.0.1")
    assert details[1] == "circuit open"


def test_email_upgrades_with_starttls(store: CountingStore, tmp_path: Path) -> None:
    """The server refuses mail before STARTTLS; the channel upgrades and gets through."""
    controller_module = pytest.importorskip("aiosmtpd.controller")
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make the test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    inbox = _Inbox()
    controller = controller_module.Controller(
        inbox, hostname="127.0.0.1", port=port, tls_context=server_tls, require_starttls=True
    )
    controller.start()
    try:
        channel = EmailChannel(
            "mail", host="127.0.0.1", port=port, sender="errorkit@example.com",
            to="ops@example.com", starttls=True,
            ssl_context=ssl.create_default_context(cafile=str(cert)),
        )  # fmt: skip
        fire_and_resolve(store, channel)
    finally:
        controller.stop()
    assert [m["Subject"].split("]")[0] for m in inbox.messages] == ["[firing", "[resolved"]
