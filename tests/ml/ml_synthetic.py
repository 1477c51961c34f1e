"""Synthetic hourly sell-out with a known hour-of-week shape, level, dispersion and stockouts.

Per series: ``rate[h] = level · shape[h]`` (the channel's shape, perturbed per series); each day
draws a gamma day factor (mean 1, variance ``alpha_day``); hourly demand is Poisson. Each morning
the store has ``capacity`` units (a multiple of its mean daily demand); once on-hand reaches 0,
the hour where it happens and the rest of the day are out of stock (sales censored at what was on
hand, then 0). Optional holidays multiply the day's demand by ``holiday_uplift``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa

TZ = "America/Mexico_City"
START = pd.Timestamp("2026-06-01")  # a Monday


def day_shape(open_hour: int, close_hour: int, peaks: tuple[int, ...]) -> np.ndarray:
    hours = np.arange(24)
    shape = np.full(24, 0.15)
    for p in peaks:
        shape = shape + np.exp(-0.5 * ((hours - p) / 1.8) ** 2)
    shape[(hours < open_hour) | (hours >= close_hour)] = 0.0
    return shape


def week_shape(day: np.ndarray, weekend_boost: float) -> np.ndarray:
    w = np.tile(day, 7).astype(float)
    w[5 * 24 :] *= weekend_boost
    return w / w.mean()


CHANNEL_SHAPES = {
    "tienda": week_shape(day_shape(7, 22, (13, 19)), 1.4),
    "supermarket": week_shape(day_shape(8, 22, (11, 18)), 1.8),
}


@dataclass
class Series:
    store_id: str
    sku: str
    channel: str
    rate: np.ndarray  # 168 true rates, local Monday 00h first
    capacity: float | None  # units on hand each morning (None: never runs out)


@dataclass
class World:
    series: list[Series]
    alpha_day: float
    holiday_uplift: float = 1.0
    holidays: set[pd.Timestamp] = field(default_factory=set)
    history: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def true_rates(self) -> dict[tuple[str, str], np.ndarray]:
        return {(s.store_id, s.sku): s.rate for s in self.series}

    def simulate(
        self, start: pd.Timestamp, days: int, rng: np.random.Generator, *, stockouts: bool = True
    ) -> pd.DataFrame:
        """Hourly rows for ``days`` local days from ``start`` (midnight, local)."""
        local = pd.date_range(start.tz_localize(TZ), periods=days * 24, freq="h")
        how = (local.day_of_week * 24 + local.hour).to_numpy()
        dates = local.normalize().tz_localize(None)
        holiday = np.isin(dates, list(self.holidays))
        frames = []
        for s in self.series:
            a = self.alpha_day
            factor = rng.gamma(1.0 / a, a, days) if a > 0 else np.ones(days)
            mean = s.rate[how] * np.repeat(factor, 24) * np.where(holiday, self.holiday_uplift, 1.0)
            demand = rng.poisson(mean).astype(float)
            sold, oos = demand.copy(), np.zeros(len(demand), dtype=bool)
            if stockouts and s.capacity is not None:
                for d in range(days):
                    on_hand = np.floor(s.capacity)
                    for j in range(d * 24, d * 24 + 24):
                        if on_hand <= 0:
                            oos[j], sold[j] = True, 0.0
                        elif demand[j] >= on_hand:
                            sold[j], on_hand, oos[j] = on_hand, 0.0, True
                        else:
                            on_hand -= demand[j]
            frames.append(
                pd.DataFrame(
                    {
                        "store_id": s.store_id,
                        "sku": s.sku,
                        "channel": s.channel,
                        "hour_start": local.tz_convert("UTC"),
                        "units_sold": sold,
                        "out_of_stock": oos,
                        "demand": demand,
                        "is_holiday": holiday,
                    }
                )
            )
        return pd.concat(frames, ignore_index=True)


def make_world(
    *,
    stores: int = 12,
    skus: int = 6,
    weeks: int = 8,
    alpha_day: float = 0.15,
    capacity_days: tuple[float, float] | None = (0.8, 1.6),
    series_noise: float = 0.15,
    holiday_uplift: float = 1.0,
    holidays: tuple[str, ...] = (),
    seed: int = 7,
) -> World:
    rng = np.random.default_rng(seed)
    series = []
    for s in range(stores):
        channel = "tienda" if s % 3 else "supermarket"
        for k in range(skus):
            level = float(rng.lognormal(np.log(0.6), 0.7))
            shape = CHANNEL_SHAPES[channel] * rng.lognormal(0.0, series_noise, 168)
            rate = level * shape / shape.mean()
            cap = None
            if capacity_days is not None:
                cap = float(rng.uniform(*capacity_days)) * rate.reshape(7, 24).sum(axis=1).mean()
            series.append(Series(f"S{s:03d}", f"SKU{k:02d}", channel, rate, cap))
    world = World(series, alpha_day, holiday_uplift, {pd.Timestamp(h) for h in holidays})
    world.history = world.simulate(START, weeks * 7, rng)
    return world


def to_arrow(history: pd.DataFrame) -> pa.Table:
    """The training columns of ``history`` as an Arrow table (hour_start: timestamp[us, UTC])."""
    utc = history["hour_start"].dt.tz_convert(None).to_numpy()
    return pa.table(
        {
            "store_id": pa.array(history["store_id"].to_numpy(dtype=str)),
            "sku": pa.array(history["sku"].to_numpy(dtype=str)),
            "hour_start": pa.array(utc, pa.timestamp("us", "UTC")),
            "units_sold": pa.array(history["units_sold"].to_numpy()),
            "out_of_stock": pa.array(history["out_of_stock"].to_numpy()),
            "channel": pa.array(history["channel"].to_numpy(dtype=str)),
        }
    )
