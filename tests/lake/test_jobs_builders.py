"""Builders for the lake job tests (no tests here): small CDC files of regions and products."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa

from abasto.lake import SALES_TABLES
from abasto.lake.raw_files import RawFile
from abasto.lake.raw_writer import cdc_relpath, write_cdc
from abasto.lake.storage import join_uri

REGIONS = SALES_TABLES["regions"]
PRODUCTS = SALES_TABLES["products"]


def day(d: int) -> datetime:
    return datetime(2026, 9, d, 12, 0, tzinfo=UTC)


def regions_cdc(raw_uri: str, ids: list[str], *, lsn: int, on: int = 1) -> RawFile:
    """Inserts of regions ``ids`` at LSNs ``lsn``, ``lsn+1``…, committed on 2026-09-``on``."""
    rows = pa.table({"region_id": ids, "name": [f"Region {i}" for i in ids]})
    return write_cdc(
        raw_uri,
        REGIONS.source,
        rows,
        ops=["I"] * len(ids),
        lsns=range(lsn, lsn + len(ids)),
        commit_ts=day(on),
    )


def products_cdc(raw_uri: str, skus: list[str], *, lsn: int) -> RawFile:
    rows = pa.table({"sku": skus, "brand": ["Cola"] * len(skus)})
    return write_cdc(
        raw_uri,
        PRODUCTS.source,
        rows,
        ops=["I"] * len(skus),
        lsns=range(lsn, lsn + len(skus)),
        commit_ts=day(1),
    )


def corrupt_products_file(raw_uri: str, *, lsn: int) -> str:
    """A file named like a CDC file of products that is not Parquet; returns its key."""
    rel = cdc_relpath(lsn, lsn, "2026-09-01")
    path = Path(join_uri(raw_uri, PRODUCTS.source, rel).removeprefix("file://"))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"this is not parquet")
    return f"{PRODUCTS.source}/{rel}"


def key_of(raw: RawFile, source: str) -> str:
    return f"{source}/{raw.relpath}"
