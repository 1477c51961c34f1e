"""What the bottler observes of the world, shaped for the layers that learn from it."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.compute as pc


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
    return table.join(world.stores.select(["store_id", "channel"]), "store_id")
