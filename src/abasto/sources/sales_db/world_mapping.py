"""The generated world's tables (docs/CONTRACTS.md) → rows of the sales database's tables.

``customers`` come from the world's ``stores``, ``products`` from its ``skus``; ``sellout_hourly`` is
the history part of ``hourly`` (``hour_start < until``) with what a bottler can observe: units sold,
the stock reading at the end of the hour, and an out-of-stock flag derived from that reading
(shelf empty at the end of the hour *and* demand went unserved) — never the latent demand itself.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

import pyarrow as pa
import pyarrow.compute as pc

from abasto.errors import InvalidInputError

_TS = pa.timestamp("us", tz="UTC")

#: sales table → (world table, [(column, Arrow type the loader casts to)]); every column is required
WORLD_COLUMNS: dict[str, tuple[str, list[tuple[str, pa.DataType]]]] = {
    "regions": (
        "regions",
        [("region_id", pa.string()), ("name", pa.string()), ("base_temp_c", pa.float64())],
    ),
    "reps": (
        "reps",
        [("rep_id", pa.string()), ("name", pa.string()), ("phone", pa.string()), ("region_id", pa.string())],
    ),
    "routes": (
        "routes",
        [
            ("route_id", pa.string()),
            ("region_id", pa.string()),
            ("rep_id", pa.string()),
            ("visit_weekdays", pa.list_(pa.int16())),
            ("delivery_lag_days", pa.int16()),
        ],
    ),
    "customers": (
        "stores",
        [
            ("store_id", pa.string()),
            ("name", pa.string()),
            ("owner_name", pa.string()),
            ("phone", pa.string()),
            ("channel", pa.string()),
            ("region_id", pa.string()),
            ("route_id", pa.string()),
            ("lat", pa.float64()),
            ("lon", pa.float64()),
            ("coolers", pa.int32()),
            ("big_customer", pa.bool_()),
            ("opens_hour", pa.int16()),
            ("closes_hour", pa.int16()),
        ],
    ),
    "products": (
        "skus",
        [
            ("sku", pa.string()),
            ("brand", pa.string()),
            ("pack", pa.string()),
            ("size_ml", pa.int32()),
            ("returnable", pa.bool_()),
            ("units_per_case", pa.int32()),
            ("price", pa.float64()),
        ],
    ),
    "assortment": (
        "assortment",
        [
            ("store_id", pa.string()),
            ("sku", pa.string()),
            ("base_daily_units", pa.float64()),
            ("capacity_units", pa.int32()),
        ],
    ),
    "orders": (
        "orders",
        [
            ("order_id", pa.string()),
            ("store_id", pa.string()),
            ("route_id", pa.string()),
            ("rep_id", pa.string()),
            ("order_date", pa.date32()),
            ("delivery_date", pa.date32()),
            ("status", pa.string()),
        ],
    ),
    "order_lines": (
        "order_lines",
        [
            ("order_id", pa.string()),
            ("line_no", pa.int32()),
            ("sku", pa.string()),
            ("qty_ordered", pa.int32()),
            ("qty_delivered", pa.int32()),
            ("unit_price", pa.float64()),
        ],
    ),
    "deliveries": (
        "deliveries",
        [
            ("delivery_id", pa.string()),
            ("order_id", pa.string()),
            ("store_id", pa.string()),
            ("delivered_at", _TS),
        ],
    ),
}

#: columns loaded when the world table has them (null otherwise)
OPTIONAL_COLUMNS: dict[str, list[tuple[str, pa.DataType]]] = {
    "regions": [("lat", pa.float64()), ("lon", pa.float64())],
    "routes": [("name", pa.string()), ("tier", pa.string())],
    "customers": [("visit_hour", pa.int16()), ("delivery_hour", pa.int16())],
    "products": [("category", pa.string())],
    "orders": [("ordered_at", _TS)],
    "order_lines": [("shortfall_reason", pa.string())],
}

HOURLY_COLUMNS = ("store_id", "sku", "hour_start", "demand", "sold_units", "on_hand_end")

#: world tables the sales database is built from
REQUIRED_WORLD_TABLES: tuple[str, ...] = (*(src for src, _ in WORLD_COLUMNS.values()), "hourly")


def world_to_sales(world_tables: Mapping[str, pa.Table], *, until: datetime) -> dict[str, pa.Table]:
    """Rows for every sales table, keyed by sales table name.

    Raises:
        InvalidInputError: a world table or column is missing, a column cannot be cast to the sales
            type, or ``until`` has no time zone.
    """
    if until.tzinfo is None:
        raise InvalidInputError("until must be time-zone aware (the world's timestamps are UTC)")
    missing = [name for name in REQUIRED_WORLD_TABLES if name not in world_tables]
    if missing:
        raise InvalidInputError(f"world tables missing: {', '.join(missing)}")
    out = {
        target: select_columns(
            world_tables[source], source, columns, optional=OPTIONAL_COLUMNS.get(target, [])
        )
        for target, (source, columns) in WORLD_COLUMNS.items()
    }
    out["sellout_hourly"] = sellout_from_hourly(world_tables["hourly"], until=until)
    return out


def select_columns(
    table: pa.Table,
    name: str,
    columns: list[tuple[str, pa.DataType]],
    *,
    optional: Sequence[tuple[str, pa.DataType]] = (),
) -> pa.Table:
    """The named columns of ``table``, cast to the given types; ``optional`` ones are null if absent.

    Raises:
        InvalidInputError: a column is absent or does not cast.
    """
    absent = [col for col, _ in columns if col not in table.column_names]
    if absent:
        raise InvalidInputError(f"world table {name!r} lacks column(s): {', '.join(absent)}")
    arrays = []
    wanted = [*columns, *optional]
    for col, typ in wanted:
        if col not in table.column_names:
            arrays.append(pa.nulls(table.num_rows, typ))
            continue
        try:
            arrays.append(table.column(col).cast(typ))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise InvalidInputError(
                f"world table {name!r}, column {col!r}: cannot cast to {typ}: {exc}"
            ) from exc
    return pa.table(arrays, names=[col for col, _ in wanted])


def sellout_from_hourly(hourly: pa.Table, *, until: datetime) -> pa.Table:
    """History rows of the world's ``hourly`` as ``sales.sellout_hourly`` rows.

    Raises:
        InvalidInputError: a needed column is absent or does not cast.
    """
    base = select_columns(
        hourly,
        "hourly",
        [
            ("store_id", pa.string()),
            ("sku", pa.string()),
            ("hour_start", _TS),
            ("demand", pa.float64()),
            ("sold_units", pa.float64()),
            ("on_hand_end", pa.int32()),
        ],
    )
    history = base.filter(pc.less(base.column("hour_start"), pa.scalar(until, _TS)))
    sold = history.column("sold_units")
    on_hand_end = history.column("on_hand_end")
    out_of_stock = pc.and_(pc.equal(on_hand_end, 0), pc.greater(history.column("demand"), sold))
    return pa.table(
        {
            "store_id": history.column("store_id"),
            "sku": history.column("sku"),
            "hour_start": history.column("hour_start"),
            "units_sold": sold,
            "on_hand_end": on_hand_end,
            "out_of_stock": out_of_stock,
        }
    )
