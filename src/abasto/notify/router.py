"""Alert routing: the rule engine picks the topics, the notifier delivers to their subscribers."""

from __future__ import annotations

import asyncio

from abasto.contracts.alerts import Alert
from abasto.notify.ports import DeliveryResult, Notifier
from abasto.rules.engine import RuleEngine


class AlertRouter:
    """``route_alert(alert)``: match ``alert.to_event()`` against the rules, publish to each topic."""

    def __init__(self, engine: RuleEngine, notifier: Notifier) -> None:
        self.engine = engine
        self.notifier = notifier

    def topics_for(self, alert: Alert) -> list[str]:
        return self.engine.route(alert.to_event())

    def route_alert(self, alert: Alert) -> list[DeliveryResult]:
        """All delivery results, topic by topic in rule order. Never raises for a sink's failure."""
        results: list[DeliveryResult] = []
        for topic in self.topics_for(alert):
            results.extend(self.notifier.publish(topic, alert))
        return results

    async def aroute_alert(self, alert: Alert) -> list[DeliveryResult]:
        """``route_alert`` off the event loop (sinks block: HTTP, fsync, backoff sleeps)."""
        return await asyncio.to_thread(self.route_alert, alert)
