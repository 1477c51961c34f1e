"""When each store is replenished next: its route's visit days + delivery lag, at its delivery hour.

Presell (DOMAIN.md §1, §5): the rep takes the order on a visit day and the truck delivers D+lag
(D+1) in the morning. A store visited on Monday that runs out on Saturday waits until Tuesday.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from abasto.realtime.tables import rows

#: look this many days ahead for a delivery before giving up
_HORIZON_DAYS = 21


@dataclass(frozen=True, slots=True)
class StoreSchedule:
    visit_weekdays: frozenset[int]  # 0 = Monday, local
    delivery_lag_days: int = 1
    delivery_hour: int = 9  # local hour of the truck's arrival


class ReplenishmentCalendar:
    """Next delivery instants per store, in the bottler's local time zone."""

    def __init__(self, schedules: Mapping[str, StoreSchedule], timezone: str) -> None:
        self._schedules = dict(schedules)
        self._tz = ZoneInfo(timezone)
        #: (store, count) → (computed for instants from, result): valid until result[0]
        self._memo: dict[tuple[str, int], tuple[datetime, list[datetime]]] = {}

    def schedule(self, store_id: str) -> StoreSchedule | None:
        return self._schedules.get(store_id)

    def deliveries_after(self, store_id: str, after: datetime, count: int = 1) -> list[datetime]:
        """The next ``count`` delivery instants strictly after ``after`` (fewer if none scheduled)."""
        memo = self._memo.get((store_id, count))
        if memo is not None and memo[1] and memo[0] <= after < memo[1][0]:
            return list(memo[1])
        found = self._compute(store_id, after, count)
        self._memo[(store_id, count)] = (after, found)
        return list(found)

    def _compute(self, store_id: str, after: datetime, count: int) -> list[datetime]:
        sched = self._schedules.get(store_id)
        if sched is None or not sched.visit_weekdays or count <= 0:
            return []
        tz_after = after.astimezone(self._tz)
        out: list[datetime] = []
        first_visit = tz_after.date() - timedelta(days=sched.delivery_lag_days)
        for offset in range(_HORIZON_DAYS + sched.delivery_lag_days + 1):
            visit = first_visit + timedelta(days=offset)
            if visit.weekday() not in sched.visit_weekdays:
                continue
            at = _local(visit + timedelta(days=sched.delivery_lag_days), sched.delivery_hour, self._tz)
            if at > after:
                out.append(at.astimezone(after.tzinfo))
                if len(out) == count:
                    break
        return out

    def next_delivery(self, store_id: str, after: datetime) -> datetime | None:
        found = self.deliveries_after(store_id, after, 1)
        return found[0] if found else None

    @classmethod
    def from_tables(
        cls,
        routes: Any,
        stores: Any,
        timezone: str,
        *,
        deliveries: Any | None = None,
        default_delivery_hour: int = 9,
    ) -> ReplenishmentCalendar:
        """Build from the world's ``routes`` and ``stores`` tables (pyarrow or pandas).

        The delivery hour is the store's ``delivery_hour`` column if present, else the most
        frequent local hour of its past ``deliveries`` (``store_id``, ``delivered_at``), else the
        default, but never before the store opens.
        """
        tz = ZoneInfo(timezone)
        by_route = {
            str(r["route_id"]): (
                frozenset(int(d) for d in (r["visit_weekdays"] or ())),
                int(r.get("delivery_lag_days") or 1),
            )
            for r in rows(routes)
        }
        observed = _observed_delivery_hours(rows(deliveries), tz) if deliveries is not None else {}
        schedules: dict[str, StoreSchedule] = {}
        for s in rows(stores):
            store_id = str(s["store_id"])
            route = by_route.get(str(s.get("route_id")))
            if route is None:
                continue
            hour = s.get("delivery_hour")
            if hour is None:
                hour = observed.get(store_id, default_delivery_hour)
            opens = s.get("opens_hour")
            if opens is not None:
                hour = max(int(hour), int(opens))
            schedules[store_id] = StoreSchedule(
                visit_weekdays=route[0], delivery_lag_days=route[1], delivery_hour=int(hour)
            )
        return cls(schedules, timezone)


def _observed_delivery_hours(deliveries: Iterable[Mapping[str, Any]], tz: ZoneInfo) -> dict[str, int]:
    counts: dict[str, Counter[int]] = {}
    for d in deliveries:
        at = d.get("delivered_at")
        if isinstance(at, datetime):
            counts.setdefault(str(d["store_id"]), Counter())[at.astimezone(tz).hour] += 1
    return {store: c.most_common(1)[0][0] for store, c in counts.items()}


def _local(day: date, hour: int, tz: ZoneInfo) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=tz)
