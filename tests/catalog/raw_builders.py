"""Raw-zone files for the catalog tests (importable, unlike conftest.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyarrow as pa

from abasto.lake.raw_files import RawFile
from abasto.lake.raw_writer import write_cdc, write_full_load
from abasto.lake.storage import join_uri, write_parquet_atomic

T0 = datetime(2026, 9, 1, 6, 0, tzinfo=UTC)

CUSTOMERS = pa.table(
    {
        "store_id": ["S0001", "S0002"],
        "name": ["Tienda La Esquina", "Abarrotes Lupita"],
        "owner_name": ["Juan Pérez", "Lupita Gómez"],
        "phone": ["+52 55 1234 5678", "+52 55 8765 4321"],
        "channel": ["tienda", "tienda"],
        "coolers": pa.array([1, 2], pa.int16()),
    }
)

ORDERS = pa.table(
    {
        "order_id": ["O1", "O2"],
        "store_id": ["S0001", "S0002"],
        "status": ["placed", "placed"],
        "qty": pa.array([3, 4], pa.int32()),
    }
)


def write_customers(raw_uri: str) -> RawFile:
    return write_full_load(raw_uri, "sales_db/customers", CUSTOMERS, lsn=0x10, commit_ts=T0)


def write_orders_load(raw_uri: str) -> RawFile:
    return write_full_load(raw_uri, "sales_db/orders", ORDERS, lsn=0x100, commit_ts=T0)


def write_orders_cdc(raw_uri: str, *, first_lsn: int, with_channel: bool = False) -> RawFile:
    """One update of O1; ``with_channel`` adds a column the earlier files lack, ``qty`` as int64."""
    cols: dict[str, pa.Array] = {
        "order_id": pa.array(["O1"]),
        "store_id": pa.array(["S0001"]),
        "status": pa.array(["delivered"]),
        "qty": pa.array([5], pa.int64() if with_channel else pa.int32()),
    }
    if with_channel:
        cols["channel"] = pa.array(["app"])
    return write_cdc(
        raw_uri,
        "sales_db/orders",
        pa.table(cols),
        ops=["U"],
        lsns=[first_lsn],
        commit_ts=T0 + timedelta(minutes=first_lsn),
    )


def write_pos_events(raw_uri: str, date: str, hour: str, n: int = 3) -> str:
    relpath = f"devices/pos_events/date={date}/hour={hour}/part-00000.parquet"
    table = pa.table(
        {
            "device_id": [f"D{i}" for i in range(n)],
            "store_id": ["S0001"] * n,
            "sku": ["COLA-600-NR"] * n,
            "event_time": pa.array([T0] * n, pa.timestamp("us", tz="UTC")),
            "units": pa.array(range(n), pa.int32()),
        }
    )
    write_parquet_atomic(table, join_uri(raw_uri, relpath))
    return relpath


def write_documents(raw_uri: str) -> RawFile:
    docs = pa.table({"pk": ["STORE#S0001"], "sk": ["VISIT#2026-09-01#R01"], "doc": ['{"shelf_share": 0.4}']})
    return write_full_load(raw_uri, "behavior/documents", docs, lsn=0x20, commit_ts=T0)
