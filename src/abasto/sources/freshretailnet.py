"""Import the real FreshRetailNet-50K slice into the sales database.

Data: **FreshRetailNet-50K** by **Dingdong-Inc**, licensed CC BY 4.0
(https://creativecommons.org/licenses/by/4.0/). Wang et al. (2025), *FreshRetailNet-50K: A
Stockout-Annotated Censored Demand Dataset for Latent Demand Recovery and Forecasting in Fresh
Retail*, arXiv:2505.16319. The development slice read here (``/work/shared/data/freshretailnet_dev``)
keeps every hourly row of 40 stores, selected and re-sorted from the original; this importer
modifies it further as described below.

Mapping into schema ``sales`` (ids are prefixed ``FRN-`` so they never meet the generated world's):

- stores → ``customers`` (channel ``supermarket``, trading window 06–22 h), cities → ``regions``
  (``base_temp_c`` = the city's mean ``avg_temperature``);
- products → ``products`` with their four category ids (no brand/pack data);
- hourly rows → ``sellout_hourly``: ``units_sold`` = ``hourly_sale`` (normalised by the dataset, not
  units), ``out_of_stock`` = ``hourly_stockout == 1``, ``on_hand_end`` null (the dataset has no stock
  counts); ``hour_start`` = ``dt`` + ``hour`` in Asia/Shanghai, stored in UTC;
- store × product pairs → ``assortment`` with ``base_daily_units`` = mean daily sale.

A re-import replaces the earlier FreshRetailNet rows and leaves every other row alone.
"""

from __future__ import annotations

import csv
import time
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from psycopg import sql

from abasto.errors import InvalidInputError, NotFoundError
from abasto.sources.deferred_indexes import indexes_deferred, worth_deferring
from abasto.sources.pg import connect
from abasto.sources.pg_copy import copy_arrow
from abasto.sources.progress import LoadResult, ProgressCallback, ignore_progress
from abasto.sources.sales_db.schema import SCHEMA, create_schema

ATTRIBUTION = (
    "FreshRetailNet-50K by Dingdong-Inc (CC BY 4.0, https://creativecommons.org/licenses/by/4.0/); "
    "Wang et al. 2025, arXiv:2505.16319. "
    "Modified: rows selected and re-sorted, mapped into abasto's sales schema."
)

STORES_CSV = "stores.csv"
STORES_CSV_COLUMNS = ("store_id", "city_id", "rows", "file")
HOURLY_COLUMNS = (
    "city_id",
    "store_id",
    "management_group_id",
    "first_category_id",
    "second_category_id",
    "third_category_id",
    "product_id",
    "dt",
    "hour",
    "hourly_sale",
    "hourly_stockout",
    "avg_temperature",
)
TIMEZONE = "Asia/Shanghai"
ID_PREFIX = "FRN-"
TRADING_HOURS = (6, 22)

_TS = pa.timestamp("us", tz="UTC")
#: deleted in this order before a re-import (children first)
_FRN_ROWS = (
    ("sellout_hourly", "store_id"),
    ("assortment", "store_id"),
    ("customers", "store_id"),
    ("products", "sku"),
    ("regions", "region_id"),
)


@dataclass(frozen=True, slots=True)
class FrnStore:
    """One line of ``stores.csv``: a store, its city, how many hourly rows it has and where."""

    store_id: int
    city_id: int
    rows: int
    file: str


def read_store_index(path: Path) -> list[FrnStore]:
    """The stores listed in ``<path>/stores.csv``, in file order.

    Raises:
        NotFoundError: the folder or ``stores.csv`` does not exist.
        InvalidInputError: ``stores.csv`` lacks a column or has a malformed value.
    """
    if not path.is_dir():
        raise NotFoundError(
            f"FreshRetailNet folder not found: {path}",
            hint="pass the folder holding stores.csv and the frn50k_dev_hourly_*.parquet files",
        )
    index = path / STORES_CSV
    if not index.is_file():
        raise NotFoundError(f"FreshRetailNet store index not found: {index}")
    with index.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in STORES_CSV_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise InvalidInputError(f"{index} lacks column(s): {', '.join(missing)}")
        try:
            return [
                FrnStore(int(r["store_id"]), int(r["city_id"]), int(r["rows"]), r["file"].strip())
                for r in reader
            ]
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(f"{index}: malformed line {reader.line_num}: {exc}") from exc


def read_hourly(path: Path, stores: list[FrnStore]) -> pa.Table:
    """The hourly rows of ``stores``, read from the Parquet files ``stores.csv`` names.

    Raises:
        NotFoundError: a Parquet file is missing.
        InvalidInputError: a Parquet file lacks a needed column.
    """
    tables = []
    for file in sorted({s.file for s in stores}):
        parquet = path / file
        if not parquet.is_file():
            raise NotFoundError(f"FreshRetailNet file named in {STORES_CSV} not found: {parquet}")
        present = set(pq.read_schema(parquet).names)
        missing = [c for c in HOURLY_COLUMNS if c not in present]
        if missing:
            raise InvalidInputError(f"{parquet} lacks column(s): {', '.join(missing)}")
        ids = [s.store_id for s in stores if s.file == file]
        tables.append(pq.read_table(parquet, columns=list(HOURLY_COLUMNS), filters=[("store_id", "in", ids)]))
    return pa.concat_tables(tables)


def to_sales_tables(hourly: pa.Table) -> dict[str, pa.Table]:
    """FreshRetailNet hourly rows → rows of ``regions``, ``customers``, ``products``, ``assortment``
    and ``sellout_hourly`` (see the module docstring for the mapping)."""
    store = _prefixed("S", hourly.column("store_id"))
    sku = _prefixed("P", hourly.column("product_id"))
    region = _prefixed("C", hourly.column("city_id"), width=2)
    midnight = pc.strptime(hourly.column("dt"), format="%Y-%m-%d", unit="s")
    local = pc.add(midnight, pc.cast(pc.multiply(hourly.column("hour"), 3600), pa.duration("s")))
    hour_start = pc.assume_timezone(local, TIMEZONE).cast(_TS)
    sellout = pa.table(
        {
            "store_id": store,
            "sku": sku,
            "hour_start": hour_start,
            "units_sold": hourly.column("hourly_sale").cast(pa.float64()),
            "on_hand_end": pa.nulls(hourly.num_rows, pa.int32()),
            "out_of_stock": pc.equal(hourly.column("hourly_stockout"), 1),
        }
    )
    keyed = hourly.append_column("region_id", region).append_column("sku", sku).append_column("store", store)

    regions = keyed.group_by("region_id").aggregate([("city_id", "min"), ("avg_temperature", "mean")])
    regions = pa.table(
        {
            "region_id": regions.column("region_id"),
            "name": pc.binary_join_element_wise(
                "FreshRetailNet city ", pc.cast(regions.column("city_id_min"), pa.string()), ""
            ),
            "base_temp_c": pc.round(regions.column("avg_temperature_mean"), 2),
        }
    ).sort_by("region_id")

    stores = keyed.group_by("store").aggregate([("region_id", "min"), ("store_id", "min")]).sort_by("store")
    n = stores.num_rows
    customers = pa.table(
        {
            "store_id": stores.column("store"),
            "name": pc.binary_join_element_wise(
                "FreshRetailNet store ", pc.cast(stores.column("store_id_min"), pa.string()), ""
            ),
            "channel": pa.array(["supermarket"] * n),
            "region_id": stores.column("region_id_min"),
            "big_customer": pa.array([False] * n),
            "opens_hour": pa.array([TRADING_HOURS[0]] * n, pa.int16()),
            "closes_hour": pa.array([TRADING_HOURS[1]] * n, pa.int16()),
        }
    )

    categories = ("management_group_id", "first_category_id", "second_category_id", "third_category_id")
    products = keyed.group_by("sku").aggregate([(c, "min") for c in categories]).sort_by("sku")
    products = pa.table(
        {
            "sku": products.column("sku"),
            **{c: products.column(f"{c}_min").cast(pa.int32()) for c in categories},
        }
    )

    daily = keyed.group_by(["store", "sku"]).aggregate([("hourly_sale", "sum"), ("dt", "count_distinct")])
    assortment = pa.table(
        {
            "store_id": daily.column("store"),
            "sku": daily.column("sku"),
            "base_daily_units": pc.divide(
                daily.column("hourly_sale_sum"), pc.cast(daily.column("dt_count_distinct"), pa.float64())
            ),
        }
    ).sort_by([("store_id", "ascending"), ("sku", "ascending")])
    return {
        "regions": regions,
        "customers": customers,
        "products": products,
        "assortment": assortment,
        "sellout_hourly": sellout,
    }


def import_freshretailnet(
    dsn: str,
    path: Path,
    *,
    stores: int | None = None,
    on_progress: ProgressCallback = ignore_progress,
) -> LoadResult:
    """Import the first ``stores`` stores of ``stores.csv`` (all if None) into schema ``sales``.

    One transaction: earlier FreshRetailNet rows (ids ``FRN-…``) are deleted, the new ones COPYed.

    Raises:
        NotFoundError: the folder, ``stores.csv`` or a Parquet file is missing (the message names it).
        InvalidInputError: a file lacks a column (named), or ``stores`` is not positive.
        ServiceUnavailableError: PostgreSQL cannot be reached.
    """
    if stores is not None and stores <= 0:
        raise InvalidInputError(f"--stores must be positive, got {stores}")
    index = read_store_index(path)
    selected = index if stores is None else index[:stores]
    tables = to_sales_tables(read_hourly(path, selected))
    create_schema(dsn)
    started = time.perf_counter()
    counts: dict[str, int] = {}
    with connect(dsn) as conn:
        for table, column in _FRN_ROWS:
            conn.execute(
                sql.SQL("DELETE FROM {} WHERE starts_with({}, %s)").format(
                    sql.Identifier(SCHEMA, table), sql.Identifier(column)
                ),
                (ID_PREFIX,),
            )
        for name in ("regions", "customers", "products", "assortment"):
            counts[name] = copy_arrow(conn, SCHEMA, name, tables[name], on_progress=on_progress)
        sellout = tables["sellout_hourly"]
        if worth_deferring(conn, SCHEMA, "sellout_hourly", sellout.num_rows):
            with indexes_deferred(conn, SCHEMA, "sellout_hourly"):
                counts["sellout_hourly"] = copy_arrow(
                    conn, SCHEMA, "sellout_hourly", sellout, on_progress=on_progress
                )
        else:
            counts["sellout_hourly"] = copy_arrow(
                conn, SCHEMA, "sellout_hourly", sellout, on_progress=on_progress
            )
    return LoadResult(rows=counts, seconds=time.perf_counter() - started)


def _prefixed(kind: str, ids: pa.ChunkedArray, width: int = 4) -> pa.ChunkedArray:
    """``15`` → ``FRN-S0015``."""
    text = pc.utf8_lpad(pc.cast(ids, pa.string()), width=width, padding="0")
    return pc.binary_join_element_wise(f"{ID_PREFIX}{kind}", text, "")
