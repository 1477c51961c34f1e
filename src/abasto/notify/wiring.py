"""Wiring from settings: the default router for the embedded deployment."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import tzinfo

from abasto.notify.file import FileSink
from abasto.notify.messages import DEFAULT_TZ, AlertDirectory, MessageRenderer
from abasto.notify.router import AlertRouter
from abasto.notify.topics import Topics
from abasto.notify.webhook import WebhookSink
from abasto.rules.engine import RuleEngine
from abasto.settings import Settings

NOTIFICATIONS_FILE = "notifications.jsonl"


def build_router(
    settings: Settings,
    *,
    tz: tzinfo | str = DEFAULT_TZ,
    directory: AlertDirectory | None = None,
    engine: RuleEngine | None = None,
    webhook_topics: Sequence[str] | None = None,
) -> AlertRouter:
    """Rules (default: the shipped ones) → topics; subscribes a file sink
    (``<alerts_dir>/notifications.jsonl``) to every topic and each configured webhook to
    ``webhook_topics`` (default: every topic). Close with ``router.notifier.close()``."""
    engine = engine or RuleEngine.default()
    topics = Topics(MessageRenderer(locale=settings.notify.locale, tz=tz, directory=directory))
    file_sink = FileSink(settings.alerts_dir / NOTIFICATIONS_FILE)
    for topic in engine.topics:
        topics.subscribe(topic, file_sink)
    for url in settings.notify.webhook_urls:
        sink = WebhookSink(url, secret=settings.notify.webhook_secret)
        for topic in webhook_topics if webhook_topics is not None else engine.topics:
            topics.subscribe(topic, sink)
    return AlertRouter(engine, topics)
