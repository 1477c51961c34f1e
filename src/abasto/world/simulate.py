"""Inventory simulation: visits and orders, D+1 deliveries with fill rate, sales capped by stock,
and the ground truth of every stockout episode.

Within an hour: the truck's delivery (if any) arrives at the top of the hour, then the rep's visit
(if any) counts stock and takes the order, then customers arrive uniformly over the hour. When the
units wanted exceed the units available, stock hits zero at
``hour_start + 60 min × available / wanted`` and the rest of the hour's demand is lost. An episode
starts there and ends at the next delivery of that SKU; it is kept if some demand was lost.

Order rule (DOMAIN.md §5): at a visit, target = expected demand until the delivery after next ×
the shopkeeper's habit (1.25–1.55) with noise; order = target − on hand − still in transit, capped
by the space left (cooler + backroom). Shopkeepers expect every day to look like their average
day (they do not plan for weekends, heat, paydays or promotions), nudged by last week's sales,
which their own stockouts censor; reps of big customers use an informed forecast instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

import numpy as np
from numpy.typing import NDArray

from abasto.world.assortment import Pairs
from abasto.world.catalog import Sku
from abasto.world.network import Route, Stores
from abasto.world.operations import OpsNoise, Visits, ops_noise, plan_visits
from abasto.world.timegrid import US_PER_HOUR, TimeGrid

REASON_NONE: Final = 0
REASON_FILL: Final = 1
REASON_EMPTIES: Final = 2
#: hours of past sales a shopkeeper looks at to adjust their usual order
_RECENT_HOURS: Final = 7 * 24
#: reps of big customers order the informed forecast × this
_REP_SAFETY: Final = 1.4


@dataclass(frozen=True)
class OrderRecord:
    store: int
    day: int
    hour: int
    #: grid hour of the delivery, or -1 if it falls after the grid
    delivery_hour: int
    delivery_day: int
    pairs: NDArray[np.int64]
    qty: NDArray[np.int64]
    delivered: NDArray[np.int64]
    reason: NDArray[np.int64]


@dataclass(frozen=True)
class VisitRecord:
    """A rep's visit to a big customer: stock counted and the suggested order."""

    store: int
    day: int
    hour: int
    pairs: NDArray[np.int64]
    stock: NDArray[np.int64]
    suggested: NDArray[np.int64]
    empties_short: NDArray[np.bool_]


@dataclass
class SimResult:
    """[output hour, pair] matrices for hours [first_hour, end_hour), plus event records."""

    on_hand_start: NDArray[np.int32]
    delivered: NDArray[np.int32]
    sold: NDArray[np.int32]
    #: epoch µs at which stock hit zero in the hour, -1 if it did not
    stockout_us: NDArray[np.int64]
    #: (pair, start µs, end µs or -1 if still out, units lost within the output window)
    episodes: list[tuple[int, int, int, int]] = field(default_factory=list)
    orders: list[OrderRecord] = field(default_factory=list)
    visits: list[VisitRecord] = field(default_factory=list)


@dataclass(frozen=True)
class SimInput:
    seed: int
    grid: TimeGrid
    stores: Stores
    routes: list[Route]
    pairs: Pairs
    skus: tuple[Sku, ...]
    #: [hour, pair] units wanted
    demand: NDArray[np.int32]
    #: [hour, pair] the shopkeeper's and the rep's expected units per hour
    typical: NDArray[np.float64]
    informed: NDArray[np.float64]
    #: [region, day, sku] share of ordered units the DC can load
    dc_fill: NDArray[np.float64]
    #: output window [first_hour, end_hour); visits happen up to last_visit_day
    first_hour: int
    end_hour: int
    last_visit_day: int


class _Simulator:
    def __init__(self, inp: SimInput) -> None:
        self.inp = inp
        n_pairs, grid = len(inp.pairs), inp.grid
        zeros_row = np.zeros((1, n_pairs))
        self.cum_typ = np.vstack([zeros_row, np.cumsum(inp.typical, axis=0)])
        self.cum_inf = np.vstack([zeros_row, np.cumsum(inp.informed, axis=0)])
        self.visits: Visits = plan_visits(inp.seed, grid, inp.stores, inp.routes, inp.last_visit_day)
        self.noise: OpsNoise = ops_noise(inp.seed, grid.n_days, inp.stores, inp.pairs, inp.skus)
        self.store_pairs = np.searchsorted(inp.pairs.store, np.arange(len(inp.stores) + 1))
        self.returnable = np.array([s.returnable for s in inp.skus], dtype=np.bool_)[inp.pairs.sku]
        self.region_pair = inp.stores.region[inp.pairs.store]
        self.arrive = np.zeros((grid.n_hours, n_pairs), dtype=np.int32)
        self.arrive_ordered = np.zeros((grid.n_hours, n_pairs), dtype=np.int32)
        self.sold_all = np.zeros((inp.end_hour, n_pairs), dtype=np.int32)
        # start stocked with a few days of usual demand (the burn-in settles the rest)
        first_days = self.cum_typ[min(96, grid.n_hours)]
        self.on_hand = np.minimum(inp.pairs.capacity, np.ceil(first_days)).astype(np.int64)
        self.pending = np.zeros(n_pairs, dtype=np.int64)
        self.open_ep = np.zeros(n_pairs, dtype=np.bool_)
        self.ep_start = np.zeros(n_pairs, dtype=np.int64)
        self.ep_lost = np.zeros(n_pairs, dtype=np.int64)
        n_out = inp.end_hour - inp.first_hour
        self.res = SimResult(
            on_hand_start=np.zeros((n_out, n_pairs), dtype=np.int32),
            delivered=np.zeros((n_out, n_pairs), dtype=np.int32),
            sold=np.zeros((n_out, n_pairs), dtype=np.int32),
            stockout_us=np.full((n_out, n_pairs), -1, dtype=np.int64),
        )

    def run(self) -> SimResult:
        v, n_visits = 0, self.visits.hour.shape[0]
        for h in range(self.inp.end_hour):
            arrived = self._truck(h)
            while v < n_visits and self.visits.hour[v] == h:
                self._visit(v)
                v += 1
            self._customers(h, arrived)
        for p in np.flatnonzero(self.open_ep & (self.ep_lost > 0)).tolist():
            self.res.episodes.append((p, int(self.ep_start[p]), -1, int(self.ep_lost[p])))
        return self.res

    def _truck(self, h: int) -> NDArray[np.int64]:
        arrived: NDArray[np.int64] = np.asarray(self.arrive[h], dtype=np.int64)
        self.pending -= self.arrive_ordered[h]
        closing = self.open_ep & (arrived > 0)
        if closing.any():
            hour_us = int(self.inp.grid.hour_us[h])
            for p in np.flatnonzero(closing & (self.ep_lost > 0)).tolist():
                self.res.episodes.append((p, int(self.ep_start[p]), hour_us, int(self.ep_lost[p])))
            self.open_ep &= ~closing
        self.on_hand = self.on_hand + arrived
        return arrived

    def _customers(self, h: int, arrived: NDArray[np.int64]) -> None:
        inp, on_hand = self.inp, self.on_hand
        want = inp.demand[h].astype(np.int64)
        sold = np.minimum(want, on_hand)
        lost = want - sold
        hit = (on_hand > 0) & (want >= on_hand) & (want > 0)
        in_window = h >= inp.first_hour
        k = h - inp.first_hour
        if in_window:
            self.res.on_hand_start[k] = on_hand - arrived
            self.res.delivered[k] = arrived
            self.res.sold[k] = sold
        if hit.any():
            frac = np.where(hit, on_hand / np.maximum(want, 1), 0.0)
            at = int(inp.grid.hour_us[h]) + np.floor(frac * US_PER_HOUR).astype(np.int64)
            if in_window:
                self.res.stockout_us[k] = np.where(hit, at, -1)
            self.ep_start = np.where(hit, at, self.ep_start)
        counted = lost if in_window else np.zeros_like(lost)
        self.ep_lost = np.where(hit, counted, self.ep_lost + np.where(self.open_ep, counted, 0))
        self.open_ep |= hit
        self.sold_all[h] = sold
        self.on_hand = on_hand - sold

    def _target(self, i: int, d: int, h: int, until: int, ps: NDArray[np.int64]) -> NDArray[np.float64]:
        """Units the store wants to hold for the window [h, until)."""
        noise, stores = self.noise, self.inp.stores
        if stores.big_customer[i]:
            expected = (self.cum_inf[until, ps] - self.cum_inf[h, ps]) * noise.rep_noise[d, ps]
            return np.asarray(expected * _REP_SAFETY, dtype=np.float64)
        h0 = max(0, h - _RECENT_HOURS)
        usual = self.cum_typ[h, ps] - self.cum_typ[h0, ps]
        recent = self.sold_all[h0:h, ps].sum(axis=0)
        ratio = np.where(usual > 0.5, np.clip(recent / np.maximum(usual, 1e-9), 0.5, 1.6), 1.0)
        expected = (self.cum_typ[until, ps] - self.cum_typ[h, ps]) * (0.35 + 0.65 * ratio)
        return np.asarray(expected * stores.safety[i] * noise.order_noise[d, ps], dtype=np.float64)

    def _visit(self, v: int) -> None:
        inp, vs, noise = self.inp, self.visits, self.noise
        h, i, d = int(vs.hour[v]), int(vs.store[v]), int(vs.day[v])
        dh, dd, until = int(vs.delivery_hour[v]), int(vs.delivery_day[v]), int(vs.cover_until[v])
        ps = np.arange(int(self.store_pairs[i]), int(self.store_pairs[i + 1]))
        if ps.size == 0:
            return
        stock = self.on_hand[ps]
        space = np.maximum(inp.pairs.capacity[ps] - stock - self.pending[ps], 0)
        target = self._target(i, d, h, until, ps)
        suggested = np.clip(np.ceil(target - stock - self.pending[ps]), 0, space).astype(np.int64)
        big = bool(inp.stores.big_customer[i])
        qty = suggested.copy()
        if noise.store_skip[d, i]:
            qty[:] = 0
        if not big:
            qty[noise.line_skip[d, ps]] = 0
        empties_short = self.returnable[ps] & (noise.empties[d, ps] < 1.0)
        if big and h >= inp.first_hour:
            self.res.visits.append(VisitRecord(i, d, h, ps, stock.copy(), suggested, empties_short))
        if not qty.any():
            return
        fill = noise.line_fill[d, ps]
        if 0 <= dd < inp.dc_fill.shape[1]:
            fill = fill * inp.dc_fill[self.region_pair[ps], dd, inp.pairs.sku[ps]]
        delivered = np.floor(qty * fill + 1e-9).astype(np.int64)
        reason = np.where(delivered < qty, REASON_FILL, REASON_NONE)
        cut = np.floor(qty * noise.empties[d, ps] + 1e-9).astype(np.int64)
        by_empties = empties_short & (cut < delivered)
        delivered = np.where(by_empties, cut, delivered)
        reason = np.where(by_empties, REASON_EMPTIES, reason)
        if dh >= 0:
            self.arrive[dh, ps] += delivered
            self.arrive_ordered[dh, ps] += qty
            self.pending[ps] += qty
        keep = qty > 0
        self.res.orders.append(
            OrderRecord(i, d, h, dh, dd, ps[keep], qty[keep], delivered[keep], reason[keep])
        )


def simulate(inp: SimInput) -> SimResult:
    """Run hours [0, end_hour); record outputs for hours [first_hour, end_hour)."""
    return _Simulator(inp).run()
