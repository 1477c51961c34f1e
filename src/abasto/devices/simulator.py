"""The simulated POS fleet: the world's live day expanded into device events, and published.

One device per store (``dev-<store_id>-1``, ``seq`` 1, 2, … in event-time order). From the world's
hourly rows of the live day (docs/CONTRACTS.md; within an hour the truck arrives at the top of the
hour, then customers arrive uniformly until the hour ends or the shelf empties at ``stockout_at``):

* a ``StockReading`` per carried SKU when the store opens (``on_hand_start`` of its first hour);
* ``DeliveryReceipt`` at the top of an hour with ``delivered_units`` > 0, then a ``StockReading``;
* ``SaleScan`` tickets adding up to each hour's ``sold_units`` exactly (1–3 units mostly, bigger
  baskets in supermarkets), at uniform random times in [hour_start, stockout_at or hour end];
* ``CoolerTelemetry`` every 15 minutes of trading hours for stores with coolers (a refrigeration
  fault from the world's ``cooler_faults`` shows as its temperature);
* a ``Heartbeat`` every hour of the day.

Deterministic by seed (one random stream per store). Events are published over MQTT (what the
devices do: QoS 1, per-store credentials, topic ``pos/<store_id>/<device_id>``, persistent
sessions that ride out a broker restart and re-send what was not acknowledged) or straight into
the stream port (for speed and tests).
"""

from __future__ import annotations

import threading
import time
import uuid
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import numpy as np
import paho.mqtt.client as mqtt
import pyarrow as pa
import pyarrow.compute as pc
from paho.mqtt.enums import CallbackAPIVersion

from abasto.contracts.events import (
    CoolerTelemetry,
    DeliveryReceipt,
    DeviceEvent,
    Heartbeat,
    Payload,
    SaleScan,
    StockReading,
    encode_event,
)
from abasto.devices.registry import CredentialRegistry
from abasto.errors import ServiceUnavailableError
from abasto.settings import Settings
from abasto.stream.port import EventStream, OutgoingMessage
from abasto.stream.topology import pos_subject, pos_topic

_HOUR: Final = timedelta(hours=1)
_COOLER_EVERY: Final = timedelta(minutes=15)
#: ticket sizes and their probabilities: (sizes, weights)
_BASKETS: Final[dict[str, tuple[tuple[int, ...], tuple[float, ...]]]] = {
    "supermarket": ((1, 2, 3, 4, 6, 12), (0.35, 0.25, 0.14, 0.10, 0.11, 0.05)),
    "default": ((1, 2, 3, 6), (0.60, 0.27, 0.11, 0.02)),
}
#: order of events sharing one instant
_RANK: Final = {StockReading: 0, DeliveryReceipt: 1, SaleScan: 3, CoolerTelemetry: 4, Heartbeat: 5}


def device_id_for(store_id: str) -> str:
    return f"dev-{store_id}-1"


@dataclass(frozen=True, slots=True)
class _Draft:
    at: datetime
    rank: int
    payload: Payload


# --- expansion ------------------------------------------------------------------------------------


def expand_day(
    *,
    hourly: Any,
    stores: Any,
    skus: Any,
    day_start: datetime,
    day_end: datetime,
    seed: int = 0,
    cooler_faults: Any | None = None,
    first_seq: int = 1,
) -> list[DeviceEvent]:
    """Device events of every store for [day_start, day_end), sorted by event time.

    Tables are pyarrow Tables with the world's columns (``stores``: store_id, channel, coolers;
    ``skus``: sku, price; ``hourly``: store_id, sku, hour_start, sold_units, on_hand_start,
    delivered_units, stockout_at).
    """
    store_rows = {str(s["store_id"]): s for s in _rows(stores)}
    prices = {str(k["sku"]): float(k.get("price") or 0.0) for k in _rows(skus)}
    by_store: dict[str, list[dict[str, Any]]] = {}
    for r in _rows(_between(hourly, "hour_start", day_start, day_end)):
        at = _utc(r["hour_start"])
        if day_start <= at < day_end:
            by_store.setdefault(str(r["store_id"]), []).append(r)
    faults: dict[str, list[tuple[datetime, datetime, float]]] = {}
    for f in _rows(cooler_faults):
        faults.setdefault(str(f["store_id"]), []).append(
            (_utc(f["start_at"]), _utc(f["end_at"]), float(f["temp_c"]))
        )
    events: list[DeviceEvent] = []
    for store_id in sorted(set(store_rows) | set(by_store)):
        info = store_rows.get(store_id, {"store_id": store_id})
        events += _store_events(
            info,
            by_store.get(store_id, []),
            prices=prices,
            day=(day_start, day_end),
            rng=np.random.default_rng([seed, zlib.crc32(store_id.encode())]),
            faults=faults.get(store_id, []),
            first_seq=first_seq,
        )
    events.sort(key=lambda e: (e.event_time, e.store_id, e.seq))
    return events


def expand_live_day(
    world: Any, *, seed: int = 0, store_ids: Iterable[str] | None = None
) -> list[DeviceEvent]:
    """Events of the world's live day (``abasto.world.World``), optionally for some stores only."""
    stores = world.stores
    hourly = world.hourly
    if store_ids is not None:
        wanted = sorted(set(store_ids))
        stores = _filter(stores, wanted)
        hourly = _filter(hourly, wanted)
    faults = world.tables.get("cooler_faults") if hasattr(world, "tables") else None
    return expand_day(
        hourly=hourly,
        stores=stores,
        skus=world.skus,
        day_start=world.live_start,
        day_end=world.live_end,
        seed=seed,
        cooler_faults=faults,
    )


def _store_events(
    store: Mapping[str, Any],
    rows: list[dict[str, Any]],
    *,
    prices: Mapping[str, float],
    day: tuple[datetime, datetime],
    rng: np.random.Generator,
    faults: list[tuple[datetime, datetime, float]],
    first_seq: int,
) -> list[DeviceEvent]:
    day_start, day_end = day
    store_id = str(store["store_id"])
    sizes, weights = _BASKETS.get(str(store.get("channel")), _BASKETS["default"])
    drafts: list[_Draft] = []
    rows = sorted(rows, key=lambda r: (str(r["sku"]), _utc(r["hour_start"])))
    opened: set[str] = set()
    sold_by_hour: dict[datetime, list[datetime]] = {}
    for r in rows:
        sku, start = str(r["sku"]), _utc(r["hour_start"])
        if sku not in opened:  # first trading hour of this SKU: the opening count
            opened.add(sku)
            drafts.append(
                _Draft(start, 0, StockReading(sku=sku, on_hand=max(0, int(r["on_hand_start"] or 0))))
            )
        delivered = int(r.get("delivered_units") or 0)
        if delivered > 0:
            drafts.append(_Draft(start, 1, DeliveryReceipt(sku=sku, qty=delivered)))
            after = max(0, int(r["on_hand_start"] or 0) + delivered)
            drafts.append(_Draft(start, 2, StockReading(sku=sku, on_hand=after)))
        sold = int(r.get("sold_units") or 0)
        if sold <= 0:
            continue
        stockout = r.get("stockout_at")
        end = min(_utc(stockout), start + _HOUR) if stockout is not None else start + _HOUR
        tickets = _tickets(sold, sizes, weights, rng)
        span = (end - start).total_seconds()
        offsets = np.sort(rng.uniform(0.0, span, len(tickets)))
        price = prices.get(sku, 0.0)
        for qty, off in zip(tickets, offsets.tolist(), strict=True):
            at = start + timedelta(seconds=float(off))
            drafts.append(_Draft(at, 3, SaleScan(sku=sku, qty=qty, price=price)))
            sold_by_hour.setdefault(start, []).append(at)
    trading = sorted({_utc(r["hour_start"]) for r in rows})
    if int(store.get("coolers") or 0) > 0:
        drafts += _cooler_readings(trading, sold_by_hour, faults, rng)
    t = day_start
    while t < day_end:
        drafts.append(
            _Draft(t + timedelta(minutes=30), 5, Heartbeat(battery_mv=int(rng.integers(3600, 4100))))
        )
        t += _HOUR
    drafts.sort(key=lambda d: (d.at, d.rank))
    device = device_id_for(store_id)
    return [
        DeviceEvent(
            device_id=device, store_id=store_id, seq=first_seq + i, event_time=d.at, payload=d.payload
        )
        for i, d in enumerate(drafts)
    ]


def _tickets(
    units: int, sizes: Sequence[int], weights: Sequence[float], rng: np.random.Generator
) -> list[int]:
    out: list[int] = []
    left = units
    draws = rng.choice(np.asarray(sizes), size=units, p=np.asarray(weights)).tolist()
    for size in draws:
        qty = min(int(size), left)
        out.append(qty)
        left -= qty
        if left == 0:
            break
    return out


def _cooler_readings(
    trading: list[datetime],
    sold_by_hour: Mapping[datetime, list[datetime]],
    faults: list[tuple[datetime, datetime, float]],
    rng: np.random.Generator,
) -> list[_Draft]:
    out: list[_Draft] = []
    for hour in trading:
        sales = sold_by_hour.get(hour, [])
        for q in range(4):
            a = hour + q * _COOLER_EVERY
            b = a + _COOLER_EVERY
            n_sales = sum(1 for s in sales if a <= s < b)
            doors = int(rng.poisson(0.5 + 1.2 * n_sales))
            temp = float(np.round(rng.normal(4.0, 0.6), 1))
            for start, end, fault_temp in faults:
                if start <= b and a < end:
                    temp = max(temp, fault_temp)
            out.append(
                _Draft(b, 4, CoolerTelemetry(door_openings=doors, temperature_c=min(max(temp, -30.0), 60.0)))
            )
    return out


# --- publishing --------------------------------------------------------------------------------


@dataclass
class PublishReport:
    """What a publisher sent; every event was acknowledged (MQTT PUBACK or stream ack)."""

    events: int
    seconds: float
    #: dropped by the stream as already stored (same device and seq)
    duplicates: int = 0
    per_store: dict[str, int] = field(default_factory=dict)
    #: MQTT: reconnections after a lost connection (a broker restart, a network cut)
    reconnects: int = 0
    #: MQTT: messages unacknowledged when a connection dropped, hence re-sent (an upper bound of
    #: the duplicates a broker restart can leave in the stream)
    resent: int = 0

    @property
    def rate(self) -> float:
        """Events per second, first publish to last acknowledgement."""
        return self.events / self.seconds if self.seconds > 0 else 0.0


CredentialsFor = Callable[[str], tuple[str, str]]


def registry_credentials(settings: Settings) -> CredentialsFor:
    """Per-store MQTT (username, password) from the device registry of ``settings``."""
    registry = CredentialRegistry(settings)

    def get(store_id: str) -> tuple[str, str]:
        c = registry.get(store_id)
        return c.username, c.password

    return get


class _StoreClient:
    """One MQTT connection per store, logged in with the store's credentials.

    Survives a broker restart: a persistent session (``clean_session=False``) under a stable client
    id, paho's reconnect loop with backoff, and paho's outgoing queue, which keeps every QoS 1
    message until its PUBACK and re-sends those still unacknowledged (DUP flag) after a reconnect.
    """

    def __init__(
        self,
        store_id: str,
        *,
        host: str,
        port: int,
        username: str,
        password: str,
        inflight: int,
        persistent: bool,
        backoff_s: tuple[int, int],
    ) -> None:
        self.store_id = store_id
        self.connected = threading.Event()
        self.refused: str | None = None
        self.sent = 0
        self.acked = 0
        self.reconnects = 0
        #: messages published but not acknowledged when a connection dropped (re-sent after it)
        self.resent = 0
        #: monotonic time the connection was lost; None while connected
        self.down_since: float | None = None
        self.last_disconnect: str | None = None
        self._ever_connected = False
        self._lock = threading.Lock()
        client_id = (
            mqtt_client_id(store_id) if persistent else f"{mqtt_client_id(store_id)}-{uuid.uuid4().hex[:8]}"
        )
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv311,
            clean_session=not persistent,
        )
        self.client.username_pw_set(username, password)
        self.client.max_inflight_messages_set(inflight)
        self.client.max_queued_messages_set(0)  # unbounded: nothing is dropped while disconnected
        low, high = backoff_s
        self.client.reconnect_delay_set(min_delay=low, max_delay=high)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish
        self.client.connect_async(host, port, keepalive=30)
        self.client.loop_start()

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        with self._lock:
            if getattr(reason, "is_failure", False):
                self.refused = str(reason)
            else:
                self.refused = None
                if self._ever_connected:
                    self.reconnects += 1
                self._ever_connected = True
                self.down_since = None
        self.connected.set()

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        with self._lock:
            self.last_disconnect = str(reason)
            if self.down_since is None:  # a live connection dropped (not a failed reconnect)
                self.down_since = time.monotonic()
                self.resent += self.sent - self.acked

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        with self._lock:
            self.acked += 1

    def publish(self, topic: str, data: bytes) -> None:
        with self._lock:
            self.sent += 1
        info = self.client.publish(topic, data, qos=1)
        if info.rc not in _QUEUED:
            raise ServiceUnavailableError(
                f"MQTT publish on {topic} for store {self.store_id} failed: {mqtt.error_string(info.rc)}",
                hint="the message was not queued; check the broker and the client's limits",
            )

    def unacked(self) -> int:
        with self._lock:
            return self.sent - self.acked


def _close_all(clients: Iterable[_StoreClient]) -> None:
    """Disconnect every client first (a reconnect wait ends within a second of it), then join
    their network threads: closing them one by one would wait for each backoff in turn."""
    clients = list(clients)
    for c in clients:
        c.client.disconnect()
    for c in clients:
        c.client.loop_stop()


#: publish return codes for a message paho keeps and sends (now, or once reconnected)
_QUEUED: Final = (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN, mqtt.MQTT_ERR_CONN_LOST)


def mqtt_client_id(store_id: str) -> str:
    """The stable MQTT client id of a store's connection (its persistent session's key)."""
    return f"abasto-pos-{store_id}"


def publish_mqtt(
    events: Sequence[DeviceEvent],
    *,
    host: str,
    port: int,
    credentials: CredentialsFor,
    speed: float | None = None,
    inflight: int = 500,
    timeout_s: float = 120.0,
    persistent: bool = True,
    outage_s: float = 60.0,
    backoff_s: tuple[int, int] = (1, 8),
) -> PublishReport:
    """Publish like the devices do: QoS 1 to ``pos/<store_id>/<device_id>``, one connection per store.

    ``speed`` None = as fast as the broker acknowledges; ``speed`` N = N× real time (event-time gaps
    divided by N). Returns when every message is acknowledged (PUBACK).

    Broker restarts are survived: each connection reconnects with exponential backoff
    (``backoff_s`` = first and longest wait, seconds), messages published while it is down are
    queued, and every message not yet acknowledged when the connection dropped is re-sent; with
    ``persistent`` the session is kept under a stable client id (:func:`mqtt_client_id`). A re-sent
    message the broker had already stored before it went down is stored twice: MQTT 3.1.1 carries
    no message id for JetStream's duplicate window, so readers drop it by (device_id, seq)
    (``PublishReport.resent`` bounds how many there can be). One publisher per store at a time: a
    second connection under the same client id takes the session over (``persistent=False`` gives
    each connection a unique id and a clean session).

    Raises:
        ServiceUnavailableError: a connection refused or not made at the start; a connection down
            for longer than ``outage_s``; or messages still unacknowledged after ``timeout_s``.
    """
    store_ids = sorted({e.store_id for e in events})
    clients: dict[str, _StoreClient] = {}
    try:
        for s in store_ids:
            user, password = credentials(s)
            clients[s] = _StoreClient(
                s,
                host=host,
                port=port,
                username=user,
                password=password,
                inflight=inflight,
                persistent=persistent,
                backoff_s=backoff_s,
            )
        deadline = time.monotonic() + timeout_s
        for c in clients.values():
            if not c.connected.wait(max(0.0, deadline - time.monotonic())) or c.refused:
                why = c.refused or f"no connection in {timeout_s:.0f}s"
                raise ServiceUnavailableError(
                    f"MQTT connection for store {c.store_id} to {host}:{port}: {why}",
                    hint="is the broker up (abasto up) and the store registered (abasto devices add)?",
                )
        payloads = [(e.store_id, pos_topic(e.store_id, e.device_id), encode_event(e)) for e in events]
        started = time.perf_counter()
        first_time = events[0].event_time if events else None
        for i, (event, (store_id, topic, data)) in enumerate(zip(events, payloads, strict=True)):
            if speed is not None and first_time is not None:
                due = started + (event.event_time - first_time).total_seconds() / speed
                pause = due - time.perf_counter()
                if pause > 0:
                    time.sleep(pause)
            if i % 256 == 0:
                _check_outage(clients.values(), host, port, outage_s)
            clients[store_id].publish(topic, data)
        while any(c.unacked() > 0 for c in clients.values()):
            _check_outage(clients.values(), host, port, outage_s)
            if time.monotonic() > deadline:
                missing = sum(c.unacked() for c in clients.values())
                raise ServiceUnavailableError(
                    f"{missing} MQTT messages to {host}:{port} not acknowledged in {timeout_s:.0f}s",
                    hint="the broker is slow or flapping; raise timeout_s or check its log",
                )
            time.sleep(0.005)
        return PublishReport(
            events=len(events),
            seconds=time.perf_counter() - started,
            per_store={s: clients[s].sent for s in store_ids},
            reconnects=sum(c.reconnects for c in clients.values()),
            resent=sum(c.resent for c in clients.values()),
        )
    finally:
        _close_all(clients.values())


def _check_outage(clients: Iterable[_StoreClient], host: str, port: int, outage_s: float) -> None:
    """Raise if a connection has been down for longer than ``outage_s``."""
    now = time.monotonic()
    for c in clients:
        since = c.down_since
        if since is not None and now - since > outage_s:
            why = c.refused or c.last_disconnect or "connection lost"
            raise ServiceUnavailableError(
                f"MQTT broker {host}:{port} unreachable for store {c.store_id} for {now - since:.0f}s "
                f"({why}); {c.unacked()} of its messages not acknowledged",
                hint="start the broker (abasto up) or raise outage_s; unacknowledged messages may be lost",
            )


async def publish_stream(
    events: Sequence[DeviceEvent], stream: EventStream, *, batch: int = 2_000
) -> PublishReport:
    """Publish straight into the stream port (subject ``pos.<store>.<device>``, msg id = device:seq)."""
    started = time.perf_counter()
    per_store: dict[str, int] = {}
    duplicates = 0
    for i in range(0, len(events), batch):
        chunk = events[i : i + batch]
        msgs = [
            OutgoingMessage(pos_subject(e.store_id, e.device_id), encode_event(e), msg_id=e.msg_id)
            for e in chunk
        ]
        results = await stream.publish_batch(msgs)
        duplicates += sum(1 for r in results if r.duplicate)
        for e in chunk:
            per_store[e.store_id] = per_store.get(e.store_id, 0) + 1
    seconds = time.perf_counter() - started
    return PublishReport(events=len(events), seconds=seconds, duplicates=duplicates, per_store=per_store)


# --- table helpers -------------------------------------------------------------------------------


def _rows(table: Any) -> list[dict[str, Any]]:
    if table is None:
        return []
    if hasattr(table, "to_pylist"):
        out: list[dict[str, Any]] = table.to_pylist()
        return out
    return [dict(r) for r in table]


def _between(table: Any, column: str, start: datetime, end: datetime) -> Any:
    """Rows with start <= column < end, filtered in Arrow before any row becomes a Python dict."""
    if not isinstance(table, pa.Table):
        return table
    col = table[column]
    lo, hi = pa.scalar(start, col.type), pa.scalar(end, col.type)
    return table.filter(pc.and_(pc.greater_equal(col, lo), pc.less(col, hi)))


def _filter(table: Any, store_ids: list[str]) -> Any:
    return table.filter(pc.is_in(table["store_id"], value_set=pa.array(store_ids, pa.string())))


def _utc(value: Any) -> datetime:
    if not isinstance(value, datetime):
        raise TypeError(f"expected a datetime, got {type(value).__name__}")
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)
