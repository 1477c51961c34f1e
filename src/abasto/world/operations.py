"""Operational plans and randomness, drawn before the simulation runs.

Visits follow each route's weekdays at the store's slot in the route; the order taken at a visit
is delivered D+1 in the morning and must last until the delivery after next. Randomness that
perturbs operations — shopkeeper noise, forgotten lines, skipped orders, partial fills, lack of
empties for returnables, DC shortages (likelier in heat) — is drawn per store, pair or region
stream so that it does not depend on how many other entities exist.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from abasto.world.assortment import Pairs
from abasto.world.catalog import Sku
from abasto.world.network import Route, Stores
from abasto.world.rng import stream
from abasto.world.timegrid import TimeGrid


@dataclass(frozen=True)
class Visits:
    """Visit events sorted by hour (one per store visit)."""

    hour: NDArray[np.int64]
    store: NDArray[np.int64]
    day: NDArray[np.int64]
    delivery_hour: NDArray[np.int64]
    delivery_day: NDArray[np.int64]
    #: grid hour of the delivery after next (end of the window the order must cover)
    cover_until: NDArray[np.int64]


def _delivery_hour(grid: TimeGrid, stores: Stores, i: int, day: int, jitter: NDArray[np.int64]) -> int:
    if day >= grid.n_days:
        return -1
    hour = min(int(stores.delivery_hour[i] + jitter[day]), int(stores.closes[i]) - 1)
    return int(grid.index[day, hour])


def plan_visits(seed: int, grid: TimeGrid, stores: Stores, routes: list[Route], last_day: int) -> Visits:
    """Every store visit on its route's weekdays up to ``last_day`` (inclusive)."""
    rows: list[tuple[int, int, int, int, int, int]] = []
    weekday = grid.day_weekday
    for i in range(len(stores)):
        days = routes[int(stores.route[i])].weekdays
        jitter = stream(seed, "delivery-jitter", i).integers(0, 2, grid.n_days)
        visit_days = [d for d in range(grid.n_days) if int(weekday[d]) in days]
        for k, d in enumerate(visit_days):
            if d > last_day:
                break
            h = int(grid.index[d, int(stores.visit_hour[i])])
            if h < 0:
                continue
            dh = _delivery_hour(grid, stores, i, d + 1, jitter)
            nxt = visit_days[k + 1] if k + 1 < len(visit_days) else grid.n_days
            cover = _delivery_hour(grid, stores, i, nxt + 1, jitter)
            rows.append((h, i, d, dh, d + 1, cover if cover >= 0 else grid.n_hours))
    rows.sort()
    arr = np.array(rows, dtype=np.int64).reshape(-1, 6)
    return Visits(arr[:, 0], arr[:, 1], arr[:, 2], arr[:, 3], arr[:, 4], arr[:, 5])


def dc_fill_rates(
    seed: int, heat: NDArray[np.float64], skus: tuple[Sku, ...]
) -> NDArray[np.float64]:
    """[region, day, sku] share of ordered units the DC can load; shortages are likelier in heat.

    ``heat`` is [region, day] in 0..1 (0 = normal, 1 = strong heat anomaly).
    """
    n_regions, n_days = heat.shape
    out = np.ones((n_regions, n_days, len(skus)))
    for r in range(n_regions):
        for j, sku in enumerate(skus):
            rng = stream(seed, "dc-fill", r, sku.sku)
            u, f = rng.random(n_days), rng.uniform(0.35, 0.85, n_days)
            short = u < 0.005 + 0.25 * heat[r]
            out[r, :, j] = np.where(short, f, 1.0)
    return out


@dataclass(frozen=True)
class OpsNoise:
    """Pre-drawn operational randomness, [day, pair] or [day, store]."""

    order_noise: NDArray[np.float64]
    line_skip: NDArray[np.bool_]
    line_fill: NDArray[np.float64]
    empties: NDArray[np.float64]
    rep_noise: NDArray[np.float64]
    store_skip: NDArray[np.bool_]


def ops_noise(seed: int, n_days: int, stores: Stores, pairs: Pairs, skus: tuple[Sku, ...]) -> OpsNoise:
    n = len(pairs)
    order_noise = np.empty((n_days, n))
    line_skip = np.empty((n_days, n), dtype=np.bool_)
    line_fill = np.empty((n_days, n))
    empties = np.empty((n_days, n))
    rep_noise = np.empty((n_days, n))
    for p in range(n):
        i, sku = int(pairs.store[p]), skus[int(pairs.sku[p])]
        rng = stream(seed, "ops", i, sku.sku)
        order_noise[:, p] = np.exp(rng.normal(0.0, 0.2, n_days))
        line_skip[:, p] = rng.random(n_days) < 0.03
        line_fill[:, p] = np.where(rng.random(n_days) < 0.015, rng.uniform(0.5, 0.95, n_days), 1.0)
        p_empties = (0.0 if not sku.returnable else (0.10 if stores.channel[i] in (0, 3) else 0.04))
        empties[:, p] = np.where(rng.random(n_days) < p_empties, rng.uniform(0.3, 0.8, n_days), 1.0)
        rep_noise[:, p] = np.exp(rng.normal(0.0, 0.10, n_days))
    store_skip = np.empty((n_days, len(stores)), dtype=np.bool_)
    for i in range(len(stores)):
        store_skip[:, i] = stream(seed, "skip", i).random(n_days) < stores.skip_prob[i]
    return OpsNoise(order_noise, line_skip, line_fill, empties, rep_noise, store_skip)
