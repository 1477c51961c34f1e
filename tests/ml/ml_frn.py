"""FreshRetailNet-50K hours in abasto's training contract, for the ML tests.

FreshRetailNet-50K: data by Dingdong-Inc, CC BY 4.0 (https://creativecommons.org/licenses/by/4.0/),
Wang et al. (2025), arXiv:2505.16319. The development slice used here keeps 40 stores (rows selected
and re-sorted, see its README); these tests read a few stores and map product_id → sku, hourly_sale →
units_sold (normalised values, not units), hourly_stockout == 1 → out_of_stock, holiday_flag → is_holiday.
Its folder: ``$ABASTO_FRN_DIR``, else ``../shared/data/freshretailnet_dev`` beside the repository.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pyarrow.dataset as ds

FRN_TZ = "Asia/Shanghai"
#: four stores of three cities (189 products, 691,200 hourly rows)
FRN_STORES = (22, 157, 312, 545)
_DEFAULT_FRN_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "freshretailnet_dev"


def frn_dir() -> Path:
    return Path(os.environ.get("ABASTO_FRN_DIR", _DEFAULT_FRN_DIR))


def load_frn(folder: Path, stores: tuple[int, ...]) -> pd.DataFrame:
    """Hourly history of ``stores`` in abasto's training contract (read with a pyarrow filter)."""
    files = sorted(folder.glob("frn50k_dev_hourly_part*.parquet"))
    table = ds.dataset(files).to_table(
        filter=ds.field("store_id").isin(list(stores)),
        columns=["store_id", "product_id", "dt", "hour", "hourly_sale", "hourly_stockout", "holiday_flag"],
    )
    df = table.to_pandas()
    local = pd.to_datetime(df["dt"]) + pd.to_timedelta(df["hour"], unit="h")
    return pd.DataFrame(
        {
            "store_id": df["store_id"].astype(str),
            "sku": df["product_id"].astype(str),
            "hour_start": local.dt.tz_localize(FRN_TZ).dt.tz_convert("UTC"),
            "units_sold": df["hourly_sale"],
            "out_of_stock": df["hourly_stockout"] == 1,
            "is_holiday": df["holiday_flag"] == 1,
        }
    )
