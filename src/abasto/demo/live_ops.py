"""The sales database as it stood when the live day began, and the live day's transactions.

The world knows everything up to its horizon; the bottler's database only knows what had
happened (:func:`abasto.world.views.history_tables` cuts the world at ``history_end``);
:func:`record_live_day` then applies, transaction by transaction in time order, what the live
day adds (deliveries made, orders taken, reps' visits) — ordinary inserts and updates that change
capture has to carry into the lake.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
import pyarrow as pa
import pyarrow.compute as pc

from abasto.sources.behavior import DocumentStore
from abasto.world.views import PENDING, before


@dataclass(frozen=True)
class LiveOps:
    deliveries: int
    orders: int
    order_lines: int
    documents: int
    transactions: int


def record_live_day(dsn: str, world: Any, documents: DocumentStore) -> LiveOps:
    """Apply the live day's deliveries, new orders and visit analyses, one transaction each."""
    start, end = world.history_end, world.live_end
    orders = {r["order_id"]: r for r in world.orders.to_pylist()}
    lines_by_order: dict[str, list[dict[str, Any]]] = {}
    for line in world.order_lines.to_pylist():
        lines_by_order.setdefault(line["order_id"], []).append(line)

    events: list[tuple[datetime, str, dict[str, Any]]] = []
    for d in world.deliveries.to_pylist():
        if start <= d["delivered_at"] < end:
            events.append((d["delivered_at"], "delivery", d))
    for o in orders.values():
        if o.get("ordered_at") is not None and start <= o["ordered_at"] < end:
            events.append((o["ordered_at"], "order", o))
    events.sort(key=lambda e: (e[0], e[1]))

    n_deliveries = n_orders = n_lines = 0
    with psycopg.connect(dsn) as conn:
        for _at, kind, row in events:
            with conn.transaction():
                if kind == "delivery":
                    order = orders[row["order_id"]]
                    conn.execute(
                        "UPDATE sales.orders SET status = %s WHERE order_id = %s",
                        (order["status"], order["order_id"]),
                    )
                    for line in lines_by_order.get(order["order_id"], []):
                        conn.execute(
                            "UPDATE sales.order_lines SET qty_delivered = %s "
                            "WHERE order_id = %s AND line_no = %s",
                            (line["qty_delivered"], line["order_id"], line["line_no"]),
                        )
                    conn.execute(
                        "INSERT INTO sales.deliveries (delivery_id, order_id, store_id, delivered_at) "
                        "VALUES (%s, %s, %s, %s)",
                        (row["delivery_id"], row["order_id"], row["store_id"], row["delivered_at"]),
                    )
                    n_deliveries += 1
                else:
                    conn.execute(
                        "INSERT INTO sales.orders (order_id, store_id, route_id, rep_id, order_date, "
                        "delivery_date, status, ordered_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                        (
                            row["order_id"],
                            row["store_id"],
                            row["route_id"],
                            row["rep_id"],
                            row["order_date"],
                            row["delivery_date"],
                            PENDING,
                            row["ordered_at"],
                        ),
                    )
                    for line in lines_by_order.get(row["order_id"], []):
                        conn.execute(
                            "INSERT INTO sales.order_lines (order_id, line_no, sku, qty_ordered, unit_price) "
                            "VALUES (%s, %s, %s, %s, %s)",
                            (
                                line["order_id"],
                                line["line_no"],
                                line["sku"],
                                line["qty_ordered"],
                                line["unit_price"],
                            ),
                        )
                        n_lines += 1
                    n_orders += 1
    va = world.visit_analyses
    todays = va.filter(
        pc.and_(
            pc.greater_equal(va.column("visited_at"), pa.scalar(start, va.schema.field("visited_at").type)),
            before(va, "visited_at", end),
        )
    )
    n_docs = 0
    for doc in todays.to_pylist():
        documents.put(doc["pk"], doc["sk"], json.loads(doc["doc"]))
        n_docs += 1
    return LiveOps(n_deliveries, n_orders, n_lines, n_docs, len(events) + n_docs)
