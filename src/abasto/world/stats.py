"""Statistics measured on a generated world (what the CLI summary and the tests look at).

A *stockout SKU-day* is a store × SKU × local day on which some demand went unserved during
trading hours (the customer found the shelf and cooler empty).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

from abasto.world.calendar import CHANNELS

if TYPE_CHECKING:
    from abasto.world.model import World


@dataclass(frozen=True)
class SkuDays:
    """One entry per store × SKU × local day present in ``hourly``."""

    store: NDArray[np.int64]
    sku: NDArray[np.int64]
    day: NDArray[np.int64]  # date ordinal (local date)
    demand: NDArray[np.float64]
    sold: NDArray[np.int64]
    store_ids: list[str]
    sku_ids: list[str]

    @property
    def stocked_out(self) -> NDArray[np.bool_]:
        return np.asarray(self.demand > self.sold, dtype=np.bool_)


def codes(column: Any) -> tuple[NDArray[np.int64], list[str]]:
    """Integer codes and labels of a string column."""
    enc = pc.dictionary_encode(column).combine_chunks()
    return (
        np.asarray(enc.indices.to_numpy(zero_copy_only=False), dtype=np.int64),
        [str(x) for x in enc.dictionary.to_pylist()],
    )


def epoch_us(column: Any) -> NDArray[np.int64]:
    return np.asarray(pc.cast(column, pa.int64()).to_numpy(zero_copy_only=False), dtype=np.int64)


def local_day_ordinals(us: NDArray[np.int64], timezone: str) -> NDArray[np.int64]:
    """Local date (as ``date.toordinal()``) of each epoch-µs instant."""
    tz = ZoneInfo(timezone)
    uniq, inverse = np.unique(us, return_inverse=True)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    ords = np.array(
        [(epoch + timedelta(microseconds=int(u))).astimezone(tz).date().toordinal() for u in uniq],
        dtype=np.int64,
    )
    return np.asarray(ords[inverse], dtype=np.int64)


def sku_days(world: World) -> SkuDays:
    h = world.hourly
    store, store_ids = codes(h["store_id"])
    sku, sku_ids = codes(h["sku"])
    day = local_day_ordinals(epoch_us(h["hour_start"]), world.timezone)
    d0 = int(day.min()) if day.size else 0
    n_days = int(day.max()) - d0 + 1 if day.size else 1
    key = (store * len(sku_ids) + sku) * n_days + (day - d0)
    uniq, inv = np.unique(key, return_inverse=True)
    demand = np.bincount(inv, weights=h["demand"].to_numpy())
    sold = np.bincount(inv, weights=h["sold_units"].to_numpy().astype(np.float64)).astype(np.int64)
    return SkuDays(
        store=np.asarray(uniq // n_days // len(sku_ids), dtype=np.int64),
        sku=np.asarray(uniq // n_days % len(sku_ids), dtype=np.int64),
        day=np.asarray(uniq % n_days + d0, dtype=np.int64),
        demand=np.asarray(demand, dtype=np.float64),
        sold=sold,
        store_ids=store_ids,
        sku_ids=sku_ids,
    )


def _rate(mask: NDArray[np.bool_], out: NDArray[np.bool_]) -> float | None:
    n = int(mask.sum())
    return round(float(out[mask].mean()), 4) if n else None


def stockout_rates(world: World) -> dict[str, float | None]:
    """Share of stockout SKU-days, overall (history) and by condition."""
    sd = sku_days(world)
    out = sd.stocked_out
    history = sd.day < world.live_day.toordinal()
    live = sd.day == world.live_day.toordinal()
    weekday = np.array([date.fromordinal(int(d)).weekday() for d in range(sd.day.min(), sd.day.max() + 1)])
    wd = weekday[sd.day - sd.day.min()] if sd.day.size else np.zeros(0, dtype=np.int64)
    weekend = wd >= 5

    # hot = the region's daily max at least 3 °C above its mean over the period
    w = world.weather
    w_region, w_regions = codes(w["region_id"])
    w_day = np.array([d.toordinal() for d in w["date"].to_pylist()], dtype=np.int64)
    temp = w["temp_c"].to_numpy()
    mean = np.bincount(w_region, weights=temp) / np.bincount(w_region)
    hot_keys = {
        (w_regions[r], int(d)) for r, d, t in zip(w_region, w_day, temp, strict=True) if t >= mean[r] + 3
    }
    st = world.stores
    region_of = dict(zip(st["store_id"].to_pylist(), st["region_id"].to_pylist(), strict=True))
    store_region = [region_of[s] for s in sd.store_ids]
    hot = np.array([(store_region[s], int(d)) in hot_keys for s, d in zip(sd.store, sd.day, strict=True)],
                   dtype=np.bool_)

    promo_keys: set[tuple[str, str, int]] = set()
    for row in world.promotions.to_pylist():
        for k in range(row["start_date"].toordinal(), row["end_date"].toordinal() + 1):
            promo_keys.add((row["region_id"], row["sku"], k))
    promo = np.array(
        [(store_region[s], sd.sku_ids[k], int(d)) in promo_keys for s, k, d in zip(sd.store, sd.sku, sd.day,
                                                                                   strict=True)],
        dtype=np.bool_,
    )
    channel_of = dict(zip(st["store_id"].to_pylist(), st["channel"].to_pylist(), strict=True))
    big_of = dict(zip(st["store_id"].to_pylist(), st["big_customer"].to_pylist(), strict=True))
    channel = np.array([channel_of[s] for s in sd.store_ids])[sd.store] if sd.store.size else np.zeros(0)
    big = np.array([big_of[s] for s in sd.store_ids], dtype=np.bool_)[sd.store]
    rates: dict[str, float | None] = {
        "history": _rate(history, out),
        "live_day": _rate(live, out),
        "weekday": _rate(history & ~weekend, out),
        "weekend": _rate(history & weekend, out),
        "hot_days": _rate(history & hot, out),
        "normal_days": _rate(history & ~hot, out),
        "promo": _rate(history & promo, out),
        "no_promo": _rate(history & ~promo, out),
        "big_customers": _rate(history & big, out),
        "other_customers": _rate(history & ~big, out),
    }
    for ch in CHANNELS:
        rates[f"channel_{ch}"] = _rate(history & (channel == ch), out)
    return rates


def by_weekday(world: World) -> dict[str, list[float]]:
    """Per local weekday (Mon..Sun) over the history: stockout rate of SKU-days, and episodes
    starting per 100 SKU-days (stockouts tend to start on busy days and last until the truck)."""
    sd = sku_days(world)
    history = sd.day < world.live_day.toordinal()
    wd = np.array([date.fromordinal(int(d)).weekday() for d in sd.day], dtype=np.int64)
    ep = world.stockout_episodes
    start = epoch_us(ep["start_at"])
    start_day = local_day_ordinals(start, world.timezone) if start.size else np.zeros(0, dtype=np.int64)
    in_history = (start_day >= world.start_date.toordinal()) & (start_day < world.live_day.toordinal())
    start_wd = np.array([date.fromordinal(int(d)).weekday() for d in start_day[in_history]], dtype=np.int64)
    rate, starts = [], []
    for k in range(7):
        days = history & (wd == k)
        n = int(days.sum())
        rate.append(round(float(sd.stocked_out[days].mean()), 4) if n else 0.0)
        starts.append(round(100.0 * int((start_wd == k).sum()) / n, 2) if n else 0.0)
    return {"stockout_rate": rate, "episode_starts_per_100": starts}


def top_share(world: World, share: float = 0.2) -> float:
    """Share of units sold (history) taken by the top ``share`` of stores."""
    h = world.hourly
    store, _ = codes(h["store_id"])
    sold = np.bincount(store, weights=h["sold_units"].to_numpy().astype(np.float64))
    sold = np.sort(sold)[::-1]
    k = max(1, int(np.ceil(share * world.stores.num_rows)))
    return float(sold[:k].sum() / max(sold.sum(), 1.0))


def summarize(world: World) -> dict[str, Any]:
    st = world.stores
    h = world.hourly
    t = epoch_us(h["hour_start"])
    live_lo = int(world.live_start.timestamp() * 1_000_000)
    live_hi = int(world.live_end.timestamp() * 1_000_000)
    on_live = (t >= live_lo) & (t < live_hi)
    sold = h["sold_units"].to_numpy()
    demand = h["demand"].to_numpy()
    hist = t < live_lo
    ep = world.stockout_episodes
    start = epoch_us(ep["start_at"])
    end = epoch_us(pc.fill_null(ep["end_at"], pa.scalar(2**62, ep.schema.field("end_at").type)))
    channels = st["channel"].to_pylist()
    return {
        "seed": world.meta.seed,
        "timezone": world.timezone,
        "start_date": world.start_date.isoformat(),
        "history_days": world.meta.history_days,
        "live_day": world.live_day.isoformat(),
        "horizon_days": world.meta.horizon_days,
        "stores": st.num_rows,
        "stores_by_channel": {c: channels.count(c) for c in CHANNELS},
        "big_customers": int(sum(st["big_customer"].to_pylist())),
        "regions": world.regions.num_rows,
        "routes": world.routes.num_rows,
        "skus": world.skus.num_rows,
        "assortment_pairs": world.assortment.num_rows,
        "hourly_rows": h.num_rows,
        "orders": world.orders.num_rows,
        "deliveries": world.deliveries.num_rows,
        "visit_analyses": world.visit_analyses.num_rows,
        "promotions": world.promotions.num_rows,
        "live_sale_units": int(sold[on_live].sum()),
        "live_selling_hours": int(((sold > 0) & on_live).sum()),
        "stockout_rate": stockout_rates(world),
        "lost_demand_share_history": round(
            float((demand[hist] - sold[hist]).sum() / max(float(demand[hist].sum()), 1.0)), 4
        ),
        "top20_store_volume_share": round(top_share(world), 3),
        "by_weekday": by_weekday(world),
        "episodes": ep.num_rows,
        "episodes_live_day": int(((start >= live_lo) & (start < live_hi)).sum()),
        "episodes_active_live_day": int(((start < live_hi) & (end > live_lo)).sum()),
    }
