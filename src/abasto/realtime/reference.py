"""What the processor knows about stores and SKUs: route, region, channel, case size, calendar."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from abasto.realtime.calendar import ReplenishmentCalendar
from abasto.realtime.tables import rows


@dataclass(frozen=True, slots=True)
class StoreInfo:
    store_id: str
    region_id: str | None = None
    route_id: str | None = None
    channel: str | None = None
    big_customer: bool | None = None


@dataclass(frozen=True)
class ReferenceData:
    """Slow-changing data the detector joins to each store×SKU (read-only)."""

    timezone: str
    calendar: ReplenishmentCalendar
    stores: Mapping[str, StoreInfo] = field(default_factory=dict)
    units_per_case: Mapping[str, int] = field(default_factory=dict)

    def store(self, store_id: str) -> StoreInfo:
        return self.stores.get(store_id) or StoreInfo(store_id)

    def case_size(self, sku: str) -> int:
        return max(1, int(self.units_per_case.get(sku, 1)))

    @classmethod
    def from_tables(
        cls,
        *,
        timezone: str,
        stores: Any,
        routes: Any,
        skus: Any,
        deliveries: Any | None = None,
        default_delivery_hour: int = 9,
    ) -> ReferenceData:
        store_rows = rows(stores)
        calendar = ReplenishmentCalendar.from_tables(
            routes, store_rows, timezone, deliveries=deliveries, default_delivery_hour=default_delivery_hour
        )
        infos = {
            str(s["store_id"]): StoreInfo(
                store_id=str(s["store_id"]),
                region_id=_opt(s.get("region_id")),
                route_id=_opt(s.get("route_id")),
                channel=_opt(s.get("channel")),
                big_customer=None if s.get("big_customer") is None else bool(s.get("big_customer")),
            )
            for s in store_rows
        }
        cases = {str(k["sku"]): int(k.get("units_per_case") or 1) for k in rows(skus)}
        return cls(timezone=timezone, calendar=calendar, stores=infos, units_per_case=cases)


def _opt(value: object) -> str | None:
    return None if value is None else str(value)
