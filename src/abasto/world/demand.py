"""Hourly demand: base rate × hour-of-week by channel × season × temperature × payday × special
days × promotions × store-day traffic × cooler state, with gamma-Poisson (negative binomial) noise.

Hour-of-week shapes (DOMAIN.md §4, assumptions): trough 06–09, peak 12–15, second peak 17–20, tail
to 22; weekends later and flatter; Sunday strongest and Thursday weakest for tiendas; supermarkets
peak on the weekend; on-premise peaks at lunch and on Friday/Saturday. Family packs lean to the
weekend. Matrices are laid out [hour, pair].
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.typing import NDArray

from abasto.world.assortment import Pairs
from abasto.world.calendar import CalendarEffects
from abasto.world.catalog import Sku
from abasto.world.network import Stores
from abasto.world.rng import stream
from abasto.world.timegrid import TimeGrid
from abasto.world.weather import REGIONS, season_factor, temperature_effect


def _profile(**by_hour: float) -> tuple[float, ...]:
    """24 hourly weights from keyword arguments ``h6=0.15, ...`` (missing hours are 0)."""
    return tuple(by_hour.get(f"h{k}", 0.0) for k in range(24))


#: relative demand by local hour: (weekday, weekend) per channel. Weekends start later, have a
#: flatter middle of the day and run later into the evening.
_H: Final = {
    "tienda": (
        _profile(h6=0.15, h7=0.35, h8=0.55, h9=0.75, h10=0.95, h11=1.20, h12=1.70, h13=2.00, h14=2.00,
                 h15=1.70, h16=1.35, h17=1.55, h18=1.85, h19=1.80, h20=1.40, h21=0.80, h22=0.30, h23=0.05),
        _profile(h6=0.05, h7=0.15, h8=0.30, h9=0.50, h10=0.80, h11=1.10, h12=1.40, h13=1.65, h14=1.80,
                 h15=1.75, h16=1.55, h17=1.50, h18=1.60, h19=1.70, h20=1.55, h21=1.10, h22=0.50, h23=0.10),
    ),
    "minisuper": (
        _profile(h6=0.15, h7=0.40, h8=0.60, h9=0.80, h10=1.00, h11=1.20, h12=1.60, h13=1.85, h14=1.85,
                 h15=1.60, h16=1.40, h17=1.60, h18=1.90, h19=1.90, h20=1.60, h21=1.10, h22=0.60, h23=0.20),
        _profile(h6=0.05, h7=0.20, h8=0.35, h9=0.55, h10=0.85, h11=1.10, h12=1.40, h13=1.60, h14=1.70,
                 h15=1.65, h16=1.50, h17=1.55, h18=1.70, h19=1.75, h20=1.65, h21=1.30, h22=0.80, h23=0.30),
    ),
    "supermarket": (
        _profile(h7=0.10, h8=0.30, h9=0.60, h10=0.90, h11=1.10, h12=1.30, h13=1.45, h14=1.35, h15=1.15,
                 h16=1.10, h17=1.30, h18=1.60, h19=1.70, h20=1.40, h21=0.80, h22=0.30, h23=0.05),
        _profile(h7=0.05, h8=0.15, h9=0.40, h10=0.80, h11=1.20, h12=1.45, h13=1.55, h14=1.50, h15=1.40,
                 h16=1.35, h17=1.40, h18=1.45, h19=1.40, h20=1.15, h21=0.70, h22=0.30, h23=0.05),
    ),
    "on_premise": (
        _profile(h7=0.05, h8=0.10, h9=0.15, h10=0.25, h11=0.45, h12=0.95, h13=1.80, h14=2.30, h15=2.00,
                 h16=1.20, h17=0.85, h18=1.00, h19=1.40, h20=1.60, h21=1.40, h22=0.90, h23=0.40),
        _profile(h7=0.02, h8=0.05, h9=0.10, h10=0.20, h11=0.40, h12=0.80, h13=1.40, h14=1.90, h15=2.00,
                 h16=1.60, h17=1.20, h18=1.20, h19=1.45, h20=1.65, h21=1.55, h22=1.10, h23=0.50),
    ),
}
#: day-of-week factors Mon..Sun (normalised to mean 1 below)
_DOW = {
    "tienda": (0.97, 0.93, 0.92, 0.83, 1.00, 1.17, 1.38),
    "minisuper": (0.97, 0.95, 0.95, 0.90, 1.03, 1.12, 1.18),
    "supermarket": (0.80, 0.80, 0.85, 0.85, 1.05, 1.40, 1.30),
    "on_premise": (0.80, 0.85, 0.90, 0.95, 1.20, 1.35, 1.05),
}
CHANNEL_ORDER: Final = ("tienda", "minisuper", "supermarket", "on_premise")
#: family packs (>= 1.25 L) lean to the weekend: Sat, Sun up, weekdays down (mean ~1)
_FAMILY_TILT: Final = (0.94, 0.94, 0.94, 0.94, 0.94, 1.12, 1.18)
#: gamma shape of the hourly demand noise (negative binomial dispersion)
NB_SHAPE: Final = 4.0
#: gamma shape of the store-day traffic factor on weekdays (CV ~ 0.16) and on weekends, when
#: gatherings, matches and outings make traffic less predictable (CV ~ 0.24)
STORE_DAY_SHAPE: Final = 40.0
WEEKEND_DAY_SHAPE: Final = 18.0


def hour_shapes() -> NDArray[np.float64]:
    """[channel, weekend(0/1), local hour] share of the day's demand (each row sums to 1)."""
    out = np.array([_H[ch] for ch in CHANNEL_ORDER], dtype=np.float64)
    return np.asarray(out / out.sum(axis=2, keepdims=True), dtype=np.float64)


def dow_factors() -> NDArray[np.float64]:
    """[channel, weekday] day-of-week multiplier, mean 1 per channel."""
    out = np.array([_DOW[ch] for ch in CHANNEL_ORDER], dtype=np.float64)
    return np.asarray(out / out.mean(axis=1, keepdims=True), dtype=np.float64)


def channel_profile(grid: TimeGrid, *, weekly: bool = True) -> NDArray[np.float64]:
    """[channel, hour] share of a week-average day's demand falling in each grid hour.

    ``weekly=False`` leaves out the day-of-week factors (every day averages the same total).
    """
    shapes = hour_shapes()
    weekend = (grid.weekday >= 5).astype(np.int64)
    lh = grid.local_hour.astype(np.int64)
    out = shapes[:, weekend, lh]
    if weekly:
        out = out * dow_factors()[:, grid.weekday.astype(np.int64)]
    return np.asarray(out, dtype=np.float64)


def trading_mask(stores: Stores, grid: TimeGrid) -> NDArray[np.bool_]:
    """[hour, store] True while the store is open (local opens_hour <= hour < closes_hour)."""
    lh = grid.local_hour.astype(np.int64)[:, None]
    return np.asarray((lh >= stores.opens[None, :]) & (lh < stores.closes[None, :]), dtype=np.bool_)


@dataclass(frozen=True)
class Rates:
    """[hour, pair] expected units per hour under three states of knowledge."""

    #: what the shopkeeper has in mind: base × time of day (every day alike)
    typical: NDArray[np.float64]
    #: what a well-informed rep expects: + day of week, season, weather, payday, holidays, promotions
    informed: NDArray[np.float64]
    #: the latent truth: + store-day traffic and cooler faults
    latent: NDArray[np.float64]


def rates(
    *,
    seed: int,
    grid: TimeGrid,
    stores: Stores,
    pairs: Pairs,
    skus: tuple[Sku, ...],
    temps: NDArray[np.float64],
    cal: CalendarEffects,
    promo: NDArray[np.float64],
    cooler: NDArray[np.float64],
) -> Rates:
    ps, pk = pairs.store, pairs.sku
    ch = stores.channel[ps]
    region = stores.region[ps]
    open_hp = trading_mask(stores, grid)[:, ps]  # [H, P]
    daily_shape = channel_profile(grid, weekly=False).T[:, ch]  # [H, P]
    typical = np.asarray(daily_shape * pairs.base_daily[None, :] * open_hp, dtype=np.float64)
    wd = grid.weekday.astype(np.int64)
    family = np.array([s.family for s in skus], dtype=np.bool_)[pk]
    tilt = np.where(family[None, :], np.array(_FAMILY_TILT)[wd][:, None], 1.0)
    weekly = dow_factors()[:, wd].T[:, ch] * tilt  # [H, P]

    # day-level multipliers [day, pair]
    season = season_factor(grid.dates)
    temp_eff = np.empty((grid.n_days, len(pairs)))
    cache: dict[tuple[int, int], NDArray[np.float64]] = {}
    for p in range(len(pairs)):
        key = (int(region[p]), int(pk[p]))
        if key not in cache:
            reg = REGIONS[key[0]]
            cache[key] = temperature_effect(temps[key[0]], reg.base_temp_c, skus[key[1]].heat_elasticity)
        temp_eff[:, p] = cache[key]
    day_f = (
        season[:, None]
        * temp_eff
        * cal.payday[:, None]
        * cal.special[ch].T
        * promo[pk, region].T
    )
    informed = np.asarray(typical * weekly * day_f[grid.day], dtype=np.float64)

    traffic = np.empty((grid.n_days, len(stores)))
    shape = np.where(grid.day_weekday >= 5, WEEKEND_DAY_SHAPE, STORE_DAY_SHAPE)
    for i in range(len(stores)):
        traffic[:, i] = stream(seed, "traffic", i).gamma(shape, 1.0 / shape)
    single = np.array([s.single_serve for s in skus], dtype=np.bool_)[pk]
    cold = np.where(single[None, :], cooler[:, ps], 1.0)
    latent = np.asarray(informed * traffic[grid.day][:, ps] * cold, dtype=np.float64)
    return Rates(typical=typical, informed=informed, latent=latent)


def draw_demand(
    seed: int, pairs: Pairs, skus: tuple[Sku, ...], latent: NDArray[np.float64]
) -> NDArray[np.int32]:
    """[hour, pair] units wanted: Poisson(latent × Gamma(k, 1/k)), one random stream per pair."""
    out = np.empty(latent.shape, dtype=np.int32)
    n_hours = latent.shape[0]
    for p in range(len(pairs)):
        rng = stream(seed, "demand", int(pairs.store[p]), skus[int(pairs.sku[p])].sku)
        g = rng.gamma(NB_SHAPE, 1.0 / NB_SHAPE, n_hours)
        out[:, p] = rng.poisson(latent[:, p] * g)
    return out
