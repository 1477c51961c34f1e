"""Keyed state per store×SKU: stock estimate, today's sales, velocity, episode."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from zoneinfo import ZoneInfo

from abasto.realtime.velocity import EwmaRate


@dataclass(slots=True)
class PairState:
    store_id: str
    sku: str
    first_seen_at: datetime
    velocity: EwmaRate
    #: last stock reading + deliveries − sales since (None until a reading arrives)
    on_hand: float | None = None
    last_reading_at: datetime | None = None
    last_event_at: datetime | None = None
    last_sale_at: datetime | None = None
    #: local date that ``sales_today`` counts, and the instant counting started that day
    day: date | None = None
    counting_since: datetime | None = None
    sales_today: int = 0
    #: marker of the current episode (reset by replenishment); alert kinds already raised in it
    episode: str = ""
    alerted: set[str] = field(default_factory=set)

    def touch(self, at: datetime, local_day: date, tz: ZoneInfo) -> None:
        """Advance the clock of the pair; roll today's counters at local midnight."""
        if self.day is None or local_day > self.day:
            self.day = local_day
            midnight = datetime(local_day.year, local_day.month, local_day.day, tzinfo=tz)
            self.counting_since = max(midnight, self.first_seen_at)
            self.sales_today = 0
        if self.last_event_at is None or at > self.last_event_at:
            self.last_event_at = at

    def sale(self, at: datetime, qty: int, local_day: date) -> None:
        if self.on_hand is not None:
            # more sold than estimated: the estimate was low (uncounted stock), not negative stock
            self.on_hand = max(0.0, self.on_hand - qty)
        if local_day == self.day:
            self.sales_today += qty
        self.velocity.add(at, qty)
        if self.last_sale_at is None or at > self.last_sale_at:
            self.last_sale_at = at

    def delivery(self, at: datetime, qty: int) -> None:
        if self.on_hand is not None:
            self.on_hand += qty
        self.new_episode(at)

    def reading(self, at: datetime, on_hand: int, tolerance: float) -> None:
        """A counted/sensed stock level replaces the estimate; a rise above it is a replenishment."""
        if self.on_hand is not None and on_hand > self.on_hand + tolerance:
            self.new_episode(at)
        self.on_hand = float(on_hand)
        self.last_reading_at = at

    def new_episode(self, at: datetime) -> None:
        self.episode = f"r{at.isoformat()}"
        self.alerted.clear()
