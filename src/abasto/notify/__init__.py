"""SNS-like notifications of stockout alerts.

Ports: :class:`Sink` (one destination) and :class:`Notifier` (topics). Embedded backends:
:class:`Topics` (registry + fan-out), :class:`FileSink` (JSON lines), :class:`WebhookSink`
(signed, retried HTTP POST). :class:`AlertRouter` joins the rule engine and a notifier;
:mod:`abasto.notify.messages` writes the Spanish/English texts.
"""

from abasto.notify.file import FileSink
from abasto.notify.messages import (
    AlertDirectory,
    Message,
    MessageRenderer,
    StaticDirectory,
    render_alert,
)
from abasto.notify.ports import (
    DeliveryFailedError,
    DeliveryRejectedError,
    DeliveryResult,
    Notification,
    Notifier,
    Sink,
    SinkAck,
)
from abasto.notify.retry import RetryPolicy
from abasto.notify.router import AlertRouter
from abasto.notify.topics import DeliveryStats, StatsRow, Subscription, Topics
from abasto.notify.webhook import WebhookSink, sign, verify_signature
from abasto.notify.wiring import build_router

__all__ = [
    "AlertDirectory",
    "AlertRouter",
    "DeliveryFailedError",
    "DeliveryRejectedError",
    "DeliveryResult",
    "DeliveryStats",
    "FileSink",
    "Message",
    "MessageRenderer",
    "Notification",
    "Notifier",
    "RetryPolicy",
    "Sink",
    "SinkAck",
    "StaticDirectory",
    "StatsRow",
    "Subscription",
    "Topics",
    "WebhookSink",
    "build_router",
    "render_alert",
    "sign",
    "verify_signature",
]
