"""Accounting and consistency of the simulated world: stock, sales, orders, deliveries, episodes."""

from __future__ import annotations

import json
from datetime import timedelta

import numpy as np
import pandas as pd
import pyarrow as pa

from abasto.world import SCHEMAS, TABLE_NAMES, World

HOUR = pd.Timedelta(hours=1)


def test_tables_follow_the_schemas(world: World) -> None:
    assert set(world.tables) == set(TABLE_NAMES)
    for name in TABLE_NAMES:
        assert world.table(name).schema.equals(SCHEMAS[name]), name
    assert world.hourly.schema.field("hour_start").type == pa.timestamp("us", tz="UTC")
    assert world.routes.schema.field("visit_weekdays").type == pa.list_(pa.int8())
    assert world.stores.num_rows == 30 and world.skus.num_rows == 16


def test_time_frame(world: World, hourly: pd.DataFrame) -> None:
    assert world.timezone == "America/Mexico_City"
    assert world.live_day == world.start_date + timedelta(days=35)
    assert world.history_end == world.live_start
    assert world.live_end - world.live_start == timedelta(days=1)
    assert world.horizon_end == world.live_end + timedelta(days=3)
    assert world.live_start.utcoffset() == timedelta(0)
    assert world.live_start.isoformat() == "2026-10-06T06:00:00+00:00"  # local midnight, UTC-6
    assert hourly["hour_start"].min() >= pd.Timestamp(world.history_start)
    assert hourly["hour_start"].max() < pd.Timestamp(world.horizon_end)
    assert hourly["date"].nunique() == 35 + 1 + 3


def test_stock_accounting(hourly: pd.DataFrame) -> None:
    h = hourly
    available = h["on_hand_start"] + h["delivered_units"]
    assert (h["on_hand_start"] >= 0).all() and (h["on_hand_end"] >= 0).all()
    assert (h["on_hand_end"] == available - h["sold_units"]).all()
    assert (h["sold_units"] <= h["demand"]).all()
    assert (h["demand"] == h["demand"].round()).all()
    enough = available >= h["demand"]
    assert (h.loc[enough, "sold_units"] == h.loc[enough, "demand"]).all()
    assert (h.loc[~enough, "sold_units"] == available[~enough]).all()
    assert (~enough).sum() > 0  # there are stockouts at all


def test_stock_carries_over_between_trading_hours(hourly: pd.DataFrame) -> None:
    h = hourly  # ordered by store, sku, hour
    store, sku = h["store_id"].to_numpy(), h["sku"].to_numpy()
    same_pair = (store[1:] == store[:-1]) & (sku[1:] == sku[:-1])
    t = h["hour_start"].dt.tz_convert(None).to_numpy().astype("int64")
    assert (np.diff(t)[same_pair] > 0).all()
    assert (h["on_hand_start"].to_numpy()[1:][same_pair] == h["on_hand_end"].to_numpy()[:-1][same_pair]).all()


def test_rows_only_in_trading_hours(world: World, hourly: pd.DataFrame) -> None:
    stores = world.stores.to_pandas().set_index("store_id")
    local_hour = hourly["local"].dt.hour
    opens = hourly["store_id"].map(stores["opens_hour"])
    closes = hourly["store_id"].map(stores["closes_hour"])
    assert ((local_hour >= opens) & (local_hour < closes)).all()
    # every assortment pair has every trading hour of every day
    per_pair = hourly.groupby(["store_id", "sku"]).size()
    hours_open = closes.astype(int) - opens.astype(int)
    expected = hours_open.groupby([hourly["store_id"], hourly["sku"]]).first() * 39
    assert (per_pair == expected).all()
    assert len(per_pair) == world.assortment.num_rows


def test_stockout_at_is_where_stock_hit_zero(hourly: pd.DataFrame) -> None:
    h = hourly
    available = h["on_hand_start"] + h["delivered_units"]
    hit = (available > 0) & (h["demand"] >= available) & (h["demand"] > 0)
    assert (h["stockout_at"].notna() == hit).all()
    x = h[hit]
    expected = x["hour_start"] + pd.to_timedelta(
        np.floor(available[hit] / x["demand"] * 3_600_000_000).astype("int64"), unit="us"
    )
    assert (x["stockout_at"] == expected).all()
    assert ((x["stockout_at"] >= x["hour_start"]) & (x["stockout_at"] <= x["hour_start"] + HOUR)).all()


def test_deliveries_come_the_day_after_a_visit_day(world: World, hourly: pd.DataFrame) -> None:
    stores = world.stores.to_pandas().set_index("store_id")
    routes = world.routes.to_pandas().set_index("route_id")
    assert (routes["delivery_lag_days"] == 1).all()
    d = world.deliveries.to_pandas()
    assert len(d) > 0
    local = d["delivered_at"].dt.tz_convert("America/Mexico_City")
    visit_weekday = (local - pd.Timedelta(days=1)).dt.day_of_week
    route_days = d["store_id"].map(stores["route_id"]).map(routes["visit_weekdays"])
    assert all(int(wd) in list(days) for wd, days in zip(visit_weekday, route_days, strict=True))
    all_orders = world.orders.to_pandas()
    order_weekday = pd.to_datetime(all_orders["order_date"]).dt.day_of_week
    order_route_days = all_orders["route_id"].map(routes["visit_weekdays"])
    assert all(int(wd) in list(days) for wd, days in zip(order_weekday, order_route_days, strict=True))
    orders = all_orders[["order_id", "order_date", "delivery_date"]]
    joined = d.merge(orders, on="order_id", how="left", validate="one_to_one")
    assert (joined["delivery_date"] == local.dt.date).all()
    lag = pd.to_datetime(joined["delivery_date"]) - pd.to_datetime(joined["order_date"])
    assert (lag == pd.Timedelta(days=1)).all()
    # deliveries happen in the morning, while the store is open
    assert (local.dt.hour <= 13).all()


def test_hourly_deliveries_match_order_lines(world: World, hourly: pd.DataFrame) -> None:
    lines = world.order_lines.to_pandas().merge(world.deliveries.to_pandas(), on="order_id")
    orders = world.orders.to_pandas()[["order_id", "store_id"]]
    lines = lines.merge(orders, on="order_id", suffixes=("", "_o"))
    from_orders = lines.groupby(["store_id", "sku", "delivered_at"])["qty_delivered"].sum()
    from_orders = from_orders[from_orders > 0].sort_index()
    h = hourly[hourly["delivered_units"] > 0]
    from_hourly = h.set_index(["store_id", "sku", "hour_start"])["delivered_units"].sort_index()
    assert from_orders.index.equals(from_hourly.index.set_names(from_orders.index.names))
    assert (from_orders.to_numpy() == from_hourly.to_numpy()).all()


def test_orders_and_fill(world: World) -> None:
    o = world.orders.to_pandas()
    lines = world.order_lines.to_pandas()
    assert set(o["status"]) <= {"delivered", "partial", "not_delivered", "pending"}
    assert (lines["qty_ordered"] > 0).all()
    done = lines[lines["qty_delivered"].notna()]
    assert (done["qty_delivered"] <= done["qty_ordered"]).all()
    short = done[done["qty_delivered"] < done["qty_ordered"]]
    assert set(short["shortfall_reason"]) <= {"fill_rate", "empties"} and len(short) > 0
    assert (done.loc[done["qty_delivered"] == done["qty_ordered"], "shortfall_reason"].isna()).all()
    fill = done["qty_delivered"].sum() / done["qty_ordered"].sum()
    assert 0.85 < fill < 1.0  # fill rate below 1, not a disaster
    skus = world.skus.to_pandas().set_index("sku")
    empties = lines[lines["shortfall_reason"] == "empties"]
    assert skus.loc[empties["sku"], "returnable"].all()
    # pending orders are those delivered after the horizon
    pending = o[o["status"] == "pending"]
    assert (pd.to_datetime(pending["delivery_date"]) > pd.Timestamp(world.last_day)).all()


def test_episodes_match_the_hourly_table(world: World, hourly: pd.DataFrame) -> None:
    ep = world.stockout_episodes.to_pandas()
    assert len(ep) > 0 and (ep["lost_units"] > 0).all()
    assert ep["episode_id"].is_unique
    # all lost demand belongs to an episode, and nothing else does
    assert int(ep["lost_units"].sum()) == int(hourly["lost"].sum())

    hour = 3_600_000_000
    t = hourly["hour_start"].dt.tz_convert(None).to_numpy().astype("datetime64[us]").astype("int64")
    so = hourly["stockout_at"].dt.tz_convert(None).to_numpy().astype("datetime64[us]")
    so_us = np.where(np.isnat(so), -1, so.astype("int64"))
    lost, end_stock = hourly["lost"].to_numpy(), hourly["on_hand_end"].to_numpy()
    delivered = hourly["delivered_units"].to_numpy()
    rows = hourly.groupby(["store_id", "sku"], sort=False).indices
    first = int(pd.Timestamp(world.history_start).value // 1000)
    horizon = int(pd.Timestamp(world.horizon_end).value // 1000)
    start_us = ep["start_at"].dt.tz_convert(None).to_numpy().astype("datetime64[us]").astype("int64")
    end_raw = ep["end_at"].dt.tz_convert(None).to_numpy().astype("datetime64[us]")
    end_us = np.where(np.isnat(end_raw), horizon, end_raw.astype("int64"))
    for k, e in enumerate(ep.itertuples()):
        ix = rows[(e.store_id, e.sku)]
        inside = ix[(t[ix] + hour > start_us[k]) & (t[ix] < end_us[k])]
        assert int(lost[inside].sum()) == e.lost_units
        if start_us[k] >= first:
            # starts where the hourly table says stock hit zero, and stays out until the truck
            assert len(ix[so_us[ix] == start_us[k]]) == 1
            assert (end_stock[inside] == 0).all()
        if not np.isnat(end_raw[k]):
            at_end = ix[t[ix] == end_us[k]]
            assert len(at_end) == 1 and delivered[at_end[0]] > 0
            assert end_us[k] > start_us[k]


def test_live_day_has_episodes(world: World) -> None:
    ep = world.stockout_episodes.to_pandas()
    starts = ep["start_at"]
    live = ep[(starts >= pd.Timestamp(world.live_start)) & (starts < pd.Timestamp(world.live_end))]
    assert len(live) >= 5
    summary = world.summary()
    assert summary["episodes_live_day"] == len(live)


def test_visit_analyses_are_one_per_big_customer_visit(world: World, hourly: pd.DataFrame) -> None:
    va = world.visit_analyses.to_pandas()
    stores = world.stores.to_pandas().set_index("store_id")
    routes = world.routes.to_pandas().set_index("route_id")
    big = stores[stores["big_customer"]]
    days = pd.date_range(world.start_date, world.last_day, freq="D")
    expected = sum(
        sum(int(d.day_of_week) in list(routes.loc[row.route_id, "visit_weekdays"]) for d in days)
        for row in big.itertuples()
    )
    assert len(va) == expected > 0
    assert set(va["store_id"]) == set(big.index)
    assert va["pk"].str.fullmatch(r"STORE#S\d{4}").all()
    assert va["sk"].str.fullmatch(r"VISIT#\d{4}-\d{2}-\d{2}#REP\d{2}").all()
    assert not va.duplicated(["pk", "sk"]).any()
    row = va.iloc[len(va) // 2]
    doc = json.loads(row["doc"])
    assert {"shelf_share_pct", "coolers", "stock_counts", "expected_order", "notes"} <= set(doc)
    assert doc["store_id"] == row["store_id"] and doc["rep_id"] == row["rep_id"]
    assert len(doc["coolers"]) == int(stores.loc[row["store_id"], "coolers"])
    # stock counted = stock on hand at the top of the visit hour (after any delivery)
    at = hourly[(hourly["store_id"] == row["store_id"]) & (hourly["hour_start"] == row["visited_at"])]
    counted = (at["on_hand_start"] + at["delivered_units"]).to_numpy()
    assert dict(zip(at["sku"], counted.tolist(), strict=True)) == doc["stock_counts"]
    assert doc["out_of_stock"] == sorted(k for k, n in doc["stock_counts"].items() if n == 0) or all(
        doc["stock_counts"][k] == 0 for k in doc["out_of_stock"]
    )
