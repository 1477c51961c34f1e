"""Validation and normalisation of hourly sell-out history (shared by fitting and backtests).

The input contract (one row per store×SKU×hour the series was *observed*, zero sales included;
a missing row means "not observed", not "zero"):

=============== ======================================================================
column          meaning
=============== ======================================================================
store_id        store id (any type; used as a string)
sku             SKU id (any type; used as a string)
hour_start      tz-aware instant where the hour starts (converted to UTC)
units_sold      units sold in that hour (float, >= 0; NaN = not observed)
out_of_stock    True when the SKU ran out during the hour (censored demand); null = unknown
channel         optional: pooling group of the store (``tienda``, ``supermarket`` …)
is_holiday …    optional boolean day flags (see ``day_flags`` of :func:`prepare`)
=============== ======================================================================
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd
import pyarrow as pa

from abasto.errors import InvalidInputError

REQUIRED = ("store_id", "sku", "hour_start", "units_sold", "out_of_stock")
#: boolean day-flag columns picked up automatically when present
DEFAULT_DAY_FLAGS = ("is_holiday", "is_payday")
HOURS_PER_WEEK = 168


def zone(timezone: str) -> ZoneInfo:
    """The IANA zone ``timezone``; InvalidInputError if unknown."""
    try:
        return ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidInputError(f"unknown time zone {timezone!r}") from exc


@dataclass(frozen=True)
class Prepared:
    """History as flat arrays, one entry per row, plus the series index.

    ``series`` holds one row per store×SKU (columns store_id, sku, group), in the order of
    the integer codes in ``series_idx``.
    """

    series: pd.DataFrame
    series_idx: np.ndarray  # int64, per row
    hour_start: np.ndarray  # datetime64[us] (UTC, naive), per row
    how: np.ndarray  # int64 local hour of week 0..167 (0 = Monday 00h), per row
    local_date: np.ndarray  # datetime64[D] local calendar date, per row
    units: np.ndarray  # float64, per row (NaN where not observed)
    observed: np.ndarray  # bool: in stock (or unknown treated as in stock) and units known
    flags: np.ndarray  # bool (rows × len(flag_names))
    flag_names: tuple[str, ...]

    @property
    def n_series(self) -> int:
        return len(self.series)


def to_pandas(history: pa.Table | pd.DataFrame) -> pd.DataFrame:
    """``history`` as a DataFrame in canonical row order (store_id, sku, hour_start).

    A fit must not depend on how the history was read (a hash join or a parallel scan returns rows
    in any order) and float sums depend on the order they run in, so every consumer of the input
    contract (:func:`prepare`, the backtest's row masks) sees the same order.
    """
    if isinstance(history, pa.Table):
        df = history.to_pandas()
    elif isinstance(history, pd.DataFrame):
        df = history
    else:
        raise InvalidInputError(
            f"history must be a pyarrow.Table or pandas.DataFrame, got {type(history).__name__}"
        )
    order = [c for c in ("store_id", "sku", "hour_start") if c in df.columns]
    if len(order) == 3:
        df = df.sort_values(order, kind="stable", ignore_index=True)
    return df


def prepare(
    history: pa.Table | pd.DataFrame,
    *,
    timezone: str,
    group_by: str | None = None,
    day_flags: Sequence[str] | None = None,
    unknown_stock_is_in_stock: bool = True,
) -> Prepared:
    """Validate ``history`` and turn it into arrays keyed by series and local hour of week.

    ``group_by``: column whose value (per series, the most frequent) selects the pooled
    hour-of-week shape; default ``channel`` when present, else one group for all series.
    ``day_flags``: boolean columns to learn day multipliers for; default: those of
    :data:`DEFAULT_DAY_FLAGS` present in ``history``.
    """
    df = to_pandas(history)
    tz = zone(timezone)
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise InvalidInputError(f"history lacks column(s) {', '.join(missing)}; needs {', '.join(REQUIRED)}")
    if group_by is None and "channel" in df.columns:
        group_by = "channel"
    if group_by is not None and group_by not in df.columns:
        raise InvalidInputError(f"group_by column {group_by!r} is not in history")
    flag_names = tuple(
        [c for c in DEFAULT_DAY_FLAGS if c in df.columns] if day_flags is None else list(day_flags)
    )
    absent = [c for c in flag_names if c not in df.columns]
    if absent:
        raise InvalidInputError(f"day flag column(s) {', '.join(absent)} not in history")

    ts = df["hour_start"]
    if not isinstance(ts.dtype, pd.DatetimeTZDtype):
        raise InvalidInputError("hour_start must be a tz-aware timestamp (UTC), got " + str(ts.dtype))
    ts_utc = ts.dt.tz_convert("UTC").dt.as_unit("us")
    if ts_utc.isna().any():
        raise InvalidInputError("hour_start has null values")

    store = df["store_id"].astype("string")
    sku = df["sku"].astype("string")
    if store.isna().any() or sku.isna().any():
        raise InvalidInputError("store_id and sku must not be null")

    units = pd.to_numeric(df["units_sold"], errors="coerce").astype("float64").to_numpy(na_value=np.nan)
    if (units < 0).any():
        raise InvalidInputError(f"units_sold has {int((units < 0).sum())} negative value(s)")
    oos = df["out_of_stock"].astype("boolean")
    observed = (~oos.fillna(not unknown_stock_is_in_stock)).to_numpy(dtype=bool) & ~np.isnan(units)

    # series codes: factorize store and SKU apart, then their pair (much faster than a MultiIndex)
    store_codes, stores = pd.factorize(store)
    sku_codes, skus = pd.factorize(sku)
    pair_codes, pairs = pd.factorize(store_codes.astype(np.int64) * len(skus) + sku_codes)
    codes = np.asarray(pair_codes, dtype=np.int64)
    hour_us = ts_utc.dt.tz_localize(None).to_numpy().astype("datetime64[us]")
    dup = pd.DataFrame({"s": codes, "t": hour_us.view(np.int64)}).duplicated()
    if dup.any():
        raise InvalidInputError(f"history has {int(dup.sum())} duplicate store_id×sku×hour_start row(s)")
    series = pd.DataFrame(
        {
            "store_id": pd.array(np.asarray(stores)[pairs // len(skus)], dtype="string"),
            "sku": pd.array(np.asarray(skus)[pairs % len(skus)], dtype="string"),
        }
    )
    if group_by is None:
        series["group"] = "all"
    else:
        # the most frequent value per series
        g = pd.DataFrame({"s": codes, "g": df[group_by].astype("string").fillna("").to_numpy()})
        top = g.value_counts(sort=True).reset_index().drop_duplicates("s").set_index("s")["g"]
        series["group"] = top.reindex(range(len(series))).astype("string").to_numpy()

    local = ts_utc.dt.tz_convert(tz)
    how = (local.dt.day_of_week * 24 + local.dt.hour).to_numpy(dtype=np.int64)
    local_date = local.dt.tz_localize(None).dt.floor("D").to_numpy().astype("datetime64[D]")
    if flag_names:
        flags = np.column_stack(
            [df[c].astype("boolean").fillna(False).to_numpy(dtype=bool) for c in flag_names]
        )
    else:
        flags = np.zeros((len(df), 0), dtype=bool)
    return Prepared(
        series=series,
        series_idx=codes,
        hour_start=hour_us,
        how=how,
        local_date=local_date,
        units=units,
        observed=observed,
        flags=flags,
        flag_names=flag_names,
    )
