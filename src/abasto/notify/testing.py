"""Sinks for tests and demos: one that records, one that fails on purpose."""

from __future__ import annotations

import random
import threading
import time

from abasto.notify.ports import (
    DeliveryFailedError,
    DeliveryRejectedError,
    Notification,
    Sink,
    SinkAck,
)


class MemorySink:
    """Keeps every notification it receives."""

    def __init__(self, name: str = "memory") -> None:
        self._name = name
        self._lock = threading.Lock()
        self.notifications: list[Notification] = []

    @property
    def name(self) -> str:
        return self._name

    def deliver(self, notification: Notification) -> SinkAck:
        with self._lock:
            self.notifications.append(notification)
        return SinkAck()


class FlakySink:
    """Fails the first ``fail_first`` deliveries, then each one with probability ``failure_rate``
    (seeded), and otherwise passes to ``inner``. Failures are transient unless ``terminal``."""

    def __init__(
        self,
        inner: Sink | None = None,
        *,
        fail_first: int = 0,
        failure_rate: float = 0.0,
        terminal: bool = False,
        delay_s: float = 0.0,
        seed: int = 0,
        name: str | None = None,
    ) -> None:
        self.inner: Sink = inner or MemorySink()
        self._name = name or f"flaky:{self.inner.name}"
        self._fail_first = fail_first
        self._failure_rate = failure_rate
        self._terminal = terminal
        self._delay_s = delay_s
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self.calls = 0
        self.failures = 0

    @property
    def name(self) -> str:
        return self._name

    def deliver(self, notification: Notification) -> SinkAck:
        if self._delay_s:
            time.sleep(self._delay_s)
        with self._lock:
            self.calls += 1
            fail = self.calls <= self._fail_first or self._rng.random() < self._failure_rate
            if fail:
                self.failures += 1
        if fail:
            message = f"{self._name}: injected failure #{self.failures}"
            if self._terminal:
                raise DeliveryRejectedError(message)
            raise DeliveryFailedError(message)
        return self.inner.deliver(notification)
