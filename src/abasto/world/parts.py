"""Everything the generator computed, before it becomes tables."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from abasto.world.assortment import Pairs
from abasto.world.calendar import CalendarEffects
from abasto.world.catalog import Sku
from abasto.world.network import Route, Stores
from abasto.world.promotions import CoolerFault, Promo
from abasto.world.simulate import SimResult
from abasto.world.timegrid import TimeGrid
from abasto.world.weather import Weather


@dataclass(frozen=True)
class Parts:
    seed: int
    grid: TimeGrid
    #: grid day index of ``start_date`` (days before it are burn-in), of the live day, of the last horizon day
    first_day: int
    live_day: int
    last_day: int
    #: grid hour indexes of the output window [first_hour, end_hour)
    first_hour: int
    end_hour: int
    skus: tuple[Sku, ...]
    stores: Stores
    routes: list[Route]
    pairs: Pairs
    calendar: CalendarEffects
    weather: Weather
    promos: list[Promo]
    faults: list[CoolerFault]
    #: [hour, pair] units wanted over the whole grid
    demand: NDArray[np.int32]
    #: [hour, store] open for business
    trading: NDArray[np.bool_]
    sim: SimResult

    def hour_end_us(self, hour: int) -> int:
        """Epoch µs of the end of grid hour ``hour - 1`` (i.e. the start of ``hour``), grid end included."""
        if hour < self.grid.n_hours:
            return int(self.grid.hour_us[hour])
        return int(self.grid.hour_us[-1]) + 3_600_000_000 * (hour - self.grid.n_hours + 1)
