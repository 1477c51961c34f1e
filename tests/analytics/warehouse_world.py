"""A small curated lake for the warehouse tests (importable, unlike conftest.py).

Two regions, reps and routes; three stores; two SKUs; 72 hours of sell-out from T0 (three UTC days).
Only (S1, COLA) ever runs out: hours 5-7, 23-25 (across midnight UTC) and 70-71 (still out at the
end). In-stock hours sell 2 units, out-of-stock hours 0.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
from pyiceberg.catalog.sql import SqlCatalog

from abasto.catalog import open_catalog
from abasto.lake import SALES_TABLES, curate_table
from abasto.lake.raw_writer import write_cdc, write_full_load
from abasto.settings import Settings, load_settings

T0 = datetime(2026, 9, 1, tzinfo=UTC)
HOURS = 72
STORES = ("S1", "S2", "S3")
SKUS = ("COLA", "AGUA")
OUT_HOURS = frozenset({5, 6, 7, 23, 24, 25, 70, 71})
#: (start hour, hours, open) of the episodes of (S1, COLA)
EPISODES = ((5, 3, False), (23, 3, False), (70, 2, True))
IN_STOCK_UNITS = 2

SELLOUT_SCHEMA = pa.schema(
    [
        ("store_id", pa.string()),
        ("sku", pa.string()),
        ("hour_start", pa.timestamp("us", tz="UTC")),
        ("units_sold", pa.int32()),
        ("on_hand_end", pa.int32()),
        ("out_of_stock", pa.bool_()),
    ]
)


def sellout_row(store: str, sku: str, hour: int, units: int | None = None) -> dict[str, object]:
    out = store == "S1" and sku == "COLA" and hour in OUT_HOURS
    sold = (0 if out else IN_STOCK_UNITS) if units is None else units
    return {
        "store_id": store,
        "sku": sku,
        "hour_start": T0 + timedelta(hours=hour),
        "units_sold": sold,
        "on_hand_end": 0 if out else 40 - hour % 7,
        "out_of_stock": out,
    }


def sellout() -> pa.Table:
    rows = [sellout_row(s, k, h) for s in STORES for k in SKUS for h in range(HOURS)]
    return pa.Table.from_pylist(rows, schema=SELLOUT_SCHEMA)


def dimension_tables() -> dict[str, pa.Table]:
    return {
        "regions": pa.table({"region_id": ["N", "S"], "name": ["Norte", "Sur"], "base_temp_c": [24.0, 29.0]}),
        "reps": pa.table(
            {
                "rep_id": ["REP1", "REP2"],
                "name": ["Ana", "Beto"],
                "phone": ["+52 1", "+52 2"],
                "region_id": ["N", "S"],
            }
        ),
        "routes": pa.table(
            {
                "route_id": ["R1", "R2"],
                "region_id": ["N", "S"],
                "rep_id": ["REP1", "REP2"],
                "visit_weekdays": pa.array([[0, 3], [1, 4]], pa.list_(pa.int8())),
                "delivery_lag_days": pa.array([1, 1], pa.int8()),
            }
        ),
        "customers": pa.table(
            {
                "store_id": list(STORES),
                "name": ["Tienda Uno", "Tienda Dos", "Super Tres"],
                "owner_name": ["Don A", "Doña B", "Sr C"],
                "phone": ["1", "2", "3"],
                "channel": ["tienda", "tienda", "supermarket"],
                "region_id": ["N", "N", "S"],
                "route_id": ["R1", "R1", "R2"],
                "lat": [19.4, 19.5, 20.1],
                "lon": [-99.1, -99.2, -98.7],
                "coolers": [1, 2, 4],
                "big_customer": [False, True, True],
                "opens_hour": [7, 7, 8],
                "closes_hour": [22, 22, 21],
                "visit_hour": [9, 10, 11],
                "delivery_hour": [8, 8, 9],
            }
        ),
        "products": pa.table(
            {
                "sku": list(SKUS),
                "brand": ["Cola", "Agua"],
                "pack": ["PET", "PET"],
                "size_ml": [600, 1000],
                "returnable": [False, False],
                "units_per_case": [24, 12],
                "price": [15.0, 11.0],
                "category": ["cola", "water"],
            }
        ),
    }


def build_lake(home: Path) -> tuple[Settings, SqlCatalog]:
    """Full loads of every table the marts read, curated."""
    settings = load_settings(home=home)
    catalog = open_catalog(settings)
    tables = {**dimension_tables(), "sellout_hourly": sellout()}
    for name, table in tables.items():
        spec = SALES_TABLES[name]
        write_full_load(settings.raw_uri, spec.source, table, lsn=10, commit_ts=T0)
        curate_table(spec, catalog=catalog, raw_uri=settings.raw_uri)
    return settings, catalog


def update_sellout(settings: Settings, catalog: SqlCatalog, rows: list[dict[str, object]], lsn: int) -> None:
    """Change-capture updates of sell-out rows, curated."""
    spec = SALES_TABLES["sellout_hourly"]
    table = pa.Table.from_pylist(rows, schema=SELLOUT_SCHEMA)
    write_cdc(
        settings.raw_uri,
        spec.source,
        table,
        ops=["U"] * len(rows),
        lsns=[lsn + i for i in range(len(rows))],
        commit_ts=T0 + timedelta(days=4),
    )
    curate_table(spec, catalog=catalog, raw_uri=settings.raw_uri)
