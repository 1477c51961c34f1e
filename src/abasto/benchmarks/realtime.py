"""Real-time path (issue 3): processor, MQTT ingest, event → alert latency, state memory.

Each figure beside its limit, measured in the same run on services this suite starts itself (an
embedded nats-server with JetStream + MQTT under a temp home, on free ports):

* ``processor_events_per_s`` — the processor alone (JetStream pull consumer → Engine → alerts
  published on ALERTS → acks) over a backlog of unbatched device events (one message per event) of
  generated world days, published straight into POS; limit ``jetstream_consume_events_per_s``: a
  plain pull consumer fetching + acking the same messages (no decode), same batch and ack window.
* ``mqtt_ingest_events_per_s`` — the device simulator (QoS 1, one connection per store with the
  store's own credentials) through nats-server's MQTT listener, first publish → last PUBACK;
  limit ``paho_raw_publish_events_per_s``: one paho client publishing the same payloads QoS 1 to
  one topic as fast as PUBACKs return.
* ``alert_latency_p50_ms`` / ``alert_latency_p99_ms`` — events published into JetStream at a paced
  5,000 events/s while the processor runs; latency = the triggering event's publish → its alert
  seen on ``alerts.>`` (the processor's publish). Limit: the p50/p99 JetStream publish → pull
  consume latency of plain messages (the same payloads, same pace, same consumer port) in the run.
* ``batched_end_to_end_events_per_s`` — batched device records (``abasto.pos.batch/v1``, one
  store device's upload of what it buffered over up to a day, ≤ 1,000 events a message) published
  by a publisher process as fast as the stream acknowledges, while one processor worker (→ ALERTS,
  this process) and the raw delivery (→ raw Parquet, its own process, as deployed) consume them:
  events/s from the first publish until the processor has stored its last outputs and the delivery
  has written and acknowledged its last file. Limit ``batched_jetstream_consume_events_per_s``: a
  plain pull consumer fetching + acking the same batch messages, counted in events. Also against
  the issue's target (``batched_end_to_end_vs_target_events_per_s``, limit 100,000 events/s).
* ``state_memory_mb_per_100k_keys`` — tracemalloc growth of an Engine fed a stock reading and a
  sale for ≥100k store×SKU keys (per-pair state, watermarks, dedup of the devices), per 100k keys;
  limit: the same keys in a plain dict of tuples (3 floats).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import statistics
import tempfile
import threading
import time
import tracemalloc
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from abasto.benchmarks._services import embedded, percentile
from abasto.benchmarks.delivery_worker import DeliveryProcess
from abasto.benchmarks.harness import Figure
from abasto.benchmarks.paced import PacedPublisher, PacedRun
from abasto.contracts.alerts import Alert
from abasto.contracts.events import DeviceEvent, SaleScan, StockReading, encode_event
from abasto.contracts.patterns import DemandPattern
from abasto.delivery import DeliveryConfig
from abasto.devices.batching import batch_events, batch_messages
from abasto.devices.registry import CredentialRegistry
from abasto.devices.simulator import (
    PublishReport,
    expand_day,
    publish_mqtt,
    publish_stream,
    registry_credentials,
)
from abasto.errors import ServiceUnavailableError
from abasto.ml.pattern import fit_pattern
from abasto.realtime.bootstrap import reference_from_world
from abasto.realtime.engine import Engine, Output
from abasto.realtime.metrics import ProcessorMetrics
from abasto.realtime.processor import Processor
from abasto.realtime.snapshot import EngineSnapshot
from abasto.realtime.tuning import DetectorTuning
from abasto.services import nats_connect_options, reload_nats
from abasto.settings import Settings, WorldSettings
from abasto.stream.jetstream import JetStreamEventStream
from abasto.stream.port import EventStream, StreamSpec
from abasto.stream.topology import POS_STREAM, abasto_streams, pos_subject, pos_topic
from abasto.world import World, generate
from abasto.world.views import sellout_history

log = logging.getLogger(__name__)

PACE_EVENTS_PER_S = 5_000
#: fetch batch of the latency runs (processor and plain consumer alike): 10 ms of events at the pace
LATENCY_BATCH = 50
MEMORY_KEYS = 100_000


@dataclass(frozen=True)
class _Plan:
    stores: int
    days: int
    repeats: int
    mqtt_events: int
    latency_s: float
    latency_repeats: int
    memory_keys: int


QUICK = _Plan(
    stores=60, days=2, repeats=3, mqtt_events=8_000, latency_s=4.0, latency_repeats=1, memory_keys=20_000
)
FULL = _Plan(
    stores=120,
    days=7,
    repeats=5,
    mqtt_events=60_000,
    latency_s=20.0,
    latency_repeats=3,
    memory_keys=MEMORY_KEYS,
)


def run(*, quick: bool = False) -> list[Figure]:
    plan = QUICK if quick else FULL
    world = generate(WorldSettings(seed=42, stores=plan.stores, skus=20, history_days=28))
    pattern = fit_pattern(sellout_history(world), timezone=world.timezone).with_version("bench")
    events = expand_day(
        hourly=world.hourly,
        stores=world.stores,
        skus=world.skus,
        day_start=world.live_start - timedelta(days=plan.days - 1),
        day_end=world.live_end,
        seed=1,
    )
    figures: list[Figure] = []
    with embedded("realtime", only=("nats",)) as settings:
        figures += asyncio.run(_processor_and_latency(settings, world, pattern, events, plan))
        figures.append(_mqtt_figure(settings, events[: plan.mqtt_events], plan.repeats))
        figures += asyncio.run(_batched_end_to_end(settings, world, pattern, events, plan.repeats))
    figures.append(_memory_figure(world, pattern, plan.memory_keys))
    return figures


# --- processor throughput and latency -----------------------------------------------------------


def _engine(world: World, pattern: DemandPattern, settings: Settings) -> Engine:
    return Engine(pattern, reference_from_world(world), DetectorTuning.from_settings(settings.realtime))


class _TimedEngine:
    """An engine, remembering for each alert the index of the payload that triggered it."""

    def __init__(self, engine: Engine, index: dict[bytes, int]) -> None:
        self.engine = engine
        self.index = index
        self.triggered_by: dict[str, int] = {}

    @property
    def metrics(self) -> ProcessorMetrics:
        return self.engine.metrics

    def process(self, subject: str, data: bytes) -> list[Output]:
        out = self.engine.process(subject, data)
        if out:
            k = self.index.get(data)
            if k is not None:
                for o in out:
                    if isinstance(o, Alert):
                        self.triggered_by.setdefault(o.alert_id, k)
        return out

    def snapshot(self) -> EngineSnapshot:
        return self.engine.snapshot()

    def restore(self, snap: EngineSnapshot) -> None:
        self.engine.restore(snap)


async def _processor_and_latency(
    settings: Settings, world: World, pattern: DemandPattern, events: list[DeviceEvent], plan: _Plan
) -> list[Figure]:
    options = nats_connect_options(settings)
    async with JetStreamEventStream.from_connect_options(options, name="bench-realtime") as stream:
        await stream.ensure_streams(abasto_streams(settings.nats))
        start = (await stream.stream_state(POS_STREAM)).last_seq + 1
        await publish_stream(events, stream, batch=2_000)
        n = len(events)

        proc_rates: list[float] = []
        plain_rates: list[float] = []
        for i in range(plan.repeats):
            plain_rates.append(await _plain_consume(stream, f"bench-plain-{i}", start, n))
            processor = Processor(
                stream, _engine(world, pattern, settings), durable=f"bench-proc-{i}", start_seq=start
            )
            await processor.run_until_idle()
            assert processor.last_run is not None and processor.last_run.messages == n
            proc_rates.append(processor.last_run.rate)

        lat: list[tuple[float, float]] = []
        rtt: list[tuple[float, float]] = []
        unique = {encode_event(e): pos_subject(e.store_id, e.device_id) for e in events}
        count = int(PACE_EVENTS_PER_S * plan.latency_s)
        # each payload once (the engine finds an alert's trigger by payload), in event order
        payloads = [(subject, data) for data, subject in unique.items()][:count]
        for i in range(plan.latency_repeats):
            rtt.append(await _plain_round_trip(stream, options, payloads, i))
            lat.append(await _alert_latency(stream, options, world, pattern, settings, payloads, i))
    return [
        Figure(
            "processor_events_per_s",
            "events/s (JetStream → Engine → ALERTS, unbatched)",
            statistics.median(proc_rates),
            "jetstream_consume_events_per_s (fetch + ack, no decode)",
            statistics.median(plain_rates),
        ),
        Figure(
            "alert_latency_p50_ms",
            f"ms (event published to JetStream → alert published, at {PACE_EVENTS_PER_S:,} events/s)",
            statistics.median(x[0] for x in lat),
            "jetstream_publish_consume_p50_ms (plain message, same pace)",
            statistics.median(x[0] for x in rtt),
        ),
        Figure(
            "alert_latency_p99_ms",
            f"ms (event published to JetStream → alert published, at {PACE_EVENTS_PER_S:,} events/s)",
            statistics.median(x[1] for x in lat),
            "jetstream_publish_consume_p99_ms (plain message, same pace)",
            statistics.median(x[1] for x in rtt),
        ),
    ]


async def _plain_consume(stream: EventStream, durable: str, start: int, n: int) -> float:
    """Events/s of a plain pull consumer fetching + acking ``n`` messages from ``start``."""
    consumer = await stream.consumer(
        POS_STREAM, durable, start_seq=start, ack_wait_s=60.0, max_ack_pending=4_000
    )
    got = 0
    t0 = time.perf_counter()
    while got < n:
        msgs = await consumer.fetch(1_000, timeout_s=0.5)
        for m in msgs:
            await m.ack()
        got += len(msgs)
    return got / (time.perf_counter() - t0)


async def _plain_round_trip(
    stream: EventStream, options: dict[str, object], payloads: list[tuple[str, bytes]], run: int
) -> tuple[float, float]:
    """p50/p99 ms from JetStream publish to a pull consumer's fetch of plain messages at the same pace.

    The publisher is a separate process (:mod:`abasto.benchmarks.paced`); times are CLOCK_MONOTONIC.
    """
    name = f"BENCHRTT{run}"
    await stream.ensure_streams([StreamSpec(name=name, subjects=(f"benchrtt{run}.>",))])
    consumer = await stream.consumer(name, f"bench-rtt-{run}", ack_wait_s=60.0, max_ack_pending=4_000)
    index = {data: k for k, (_, data) in enumerate(payloads)}
    got: dict[int, float] = {}
    plain = [(f"benchrtt{run}.{s}", d) for s, d in payloads]
    async with PacedPublisher(options, plain, PACE_EVENTS_PER_S) as publisher:
        publisher.go()
        deadline = time.monotonic() + len(payloads) / PACE_EVENTS_PER_S + 60
        while len(got) < len(payloads) and time.monotonic() < deadline:
            msgs = await consumer.fetch(LATENCY_BATCH, timeout_s=0.5)
            now = time.monotonic()
            for m in msgs:
                got.setdefault(index[m.data], now)
                await m.ack()
        run_info = await publisher.stop()
    await stream.delete_stream(name)
    if len(got) < len(payloads):
        raise ServiceUnavailableError(f"only {len(got)} of {len(payloads)} plain messages consumed")
    _log_pace(run_info, "plain")
    lat = [(at - run_info.sent[k]) * 1000 for k, at in got.items()]
    return percentile(lat, 0.5), percentile(lat, 0.99)


async def _alert_latency(
    stream: EventStream,
    options: dict[str, object],
    world: World,
    pattern: DemandPattern,
    settings: Settings,
    payloads: list[tuple[str, bytes]],
    run: int,
) -> tuple[float, float]:
    """p50/p99 ms from an event's publish into POS to its alert's arrival on ``alerts.>``.

    A separate process publishes the events at the pace and listens to ``alerts.>`` (one clock for
    both ends); the processor runs here, its engine noting which event triggered each alert.
    """
    engine = _TimedEngine(
        _engine(world, pattern, settings), index={data: k for k, (_, data) in enumerate(payloads)}
    )
    start = (await stream.stream_state(POS_STREAM)).last_seq + 1
    processor = Processor(
        stream,
        engine,
        durable=f"bench-lat-{run}-{uuid.uuid4().hex[:6]}",
        start_seq=start,
        batch_size=LATENCY_BATCH,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(processor.run(stop))
    try:
        async with PacedPublisher(options, payloads, PACE_EVENTS_PER_S, listen="alerts.>") as publisher:
            publisher.go()
            await publisher.published(timeout_s=len(payloads) / PACE_EVENTS_PER_S + 60)
            deadline = time.monotonic() + 30
            while engine.metrics.received < len(payloads) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)  # let the processor drain what was published
            await asyncio.sleep(0.3)  # the last alerts reach the listener
            run_info = await publisher.stop()
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=30)
    _log_pace(run_info, "alerts")
    lat = [
        (run_info.seen[a] - run_info.sent[k]) * 1000
        for a, k in engine.triggered_by.items()
        if a in run_info.seen
    ]
    if not lat:
        raise ServiceUnavailableError("no alert was raised during the latency run")
    return percentile(lat, 0.5), percentile(lat, 0.99)


def _log_pace(run: PacedRun, what: str) -> None:
    log.info(
        "%s latency run: %d messages at %.0f/s (target %d/s), worst publish %.1f ms behind schedule",
        what,
        len(run.sent),
        run.rate,
        PACE_EVENTS_PER_S,
        run.max_behind_s * 1000,
    )


# --- batched records end to end ------------------------------------------------------------------

#: a store device uploads what it buffered over at most a day (an offline POS catching up, a
#: gateway replaying a day), at most this many events a message
BATCH_WINDOW = timedelta(hours=24)
BATCH_MAX_EVENTS = 1_000
#: messages per fetch of the batched runs (processor and plain consumer alike)
BATCH_FETCH = 20
#: the delivery cuts a raw file set every this many messages (~100k events), like Firehose's size hint
BATCH_DELIVERY_MESSAGES = 500
#: the publisher sends as fast as the stream acknowledges (a pace no run reaches)
FLOOD_MESSAGES_PER_S = 1e9
TARGET_EVENTS_PER_S = 100_000


async def _batched_end_to_end(
    settings: Settings, world: World, pattern: DemandPattern, events: list[DeviceEvent], repeats: int
) -> list[Figure]:
    """Batched records: publisher → processor (ALERTS) + raw delivery (Parquet), vs a plain consume.

    Three processes as deployed: the publisher (devices/ingest) and the delivery each in a child
    process, one processor worker here. The clock runs from the first publish until the processor
    has stored its last outputs and the delivery has written and acknowledged its last file.
    """
    batches = batch_events(events, max_events=BATCH_MAX_EVENTS, window=BATCH_WINDOW)
    n_events, n_msgs = sum(len(b.events) for b in batches), len(batches)
    options = nats_connect_options(settings)
    e2e: list[float] = []
    plain: list[float] = []
    async with JetStreamEventStream.from_connect_options(options, name="bench-batched") as stream:
        await stream.ensure_streams(abasto_streams(settings.nats))
        for i in range(repeats):
            start = (await stream.stream_state(POS_STREAM)).last_seq + 1
            payloads = [(m.subject, m.data) for m in batch_messages(batches)]
            with tempfile.TemporaryDirectory(prefix="abasto-bench-raw-") as raw:
                processor = Processor(
                    stream,
                    _engine(world, pattern, settings),
                    durable=f"bench-batched-proc-{i}",
                    start_seq=start,
                    batch_size=BATCH_FETCH,
                )
                await processor.bind()
                config = DeliveryConfig(
                    durable=f"bench-batched-raw-{i}",
                    start_seq=start,
                    max_messages=BATCH_DELIVERY_MESSAGES,
                    fetch_batch=BATCH_FETCH,
                    fetch_timeout_s=0.2,
                )
                async with (
                    DeliveryProcess(options, Path(raw).as_uri(), config, messages=n_msgs) as delivery,
                    PacedPublisher(options, payloads, FLOOD_MESSAGES_PER_S) as publisher,
                ):
                    stop = asyncio.Event()
                    t0, cpu0 = time.monotonic(), time.process_time()
                    publisher.go()
                    delivery.go()
                    worker = asyncio.create_task(processor.run(stop))
                    while processor.applied < n_msgs and not worker.done():
                        await asyncio.sleep(0.005)
                    stop.set()
                    await worker
                    # when the last batch's outputs were stored (not the read-ahead's wait after it)
                    assert processor.handled_at is not None
                    processed, cpu = processor.handled_at, time.process_time() - cpu0
                    await publisher.published(60.0)
                    delivered = await delivery.result(300.0)
                    await publisher.stop()
                e2e.append(n_events / (max(processed, delivered.finished) - t0))
                log.info(
                    "batched run %d: processor %.2f s (%.2f s CPU), delivery %.2f s (%.2f s CPU)",
                    i,
                    processed - t0,
                    cpu,
                    delivered.finished - t0,
                    delivered.cpu_s,
                )
                rows = delivered.metrics.rows_written
                if processor.engine.metrics.accepted != n_events or rows != n_events:
                    raise ServiceUnavailableError(
                        f"batched run {i}: {processor.engine.metrics.accepted} events processed and "
                        f"{rows} rows written, expected {n_events}"
                    )
            per_msg = n_events / n_msgs
            plain.append(await _plain_consume(stream, f"bench-batched-plain-{i}", start, n_msgs) * per_msg)
    value = statistics.median(e2e)
    unit = (
        f"events/s (batched records, {n_events / n_msgs:.0f} events a message → one processor "
        "+ raw delivery, each its own process)"
    )
    return [
        Figure(
            "batched_end_to_end_events_per_s",
            unit,
            value,
            "batched_jetstream_consume_events_per_s (fetch + ack of the same batch messages)",
            statistics.median(plain),
        ),
        Figure(
            "batched_end_to_end_vs_target_events_per_s",
            unit,
            value,
            "issue3_target_events_per_s",
            float(TARGET_EVENTS_PER_S),
        ),
    ]


# --- MQTT ingest -----------------------------------------------------------------------------------


def _mqtt_figure(settings: Settings, events: list[DeviceEvent], repeats: int) -> Figure:
    store_ids = sorted({e.store_id for e in events})
    CredentialRegistry(settings).register_stores(store_ids)
    reload_nats(settings)
    creds = registry_credentials(settings)
    ingest: list[float] = []
    raw: list[float] = []
    for _ in range(repeats):
        ingest.append(_publish_with_retry(events, settings, creds).rate)
        raw.append(_paho_raw(settings, store_ids[0], [encode_event(e) for e in events]))
    return Figure(
        "mqtt_ingest_events_per_s",
        f"events/s (simulator, {len(store_ids)} store connections, QoS 1, to PUBACK)",
        statistics.median(ingest),
        "paho_raw_publish_events_per_s (1 client, QoS 1, one topic)",
        statistics.median(raw),
    )


def _publish_with_retry(
    events: list[DeviceEvent], settings: Settings, creds: Callable[[str], tuple[str, str]]
) -> PublishReport:
    """The server applies reloaded users asynchronously: retry the first connections briefly."""
    deadline = time.monotonic() + 15
    while True:
        try:
            return publish_mqtt(
                events, host=settings.nats.host, port=settings.nats.mqtt_port, credentials=creds
            )
        except ServiceUnavailableError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def _paho_raw(settings: Settings, store_id: str, payloads: list[bytes], inflight: int = 500) -> float:
    """One paho client, QoS 1, every payload to one topic; events/s first publish → last PUBACK."""
    login = CredentialRegistry(settings).get(store_id)
    topic = pos_topic(store_id, f"dev-{store_id}-1")
    acked = 0
    ready = threading.Event()
    all_acked = threading.Event()

    def on_connect(client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        ready.set()

    def on_publish(client: Any, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        nonlocal acked
        acked += 1
        if acked >= len(payloads):
            all_acked.set()

    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=f"bench-raw-{uuid.uuid4().hex[:8]}",
        protocol=mqtt.MQTTv311,
        clean_session=True,
    )
    client.username_pw_set(login.username, login.password)
    client.max_inflight_messages_set(inflight)
    client.max_queued_messages_set(0)
    client.on_connect = on_connect
    client.on_publish = on_publish
    client.connect(settings.nats.host, settings.nats.mqtt_port, keepalive=30)
    client.loop_start()
    try:
        if not ready.wait(15):
            raise ServiceUnavailableError("paho client could not connect to the MQTT listener")
        t0 = time.perf_counter()
        for data in payloads:
            info = client.publish(topic, data, qos=1)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                raise ServiceUnavailableError(f"MQTT publish failed: rc={info.rc}")
        if not all_acked.wait(120):
            raise ServiceUnavailableError(f"only {acked} of {len(payloads)} PUBACKs in 120 s")
        return len(payloads) / (time.perf_counter() - t0)
    finally:
        client.disconnect()
        client.loop_stop()


# --- state memory ----------------------------------------------------------------------------------


def _memory_figure(world: World, pattern: DemandPattern, wanted_keys: int) -> Figure:
    skus = [str(s) for s in world.skus["sku"].to_pylist()]
    n_stores = -(-wanted_keys // len(skus))
    at = world.live_start + timedelta(hours=9)
    messages: list[tuple[str, bytes]] = []
    for i in range(n_stores):
        store = f"M{i:06d}"
        device = f"dev-{store}-1"
        subject = pos_subject(store, device)
        for j, sku in enumerate(skus):
            reading = DeviceEvent(
                device_id=device,
                store_id=store,
                seq=2 * j + 1,
                event_time=at,
                payload=StockReading(sku=sku, on_hand=24),
            )
            sale = DeviceEvent(
                device_id=device,
                store_id=store,
                seq=2 * j + 2,
                event_time=at + timedelta(seconds=j + 1),
                payload=SaleScan(sku=sku, qty=1, price=16.0),
            )
            messages += [(subject, encode_event(reading)), (subject, encode_event(sale))]
    keys = n_stores * len(skus)
    engine = Engine(pattern, reference_from_world(world), DetectorTuning())

    def feed() -> None:
        for subject, data in messages:
            engine.process(subject, data)

    engine_bytes = _traced_growth(feed)
    assert sum(1 for _ in engine.pairs()) == keys

    holder: list[dict[tuple[str, str], tuple[float, float, float]]] = []

    def plain() -> None:
        d: dict[tuple[str, str], tuple[float, float, float]] = {}
        for i in range(n_stores):
            store = f"M{i:06d}"
            for sku in skus:
                d[(store, sku)] = (24.0, 1.0, float(i))
        holder.append(d)

    plain_bytes = _traced_growth(plain)
    per = 100_000 / keys / 2**20
    return Figure(
        "state_memory_mb_per_100k_keys",
        f"MiB (Engine state after a reading + a sale on {keys:,} store×SKU keys, tracemalloc)",
        engine_bytes * per,
        "plain_dict_of_tuples_mb_per_100k_keys",
        plain_bytes * per,
    )


def _traced_growth(fn: Callable[[], None]) -> int:
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        fn()
        gc.collect()
        return tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
