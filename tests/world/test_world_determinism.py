"""Same seed ⇒ identical world; other seed ⇒ other world; more stores leave the first ones alone."""

from __future__ import annotations

import pyarrow.compute as pc
from world_configs import TINY_CFG

from abasto.world import TABLE_NAMES, World, generate


def test_same_seed_same_tables(tiny_world: World) -> None:
    again = generate(TINY_CFG)
    assert again.equals(tiny_world)
    for name in TABLE_NAMES:
        assert again.table(name).equals(tiny_world.table(name)), name


def test_other_seed_other_world(tiny_world: World) -> None:
    other = generate(TINY_CFG.model_copy(update={"seed": TINY_CFG.seed + 1}))
    assert not other.equals(tiny_world)
    assert not other.hourly.equals(tiny_world.hourly)
    assert other.stores["name"].to_pylist() != tiny_world.stores["name"].to_pylist()


def test_adding_stores_keeps_the_first_stores(tiny_world: World) -> None:
    bigger = generate(TINY_CFG.model_copy(update={"stores": TINY_CFG.stores + 5}))
    n = tiny_world.stores.num_rows
    cols = [
        "store_id",
        "name",
        "owner_name",
        "phone",
        "channel",
        "region_id",
        "lat",
        "lon",
        "coolers",
        "opens_hour",
        "closes_hour",
    ]
    assert bigger.stores.select(cols).slice(0, n).equals(tiny_world.stores.select(cols))
    first = tiny_world.stores["store_id"]
    assert (
        bigger.assortment.filter(pc.is_in(bigger.assortment["store_id"], first))
        .select(["store_id", "sku", "base_daily_units"])
        .equals(tiny_world.assortment.select(["store_id", "sku", "base_daily_units"]))
    )
    # the customers of the first stores want exactly the same units, hour by hour
    mine = bigger.hourly.filter(pc.is_in(bigger.hourly["store_id"], first))
    assert mine.select(["store_id", "sku", "hour_start", "demand"]).equals(
        tiny_world.hourly.select(["store_id", "sku", "hour_start", "demand"])
    )
    assert bigger.weather.equals(tiny_world.weather)
