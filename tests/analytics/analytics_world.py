"""The small curated lake the analytics tests query (importable, unlike conftest.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
from pyiceberg.catalog.sql import SqlCatalog

from abasto.catalog import open_catalog
from abasto.lake import SALES_TABLES, curate_table
from abasto.lake.raw_writer import write_cdc, write_full_load
from abasto.settings import Settings, load_settings

T0 = datetime(2026, 9, 1, tzinfo=UTC)
SELLOUT = SALES_TABLES["sellout_hourly"]
SKUS = SALES_TABLES["products"]


@dataclass(frozen=True)
class Lake:
    settings: Settings
    catalog: SqlCatalog
    first_snapshot: int
    second_snapshot: int


def sellout_rows(units: int) -> pa.Table:
    rows = [
        (f"S{s}", sku, T0 + timedelta(hours=h), units, 40 - h % 5, h == 30)
        for s in range(2)
        for sku in ("COLA-600", "AGUA-1L")
        for h in range(48)
    ]
    cols = list(zip(*rows, strict=True))
    return pa.table(
        {
            "store_id": pa.array(cols[0], pa.string()),
            "sku": pa.array(cols[1], pa.string()),
            "hour_start": pa.array(cols[2], pa.timestamp("us", tz="UTC")),
            "units_sold": pa.array(cols[3], pa.int32()),
            "on_hand_end": pa.array(cols[4], pa.int32()),
            "out_of_stock": pa.array(cols[5], pa.bool_()),
        }
    )


def build_lake(home: Path) -> Lake:
    """Two curated tables; sellout_hourly has two commits (all units 1, then one row updated to 7)."""
    settings = load_settings(home=home)
    catalog = open_catalog(settings)
    write_full_load(settings.raw_uri, SELLOUT.source, sellout_rows(1), lsn=10, commit_ts=T0)
    write_full_load(
        settings.raw_uri,
        SKUS.source,
        pa.table({"sku": ["COLA-600", "AGUA-1L"], "brand": ["Cola", "Agua"], "price": [12.5, 9.0]}),
        lsn=10,
        commit_ts=T0,
    )
    first = curate_table(SELLOUT, catalog=catalog, raw_uri=settings.raw_uri)
    curate_table(SKUS, catalog=catalog, raw_uri=settings.raw_uri)
    write_cdc(
        settings.raw_uri,
        SELLOUT.source,
        sellout_rows(7).slice(3, 1),
        ops=["U"],
        lsns=[20],
        commit_ts=T0 + timedelta(days=3),
    )
    second = curate_table(SELLOUT, catalog=catalog, raw_uri=settings.raw_uri)
    assert first.snapshot_id and second.snapshot_id and first.snapshot_id != second.snapshot_id
    return Lake(settings, catalog, first.snapshot_id, second.snapshot_id)
