"""The world's tables as pyarrow Tables, with fixed schemas (docs/CONTRACTS.md, plus a few
added columns marked below, and the added table ``cooler_faults``). Timestamps are
``timestamp[us, tz=UTC]``; dates are local dates (``World.timezone``); ids are strings.

Semantics worth knowing:

* ``hourly`` has one row per assortment pair × **trading hour** (local ``opens_hour`` ≤ hour <
  ``closes_hour``) from ``start_date`` to the end of the horizon, ordered by store, SKU, hour.
  Outside trading hours nothing happens (no demand, no delivery) and stock carries over.
  ``demand`` is the units customers wanted (integral-valued float, latent: sales are capped);
  ``sold_units = min(demand, on_hand_start + delivered_units)``. A delivery arrives at the top of
  its hour. ``stockout_at`` is set when stock hit zero in that hour (``available > 0`` and
  ``demand >= available``) at ``hour_start + 60 min × available / demand``.
* ``stockout_episodes``: from ``stockout_at`` to the next delivery of that SKU (``end_at``, null if
  still out at the horizon end); only episodes that lost demand. ``lost_units`` counts units lost
  within the world's span; an episode open on ``start_date`` keeps its true (earlier) ``start_at``.
* ``orders``: one per store visit with something to order. Orders delivered on ``start_date`` were
  taken the day before. ``status``: ``delivered``, ``partial`` (some line short: see
  ``order_lines.shortfall_reason`` = ``fill_rate`` or ``empties``), ``not_delivered``, or
  ``pending`` (delivery after the horizon; ``qty_delivered`` null). ``unit_price`` is the
  shopkeeper's price (80 % of the shelf price ``skus.price``).
* ``promotions``: ``end_date`` is inclusive; ``uplift`` multiplies demand in that region.
* ``visit_analyses``: one document per visit to a big customer (``doc`` is JSON).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any, Final

import numpy as np
import pyarrow as pa
from numpy.typing import NDArray

from abasto.world.analyses import visit_documents
from abasto.world.calendar import CHANNELS
from abasto.world.parts import Parts
from abasto.world.simulate import REASON_EMPTIES, REASON_FILL
from abasto.world.weather import REGIONS

TS: Final = pa.timestamp("us", tz="UTC")

SCHEMAS: Final[dict[str, Any]] = {
    "regions": pa.schema([
        ("region_id", pa.string()), ("name", pa.string()), ("base_temp_c", pa.float64()),
        ("lat", pa.float64()), ("lon", pa.float64()),  # added
    ]),
    "reps": pa.schema([
        ("rep_id", pa.string()), ("name", pa.string()), ("phone", pa.string()), ("region_id", pa.string()),
    ]),
    "routes": pa.schema([
        ("route_id", pa.string()), ("region_id", pa.string()), ("rep_id", pa.string()),
        ("visit_weekdays", pa.list_(pa.int8())), ("delivery_lag_days", pa.int8()),
        ("name", pa.string()), ("tier", pa.string()),  # added
    ]),
    "stores": pa.schema([
        ("store_id", pa.string()), ("name", pa.string()), ("owner_name", pa.string()),
        ("phone", pa.string()), ("channel", pa.string()), ("region_id", pa.string()),
        ("route_id", pa.string()), ("lat", pa.float64()), ("lon", pa.float64()),
        ("coolers", pa.int8()), ("big_customer", pa.bool_()), ("opens_hour", pa.int8()),
        ("closes_hour", pa.int8()),
        ("rep_id", pa.string()), ("visit_hour", pa.int8()), ("delivery_hour", pa.int8()),  # added
    ]),
    "skus": pa.schema([
        ("sku", pa.string()), ("brand", pa.string()), ("pack", pa.string()), ("size_ml", pa.int32()),
        ("returnable", pa.bool_()), ("units_per_case", pa.int32()), ("price", pa.float64()),
        ("category", pa.string()),  # added
    ]),
    "assortment": pa.schema([
        ("store_id", pa.string()), ("sku", pa.string()), ("base_daily_units", pa.float64()),
        ("capacity_units", pa.int32()),
    ]),
    "weather": pa.schema([("date", pa.date32()), ("region_id", pa.string()), ("temp_c", pa.float64())]),
    "calendar": pa.schema([
        ("date", pa.date32()), ("is_holiday", pa.bool_()), ("is_payday", pa.bool_()),
        ("holiday_name", pa.string()),
    ]),
    "promotions": pa.schema([
        ("promo_id", pa.string()), ("sku", pa.string()), ("region_id", pa.string()),
        ("start_date", pa.date32()), ("end_date", pa.date32()), ("uplift", pa.float64()),
        ("mechanic", pa.string()),  # added
    ]),
    "hourly": pa.schema([
        ("store_id", pa.string()), ("sku", pa.string()), ("hour_start", TS), ("demand", pa.float64()),
        ("sold_units", pa.int32()), ("on_hand_start", pa.int32()), ("on_hand_end", pa.int32()),
        ("delivered_units", pa.int32()), ("stockout_at", TS),
    ]),
    "orders": pa.schema([
        ("order_id", pa.string()), ("store_id", pa.string()), ("route_id", pa.string()),
        ("rep_id", pa.string()), ("order_date", pa.date32()), ("delivery_date", pa.date32()),
        ("status", pa.string()),
        ("ordered_at", TS),  # added
    ]),
    "order_lines": pa.schema([
        ("order_id", pa.string()), ("line_no", pa.int32()), ("sku", pa.string()),
        ("qty_ordered", pa.int32()), ("qty_delivered", pa.int32()), ("unit_price", pa.float64()),
        ("shortfall_reason", pa.string()),  # added
    ]),
    "deliveries": pa.schema([
        ("delivery_id", pa.string()), ("order_id", pa.string()), ("store_id", pa.string()),
        ("delivered_at", TS),
    ]),
    "visit_analyses": pa.schema([
        ("pk", pa.string()), ("sk", pa.string()), ("doc", pa.string()),
        ("store_id", pa.string()), ("rep_id", pa.string()), ("visited_at", TS),  # added
    ]),
    "stockout_episodes": pa.schema([
        ("store_id", pa.string()), ("sku", pa.string()), ("start_at", TS), ("end_at", TS),
        ("lost_units", pa.int32()),
        ("episode_id", pa.string()),  # added
    ]),
    # added table: refrigeration failures (ground truth for cooler telemetry)
    "cooler_faults": pa.schema([
        ("store_id", pa.string()), ("cooler_no", pa.int8()), ("start_at", TS), ("end_at", TS),
        ("temp_c", pa.float64()),
    ]),
}
TABLE_NAMES: Final = tuple(SCHEMAS)

#: a store's price to the shopkeeper, as a share of the shelf price
WHOLESALE_SHARE: Final = 0.8


def _table(name: str, columns: Sequence[Any]) -> Any:
    return pa.Table.from_arrays(list(columns), schema=SCHEMAS[name])


def _labels(indices: NDArray[np.int64], labels: Sequence[str]) -> Any:
    """Strings from integer codes without building Python objects per row."""
    codes = pa.array(np.asarray(indices, dtype=np.int32))
    return pa.DictionaryArray.from_arrays(codes, pa.array(list(labels), pa.string())).cast(pa.string())


def _ts(us: NDArray[np.int64], null: NDArray[np.bool_] | None = None) -> Any:
    return pa.array(np.asarray(us, dtype=np.int64), type=TS, mask=null)


def _dates(days: Sequence[date]) -> Any:
    return pa.array(list(days), pa.date32())


def build_tables(parts: Parts) -> dict[str, Any]:
    return {
        "regions": _regions(),
        "reps": _reps(parts),
        "routes": _routes(parts),
        "stores": _stores(parts),
        "skus": _skus(parts),
        "assortment": _assortment(parts),
        "weather": _weather(parts),
        "calendar": _calendar(parts),
        "promotions": _promotions(parts),
        "hourly": _hourly(parts),
        **_orders(parts),
        "visit_analyses": _visits(parts),
        "stockout_episodes": _episodes(parts),
        "cooler_faults": _cooler_faults(parts),
    }


def _regions() -> Any:
    return _table("regions", [
        pa.array([r.region_id for r in REGIONS]), pa.array([r.name for r in REGIONS]),
        pa.array([r.base_temp_c for r in REGIONS]), pa.array([r.lat for r in REGIONS]),
        pa.array([r.lon for r in REGIONS]),
    ])


def _reps(parts: Parts) -> Any:
    rs = parts.routes
    return _table("reps", [
        pa.array([r.rep_id for r in rs], pa.string()), pa.array([r.rep_name for r in rs], pa.string()),
        pa.array([r.rep_phone for r in rs], pa.string()),
        pa.array([REGIONS[r.region].region_id for r in rs], pa.string()),
    ])


def _routes(parts: Parts) -> Any:
    rs = parts.routes
    return _table("routes", [
        pa.array([r.route_id for r in rs], pa.string()),
        pa.array([REGIONS[r.region].region_id for r in rs], pa.string()),
        pa.array([r.rep_id for r in rs], pa.string()),
        pa.array([list(r.weekdays) for r in rs], pa.list_(pa.int8())),
        pa.array([1] * len(rs), pa.int8()),
        pa.array([r.name for r in rs], pa.string()),
        pa.array([r.tier for r in rs], pa.string()),
    ])


def _stores(parts: Parts) -> Any:
    s, rs = parts.stores, parts.routes
    route = [rs[int(k)] for k in s.route]
    return _table("stores", [
        pa.array(s.store_id, pa.string()), pa.array(s.name, pa.string()),
        pa.array(s.owner_name, pa.string()), pa.array(s.phone, pa.string()),
        _labels(s.channel, CHANNELS), _labels(s.region, [r.region_id for r in REGIONS]),
        pa.array([r.route_id for r in route], pa.string()), pa.array(s.lat), pa.array(s.lon),
        pa.array(s.coolers).cast(pa.int8()), pa.array(s.big_customer),
        pa.array(s.opens).cast(pa.int8()), pa.array(s.closes).cast(pa.int8()),
        pa.array([r.rep_id for r in route], pa.string()),
        pa.array(s.visit_hour).cast(pa.int8()), pa.array(s.delivery_hour).cast(pa.int8()),
    ])


def _skus(parts: Parts) -> Any:
    k = parts.skus
    return _table("skus", [
        pa.array([s.sku for s in k], pa.string()), pa.array([s.brand for s in k], pa.string()),
        pa.array([s.pack for s in k], pa.string()), pa.array([s.size_ml for s in k], pa.int32()),
        pa.array([s.returnable for s in k], pa.bool_()),
        pa.array([s.units_per_case for s in k], pa.int32()),
        pa.array([s.price for s in k], pa.float64()), pa.array([s.category for s in k], pa.string()),
    ])


def _assortment(parts: Parts) -> Any:
    p = parts.pairs
    return _table("assortment", [
        _labels(p.store, parts.stores.store_id), _labels(p.sku, [s.sku for s in parts.skus]),
        pa.array(p.base_daily), pa.array(p.capacity).cast(pa.int32()),
    ])


def _output_dates(parts: Parts) -> list[date]:
    return [parts.grid.date_of(d) for d in range(parts.first_day, parts.last_day + 1)]


def _weather(parts: Parts) -> Any:
    days = _output_dates(parts)
    n = len(days)
    temps = parts.weather.temp_c[:, parts.first_day : parts.last_day + 1]
    return _table("weather", [
        _dates(days * len(REGIONS)),
        _labels(np.repeat(np.arange(len(REGIONS)), n), [r.region_id for r in REGIONS]),
        pa.array(temps.reshape(-1)),
    ])


def _calendar(parts: Parts) -> Any:
    sl = slice(parts.first_day, parts.last_day + 1)
    cal = parts.calendar
    return _table("calendar", [
        _dates(_output_dates(parts)), pa.array(cal.is_holiday[sl]), pa.array(cal.is_payday[sl]),
        pa.array(cal.holiday_name[sl], pa.string()),
    ])


def _promotions(parts: Parts) -> Any:
    ps, g = parts.promos, parts.grid
    return _table("promotions", [
        pa.array([p.promo_id for p in ps], pa.string()),
        pa.array([parts.skus[p.sku].sku for p in ps], pa.string()),
        pa.array([REGIONS[p.region].region_id for p in ps], pa.string()),
        _dates([g.date_of(p.start_day) for p in ps]), _dates([g.date_of(p.end_day) for p in ps]),
        pa.array([p.uplift for p in ps], pa.float64()), pa.array([p.mechanic for p in ps], pa.string()),
    ])


def _hourly(parts: Parts) -> Any:
    """One row per assortment pair × trading hour of the output window, ordered by pair then hour."""
    lo, hi = parts.first_hour, parts.end_hour
    pairs, sim = parts.pairs, parts.sim
    mask = parts.trading[lo:hi][:, pairs.store].T  # [pair, hour]
    per_pair = mask.sum(axis=1)
    n_hours = hi - lo

    def pick(matrix: NDArray[Any]) -> NDArray[Any]:
        return np.asarray(np.ascontiguousarray(matrix.T)[mask])

    hour_us = np.broadcast_to(parts.grid.hour_us[lo:hi], (len(pairs), n_hours))[mask]
    on_start = pick(sim.on_hand_start)
    delivered = pick(sim.delivered)
    sold = pick(sim.sold)
    stockout = pick(sim.stockout_us)
    return _table("hourly", [
        _labels(np.repeat(pairs.store, per_pair), parts.stores.store_id),
        _labels(np.repeat(pairs.sku, per_pair), [s.sku for s in parts.skus]),
        _ts(hour_us),
        pa.array(pick(parts.demand[lo:hi]).astype(np.float64)),
        pa.array(sold.astype(np.int32)),
        pa.array(on_start.astype(np.int32)),
        pa.array((on_start + delivered - sold).astype(np.int32)),
        pa.array(delivered.astype(np.int32)),
        _ts(stockout, null=stockout < 0),
    ])


def _orders(parts: Parts) -> dict[str, Any]:
    g, s, rs = parts.grid, parts.stores, parts.routes
    orders: dict[str, list[Any]] = {k: [] for k in SCHEMAS["orders"].names}
    lines: dict[str, list[Any]] = {k: [] for k in SCHEMAS["order_lines"].names}
    deliveries: dict[str, list[Any]] = {k: [] for k in SCHEMAS["deliveries"].names}
    reasons = {REASON_FILL: "fill_rate", REASON_EMPTIES: "empties"}
    for o in sorted(parts.sim.orders, key=lambda o: (o.day, o.store)):
        if o.delivery_day < parts.first_day:
            continue
        store_id = s.store_id[o.store]
        route = rs[int(s.route[o.store])]
        order_day, delivery_day = g.date_of(o.day), g.date_of(o.delivery_day)
        order_id = f"O{order_day:%Y%m%d}-{store_id}"
        pending = o.delivery_hour < 0 or o.delivery_hour >= parts.end_hour
        if pending:
            status = "pending"
        elif not o.delivered.any():
            status = "not_delivered"
        elif (o.delivered < o.qty).any():
            status = "partial"
        else:
            status = "delivered"
        for key, value in (("order_id", order_id), ("store_id", store_id), ("route_id", route.route_id),
                           ("rep_id", route.rep_id), ("order_date", order_day),
                           ("delivery_date", delivery_day), ("status", status),
                           ("ordered_at", int(g.hour_us[o.hour]))):
            orders[key].append(value)
        for n, (p, qty, got, why) in enumerate(zip(o.pairs.tolist(), o.qty.tolist(), o.delivered.tolist(),
                                                   o.reason.tolist(), strict=True), start=1):
            sku = parts.skus[int(parts.pairs.sku[p])]
            lines["order_id"].append(order_id)
            lines["line_no"].append(n)
            lines["sku"].append(sku.sku)
            lines["qty_ordered"].append(qty)
            lines["qty_delivered"].append(None if pending else got)
            lines["unit_price"].append(round(sku.price * WHOLESALE_SHARE, 2))
            lines["shortfall_reason"].append(None if pending else reasons.get(why))
        if status in ("delivered", "partial"):
            deliveries["delivery_id"].append(f"D{delivery_day:%Y%m%d}-{store_id}")
            deliveries["order_id"].append(order_id)
            deliveries["store_id"].append(store_id)
            deliveries["delivered_at"].append(int(g.hour_us[o.delivery_hour]))

    def build(name: str, cols: dict[str, list[Any]]) -> Any:
        schema = SCHEMAS[name]
        return _table(name, [
            _ts(np.array(cols[f.name], dtype=np.int64)) if f.type == TS else pa.array(cols[f.name], f.type)
            for f in schema
        ])

    return {
        "orders": build("orders", orders),
        "order_lines": build("order_lines", lines),
        "deliveries": build("deliveries", deliveries),
    }


def _visits(parts: Parts) -> Any:
    docs = visit_documents(parts)
    return _table("visit_analyses", [
        pa.array([d.pk for d in docs], pa.string()), pa.array([d.sk for d in docs], pa.string()),
        pa.array([d.doc for d in docs], pa.string()), pa.array([d.store_id for d in docs], pa.string()),
        pa.array([d.rep_id for d in docs], pa.string()),
        _ts(np.array([d.visited_us for d in docs], dtype=np.int64)),
    ])


def _episodes(parts: Parts) -> Any:
    eps = sorted(parts.sim.episodes, key=lambda e: (e[0], e[1]))
    pairs, skus, stores = parts.pairs, parts.skus, parts.stores
    pair = np.array([e[0] for e in eps], dtype=np.int64)
    start = np.array([e[1] for e in eps], dtype=np.int64)
    end = np.array([e[2] for e in eps], dtype=np.int64)
    store_ids = [stores.store_id[int(pairs.store[p])] for p in pair.tolist()]
    sku_ids = [skus[int(pairs.sku[p])].sku for p in pair.tolist()]
    episode_ids = [
        f"{st}/{sk}/{int(us) // 1_000_000}"
        for st, sk, us in zip(store_ids, sku_ids, start.tolist(), strict=True)
    ]
    return _table("stockout_episodes", [
        pa.array(store_ids, pa.string()), pa.array(sku_ids, pa.string()), _ts(start),
        _ts(end, null=end < 0), pa.array([e[3] for e in eps], pa.int32()),
        pa.array(episode_ids, pa.string()),
    ])


def _cooler_faults(parts: Parts) -> Any:
    fs = [f for f in parts.faults if f.end_hour > parts.first_hour and f.start_hour < parts.end_hour]
    return _table("cooler_faults", [
        pa.array([parts.stores.store_id[f.store] for f in fs], pa.string()),
        pa.array([f.cooler_no for f in fs], pa.int8()),
        _ts(np.array([int(parts.grid.hour_us[f.start_hour]) for f in fs], dtype=np.int64)),
        _ts(np.array([parts.hour_end_us(f.end_hour) for f in fs], dtype=np.int64)),
        pa.array([f.temp_c for f in fs], pa.float64()),
    ])
