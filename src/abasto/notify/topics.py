"""Embedded SNS-like topics: subscriptions, fan-out publishing and delivery statistics.

``publish`` renders the alert once per locale, then delivers to every subscription of the topic
in parallel threads: a slow or failing sink never blocks or prevents the others, and every
outcome (delivered, failed after retries, rejected) comes back as a :class:`DeliveryResult`
and is counted per topic and sink.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self

import msgspec

from abasto.contracts.alerts import Alert
from abasto.errors import InvalidInputError, NotFoundError, is_transient
from abasto.notify.messages import Message, MessageRenderer
from abasto.notify.ports import DeliveryResult, DeliveryStatus, Notification, Sink, message_id
from abasto.rules.pattern import EventPattern, compile_pattern
from abasto.settings import Locale

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Subscription:
    id: str
    topic: str
    sink: Sink
    #: only alerts whose event matches (EventBridge pattern syntax, like SNS filter policies)
    filter: EventPattern | None = None
    #: texts for this subscriber; None = the renderer's default
    locale: Locale | None = None


class StatsRow(msgspec.Struct, frozen=True, kw_only=True):
    topic: str
    sink: str
    delivered: int = 0
    failed: int = 0
    rejected: int = 0
    filtered: int = 0
    attempts: int = 0


@dataclass
class _Counts:
    delivered: int = 0
    failed: int = 0
    rejected: int = 0
    filtered: int = 0
    attempts: int = 0


@dataclass
class DeliveryStats:
    """A snapshot of what has been published and delivered (for the demo report)."""

    published: dict[str, int] = field(default_factory=dict)
    rows: list[StatsRow] = field(default_factory=list)
    recent: list[DeliveryResult] = field(default_factory=list)

    def totals(self) -> dict[DeliveryStatus, int]:
        return {
            "delivered": sum(r.delivered for r in self.rows),
            "failed": sum(r.failed for r in self.rows),
            "rejected": sum(r.rejected for r in self.rows),
        }


class Topics:
    """Topic registry implementing :class:`~abasto.notify.ports.Notifier`.

    Topics exist implicitly; publishing to a topic without subscriptions delivers nothing (it is
    still counted as published).
    """

    def __init__(
        self,
        renderer: MessageRenderer | None = None,
        *,
        max_workers: int = 8,
        keep_recent: int = 1000,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._renderer = renderer or MessageRenderer()
        self._max_workers = max_workers
        self._now = now
        self._lock = threading.Lock()
        self._subs: dict[str, list[Subscription]] = {}
        self._next_id = 0
        self._published: dict[str, int] = {}
        self._counts: dict[tuple[str, str], _Counts] = {}
        self._recent: deque[DeliveryResult] = deque(maxlen=keep_recent)
        self._pool: ThreadPoolExecutor | None = None

    # --- subscriptions -----------------------------------------------------------------------
    def subscribe(
        self,
        topic: str,
        sink: Sink,
        *,
        filter_pattern: Mapping[str, Any] | str | None = None,
        locale: Locale | None = None,
    ) -> Subscription:
        """Subscribe ``sink`` to ``topic``; subscribing the same sink twice returns the first one."""
        if not topic:
            raise InvalidInputError("topic name must not be empty")
        compiled = compile_pattern(filter_pattern) if filter_pattern is not None else None
        with self._lock:
            for existing in self._subs.get(topic, []):
                if existing.sink is sink:
                    return existing
            self._next_id += 1
            sub = Subscription(f"{topic}:{self._next_id}", topic, sink, compiled, locale)
            self._subs.setdefault(topic, []).append(sub)
            self._counts.setdefault((topic, sink.name), _Counts())
        return sub

    def unsubscribe(self, subscription: Subscription) -> None:
        with self._lock:
            subs = self._subs.get(subscription.topic, [])
            if subscription not in subs:
                raise NotFoundError(f"no subscription {subscription.id}")
            subs.remove(subscription)

    def subscriptions(self, topic: str | None = None) -> list[Subscription]:
        with self._lock:
            if topic is not None:
                return list(self._subs.get(topic, []))
            return [s for subs in self._subs.values() for s in subs]

    # --- publishing --------------------------------------------------------------------------
    def publish(self, topic: str, alert: Alert) -> list[DeliveryResult]:
        """Deliver ``alert`` to every subscription of ``topic``; one result per delivery attempted."""
        with self._lock:
            subs = list(self._subs.get(topic, []))
            self._published[topic] = self._published.get(topic, 0) + 1
        if not subs:
            log.debug("topic %s has no subscriptions; alert %s not delivered", topic, alert.alert_id)
            return []
        published_at = self._now()
        messages: dict[Locale, Message] = {}
        event = alert.to_event()
        jobs: list[tuple[Subscription, Notification]] = []
        for sub in subs:
            if sub.filter is not None and not sub.filter.matches(event):
                self._count_filtered(sub)
                continue
            locale = sub.locale or self._renderer.locale
            if locale not in messages:
                messages[locale] = self._renderer.render(alert, locale)
            message = messages[locale]
            jobs.append(
                (
                    sub,
                    Notification(
                        message_id=message_id(alert.alert_id, topic),
                        topic=topic,
                        published_at=published_at,
                        locale=locale,
                        subject=message.subject,
                        text=message.text,
                        alert=alert,
                    ),
                )
            )
        if len(jobs) <= 1:
            results = [self._deliver(sub, n) for sub, n in jobs]
        else:
            pool = self._executor()
            futures = [pool.submit(self._deliver, sub, n) for sub, n in jobs]
            results = [f.result() for f in futures]
        return results

    def _deliver(self, sub: Subscription, notification: Notification) -> DeliveryResult:
        started = time.monotonic()
        status: DeliveryStatus
        error: str | None = None
        try:
            ack = sub.sink.deliver(notification)
            status, attempts = "delivered", ack.attempts
        except Exception as exc:  # noqa: BLE001 — one sink's failure (even a bug) must not hurt the others
            status = "failed" if is_transient(exc) else "rejected"
            attempts = int(getattr(exc, "attempts", 1))
            error = f"{type(exc).__name__}: {exc}"
            log.warning(
                "delivery of %s to %s failed (%s): %s", notification.message_id, sub.sink.name, status, error
            )
        result = DeliveryResult(
            topic=sub.topic,
            sink=sub.sink.name,
            alert_id=notification.alert.alert_id,
            message_id=notification.message_id,
            status=status,
            attempts=attempts,
            duration_s=time.monotonic() - started,
            error=error,
        )
        with self._lock:
            counts = self._counts.setdefault((sub.topic, sub.sink.name), _Counts())
            setattr(counts, status, getattr(counts, status) + 1)
            counts.attempts += attempts
            self._recent.append(result)
        return result

    def _count_filtered(self, sub: Subscription) -> None:
        with self._lock:
            self._counts.setdefault((sub.topic, sub.sink.name), _Counts()).filtered += 1

    def _executor(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=self._max_workers, thread_name_prefix="notify")
            return self._pool

    # --- reporting and lifecycle -------------------------------------------------------------
    def stats(self) -> DeliveryStats:
        with self._lock:
            rows = [
                StatsRow(
                    topic=topic,
                    sink=sink,
                    delivered=c.delivered,
                    failed=c.failed,
                    rejected=c.rejected,
                    filtered=c.filtered,
                    attempts=c.attempts,
                )
                for (topic, sink), c in sorted(self._counts.items())
            ]
            return DeliveryStats(published=dict(self._published), rows=rows, recent=list(self._recent))

    def close(self) -> None:
        """Stop the delivery threads and close sinks that have a ``close`` method."""
        with self._lock:
            pool, self._pool = self._pool, None
            sinks = {id(s.sink): s.sink for subs in self._subs.values() for s in subs}
        if pool is not None:
            pool.shutdown(wait=True)
        for sink in sinks.values():
            close = getattr(sink, "close", None)
            if callable(close):
                close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
