"""Statistical shape of generated worlds: the patterns the demand model and the alerts rely on."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd

from abasto.world import World
from abasto.world.calendar import is_payday
from abasto.world.stats import by_weekday, stockout_rates, top_share

TZ = "America/Mexico_City"


def _history(world: World) -> pd.DataFrame:
    h = world.hourly.to_pandas()
    local = h["hour_start"].dt.tz_convert(TZ)
    h["date"], h["hour"] = local.dt.date, local.dt.hour
    stores = world.stores.to_pandas().set_index("store_id")
    h["channel"] = h["store_id"].map(stores["channel"])
    h["region_id"] = h["store_id"].map(stores["region_id"])
    return h[h["date"] < world.live_day]


def _hot_days(world: World) -> set[tuple[str, date]]:
    """(region, day) at least 4 °C above the region's median daily maximum of the period."""
    wx = world.weather.to_pandas()
    wx = wx[wx["date"] < world.live_day]
    hot = wx[wx["temp_c"] >= wx.groupby("region_id")["temp_c"].transform("median") + 4]
    return set(zip(hot["region_id"], hot["date"], strict=True))


def test_hour_of_week_profile_of_tiendas(hourly: pd.DataFrame, world: World) -> None:
    h = hourly[(hourly["channel"] == "tienda") & (hourly["date"] < world.live_day)]
    by_hour = h.groupby(h["local"].dt.hour)["demand"].mean()
    morning = by_hour.loc[6:8].mean()
    assert by_hour.loc[12:14].mean() > 1.5 * morning  # midday peak
    assert by_hour.loc[17:19].mean() > 1.5 * morning  # evening peak
    weekday = h["local"].dt.day_of_week.rename("weekday")
    daily = h.groupby([h["store_id"], h["date"], weekday])["demand"].sum().reset_index()
    by_day = daily.groupby("weekday")["demand"].mean()
    assert by_day[6] == by_day.max() and by_day[3] == by_day.min()  # Sunday strongest, Thursday weakest
    assert by_day[6] > 1.3 * by_day[3]
    # weekends start later and are flatter
    hour = h["local"].dt.hour
    share = h.groupby([weekday >= 5, hour])["demand"].sum()
    share = share / share.groupby(level=0).transform("sum")
    weekend, weekdays = share.loc[True], share.loc[False]
    assert weekend.loc[:10].sum() < 0.85 * weekdays.loc[:10].sum()
    assert (weekend * weekend.index).sum() > (weekdays * weekdays.index).sum() + 0.25
    assert weekend.max() < weekdays.max()


def test_stockout_rate_is_realistic(world: World) -> None:
    rates = stockout_rates(world)
    assert 0.03 <= rates["history"] <= 0.15  # share of store×SKU×days with unserved demand
    assert rates["promo"] > rates["no_promo"] * 1.3  # shopkeepers do not plan for promotions
    assert rates["hot_days"] > rates["normal_days"]  # heat outruns stock (and the DC's fill)
    assert rates["big_customers"] < rates["other_customers"]  # reps plan big customers' orders
    lost = world.summary()["lost_demand_share_history"]
    assert 0.01 < lost < 0.08


def test_stockouts_start_on_weekends_and_last_until_the_truck(world: World) -> None:
    week = by_weekday(world)
    starts, rate = week["episode_starts_per_100"], week["stockout_rate"]
    midweek_starts = np.mean(starts[1:5])  # Tue..Fri
    assert starts[6] > 1.3 * midweek_starts  # Sunday, the busiest day for tiendas
    assert starts[5] + starts[6] > 2 * midweek_starts
    # no truck on Sunday or Monday for tiendas: Sunday and Monday are out more than midweek
    assert rate[6] > np.mean(rate[2:6]) and rate[0] > np.mean(rate[2:6])


def test_pareto_concentration_of_volume(world: World, wide_world: World) -> None:
    for w in (world, wide_world):
        assert 0.6 <= top_share(w, 0.2) <= 0.8
    stores = world.stores.to_pandas()
    assert stores["big_customer"].sum() == 6  # the top 20 % of 30 outlets
    sold = _history(world).groupby("store_id")["sold_units"].sum()
    big = stores.set_index("store_id")["big_customer"]
    assert sold[big[big].index].min() > sold[big[~big].index].median()


def test_channels_and_assortment(world: World) -> None:
    stores = world.stores.to_pandas()
    counts = stores["channel"].value_counts()
    assert counts.idxmax() == "tienda"
    assert set(counts.index) == {"tienda", "minisuper", "supermarket", "on_premise"}
    carried = world.assortment.to_pandas().groupby("store_id").size()
    per_channel = carried.groupby(stores.set_index("store_id")["channel"]).mean()
    assert per_channel["tienda"] < per_channel["minisuper"] <= per_channel["supermarket"]
    assert per_channel["supermarket"] == world.skus.num_rows
    routes = world.routes.to_pandas().set_index("route_id")
    visits = stores["route_id"].map(routes["visit_weekdays"].map(len))
    assert visits[stores["channel"] == "supermarket"].min() >= 3
    assert visits[(stores["channel"] == "tienda") & ~stores["big_customer"]].max() <= 2


def test_heat_raises_demand_water_most(wide_world: World) -> None:
    h = _history(wide_world)
    hot = _hot_days(wide_world)
    assert len(hot) >= 5  # a heat wave happened
    is_cola = h["sku"].str.startswith("COLA-")
    h["cat"] = np.where(h["sku"].str.startswith("AGUA-"), "water", np.where(is_cola, "cola", "other"))
    daily = h.groupby(["region_id", "cat", "date"])["demand"].sum().reset_index()
    daily["hot"] = [k in hot for k in zip(daily["region_id"], daily["date"], strict=True)]
    daily["wd"] = [d.weekday() for d in daily["date"]]
    # demand relative to the same weekday on normal days, same region and category
    base = daily[~daily["hot"]].groupby(["region_id", "cat", "wd"])["demand"].mean()
    keys = pd.MultiIndex.from_frame(daily[["region_id", "cat", "wd"]])
    daily["ratio"] = daily["demand"].to_numpy() / base.reindex(keys).to_numpy()
    uplift = daily[daily["hot"]].groupby("cat")["ratio"].mean()
    assert uplift["cola"] > 1.03
    assert uplift["water"] > uplift["cola"] + 0.05


def test_payday_uplift(wide_world: World) -> None:
    h = _history(wide_world)
    total = h.groupby("date")["demand"].sum()
    hot = {d for _, d in _hot_days(wide_world)}

    def near_payday(d: date) -> bool:
        return any(is_payday(d + timedelta(days=k)) for k in (-1, 0, 1, 2, 3))

    plain = [d for d in total.index if not near_payday(d) and d not in hot]
    base = {wd: total[[d for d in plain if d.weekday() == wd]].mean() for wd in range(7)}
    pay = [d for d in total.index if (is_payday(d) or is_payday(d - timedelta(days=1))) and d not in hot]
    assert len(pay) >= 4
    uplift = np.mean([total[d] / base[d.weekday()] for d in pay])
    assert uplift > 1.05
