"""Test doubles for the processor: a flat demand pattern and a device that numbers its events."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

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
from abasto.realtime.calendar import ReplenishmentCalendar, StoreSchedule
from abasto.realtime.reference import ReferenceData, StoreInfo

TZ_NAME = "America/Mexico_City"  # UTC-6, no daylight saving time since 2022
TZ = ZoneInfo(TZ_NAME)
SKU = "COLA-600-NR"
OTHER = "AGUA-1L"


def local(day: int, hour: int, minute: int = 0) -> datetime:
    """2026-10-<day> <hour>:<minute> in Mexico City, as UTC (14 Oct 2026 is a Wednesday)."""
    return datetime(2026, 10, day, hour, minute, tzinfo=TZ).astimezone(UTC)


@dataclass
class FlatPattern:
    """``rates[(store, sku)]`` units/hour while open (08–22 local), 0 otherwise."""

    rates: Mapping[tuple[str, str], float]
    opens: int = 8
    closes: int = 22
    version: str = "test-7"

    def rate(self, store_id: str, sku: str, at: datetime) -> float:
        hour = at.astimezone(TZ).hour
        if not self.opens <= hour < self.closes:
            return 0.0
        return float(self.rates.get((store_id, sku), 0.0))

    def expected_units(self, store_id: str, sku: str, start: datetime, end: datetime) -> float:
        total, t = 0.0, start
        while t < end:
            nxt = min(t.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1), end)
            total += self.rate(store_id, sku, t) * (nxt - t) / timedelta(hours=1)
            t = nxt
        return total


@dataclass
class PoissonModelPattern(FlatPattern):
    """Also offers the model's own tail probability (Poisson), recording calls."""

    calls: list[tuple[str, str, float]] = field(default_factory=list)

    def prob_demand_at_least(
        self, store_id: str, sku: str, start: datetime, end: datetime, units: float
    ) -> float:
        self.calls.append((store_id, sku, units))
        mean = self.expected_units(store_id, sku, start, end)
        k = math.ceil(units - 1e-9)
        if k <= 0:
            return 1.0
        return 1.0 - sum(math.exp(-mean) * mean**j / math.factorial(j) for j in range(k))


def reference(daily: bool = True, case: int = 12) -> ReferenceData:
    """S1 (and S2) visited Mon–Sat (delivery next morning 09:00) or only on Mondays."""
    days = frozenset(range(6)) if daily else frozenset({0})
    schedules = {
        s: StoreSchedule(visit_weekdays=days, delivery_lag_days=1, delivery_hour=9) for s in ("S1", "S2")
    }
    return ReferenceData(
        timezone=TZ_NAME,
        calendar=ReplenishmentCalendar(schedules, TZ_NAME),
        stores={"S1": StoreInfo("S1", region_id="RG1", route_id="R01", channel="tienda", big_customer=True)},
        units_per_case={SKU: case, OTHER: 6},
    )


@dataclass
class Device:
    store_id: str
    device_id: str = ""
    seq: int = 0
    log: list[tuple[str, bytes]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.device_id = self.device_id or f"dev-{self.store_id}-1"

    @property
    def subject(self) -> str:
        return f"pos.{self.store_id}.{self.device_id}"

    def emit(self, at: datetime, payload: Payload) -> tuple[str, bytes]:
        self.seq += 1
        event = DeviceEvent(
            device_id=self.device_id, store_id=self.store_id, seq=self.seq, event_time=at, payload=payload
        )
        msg = (self.subject, encode_event(event))
        self.log.append(msg)
        return msg

    def stock(self, at: datetime, on_hand: int, sku: str = SKU) -> tuple[str, bytes]:
        return self.emit(at, StockReading(sku=sku, on_hand=on_hand))

    def sale(self, at: datetime, qty: int = 1, sku: str = SKU) -> tuple[str, bytes]:
        return self.emit(at, SaleScan(sku=sku, qty=qty, price=16.0))

    def delivery(self, at: datetime, qty: int, sku: str = SKU) -> tuple[str, bytes]:
        return self.emit(at, DeliveryReceipt(sku=sku, qty=qty))

    def heartbeat(self, at: datetime) -> tuple[str, bytes]:
        return self.emit(at, Heartbeat(battery_mv=3700))

    def cooler(self, at: datetime) -> tuple[str, bytes]:
        return self.emit(at, CoolerTelemetry(door_openings=3, temperature_c=4.5))
