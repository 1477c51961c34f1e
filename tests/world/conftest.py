from __future__ import annotations

import pandas as pd
import pytest
from world_configs import STATS_CFG, TINY_CFG, WIDE_CFG

from abasto.world import World, generate

TZ = "America/Mexico_City"


@pytest.fixture(scope="session")
def world() -> World:
    return generate(STATS_CFG)


@pytest.fixture(scope="session")
def wide_world() -> World:
    return generate(WIDE_CFG)


@pytest.fixture(scope="session")
def tiny_world() -> World:
    return generate(TINY_CFG)


@pytest.fixture(scope="session")
def hourly(world: World) -> pd.DataFrame:
    """The hourly table with local time, lost units and the store's channel/region."""
    h = world.hourly.to_pandas()
    stores = world.stores.to_pandas()[["store_id", "channel", "region_id", "big_customer"]]
    h = h.merge(stores, on="store_id", how="left", validate="many_to_one")
    h["local"] = h["hour_start"].dt.tz_convert(TZ)
    h["date"] = h["local"].dt.date
    h["lost"] = h["demand"] - h["sold_units"]
    return h
