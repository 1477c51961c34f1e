"""Keyed state per store×SKU: stock estimate, today's sales, velocity, episode."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

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
    #: (a frozenset: the empty one is shared, a set would cost 216 bytes a pair)
    episode: str = ""
    alerted: frozenset[str] = frozenset()
    #: detector memo (not state: rebuilt by evaluating): at ``calm_now``, with the window ending at
    #: ``calm_horizon`` and this expected-demand series, no stockout was in reach; cleared by any
    #: change of stock or of today's counters
    calm_now: datetime | None = None
    calm_horizon: datetime | None = None
    calm_series: object | None = None
    #: detector memo (not state): (since, from, until, series): with the silence counted from
    #: ``since`` and this expected-demand series, the units expected since then stay below the
    #: sales_stopped minimum at every instant from ``from`` to ``until`` (epoch seconds); keyed by
    #: what it depends on, so no change of the pair needs to clear it
    quiet: tuple[datetime, float, float, object] | None = None
    #: detector memo (not state): (until, evaluations, horizon or None, from): the store's hourly
    #: re-check of this pair, at any instant after ``from`` and up to ``until`` (epoch seconds)
    #: whose window ends at this horizon (None: any), ends as the one at ``from`` did: no alert,
    #: no change, this many evaluations counted; forgotten when an event touches the pair
    hold: tuple[float, int, datetime | None, float] | None = None

    def touch(self, at: datetime, local_day: date, midnight: datetime) -> None:
        """Advance the clock of the pair; roll today's counters at local midnight (``midnight``:
        the start of ``local_day``, shared by the pairs). An event is about to change the pair:
        its re-check timer no longer holds."""
        self.hold = None
        if self.day is None or local_day > self.day:
            self.day = local_day
            self.counting_since = max(midnight, self.first_seen_at)
            self.sales_today = 0
            self.calm_now = None
        if self.last_event_at is None or at > self.last_event_at:
            self.last_event_at = at

    def sale(self, at: datetime, qty: int, local_day: date) -> None:
        self.calm_now = None
        if self.on_hand is not None:
            # more sold than estimated: the estimate was low (uncounted stock), not negative stock
            self.on_hand = max(0.0, self.on_hand - qty)
        if local_day == self.day:
            self.sales_today += qty
        self.velocity.add(at, qty)
        if self.last_sale_at is None or at > self.last_sale_at:
            self.last_sale_at = at

    def delivery(self, at: datetime, qty: int) -> None:
        self.calm_now = None
        if self.on_hand is not None:
            self.on_hand += qty
        self.new_episode(at)

    def reading(self, at: datetime, on_hand: int, tolerance: float) -> None:
        """A counted/sensed stock level replaces the estimate; a rise above it is a replenishment."""
        self.calm_now = None
        if self.on_hand is not None and on_hand > self.on_hand + tolerance:
            self.new_episode(at)
        self.on_hand = float(on_hand)
        self.last_reading_at = at

    def new_episode(self, at: datetime) -> None:
        self.episode = f"r{at.isoformat()}"
        self.alerted = frozenset()
