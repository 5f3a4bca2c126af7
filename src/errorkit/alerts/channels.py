"""Where notifications go: a signed webhook, Slack, email, PagerDuty, the log.

Each channel's :meth:`Channel.send` makes one attempt and raises :class:`DeliveryFailed`
when it does not get through; :class:`errorkit.alerts.AlertManager` wraps it in errorkit's
retry and a circuit breaker per channel, and records every attempt.
"""

from __future__ import annotations

import abc
import hashlib
import hmac
import json
import logging
import re
import smtplib
import ssl
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from email.message import EmailMessage
from html import escape
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

from errorkit.alerts.rules import AlertConfigError
from errorkit.scrubbing import scrub

__all__ = [
    "SIGNATURE_HEADER",
    "Channel",
    "DeliveryFailed",
    "EmailChannel",
    "LogChannel",
    "Notification",
    "PagerDutyChannel",
    "SlackChannel",
    "WebhookChannel",
    "channel_from_dict",
    "sign",
]

#: The header carrying ``sha256=<hex HMAC-SHA256 of the body>`` on webhook posts.
SIGNATURE_HEADER = "X-Errorkit-Signature"
PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"

_EMAIL = re.compile(r"^[^@\s<>,;]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$")
_CHANNEL_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,100}$")

Status = Literal["firing", "resolved", "test"]


class DeliveryFailed(Exception):
    """One attempt to send a notification did not get through."""


@dataclass(frozen=True, slots=True)
class Notification:
    """What an alert says: the rule, its scope, a one-line title and the numbers."""

    rule: str
    kind: str
    status: Status
    scope: str
    title: str
    at: datetime
    numbers: Mapping[str, Any] = field(default_factory=dict)
    group: str | None = None
    link: str | None = None
    description: str = ""

    @property
    def dedup_key(self) -> str:
        """The same for a firing and its resolution: ``rule/scope``."""
        return f"{self.rule}/{self.scope}"

    def scrubbed(self) -> Notification:
        """A copy with secrets scrubbed from every text and number it carries."""
        return replace(
            self,
            title=scrub(self.title, single_line=True),
            scope=scrub(self.scope, single_line=True),
            description=scrub(self.description),
            numbers=scrub(dict(self.numbers)),
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "kind": self.kind,
            "status": self.status,
            "scope": self.scope,
            "title": self.title,
            "at": self.at.isoformat(),
            "numbers": dict(self.numbers),
            "group": self.group,
            "link": self.link,
            "description": self.description,
            "dedup_key": self.dedup_key,
        }

    def text(self) -> str:
        """Plain text: the title, then one line per number, then the link."""
        label = {"firing": "FIRING", "resolved": "RESOLVED", "test": "TEST"}[self.status]
        lines = [f"[{label}] {self.title}", f"rule: {self.rule} ({self.kind}), scope: {self.scope}"]
        lines += [f"{key}: {value}" for key, value in self.numbers.items()]
        if self.description:
            lines.append(self.description)
        if self.link:
            lines.append(self.link)
        return "\n".join(lines)


def sign(secret: str, body: bytes) -> str:
    """The signature header's value for ``body``: ``sha256=<hex digest>``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def check_url(value: object, where: str) -> str:
    if not isinstance(value, str):
        message = f"{where}: expected a URL, got {value!r}"
        raise AlertConfigError(message)
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        message = f"{where}: {value!r} is not an http(s) URL such as https://hooks.example.com/x"
        raise AlertConfigError(message)
    return value


def check_address(value: object, where: str) -> str:
    if not isinstance(value, str) or not _EMAIL.match(value):
        message = f"{where}: {value!r} is not an email address such as ops@example.com"
        raise AlertConfigError(message)
    return value


class Channel(abc.ABC):
    """A destination for notifications; subclasses implement :meth:`send`."""

    type: ClassVar[str] = ""

    def __init__(self, name: str) -> None:
        if not isinstance(name, str) or not _CHANNEL_NAME.match(name):
            message = f"channel name {name!r}: use 1-100 letters, digits or _ . : -"
            raise AlertConfigError(message)
        self.name = name

    @abc.abstractmethod
    def send(self, notification: Notification) -> None:
        """Deliver ``notification`` once; raise :class:`DeliveryFailed` when it did not arrive
        (the manager retries it through errorkit's retry and the channel's breaker)."""

    def describe(self) -> str:
        return self.type

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


def _post_json(url: str, payload: Any, headers: Mapping[str, str], timeout: float) -> bytes:
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    return _post(url, body, {"Content-Type": "application/json", **headers}, timeout)


def _post(url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> bytes:
    request = urllib.request.Request(url, data=body, headers=dict(headers), method="POST")  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return bytes(response.read())
    except urllib.error.HTTPError as exc:
        message = f"{urlsplit(url).hostname} answered HTTP {exc.code}"
        raise DeliveryFailed(message) from None
    except (OSError, ValueError) as exc:
        message = f"could not reach {urlsplit(url).hostname}: {type(exc).__name__}: {exc}"
        raise DeliveryFailed(message) from None


class WebhookChannel(Channel):
    """POST the notification as JSON; with a ``secret``, sign the body (HMAC-SHA256)."""

    type = "webhook"

    def __init__(
        self,
        name: str,
        url: str,
        *,
        secret: str | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = 5.0,
    ) -> None:
        super().__init__(name)
        self.url = check_url(url, f"channel {name!r}: field 'url'")
        self.secret = secret
        self.headers = dict(headers or {})
        self.timeout = timeout

    def send(self, notification: Notification) -> None:
        body = json.dumps(notification.as_dict(), ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json", **self.headers}
        if self.secret:
            headers[SIGNATURE_HEADER] = sign(self.secret, body)
        _post(self.url, body, headers, self.timeout)

    def describe(self) -> str:
        return f"webhook {urlsplit(self.url).hostname}" + (" (signed)" if self.secret else "")


class SlackChannel(Channel):
    """A Slack incoming webhook: ``text`` plus blocks with the numbers and the link."""

    type = "slack"

    def __init__(self, name: str, url: str, *, timeout: float = 5.0) -> None:
        super().__init__(name)
        self.url = check_url(url, f"channel {name!r}: field 'url'")
        self.timeout = timeout

    def payload(self, notification: Notification) -> dict[str, Any]:
        icon = {"firing": ":rotating_light:", "resolved": ":white_check_mark:", "test": ":wrench:"}
        headline = (
            f"{icon[notification.status]} *{notification.status.upper()}* {notification.title}"
        )
        blocks: list[dict[str, Any]] = [
            {"type": "section", "text": {"type": "mrkdwn", "text": headline}}
        ]
        facts = [
            {"type": "mrkdwn", "text": f"*{key}*\n{value}"}
            for key, value in list(notification.numbers.items())[:10]
        ]
        if facts:
            blocks.append({"type": "section", "fields": facts})
        context = f"rule `{notification.rule}` · scope `{notification.scope}`"
        if notification.link:
            context += f" · <{notification.link}|open the group>"
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": context}]})
        return {"text": f"[{notification.status}] {notification.title}", "blocks": blocks}

    def send(self, notification: Notification) -> None:
        _post_json(self.url, self.payload(notification), {}, self.timeout)

    def describe(self) -> str:
        return f"slack {urlsplit(self.url).hostname}"


class EmailChannel(Channel):
    """Email over SMTP, optionally upgraded with STARTTLS; a plain or an HTML body."""

    type = "email"

    def __init__(
        self,
        name: str,
        *,
        host: str,
        sender: str,
        to: Sequence[str],
        port: int = 25,
        starttls: bool = False,
        username: str | None = None,
        password: str | None = None,
        html: bool = False,
        timeout: float = 10.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__(name)
        where = f"channel {name!r}"
        if not isinstance(host, str) or not host:
            message = f"{where}: field 'host' must name the SMTP server"
            raise AlertConfigError(message)
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            message = f"{where}: field 'port' must be a port number, got {port!r}"
            raise AlertConfigError(message)
        self.host = host
        self.port = port
        self.sender = check_address(sender, f"{where}: field 'sender'")
        recipients = [to] if isinstance(to, str) else list(to)
        if not recipients:
            message = f"{where}: field 'to' needs at least one address"
            raise AlertConfigError(message)
        self.to = [check_address(item, f"{where}: field 'to'") for item in recipients]
        self.starttls = starttls
        self.username = username
        self.password = password
        self.html = html
        self.timeout = timeout
        self.ssl_context = ssl_context

    def message(self, notification: Notification) -> EmailMessage:
        message = EmailMessage()
        message["Subject"] = f"[{notification.status}] {notification.title}"
        message["From"] = self.sender
        message["To"] = ", ".join(self.to)
        message.set_content(notification.text())
        if self.html:
            rows = "".join(
                f"<tr><th align='left'>{escape(str(k))}</th><td>{escape(str(v))}</td></tr>"
                for k, v in notification.numbers.items()
            )
            link = (
                f"<p><a href='{escape(notification.link)}'>Open the group</a></p>"
                if notification.link
                else ""
            )
            message.add_alternative(
                f"<h2>{escape(notification.status.upper())}: {escape(notification.title)}</h2>"
                f"<p>rule <code>{escape(notification.rule)}</code>, scope "
                f"<code>{escape(notification.scope)}</code></p><table>{rows}</table>{link}",
                subtype="html",
            )
        return message

    def send(self, notification: Notification) -> None:
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
                if self.starttls:
                    smtp.starttls(context=self.ssl_context or ssl.create_default_context())
                if self.username:
                    smtp.login(self.username, self.password or "")
                smtp.send_message(self.message(notification))
        except (OSError, smtplib.SMTPException) as exc:
            message = f"could not send mail through {self.host}:{self.port}: {exc}"
            raise DeliveryFailed(message) from None

    def describe(self) -> str:
        return f"email via {self.host}:{self.port} to {', '.join(self.to)}"


class PagerDutyChannel(Channel):
    """PagerDuty Events API v2: trigger on firing, resolve with the same dedup key."""

    type = "pagerduty"

    def __init__(
        self,
        name: str,
        *,
        routing_key: str,
        url: str = PAGERDUTY_EVENTS_URL,
        severity: str = "error",
        source: str = "errorkit",
        timeout: float = 5.0,
    ) -> None:
        super().__init__(name)
        if not isinstance(routing_key, str) or not routing_key:
            message = f"channel {name!r}: field 'routing_key' is required"
            raise AlertConfigError(message)
        if severity not in ("critical", "error", "warning", "info"):
            message = f"channel {name!r}: field 'severity' must be critical/error/warning/info"
            raise AlertConfigError(message)
        self.routing_key = routing_key
        self.url = check_url(url, f"channel {name!r}: field 'url'")
        self.severity = severity
        self.source = source
        self.timeout = timeout

    def payload(self, notification: Notification) -> dict[str, Any]:
        dedup = notification.dedup_key
        if notification.status == "resolved":
            return {"routing_key": self.routing_key, "event_action": "resolve", "dedup_key": dedup}
        event: dict[str, Any] = {
            "routing_key": self.routing_key,
            "event_action": "trigger",
            "dedup_key": dedup,
            "payload": {
                "summary": notification.title[:1024],
                "source": self.source,
                "severity": self.severity,
                "timestamp": notification.at.isoformat(),
                "component": notification.scope,
                "class": notification.kind,
                "custom_details": dict(notification.numbers),
            },
        }
        if notification.link:
            event["links"] = [{"href": notification.link, "text": "errorkit group"}]
        return event

    def send(self, notification: Notification) -> None:
        _post_json(self.url, self.payload(notification), {}, self.timeout)

    def describe(self) -> str:
        return f"pagerduty {urlsplit(self.url).hostname}"


class LogChannel(Channel):
    """Write the notification to a logger (``errorkit.alerts`` by default)."""

    type = "log"

    def __init__(
        self, name: str = "log", *, logger: str = "errorkit.alerts", level: str = "WARNING"
    ) -> None:
        super().__init__(name)
        number = logging.getLevelName(level.upper()) if isinstance(level, str) else None
        if not isinstance(number, int):
            message = f"channel {name!r}: field 'level' {level!r} is not a logging level"
            raise AlertConfigError(message)
        self.logger = logging.getLogger(logger)
        self.level = number

    def send(self, notification: Notification) -> None:
        self.logger.log(
            self.level,
            "alert %s: %s",
            notification.status,
            notification.title,
            extra={"alert": notification.as_dict()},
        )


_CHANNEL_FIELDS: dict[str, tuple[type[Channel], frozenset[str]]] = {
    "webhook": (WebhookChannel, frozenset({"url", "secret", "headers", "timeout"})),
    "slack": (SlackChannel, frozenset({"url", "timeout"})),
    "email": (
        EmailChannel,
        frozenset(
            {"host", "port", "sender", "to", "starttls", "username", "password", "html", "timeout"}
        ),
    ),
    "pagerduty": (
        PagerDutyChannel,
        frozenset({"routing_key", "url", "severity", "source", "timeout"}),
    ),
    "log": (LogChannel, frozenset({"logger", "level"})),
}


def channel_from_dict(data: Mapping[str, Any]) -> Channel:
    """A channel from a mapping such as a TOML ``[[channels]]`` table."""
    name = data.get("name")
    if not isinstance(name, str):
        message = f"channel: field 'name' is required, got {name!r}"
        raise AlertConfigError(message)
    kind = data.get("type")
    if kind not in _CHANNEL_FIELDS:
        message = (
            f"channel {name!r}: field 'type' must be one of {', '.join(_CHANNEL_FIELDS)}, "
            f"got {kind!r}"
        )
        raise AlertConfigError(message)
    cls, accepted = _CHANNEL_FIELDS[kind]
    unknown = sorted(set(data) - accepted - {"name", "type"})
    if unknown:
        message = (
            f"channel {name!r}: unknown field {unknown[0]!r} for a {kind} channel; "
            f"accepted: {', '.join(sorted(accepted))}"
        )
        raise AlertConfigError(message)
    options = {key: value for key, value in data.items() if key not in ("name", "type")}
    required = {"webhook": ("url",), "slack": ("url",), "email": ("host", "sender", "to")}
    for key in required.get(kind, ()):
        if key not in options:
            message = f"channel {name!r}: field {key!r} is required for a {kind} channel"
            raise AlertConfigError(message)
    if kind == "pagerduty" and "routing_key" not in options:
        message = f"channel {name!r}: field 'routing_key' is required for a pagerduty channel"
        raise AlertConfigError(message)
    if kind in ("webhook", "slack"):
        url = options.pop("url")
        return cls(name, url, **options)  # type: ignore[call-arg]
    return cls(name, **options)
