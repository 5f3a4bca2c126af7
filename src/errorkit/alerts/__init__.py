"""Alerts: rules on error rate, repeats, critical, new and regressed errors, circuit
breakers and error budgets, sent to a webhook, Slack, email, PagerDuty or the log.

Build an :class:`AlertManager` from rules and channels (or :func:`load_config` a TOML
file), then call :meth:`AlertManager.evaluate` from a scheduler or
:meth:`AlertManager.start` its thread. See docs/alerts.md.
"""

from __future__ import annotations

from errorkit.alerts.channels import (
    SIGNATURE_HEADER,
    Channel,
    DeliveryFailed,
    EmailChannel,
    LogChannel,
    Notification,
    PagerDutyChannel,
    SlackChannel,
    WebhookChannel,
    channel_from_dict,
    sign,
)
from errorkit.alerts.config import (
    AlertConfig,
    dump_toml,
    load_config,
    parse_config,
    update_toml,
    write_config,
)
from errorkit.alerts.manager import AlertManager, Delivery, Firing, RequestCounts, request_counts
from errorkit.alerts.rules import (
    RULE_KINDS,
    AlertConfigError,
    BurnWindow,
    Rule,
    Scope,
    parse_duration,
    rule_from_dict,
    rule_to_dict,
)

__all__ = [
    "RULE_KINDS",
    "SIGNATURE_HEADER",
    "AlertConfig",
    "AlertConfigError",
    "AlertManager",
    "BurnWindow",
    "Channel",
    "Delivery",
    "DeliveryFailed",
    "EmailChannel",
    "Firing",
    "LogChannel",
    "Notification",
    "PagerDutyChannel",
    "RequestCounts",
    "Rule",
    "Scope",
    "SlackChannel",
    "WebhookChannel",
    "channel_from_dict",
    "dump_toml",
    "load_config",
    "parse_config",
    "parse_duration",
    "request_counts",
    "rule_from_dict",
    "rule_to_dict",
    "sign",
    "update_toml",
    "write_config",
]
