"""Regions and their daily maximum temperature, with one heat wave in the history.

Temperature = regional climatology (annual mean + seasonal cosine) + AR(1) anomaly + heat wave.
The effect on demand is saturating (a logistic curve centred a little above what the region is
used to) and stronger for water than for cola (DOMAIN.md §4: heat wave water +57 %, cola +33 %).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Final

import numpy as np
from numpy.typing import NDArray

from abasto.world.rng import stream


@dataclass(frozen=True, slots=True)
class Region:
    region_id: str
    name: str
    #: annual mean of the daily maximum temperature, °C
    base_temp_c: float
    #: half the spread between the hottest and the coolest month, °C
    amplitude_c: float
    #: day of year of the hottest climatological day
    peak_doy: int
    lat: float
    lon: float
    area_code: str


REGIONS: Final[tuple[Region, ...]] = (
    Region("CDMX", "Valle de México", 24.5, 3.0, 125, 19.4326, -99.1332, "55"),
    Region("GDL", "Guadalajara", 28.0, 4.0, 140, 20.6597, -103.3496, "33"),
    Region("MTY", "Monterrey", 29.0, 7.0, 205, 25.6866, -100.3161, "81"),
)

#: logistic temperature response: centre = region base + this, scale in °C
_CENTRE_OFFSET_C: Final = 1.0
_SCALE_C: Final = 3.5


@dataclass(frozen=True)
class HeatWave:
    #: first local day index (in the simulation grid) of the heat wave
    start_day: int
    days: int
    #: peak anomaly per region, °C
    peak_c: NDArray[np.float64]
    #: onset lag per region, days
    lag: NDArray[np.int64]


def plan_heat_wave(seed: int, first_output_day: int, history_days: int) -> HeatWave:
    rng = stream(seed, "heatwave")
    days = int(rng.integers(5, 9))
    latest = max(0, history_days - days - 2)
    start = first_output_day + round(float(rng.uniform(0.3, 0.65)) * latest)
    return HeatWave(
        start_day=start,
        days=days,
        peak_c=rng.uniform(5.0, 8.0, len(REGIONS)),
        lag=rng.integers(0, 2, len(REGIONS)),
    )


@dataclass(frozen=True)
class Weather:
    #: [region, day] daily maximum temperature, °C (one decimal)
    temp_c: NDArray[np.float64]
    #: [region, day] climatological normal for that day, °C
    normal_c: NDArray[np.float64]

    @property
    def heat(self) -> NDArray[np.float64]:
        """[region, day] 0..1: how far above normal (0 below +2 °C, 1 from +6 °C)."""
        return np.asarray(np.clip((self.temp_c - self.normal_c - 2.0) / 4.0, 0.0, 1.0), dtype=np.float64)


def temperatures(seed: int, dates: list[date], wave: HeatWave) -> Weather:
    """Daily maximum temperature per region over ``dates``."""
    n = len(dates)
    doy = np.array([d.timetuple().tm_yday for d in dates], dtype=np.float64)
    out = np.empty((len(REGIONS), n))
    normal = np.empty((len(REGIONS), n))
    for r, region in enumerate(REGIONS):
        clim = region.base_temp_c + region.amplitude_c * np.cos(2 * np.pi * (doy - region.peak_doy) / 365.25)
        normal[r] = clim
        rng = stream(seed, "weather", region.region_id)
        shocks = rng.normal(0.0, 1.4, n)
        anomaly = np.empty(n)
        acc = 0.0
        for i in range(n):
            acc = 0.7 * acc + shocks[i]
            anomaly[i] = acc
        bump = np.zeros(n)
        start = wave.start_day + int(wave.lag[r])
        for k in range(wave.days):
            i = start + k
            if 0 <= i < n:
                ramp = min(1.0, (k + 1) / 2, (wave.days - k) / 2)
                bump[i] = wave.peak_c[r] * ramp
        out[r] = np.round(clim + anomaly + bump, 1)
    return Weather(temp_c=out, normal_c=normal)


def temperature_effect(
    temp_c: NDArray[np.float64], base_temp_c: float, elasticity: float
) -> NDArray[np.float64]:
    """Demand multiplier of temperature: 1 at the region's usual temperature, saturating when hot."""

    def lift(t: NDArray[np.float64] | float) -> NDArray[np.float64]:
        x = (np.asarray(t, dtype=np.float64) - base_temp_c - _CENTRE_OFFSET_C) / _SCALE_C
        return np.asarray(1.0 + elasticity / (1.0 + np.exp(-x)), dtype=np.float64)

    return np.asarray(lift(temp_c) / lift(base_temp_c), dtype=np.float64)


def season_factor(dates: list[date]) -> NDArray[np.float64]:
    """Annual seasonality beyond weather: high in late spring (hot, Semana Santa), low in autumn."""
    doy = np.array([d.timetuple().tm_yday for d in dates], dtype=np.float64)
    return np.asarray(1.0 + 0.06 * np.cos(2 * np.pi * (doy - 135) / 365.25), dtype=np.float64)
