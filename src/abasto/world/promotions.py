"""Trade promotions per region and SKU, and cooler faults per store.

Shopkeepers do not plan for promotions (their ordering app lacks promo context, DOMAIN.md §5),
so promoted SKUs run out more often; reps of big customers do plan for them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.typing import NDArray

from abasto.world.rng import stream

_MECHANICS: Final = (
    ("precio especial", 1.15, 1.30),
    ("2 x precio especial", 1.30, 1.55),
    ("vaso de regalo", 1.10, 1.25),
    ("combo con botana", 1.20, 1.40),
)


@dataclass(frozen=True, slots=True)
class Promo:
    promo_id: str
    sku: int
    region: int
    #: grid day indexes, both inclusive
    start_day: int
    end_day: int
    uplift: float
    mechanic: str


def plan_promotions(
    seed: int, *, n_skus: int, n_regions: int, first_day: int, live_day: int, last_day: int
) -> list[Promo]:
    """Promotions over the output period; the first one runs through the live day."""
    rng = stream(seed, "promotions")
    n_days = last_day - first_day + 1
    count = max(2, round(n_days * n_regions / 15))
    eligible = min(n_skus, 12)
    promos: list[Promo] = []
    for k in range(count):
        length = int(rng.integers(4, 9))
        if k == 0:
            start = live_day - int(rng.integers(1, 4))
        else:
            start = first_day + int(rng.integers(0, max(1, n_days - 3)))
        mechanic, lo, hi = _MECHANICS[int(rng.integers(len(_MECHANICS)))]
        promos.append(
            Promo(
                promo_id=f"PR{k + 1:03d}",
                sku=int(rng.integers(eligible)),
                region=int(rng.integers(n_regions)),
                start_day=max(first_day, start),
                end_day=min(last_day, start + length - 1),
                uplift=round(float(rng.uniform(lo, hi)), 2),
                mechanic=mechanic,
            )
        )
    return promos


def promo_factor(promos: list[Promo], n_skus: int, n_regions: int, n_days: int) -> NDArray[np.float64]:
    """[sku, region, day] demand multiplier of the active promotions."""
    out = np.ones((n_skus, n_regions, n_days))
    for p in promos:
        out[p.sku, p.region, p.start_day : p.end_day + 1] *= p.uplift
    return out


@dataclass(frozen=True, slots=True)
class CoolerFault:
    store: int
    cooler_no: int
    #: grid hour indexes, start inclusive, end exclusive
    start_hour: int
    end_hour: int
    temp_c: float


def plan_cooler_faults(seed: int, coolers: NDArray[np.int64], n_hours: int) -> list[CoolerFault]:
    """Refrigeration failures: ~0.4 % per cooler and day, lasting half a day to 2.5 days."""
    faults: list[CoolerFault] = []
    n_days = n_hours // 24
    for i, n_coolers in enumerate(coolers.tolist()):
        rng = stream(seed, "cooler", i)
        for c in range(1, n_coolers + 1):
            hits = np.flatnonzero(rng.random(n_days) < 0.004)
            durations = rng.integers(12, 61, n_days)
            offsets = rng.integers(0, 24, n_days)
            temps = rng.uniform(9.0, 16.0, n_days)
            busy_until = -1
            for d in hits.tolist():
                start = d * 24 + int(offsets[d])
                if start < busy_until:
                    continue
                end = min(n_hours, start + int(durations[d]))
                faults.append(CoolerFault(i, c, start, end, round(float(temps[d]), 1)))
                busy_until = end
    return faults


def cooler_factor(
    faults: list[CoolerFault], coolers: NDArray[np.int64], n_hours: int
) -> NDArray[np.float64]:
    """[hour, store] multiplier on cold single-serve demand: a warm cooler loses part of its sales."""
    out = np.ones((n_hours, coolers.shape[0]))
    for f in faults:
        out[f.start_hour : f.end_hour, f.store] *= 1.0 - 0.45 / max(1, int(coolers[f.store]))
    return out
