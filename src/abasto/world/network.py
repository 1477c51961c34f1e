"""Points of sale, pre-sell routes and reps (DOMAIN.md §1).

Channels come in fixed proportions (most outlets are tiendas); volume is log-normal within a
channel and much larger for supermarkets, so the top ~20 % of outlets carry most of the volume.
Routes group outlets of one region that share a visit calendar:

==========  ==============================================  =================
tier        outlets                                          visits per week
==========  ==============================================  =================
``KA``      supermarkets (key accounts, daily EDI orders)    7
``HV``      big customers among tiendas and minisupers       3
``OP``      on-premise (fondas, taquerías, restaurants)      2 (Mon/Thu: stocked Fri)
``T2``      other minisupers and mid-size tiendas            2
``T1``      small tiendas                                    1
==========  ==============================================  =================

Delivery is D+1 in the morning, in route order; the rep visits in route order during the day.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

import numpy as np
from numpy.typing import NDArray

from abasto.world import names
from abasto.world.calendar import CHANNELS
from abasto.world.rng import golden_sequence, stream
from abasto.world.weather import REGIONS

CHANNEL_SHARE: Final = (0.64, 0.15, 0.08, 0.13)
REGION_SHARE: Final = (0.45, 0.25, 0.30)
#: median and log-sd of a store's daily units if it carried the whole catalogue
_VOLUME: Final = ((65.0, 0.80), (200.0, 0.60), (1000.0, 0.50), (80.0, 0.70))
_COOLERS: Final = ((0, 1, 1, 1, 2, 2), (2, 2, 3), (4, 5, 6, 8), (1, 1, 2))
BIG_CUSTOMER_SHARE: Final = 0.20

TIERS: Final = ("KA", "HV", "OP", "T2", "T1")
_TIER_MAX_STORES: Final = {"KA": 10, "HV": 15, "OP": 15, "T2": 25, "T1": 25}
_TIER_DAYS: Final[dict[str, tuple[tuple[int, ...], ...]]] = {
    "KA": ((0, 1, 2, 3, 4, 5, 6),),
    "HV": ((0, 2, 4), (1, 3, 4)),
    "OP": ((0, 3),),
    "T2": ((0, 3), (1, 4), (1, 3)),
    "T1": ((0,), (2,), (1,), (3,)),
}
_TIER_NAME: Final = {
    "KA": "Autoservicio",
    "HV": "Alto volumen",
    "OP": "Consumo en el lugar",
    "T2": "Tradicional",
    "T1": "Tradicional baja frecuencia",
}


@dataclass
class Stores:
    """Struct of arrays, one entry per store (index = store number - 1)."""

    store_id: list[str]
    channel: NDArray[np.int64]
    region: NDArray[np.int64]
    #: daily units if it carried the whole catalogue at channel affinity 1
    volume: NDArray[np.float64]
    name: list[str]
    owner_name: list[str]
    phone: list[str]
    lat: NDArray[np.float64]
    lon: NDArray[np.float64]
    coolers: NDArray[np.int64]
    opens: NDArray[np.int64]
    closes: NDArray[np.int64]
    #: shopkeeper's ordering habit: multiple of expected demand (1.2-1.5)
    safety: NDArray[np.float64]
    #: probability the order is not placed at a visit (owner away, no cash)
    skip_prob: NDArray[np.float64]
    #: share of space for the store's cycle: multiplies days of cover that fit in cooler + backroom
    space: NDArray[np.float64]
    #: own-brand shelf share, percent
    shelf_share: NDArray[np.float64]
    # set by assign_routes
    big_customer: NDArray[np.bool_] = field(default_factory=lambda: np.zeros(0, dtype=np.bool_))
    route: NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    visit_hour: NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    delivery_hour: NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def __len__(self) -> int:
        return len(self.store_id)


@dataclass(frozen=True, slots=True)
class Route:
    route_id: str
    name: str
    region: int
    tier: str
    weekdays: tuple[int, ...]
    rep_id: str
    rep_name: str
    rep_phone: str
    stores: tuple[int, ...]


def _pick_by_share(u: NDArray[np.float64], shares: tuple[float, ...]) -> NDArray[np.int64]:
    edges = np.cumsum(shares)
    edges[-1] = 1.0 + 1e-9
    return np.asarray(np.searchsorted(edges, u, side="right"), dtype=np.int64)


def build_stores(seed: int, n: int) -> Stores:
    channel = _pick_by_share(golden_sequence(n, seed, "channel"), CHANNEL_SHARE)
    # a second, independent low-discrepancy sequence (different irrational) for regions
    offset = stream(seed, "region", "offset").random()
    region = _pick_by_share(np.mod(offset + np.sqrt(2.0) * np.arange(1, n + 1), 1.0), REGION_SHARE)
    cols: dict[str, list[object]] = {k: [] for k in (
        "volume", "name", "owner", "phone", "lat", "lon", "coolers", "opens", "closes", "safety",
        "skip", "space", "shelf")}
    for i in range(n):
        rng = stream(seed, "store", i)
        ch, reg = int(channel[i]), REGIONS[int(region[i])]
        median, sigma = _VOLUME[ch]
        owner = names.person(rng)
        cols["volume"].append(float(median * np.exp(rng.normal(0.0, sigma))))
        cols["owner"].append(owner)
        cols["name"].append(names.store_name(rng, CHANNELS[ch], owner))
        cols["phone"].append(names.phone(rng, reg.area_code))
        cols["lat"].append(round(reg.lat + rng.normal(0.0, 0.05), 6))
        cols["lon"].append(round(reg.lon + rng.normal(0.0, 0.05), 6))
        cols["coolers"].append(int(rng.choice(_COOLERS[ch])))
        opens, closes = {
            0: (int(rng.choice((7, 8))), int(rng.choice((21, 22)))),
            1: (7, int(rng.choice((22, 23)))),
            2: (8, 22),
            3: (int(rng.choice((9, 10, 12))), int(rng.choice((22, 23)))),
        }[ch]
        cols["opens"].append(opens)
        cols["closes"].append(closes)
        cols["safety"].append(float(rng.uniform(1.25, 1.55)))
        cols["skip"].append((0.05, 0.03, 0.0, 0.03)[ch])
        cols["space"].append(float(rng.uniform(1.5, 2.2)))
        cols["shelf"].append(round(float(rng.uniform(55.0, 88.0)), 1))

    def f64(key: str) -> NDArray[np.float64]:
        return np.array(cols[key], dtype=np.float64)

    def i64(key: str) -> NDArray[np.int64]:
        return np.array(cols[key], dtype=np.int64)

    return Stores(
        store_id=[f"S{i + 1:04d}" for i in range(n)],
        channel=channel,
        region=region,
        volume=f64("volume"),
        name=[str(x) for x in cols["name"]],
        owner_name=[str(x) for x in cols["owner"]],
        phone=[str(x) for x in cols["phone"]],
        lat=f64("lat"),
        lon=f64("lon"),
        coolers=i64("coolers"),
        opens=i64("opens"),
        closes=i64("closes"),
        safety=f64("safety"),
        skip_prob=f64("skip"),
        space=f64("space"),
        shelf_share=f64("shelf"),
    )


def mark_big_customers(stores: Stores, daily_units: NDArray[np.float64]) -> None:
    """The top ~20 % of outlets by expected volume are the big customers with a named rep."""
    n = len(stores)
    k = max(1, int(np.ceil(BIG_CUSTOMER_SHARE * n)))
    order = np.argsort(-daily_units, kind="stable")
    big = np.zeros(n, dtype=np.bool_)
    big[order[:k]] = True
    stores.big_customer = big


def _tier(stores: Stores, i: int, tienda_median: float, daily_units: NDArray[np.float64]) -> str:
    ch = CHANNELS[int(stores.channel[i])]
    if ch == "supermarket":
        return "KA"
    if ch == "on_premise":
        return "OP"
    if stores.big_customer[i]:
        return "HV"
    if ch == "tienda" and daily_units[i] < tienda_median:
        return "T1"
    return "T2"


def assign_routes(seed: int, stores: Stores, daily_units: NDArray[np.float64]) -> list[Route]:
    """Group stores into routes (region × tier, chunked), one rep per route; set visit/delivery hours."""
    n = len(stores)
    tiendas = [i for i in range(n) if CHANNELS[int(stores.channel[i])] == "tienda"]
    tienda_median = float(np.median(daily_units[tiendas])) if tiendas else 0.0
    tiers = [_tier(stores, i, tienda_median, daily_units) for i in range(n)]
    routes: list[Route] = []
    route_of = np.zeros(n, dtype=np.int64)
    visit_hour = np.zeros(n, dtype=np.int64)
    delivery_hour = np.zeros(n, dtype=np.int64)
    pattern_counter = dict.fromkeys(TIERS, 0)
    for r, region in enumerate(REGIONS):
        for tier in TIERS:
            members = [i for i in range(n) if stores.region[i] == r and tiers[i] == tier]
            if not members:
                continue
            n_chunks = -(-len(members) // _TIER_MAX_STORES[tier])
            for c in range(n_chunks):
                chunk = members[c::n_chunks]
                patterns = _TIER_DAYS[tier]
                days = patterns[pattern_counter[tier] % len(patterns)]
                pattern_counter[tier] += 1
                number = len(routes) + 1
                rng = stream(seed, "rep", region.region_id, tier, c)
                routes.append(
                    Route(
                        route_id=f"R{number:02d}",
                        name=f"{region.name} · {_TIER_NAME[tier]} {c + 1}",
                        region=r,
                        tier=tier,
                        weekdays=days,
                        rep_id=f"REP{number:02d}",
                        rep_name=names.person(rng),
                        rep_phone=names.phone(rng, region.area_code),
                        stores=tuple(chunk),
                    )
                )
                m = len(chunk)
                for k, i in enumerate(chunk):
                    route_of[i] = len(routes) - 1
                    lo, hi = int(stores.opens[i]), int(stores.closes[i]) - 1
                    visit_hour[i] = min(max(9 + (8 * k) // m, lo), hi)
                    delivery_hour[i] = min(max(8 + (5 * k) // m, lo), hi)
    stores.route = route_of
    stores.visit_hour = visit_hour
    stores.delivery_hour = delivery_hour
    return routes
