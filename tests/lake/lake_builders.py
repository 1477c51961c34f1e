"""Shared builders for the lake tests (kept out of conftest.py so test modules can import them)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyarrow as pa

T0 = datetime(2026, 9, 1, 6, 0, tzinfo=UTC)

ORDER_LINES_SCHEMA = pa.schema(
    [
        ("order_id", pa.string()),
        ("line_no", pa.int16()),
        ("sku", pa.string()),
        ("qty_ordered", pa.int32()),
        ("qty_delivered", pa.int32()),
        ("unit_price", pa.decimal128(10, 2)),
    ]
)

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


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def truncate_image(schema: pa.Schema, n: int = 1) -> pa.Table:
    """The image of ``n`` ``T`` records as the capture writes them: every column null, keys included."""
    return pa.Table.from_arrays([pa.nulls(n, f.type) for f in schema], schema=schema)
