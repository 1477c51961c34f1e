"""What the bottler observes of the world, shaped for the layers that learn from it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

#: order status while its delivery has not happened yet
PENDING = "pending"


def sellout_history(world: Any) -> pa.Table:
    """Hourly sell-out before the live day, in the demand model's input contract.

    Columns: store_id, sku, hour_start, units_sold (float), out_of_stock (the shelf ran out in the
    hour, or was empty all hour), channel. Never the latent demand.
    """
    h = world.hourly
    h = h.filter(pc.less(h["hour_start"], pa.scalar(world.history_end, h["hour_start"].type)))
    ran_out = pc.or_(
        pc.invert(pc.is_null(h["stockout_at"])), pc.equal(pc.add(h["on_hand_start"], h["delivered_units"]), 0)
    )
    table = pa.table(
        {
            "store_id": h["store_id"],
            "sku": h["sku"],
            "hour_start": h["hour_start"],
            "units_sold": pc.cast(h["sold_units"], pa.float64()),
            "out_of_stock": ran_out,
        }
    )
    joined = table.join(world.stores.select(["store_id", "channel"]), "store_id")
    return joined.sort_by([("store_id", "ascending"), ("sku", "ascending"), ("hour_start", "ascending")])


def before(table: pa.Table, column: str, instant: datetime) -> pa.Array:
    return pc.less(table.column(column), pa.scalar(instant, table.schema.field(column).type))


def history_tables(world: Any) -> dict[str, pa.Table]:
    """The world's tables as the sales database knew them at ``world.history_end``.

    Orders taken later are left out; orders not yet delivered are ``pending`` with no delivered
    quantities; deliveries and reps' visit analyses after the cut are left out. The hourly table
    is untouched (the sales loader cuts sell-out by ``until`` itself).
    """
    end: datetime = world.history_end
    tables = {name: world.table(name) for name in world.tables}
    orders = world.orders.filter(before(world.orders, "ordered_at", end))
    delivered_later = pc.greater_equal(orders.column("delivery_date"), pa.scalar(world.live_day))
    orders = orders.set_column(
        orders.schema.get_field_index("status"),
        "status",
        pc.if_else(delivered_later, pa.scalar(PENDING), orders.column("status")),
    )
    known = set(orders.column("order_id").to_pylist())
    pending = set(orders.filter(delivered_later).column("order_id").to_pylist())
    lines = world.order_lines.filter(pc.is_in(world.order_lines.column("order_id"), pa.array(sorted(known))))
    in_pending = pc.is_in(lines.column("order_id"), pa.array(sorted(pending), pa.string()))
    qty = lines.column("qty_delivered")
    lines = lines.set_column(
        lines.schema.get_field_index("qty_delivered"),
        "qty_delivered",
        pc.if_else(in_pending, pa.nulls(len(lines), qty.type), qty),
    )
    reasons = "shortfall_reason"
    if reasons in lines.column_names:
        col = lines.column(reasons)
        lines = lines.set_column(
            lines.schema.get_field_index(reasons),
            reasons,
            pc.if_else(in_pending, pa.nulls(len(lines), col.type), col),
        )
    tables["orders"] = orders
    tables["order_lines"] = lines
    tables["deliveries"] = world.deliveries.filter(before(world.deliveries, "delivered_at", end))
    va = world.visit_analyses
    tables["visit_analyses"] = va.filter(before(va, "visited_at", end))
    return tables
