"""``generate``: build gaseosas SA's world from the settings, deterministically by seed."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Final

import numpy as np

from abasto.errors import ConfigError
from abasto.settings import WorldSettings
from abasto.world import assortment, demand, network, operations, promotions, simulate, weather
from abasto.world.calendar import calendar_effects
from abasto.world.catalog import select_skus
from abasto.world.model import DEFAULT_TIMEZONE, World, WorldMeta
from abasto.world.parts import Parts
from abasto.world.tables import build_tables
from abasto.world.timegrid import build_grid

#: days simulated before ``start_date`` so stock levels start in a steady state (not output)
BURN_IN_DAYS: Final = 14
#: days simulated after the horizon only for order look-ahead (not output)
TAIL_DAYS: Final = 9

#: the stages reported to ``progress``, in order
STAGES: Final = ("network", "weather", "demand", "simulation", "tables")

Progress = Callable[[str], None]


def generate(
    cfg: WorldSettings,
    *,
    horizon_days: int = 3,
    timezone: str = DEFAULT_TIMEZONE,
    progress: Progress | None = None,
) -> World:
    """Generate the world: same settings and seed ⇒ identical tables.

    The world covers ``cfg.history_days`` days from ``cfg.start_date``, then the live day, then
    ``horizon_days`` days of ground truth. ``progress`` is called with each stage name as it starts.
    """
    if horizon_days < 0:
        raise ConfigError(f"horizon_days must be >= 0, got {horizon_days}")
    report = progress or (lambda _stage: None)
    seed = cfg.seed

    report("network")
    skus = select_skus(cfg.skus)
    first_day = BURN_IN_DAYS
    live_day = first_day + cfg.history_days
    last_day = live_day + horizon_days
    grid = build_grid(timezone, cfg.start_date - timedelta(days=BURN_IN_DAYS), last_day + 1 + TAIL_DAYS)
    stores = network.build_stores(seed, cfg.stores)
    pairs = assortment.build_pairs(seed, stores, skus)
    daily = assortment.store_daily_units(pairs, len(stores))
    network.mark_big_customers(stores, daily)
    routes = network.assign_routes(seed, stores, daily)
    assortment.set_capacities(seed, stores, routes, pairs)

    report("weather")
    cal = calendar_effects(grid.dates)
    wave = weather.plan_heat_wave(seed, first_day, cfg.history_days)
    wx = weather.temperatures(seed, grid.dates, wave)
    promos = promotions.plan_promotions(
        seed, n_skus=len(skus), n_regions=len(weather.REGIONS), first_day=first_day, live_day=live_day,
        last_day=last_day,
    )
    promo = promotions.promo_factor(promos, len(skus), len(weather.REGIONS), grid.n_days)
    faults = promotions.plan_cooler_faults(seed, stores.coolers, grid.n_hours)
    cooler = promotions.cooler_factor(faults, stores.coolers, grid.n_hours)

    report("demand")
    rates = demand.rates(
        seed=seed, grid=grid, stores=stores, pairs=pairs, skus=skus, temps=wx.temp_c, cal=cal,
        promo=promo, cooler=cooler,
    )
    wanted = demand.draw_demand(seed, pairs, skus, rates.latent)

    report("simulation")
    first_hour = int(np.searchsorted(grid.day, first_day))
    end_hour = int(np.searchsorted(grid.day, last_day + 1))
    sim = simulate.simulate(simulate.SimInput(
        seed=seed,
        grid=grid,
        stores=stores,
        routes=routes,
        pairs=pairs,
        skus=skus,
        demand=wanted,
        typical=rates.typical,
        informed=rates.informed,
        dc_fill=operations.dc_fill_rates(seed, wx.heat, skus),
        first_hour=first_hour,
        end_hour=end_hour,
        last_visit_day=last_day,
    ))

    report("tables")
    parts = Parts(
        seed=seed,
        grid=grid,
        first_day=first_day,
        live_day=live_day,
        last_day=last_day,
        first_hour=first_hour,
        end_hour=end_hour,
        skus=skus,
        stores=stores,
        routes=routes,
        pairs=pairs,
        calendar=cal,
        weather=wx,
        promos=promos,
        faults=faults,
        demand=wanted,
        trading=demand.trading_mask(stores, grid),
        sim=sim,
    )
    meta = WorldMeta(
        seed=seed,
        stores=cfg.stores,
        skus=cfg.skus,
        history_days=cfg.history_days,
        horizon_days=horizon_days,
        start_date=cfg.start_date,
        timezone=timezone,
    )
    return World(meta=meta, tables=build_tables(parts))
