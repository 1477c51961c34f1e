"""Builders for the maintenance tests: small Iceberg tables made of many small appends."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import pyarrow as pa
from pyiceberg.catalog import Catalog
from pyiceberg.table import Table

from abasto.catalog import TableMetadata, ensure_table
from abasto.lake.maintenance.files import list_table_files, normalize

STOCK_SCHEMA = pa.schema(
    [
        pa.field("reading_id", pa.int64(), nullable=False),
        ("region_id", pa.string()),
        ("store_id", pa.string()),
        ("on_hand", pa.int32()),
    ]
)


def batch(start: int, n: int, region: str) -> pa.Table:
    return pa.Table.from_pylist(
        [
            {
                "reading_id": start + i,
                "region_id": region,
                "store_id": f"S{(start + i) % 7:04d}",
                "on_hand": i,
            }
            for i in range(n)
        ],
        schema=STOCK_SCHEMA,
    )


def small_files_table(
    catalog: Catalog,
    name: str = "curated.stock_readings",
    *,
    appends: int = 10,
    rows: int = 20,
    properties: dict[str, str] | None = None,
) -> Table:
    """``appends`` commits each adding one file to regions R1 and R2; R3 gets one file only."""
    table = ensure_table(
        catalog,
        name,
        STOCK_SCHEMA,
        keys=("reading_id",),
        partition_by="region_id",
        metadata=TableMetadata(owner="data-platform", description="maintenance test table"),
    )
    if properties:
        with table.transaction() as tx:
            tx.set_properties(properties)
    table.append(batch(1_000_000, rows, "R3"))
    for i in range(appends):
        table.append(pa.concat_tables([batch(i * 1000, rows, "R1"), batch(i * 1000 + 500, rows, "R2")]))
        time.sleep(0.002)  # distinct snapshot timestamps
    return table


def row_multiset(table: Table, snapshot_id: int | None = None) -> Counter[tuple[Any, ...]]:
    rows = table.scan(snapshot_id=snapshot_id).to_arrow().to_pylist()
    return Counter(tuple(sorted(r.items())) for r in rows)


def data_files(table: Table, region: str | None = None) -> set[str]:
    """Normalised paths of the current snapshot's data files (of one region)."""
    return {
        normalize(task.file.file_path)
        for task in table.scan().plan_files()
        if region is None or task.file.partition[0] == region
    }


def files_on_disk(table: Table) -> set[str]:
    return {f.path for f in list_table_files(table.location())}
