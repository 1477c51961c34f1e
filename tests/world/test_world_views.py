from abasto.world import World
from abasto.world.views import PENDING, history_tables, sellout_history


def test_history_tables_know_only_what_had_happened(world: World) -> None:
    end = world.history_end
    h = history_tables(world)
    orders = h["orders"].to_pylist()
    assert orders and all(o["ordered_at"] < end for o in orders)
    assert len(orders) < world.orders.num_rows  # the live day's and later orders are cut
    pending = {o["order_id"] for o in orders if o["status"] == PENDING}
    assert pending and all(o["delivery_date"] >= world.live_day for o in orders if o["order_id"] in pending)
    for line in h["order_lines"].to_pylist():
        if line["order_id"] in pending:
            assert line["qty_delivered"] is None
    assert {ln["order_id"] for ln in h["order_lines"].to_pylist()} <= {o["order_id"] for o in orders}
    assert all(d["delivered_at"] < end for d in h["deliveries"].to_pylist())
    assert all(v["visited_at"] < end for v in h["visit_analyses"].to_pylist())
    assert h["hourly"].num_rows == world.hourly.num_rows


def test_sellout_history_stops_at_the_live_day(world: World) -> None:
    s = sellout_history(world)
    assert s.num_rows > 0
    assert max(s.column("hour_start").to_pylist()) < world.history_end
    assert set(s.column_names) == {"store_id", "sku", "hour_start", "units_sold", "out_of_stock", "channel"}
