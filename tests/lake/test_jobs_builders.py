"""Builders for the lake job tests (no tests here): small CDC files of regions and products."""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa

from abasto.lake import SALES_TABLES
from abasto.lake.raw_files import RawFile
from abasto.lake.raw_writer import write_cdc

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


def keyless_products_file(raw_uri: str, *, lsn: int) -> str:
    """A CDC file of products without the key column ``sku``; returns its key. A batch of such
    files breaks the contract beyond any row or file quarantine (the table's key is absent), so
    the job fails; a corrupt file, or one keyless file beside keyed ones, is quarantined instead."""
    rows = pa.table({"brand": ["Cola"]})
    raw = write_cdc(raw_uri, PRODUCTS.source, rows, ops=["I"], lsns=[lsn], commit_ts=day(1))
    return key_of(raw, PRODUCTS.source)


def key_of(raw: RawFile, source: str) -> str:
    return f"{source}/{raw.relpath}"
