"""Topics: fan-out, isolation of failing sinks, filters, locales, statistics; the alert router."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from abasto.contracts.alerts import Alert
from abasto.errors import NotFoundError
from abasto.notify import (
    AlertRouter,
    FileSink,
    MessageRenderer,
    Notification,
    RetryPolicy,
    SinkAck,
    StaticDirectory,
    Topics,
    WebhookSink,
    build_router,
)
from abasto.notify.testing import FlakySink, MemorySink
from abasto.rules import RuleEngine
from abasto.settings import load_settings

AlertFactory = Callable[..., Alert]
MX = "America/Mexico_City"


class _RaisingSink:
    def __init__(self, exc: Exception, name: str) -> None:
        self.exc, self._name = exc, name

    @property
    def name(self) -> str:
        return self._name

    def deliver(self, notification: Notification) -> SinkAck:
        raise self.exc


def _topics() -> Topics:
    return Topics(MessageRenderer(tz=MX, directory=StaticDirectory({"S0001": "Tienda Don Pepe"})))


def test_publish_fans_out_and_a_failed_sink_never_stops_the_others(alert_factory: AlertFactory) -> None:
    good, after = MemorySink("good"), MemorySink("after")
    with _topics() as topics:
        topics.subscribe("urgent", good)
        topics.subscribe("urgent", FlakySink(fail_first=1, terminal=True, name="rejecting"))
        topics.subscribe("urgent", FlakySink(fail_first=1, name="down"))
        topics.subscribe("urgent", _RaisingSink(RuntimeError("bug in a sink"), "buggy"))
        topics.subscribe("urgent", _RaisingSink(ConnectionResetError("peer reset"), "reset"))
        topics.subscribe("urgent", after)
        results = topics.publish("urgent", alert_factory())
    assert [(r.sink, r.status) for r in results] == [
        ("good", "delivered"),
        ("rejecting", "rejected"),
        ("down", "failed"),
        ("buggy", "rejected"),
        ("reset", "failed"),
        ("after", "delivered"),
    ]
    assert [r.terminal for r in results] == [False, True, False, True, False, False]
    assert "injected failure" in (results[1].error or "")
    assert results[3].error == "RuntimeError: bug in a sink"
    for sink in (good, after):
        (note,) = sink.notifications
        assert note.topic == "urgent"
        assert note.message_id == f"{note.alert.alert_id}/urgent"
        assert note.text.startswith("Riesgo de quiebre de stock: COLA-600-NR en Tienda Don Pepe (S0001).")


def test_a_slow_sink_does_not_block_the_others(alert_factory: AlertFactory) -> None:
    fast_done = threading.Event()

    class Waiting:
        name = "waits-for-fast"

        def deliver(self, notification: Notification) -> SinkAck:
            # subscribed first: if deliveries ran one after another, this would time out
            assert fast_done.wait(timeout=5), "the other sink was blocked"
            return SinkAck()

    class Fast(MemorySink):
        def deliver(self, notification: Notification) -> SinkAck:
            ack = super().deliver(notification)
            fast_done.set()
            return ack

    with Topics() as topics:
        topics.subscribe("t", Waiting())
        topics.subscribe("t", Fast("fast"))
        assert [r.status for r in topics.publish("t", alert_factory())] == ["delivered", "delivered"]


def test_subscriptions_are_idempotent_and_removable(alert_factory: AlertFactory) -> None:
    sink = MemorySink()
    with Topics() as topics:
        first = topics.subscribe("t", sink)
        assert topics.subscribe("t", sink) is first
        assert topics.subscriptions("t") == [first]
        topics.unsubscribe(first)
        assert topics.publish("t", alert_factory()) == []
        with pytest.raises(NotFoundError):
            topics.unsubscribe(first)
    assert sink.notifications == []


def test_filter_pattern_and_per_subscription_locale(alert_factory: AlertFactory) -> None:
    spanish, english_supermarkets = MemorySink("es"), MemorySink("en-super")
    with _topics() as topics:
        topics.subscribe("stockout-alerts", spanish)
        topics.subscribe(
            "stockout-alerts",
            english_supermarkets,
            locale="en",
            filter_pattern={"detail": {"channel": ["supermarket"]}},
        )
        topics.publish("stockout-alerts", alert_factory())
        topics.publish("stockout-alerts", alert_factory(channel="supermarket", alert_id="al-2"))
        stats = topics.stats()
    assert len(spanish.notifications) == 2
    (note,) = english_supermarkets.notifications
    assert note.alert.alert_id == "al-2" and note.locale == "en"
    assert note.text.startswith("Stockout risk: COLA-600-NR at Tienda Don Pepe (S0001).")
    row = next(r for r in stats.rows if r.sink == "en-super")
    assert (row.delivered, row.filtered) == (1, 1)


def test_stats_count_per_topic_and_sink(alert_factory: AlertFactory) -> None:
    flaky = FlakySink(fail_first=2, name="flaky")
    with Topics() as topics:
        topics.subscribe("a", flaky)
        topics.subscribe("b", flaky)
        for i in range(3):
            topics.publish("a", alert_factory(alert_id=f"al-{i}"))
        topics.publish("b", alert_factory())
        topics.publish("nobody-listens", alert_factory())
        stats = topics.stats()
    assert stats.published == {"a": 3, "b": 1, "nobody-listens": 1}
    rows = {(r.topic, r.sink): (r.delivered, r.failed, r.rejected) for r in stats.rows}
    assert rows == {("a", "flaky"): (1, 2, 0), ("b", "flaky"): (1, 0, 0)}
    assert stats.totals() == {"delivered": 2, "failed": 2, "rejected": 0}
    assert [r.status for r in stats.recent] == ["failed", "failed", "delivered", "delivered"]


def test_flaky_sink_probability_is_seeded(alert_factory: AlertFactory) -> None:
    note = Notification(
        message_id="m",
        topic="t",
        published_at=alert_factory().raised_at,
        locale="es",
        subject="s",
        text="t",
        alert=alert_factory(),
    )
    outcomes = []
    for seed in (1, 1, 2):
        sink = FlakySink(failure_rate=0.5, seed=seed)
        ok = 0
        for _ in range(200):
            try:
                sink.deliver(note)
                ok += 1
            except Exception:  # noqa: BLE001
                pass
        outcomes.append(ok)
    assert outcomes[0] == outcomes[1] != outcomes[2]
    assert 60 < outcomes[0] < 140


# --- router -------------------------------------------------------------------------------------


def _router_with_memory_sinks() -> tuple[AlertRouter, dict[str, MemorySink]]:
    engine = RuleEngine.default()
    topics = _topics()
    sinks = {topic: MemorySink(f"mem-{topic}") for topic in engine.topics}
    for topic, sink in sinks.items():
        topics.subscribe(topic, sink)
    return AlertRouter(engine, topics), sinks


@pytest.mark.parametrize(
    ("overrides", "topics"),
    [
        ({"risk": 0.7}, ["stockout-alerts"]),
        ({"risk": 0.95}, ["stockout-alerts", "urgent"]),
        ({"risk": 0.95, "channel": "supermarket"}, ["stockout-alerts", "key-accounts", "urgent"]),
        ({"state": "resolved"}, []),
    ],
)
def test_router_routes_per_rules(
    alert_factory: AlertFactory, overrides: dict[str, Any], topics: list[str]
) -> None:
    router, sinks = _router_with_memory_sinks()
    alert = alert_factory(**overrides)
    results = router.route_alert(alert)
    assert router.topics_for(alert) == topics
    assert [(r.topic, r.status) for r in results] == [(t, "delivered") for t in topics]
    assert {t for t, s in sinks.items() if s.notifications} == set(topics)


async def test_router_async_entry_point(alert_factory: AlertFactory) -> None:
    router, _sinks = _router_with_memory_sinks()
    results = await router.aroute_alert(alert_factory(risk=0.99))
    assert [r.topic for r in results] == ["stockout-alerts", "urgent"]
    assert asyncio.get_running_loop().is_running()


def test_router_end_to_end_with_file_and_webhook(
    tmp_path: Path, webhook_server: Any, alert_factory: AlertFactory
) -> None:
    settings = load_settings(
        home=tmp_path, notify={"webhook_urls": [webhook_server.url], "webhook_secret": "k"}
    )
    router = build_router(settings, tz=MX, webhook_topics=["urgent"])
    webhook_server.respond(500)  # the first POST fails once and is retried
    try:
        # the shipped webhook retry policy waits ~0.25-0.5 s before its second attempt
        results = router.route_alert(alert_factory(risk=0.95))
    finally:
        router.notifier.close()  # type: ignore[attr-defined]
    by_sink = {(r.topic, r.sink.split(":")[0]): r for r in results}
    assert set(by_sink) == {("stockout-alerts", "file"), ("urgent", "file"), ("urgent", "webhook")}
    assert all(r.ok for r in results)
    assert by_sink[("urgent", "webhook")].attempts == 2
    records = FileSink.read(tmp_path / "alerts" / "notifications.jsonl")
    assert [r["topic"] for r in records] == ["stockout-alerts", "urgent"]
    assert all(r["locale"] == "es" for r in records)
    assert len(webhook_server.requests) == 2
    assert webhook_server.requests[-1].json()["topic"] == "urgent"


def test_webhook_failures_surface_in_router_results(webhook_server: Any, alert_factory: AlertFactory) -> None:
    engine = RuleEngine.default()
    topics = Topics()
    webhook_server.respond(404)
    sink = WebhookSink(webhook_server.url, secret="k", retry=RetryPolicy(max_attempts=2, base_delay_s=0))
    topics.subscribe("stockout-alerts", sink)
    with topics:
        (result,) = AlertRouter(engine, topics).route_alert(alert_factory())
    assert (result.status, result.terminal, result.attempts) == ("rejected", True, 1)
    assert "HTTP 404" in (result.error or "")
