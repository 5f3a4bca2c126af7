"""A :class:`logging.Handler` that captures error records.

::

    import logging
    from errorkit.capturing import ErrorkitHandler

    logging.getLogger().addHandler(ErrorkitHandler())   # ERROR and above
    log.exception("charge failed for order %s", order_id)  # captured with its stack

A record with an exception is captured as that exception (``logger.exception(...)``); its
formatted message goes along, scrubbed. A record without one is captured as a message that
groups by the record's template (``"charge failed for order %s"``), not by its values.
"""

from __future__ import annotations

import logging
from typing import Any

from errorkit._guard import guard

from . import api
from .event import normalize_severity

__all__ = ["ErrorkitHandler"]

# errorkit's own records are never captured: a failing store must not feed itself, and the
# HTTP layer's line about an answered 5xx names an error that is already captured.
_OWN_LOGGERS = ("errorkit.capturing", "errorkit.store", "errorkit.http")


class ErrorkitHandler(logging.Handler):
    """Captures records at ``level`` and above (default ERROR) into errorkit.

    ``capture_messages=False`` captures only records that carry an exception."""

    def __init__(self, level: int | str = logging.ERROR, *, capture_messages: bool = True) -> None:
        super().__init__(level)
        self.capture_messages = capture_messages

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith(_OWN_LOGGERS):
            return
        with guard("logging_handler"):
            self._emit(record)

    def _emit(self, record: logging.LogRecord) -> None:
        exc = record.exc_info[1] if record.exc_info else None
        try:
            text = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string is the app's bug, not ours
            text = str(record.msg)
        fields: dict[str, Any] = {
            "logger": record.name,
            "mechanism": "logging",
            "severity": normalize_severity(record.levelno),
        }
        if exc is not None:
            fields["extra"] = {"log_message": text, "log_location": _location(record)}
            api.capture(exc, **fields)
        elif self.capture_messages:
            fields["extra"] = {"log_location": _location(record)}
            template = record.msg if isinstance(record.msg, str) else None
            api.capture_message(
                text, level=fields.pop("severity"), template=template or text, **fields
            )


def _location(record: logging.LogRecord) -> str:
    return f"{record.pathname}:{record.lineno} in {record.funcName}"
