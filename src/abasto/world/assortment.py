"""Which SKUs each store carries, at what base daily rate, and how many fit (cooler + backroom).

Tiendas carry the core SKUs and fewer of the rest (DOMAIN.md §2); supermarkets carry everything;
on-premise outlets carry single-serve packs only. Channel affinity shifts the mix (returnables in
tiendas, cans and family non-returnables in supermarkets, glass in fondas). Every decision for a
store×SKU pair is drawn from that pair's own random stream.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from abasto.world.catalog import Sku
from abasto.world.network import Route, Stores
from abasto.world.rng import stream


@dataclass
class Pairs:
    """The assortment: one entry per store×SKU pair, ordered by store then SKU rank."""

    store: NDArray[np.int64]
    sku: NDArray[np.int64]
    base_daily: NDArray[np.float64]
    capacity: NDArray[np.int64]

    def __len__(self) -> int:
        return int(self.store.shape[0])


def _carry_probability(channel: int, rank: int, sku: Sku) -> float:
    if rank == 0:
        return 1.0
    if channel == 2:  # supermarket
        return 1.0
    if channel == 1:  # minisuper
        return max(0.55, 1.0 - 0.012 * rank)
    if channel == 3:  # on-premise: single-serve only
        return max(0.3, 1.0 - 0.04 * rank) if sku.single_serve else 0.0
    return 1.0 if rank < 3 else max(0.12, 0.95 - 0.045 * rank)  # tienda


def _affinity(channel: int, sku: Sku) -> float:
    can = "can" in sku.pack
    glass = "glass" in sku.pack
    if channel == 0:  # tienda
        return 1.3 if sku.returnable else (0.6 if can else (1.1 if sku.family else 1.0))
    if channel == 1:  # minisuper
        return 1.2 if can else (0.9 if sku.returnable else 1.0)
    if channel == 2:  # supermarket
        if sku.returnable:
            return 0.5
        return 1.6 if can else (1.4 if sku.family else 0.8)
    return 2.5 if glass else (1.3 if can else 1.0)  # on-premise


def build_pairs(seed: int, stores: Stores, skus: tuple[Sku, ...]) -> Pairs:
    store_ix: list[int] = []
    sku_ix: list[int] = []
    base: list[float] = []
    for i in range(len(stores)):
        ch = int(stores.channel[i])
        for j, sku in enumerate(skus):
            rng = stream(seed, "carry", i, sku.sku)
            u, noise = rng.random(), rng.normal(0.0, 0.35)
            if u >= _carry_probability(ch, j, sku):
                continue
            store_ix.append(i)
            sku_ix.append(j)
            base.append(float(stores.volume[i] * sku.share * _affinity(ch, sku) * np.exp(noise)))
    n = len(store_ix)
    return Pairs(
        store=np.array(store_ix, dtype=np.int64),
        sku=np.array(sku_ix, dtype=np.int64),
        base_daily=np.asarray(np.round(np.array(base, dtype=np.float64), 3), dtype=np.float64),
        capacity=np.zeros(n, dtype=np.int64),
    )


def store_daily_units(pairs: Pairs, n_stores: int) -> NDArray[np.float64]:
    return np.bincount(pairs.store, weights=pairs.base_daily, minlength=n_stores).astype(np.float64)


def set_capacities(seed: int, stores: Stores, routes: list[Route], pairs: Pairs) -> None:
    """Cooler + backroom space per pair, in units: a few replenishment cycles of base demand."""
    cap = np.zeros(len(pairs), dtype=np.int64)
    for p in range(len(pairs)):
        i = int(pairs.store[p])
        route = routes[int(stores.route[i])]
        cycle_days = 7.0 / len(route.weekdays)
        rng = stream(seed, "capacity", i, int(pairs.sku[p]))
        cover_days = (cycle_days + 1.0) * float(stores.space[i]) * rng.uniform(0.85, 1.2) + 2.5
        cap[p] = max(4, int(np.ceil(pairs.base_daily[p] * cover_days)))
    pairs.capacity = cap
