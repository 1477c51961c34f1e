"""The device simulator: hand-made world tables → device events that reproduce them exactly."""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pyarrow as pa
import pytest

from abasto.contracts.events import (
    CoolerTelemetry,
    DeliveryReceipt,
    DeviceEvent,
    Heartbeat,
    SaleScan,
    StockReading,
    decode_event,
    encode_event,
)
from abasto.devices.registry import CredentialRegistry
from abasto.devices.simulator import (
    PublishReport,
    expand_day,
    publish_mqtt,
    publish_stream,
    registry_credentials,
)
from abasto.errors import ServiceUnavailableError
from abasto.services import nats_connect_options, reload_nats
from abasto.settings import Settings
from abasto.stream.ephemeral import EphemeralNatsServer
from abasto.stream.jetstream import JetStreamEventStream
from abasto.stream.port import StreamSpec
from abasto.stream.topology import abasto_streams

TZ = ZoneInfo("America/Mexico_City")
TS = pa.timestamp("us", tz="UTC")
DAY_START = datetime(2026, 10, 14, tzinfo=TZ).astimezone(UTC)
DAY_END = DAY_START + timedelta(days=1)


def at(hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 10, 14, hour, minute, tzinfo=TZ).astimezone(UTC)


def _hourly_rows() -> list[dict[str, object]]:
    """S1 (tienda, 1 cooler) sells COLA 08–21h, gets 24 at 10:00, runs out of AGUA at 15:40.
    S2 (supermarket) sells big baskets. A row of the day before must be ignored."""
    rows: list[dict[str, object]] = []

    def add(
        store: str,
        sku: str,
        hour: int,
        sold: int,
        on_start: int,
        delivered: int = 0,
        stockout: datetime | None = None,
        day: int = 14,
    ) -> None:
        start = datetime(2026, 10, day, hour, tzinfo=TZ).astimezone(UTC)
        rows.append(
            {
                "store_id": store,
                "sku": sku,
                "hour_start": start,
                "demand": float(sold),
                "sold_units": sold,
                "on_hand_start": on_start,
                "on_hand_end": on_start + delivered - sold,
                "delivered_units": delivered,
                "stockout_at": stockout,
            }
        )

    on = 20
    for h in range(8, 22):
        delivered = 24 if h == 10 else 0
        sold = [2, 3, 5, 4, 0, 6, 7, 3, 2, 5, 4, 1, 0, 2][h - 8]
        add("S1", "COLA", h, sold, on, delivered)
        on += delivered - sold
    on = 8
    for h in range(8, 22):
        sold, stock = min(1, on), None
        if h == 15:  # the last unit, 3 wanted: empty at 15:20 (world: 60 min × available / wanted)
            stock = at(15, 20)
        add("S1", "AGUA", h, sold, on, stockout=stock)
        on -= sold
    on = 400
    for h in range(7, 22):
        sold = 30 + (h % 5) * 7
        add("S2", "COLA", h, sold, on)
        on -= sold
    add("S1", "COLA", 20, 9, 9, day=13)  # yesterday: not part of the live day
    return rows


@pytest.fixture(scope="module")
def tables() -> dict[str, pa.Table]:
    hourly = pa.Table.from_pylist(
        _hourly_rows(),
        schema=pa.schema(
            [
                ("store_id", pa.string()),
                ("sku", pa.string()),
                ("hour_start", TS),
                ("demand", pa.float64()),
                ("sold_units", pa.int32()),
                ("on_hand_start", pa.int32()),
                ("on_hand_end", pa.int32()),
                ("delivered_units", pa.int32()),
                ("stockout_at", TS),
            ]
        ),
    )
    stores = pa.table(
        {
            "store_id": ["S1", "S2"],
            "channel": ["tienda", "supermarket"],
            "coolers": pa.array([1, 0], pa.int8()),
        }
    )
    skus = pa.table({"sku": ["COLA", "AGUA"], "price": [16.0, 12.0], "units_per_case": [24, 12]})
    faults = pa.Table.from_pylist(
        [{"store_id": "S1", "cooler_no": 1, "start_at": at(13), "end_at": at(14), "temp_c": 14.5}],
        schema=pa.schema(
            [
                ("store_id", pa.string()),
                ("cooler_no", pa.int8()),
                ("start_at", TS),
                ("end_at", TS),
                ("temp_c", pa.float64()),
            ]
        ),
    )
    return {"hourly": hourly, "stores": stores, "skus": skus, "cooler_faults": faults}


def expand(tables: dict[str, pa.Table], seed: int = 7) -> list[DeviceEvent]:
    return expand_day(
        hourly=tables["hourly"],
        stores=tables["stores"],
        skus=tables["skus"],
        cooler_faults=tables["cooler_faults"],
        day_start=DAY_START,
        day_end=DAY_END,
        seed=seed,
    )


def live_rows(tables: dict[str, pa.Table]) -> Iterator[dict[str, object]]:
    for r in tables["hourly"].to_pylist():
        if DAY_START <= r["hour_start"] < DAY_END:
            yield r


def hour_of(t: datetime) -> datetime:
    return t.replace(minute=0, second=0, microsecond=0)


def test_sales_reproduce_the_hourly_sold_units_exactly(tables: dict[str, pa.Table]) -> None:
    sold: Counter[tuple[str, str, datetime]] = Counter()
    for e in expand(tables):
        if isinstance(e.payload, SaleScan):
            sold[(e.store_id, e.payload.sku, hour_of(e.event_time))] += e.payload.qty
    expected = {(r["store_id"], r["sku"], r["hour_start"]): r["sold_units"] for r in live_rows(tables)}
    assert {k: v for k, v in expected.items() if v} == dict(sold)
    assert sum(sold.values()) == sum(expected.values())


def test_sale_times_respect_stockout_and_the_hour(tables: dict[str, pa.Table]) -> None:
    sales = [e for e in expand(tables) if isinstance(e.payload, SaleScan)]
    agua_1500 = [e for e in sales if e.payload.sku == "AGUA" and hour_of(e.event_time) == at(15)]
    assert agua_1500 and all(e.event_time <= at(15, 20) for e in agua_1500)
    assert all(e.event_time < at(22) for e in sales)
    assert not any(e.payload.sku == "AGUA" and e.event_time > at(15, 20) for e in sales)  # empty shelf after


def test_stock_ledger_from_the_events_matches_the_world(tables: dict[str, pa.Table]) -> None:
    """Opening count − sales + deliveries after each hour = the world's on_hand_end."""
    on_hand: dict[tuple[str, str], int] = {}
    events = expand(tables)
    for r in sorted(live_rows(tables), key=lambda r: (r["hour_start"], r["store_id"], r["sku"])):
        key = (r["store_id"], r["sku"])
        end = r["hour_start"] + timedelta(hours=1)
        for e in events:
            if e.store_id != key[0] or e.sku != key[1] or not (r["hour_start"] <= e.event_time < end):
                continue
            p = e.payload
            if isinstance(p, StockReading) and key not in on_hand:
                on_hand[key] = p.on_hand
            elif isinstance(p, StockReading):
                assert p.on_hand == on_hand[key]  # readings after deliveries agree with the ledger
            elif isinstance(p, SaleScan):
                on_hand[key] -= p.qty
            elif isinstance(p, DeliveryReceipt):
                on_hand[key] += p.qty
        assert on_hand[key] == r["on_hand_end"], (key, r["hour_start"])


def test_opening_counts_deliveries_and_readings(tables: dict[str, pa.Table]) -> None:
    events = expand(tables)
    s1 = [e for e in events if e.store_id == "S1"]
    openings = [e for e in s1 if isinstance(e.payload, StockReading) and e.event_time == at(8)]
    assert sorted((e.payload.sku, e.payload.on_hand) for e in openings) == [("AGUA", 8), ("COLA", 20)]
    (delivery,) = [e for e in s1 if isinstance(e.payload, DeliveryReceipt)]
    assert (delivery.event_time, delivery.payload.sku, delivery.payload.qty) == (at(10), "COLA", 24)
    after = s1[s1.index(delivery) + 1]
    assert isinstance(after.payload, StockReading) and after.payload.sku == "COLA"
    on_hand_1000 = 20 - 2 - 3
    assert after.payload.on_hand == on_hand_1000 + 24
    first_sale_1000 = min(
        e.event_time for e in s1 if isinstance(e.payload, SaleScan) and e.event_time >= at(10)
    )
    assert first_sale_1000 >= delivery.event_time


def test_cooler_telemetry_and_heartbeats(tables: dict[str, pa.Table]) -> None:
    events = expand(tables)
    coolers = [e for e in events if isinstance(e.payload, CoolerTelemetry)]
    assert {e.store_id for e in coolers} == {"S1"}  # S2 has no cooler
    assert len(coolers) == 4 * 14  # every 15 min of 14 trading hours
    assert all(e.event_time.minute % 15 == 0 for e in coolers)
    hot = [e.payload.temperature_c for e in coolers if at(13, 15) <= e.event_time <= at(14)]
    assert hot and min(hot) >= 14.5
    beats = Counter(e.store_id for e in events if isinstance(e.payload, Heartbeat))
    assert beats == {"S1": 24, "S2": 24}


def test_ticket_sizes_by_channel(tables: dict[str, pa.Table]) -> None:
    sizes: dict[str, list[int]] = defaultdict(list)
    for e in expand(tables):
        if isinstance(e.payload, SaleScan):
            sizes[e.store_id].append(e.payload.qty)
    assert max(sizes["S1"]) <= 6 and Counter(sizes["S1"]).most_common(1)[0][0] == 1
    assert max(sizes["S2"]) > 3  # supermarket baskets
    assert all(q >= 1 for q in sizes["S1"] + sizes["S2"])
    assert {
        e.payload.price for e in expand(tables) if isinstance(e.payload, SaleScan) and e.payload.sku == "AGUA"
    } == {12.0}


def test_sorted_by_time_with_increasing_seq_per_device(tables: dict[str, pa.Table]) -> None:
    events = expand(tables)
    assert [e.event_time for e in events] == sorted(e.event_time for e in events)
    per_device: dict[str, list[int]] = defaultdict(list)
    for e in events:
        per_device[e.device_id].append(e.seq)
        assert e.device_id == f"dev-{e.store_id}-1"
    assert set(per_device) == {"dev-S1-1", "dev-S2-1"}
    for seqs in per_device.values():
        assert seqs == list(range(1, len(seqs) + 1))
    assert all(DAY_START <= e.event_time < DAY_END for e in events)


def test_deterministic_by_seed_and_valid_on_the_wire(tables: dict[str, pa.Table]) -> None:
    a, b, c = expand(tables, seed=7), expand(tables, seed=7), expand(tables, seed=8)
    assert [encode_event(e) for e in a] == [encode_event(e) for e in b]
    assert [encode_event(e) for e in a] != [encode_event(e) for e in c]
    assert all(decode_event(encode_event(e)) == e for e in a)


async def test_publish_stream_stores_each_event_once(tables: dict[str, pa.Table], tmp_path: Path) -> None:
    events = expand(tables)
    with EphemeralNatsServer(tmp_path / "nats") as server:
        async with JetStreamEventStream(server.url) as stream:
            await stream.ensure_streams([StreamSpec("POS", ("pos.>",), duplicate_window_s=60)])
            report = await publish_stream(events, stream, batch=500)
            again = await publish_stream(events[:100], stream)  # a device re-sending
            state = await stream.stream_state("POS")
    assert report.events == len(events) and report.duplicates == 0 and report.rate > 0
    assert report.per_store["S1"] + report.per_store["S2"] == len(events)
    assert again.duplicates == 100
    assert state.messages == len(events)


@pytest.mark.services
async def test_publish_mqtt_paced_at_n_times_real_time(
    tables: dict[str, pa.Table], embedded_services: Settings
) -> None:
    settings = embedded_services
    window = [e for e in expand(tables) if e.store_id == "S1" and at(8) <= e.event_time < at(8, 20)]
    span_s = (window[-1].event_time - window[0].event_time).total_seconds()
    CredentialRegistry(settings).register_stores(["S1"])
    reload_nats(settings)
    async with JetStreamEventStream.from_connect_options(nats_connect_options(settings)) as stream:
        await stream.ensure_streams(abasto_streams(settings.nats))
        start = (await stream.stream_state("POS")).last_seq + 1
        report = await asyncio.to_thread(
            _retrying,
            lambda: publish_mqtt(
                window,
                host=settings.nats.host,
                port=settings.nats.mqtt_port,
                credentials=registry_credentials(settings),
                speed=600.0,
            ),
        )
        consumer = await stream.consumer("POS", f"paced-{start}", start_seq=start, filter_subject="pos.S1.>")
        got: list[bytes] = []
        for _ in range(20):
            got += [m.data for m in await consumer.fetch(100, timeout_s=0.5)]
            if len(got) >= len(window):
                break
    assert report.events == len(window) and report.per_store == {"S1": len(window)}
    assert report.seconds >= 0.9 * span_s / 600.0
    assert [decode_event(d) for d in got] == window  # in order, byte-exact events


def _retrying(publish: Callable[[], PublishReport]) -> PublishReport:
    """Right after a reload the server may not know the new store user yet."""
    for _ in range(30):
        try:
            return publish()
        except ServiceUnavailableError:
            time.sleep(0.3)
    return publish()
