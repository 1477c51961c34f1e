"""Ports of the notification layer: what a sink receives and returns, and what a notifier does.

- a :class:`Sink` delivers one :class:`Notification` (a rendered alert on a topic) somewhere:
  a file, a webhook, a chat... It returns a :class:`SinkAck` or raises
  :class:`DeliveryFailedError` (transient: retrying later may work) or
  :class:`DeliveryRejectedError` (terminal: the receiver refused it).
- a :class:`Notifier` publishes an alert to a topic and reports one :class:`DeliveryResult`
  per subscription (the embedded :class:`~abasto.notify.topics.Topics`; SNS at scale).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, Protocol, runtime_checkable

import msgspec

from abasto.contracts.alerts import Alert
from abasto.errors import TerminalError, TransientError
from abasto.settings import Locale

DeliveryStatus = Literal["delivered", "failed", "rejected"]


class Notification(msgspec.Struct, frozen=True, kw_only=True):
    """One alert rendered for one topic: the payload every sink writes or sends."""

    #: stable per (alert, topic): receivers may deduplicate on it
    message_id: str
    topic: str
    published_at: datetime
    locale: Locale
    subject: str
    text: str
    alert: Alert

    def to_builtins(self) -> dict[str, Any]:
        data: dict[str, Any] = msgspec.to_builtins(self)
        return data

    def to_json(self) -> bytes:
        return msgspec.json.encode(self)


def message_id(alert_id: str, topic: str) -> str:
    return f"{alert_id}/{topic}"


class SinkAck(msgspec.Struct, frozen=True):
    """A successful delivery: how many attempts it took and what the receiver said."""

    attempts: int = 1
    detail: str = ""


class DeliveryFailedError(TransientError):
    """The sink could not deliver now (after its own retries, if any); a later retry may work."""

    def __init__(self, message: str, *, attempts: int = 1) -> None:
        super().__init__(message)
        self.attempts = attempts


class DeliveryRejectedError(TerminalError):
    """The receiver refused the notification; sending it again cannot help."""

    def __init__(self, message: str, *, attempts: int = 1) -> None:
        super().__init__(message)
        self.attempts = attempts


class DeliveryResult(msgspec.Struct, frozen=True, kw_only=True):
    """The outcome of delivering one notification to one subscription."""

    topic: str
    sink: str
    alert_id: str
    message_id: str
    status: DeliveryStatus
    attempts: int
    duration_s: float
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "delivered"

    @property
    def terminal(self) -> bool:
        """Failed in a way no retry can fix."""
        return self.status == "rejected"


@runtime_checkable
class Sink(Protocol):
    """Delivers notifications to one destination. Must be safe to call from several threads."""

    @property
    def name(self) -> str:
        """Short, secret-free description (``file:/path``, ``webhook:https://host/path``)."""
        ...

    def deliver(self, notification: Notification) -> SinkAck: ...


class Notifier(Protocol):
    """Publishes alerts to named topics (SNS-like)."""

    def publish(self, topic: str, alert: Alert) -> list[DeliveryResult]: ...

    def close(self) -> None:
        """Release delivery threads and sinks."""
        ...
