"""The generated world through the sources and the capture: the raw zone replays into the source."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest

from abasto.cdc import CdcPipeline
from abasto.settings import WorldSettings
from abasto.sources.behavior import PostgresDocumentStore, load_visit_analyses
from abasto.sources.sales_db import TABLES, load_world
from abasto.world import World, generate

pytestmark = pytest.mark.services

KEYS = {
    "orders": ("order_id",),
    "order_lines": ("order_id", "line_no"),
    "sellout_hourly": ("store_id", "sku", "hour_start"),
}


@pytest.fixture(scope="module")
def world() -> World:
    return generate(WorldSettings(stores=6, skus=4, history_days=7), horizon_days=1)


def replay(raw, source: str, table: str, keys: tuple[str, ...]) -> dict[tuple[Any, ...], dict[str, Any]]:
    """What a curated table must hold: the newest full load, then changes by (_lsn, _seq);
    a TRUNCATE ('T') empties the table, a delete removes the key."""
    loads = raw.table(source, table, "full_load")
    rows: dict[tuple[Any, ...], dict[str, Any]] = {}
    load_lsn = -1
    if loads is not None and loads.num_rows:
        load_lsn = max(loads.column("_lsn").to_pylist())
        for r in loads.to_pylist():
            if r["_lsn"] == load_lsn:
                rows[tuple(r[k] for k in keys)] = r
    for r in raw.changes(source, table):
        if r["_lsn"] <= load_lsn:
            continue
        if r["Op"] == "T":
            rows.clear()
        elif r["Op"] == "D":
            rows.pop(tuple(r[k] for k in keys), None)
        else:
            rows[tuple(r[k] for k in keys)] = r
    return rows


def source_rows(dsn: str, query: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(query.encode()).fetchall()


def test_world_full_load_then_changes_replay_to_the_source(
    cdc_dsn: str, world: World, tmp_path: Path, raw
) -> None:
    load_world(cdc_dsn, world.tables, until=world.history_end)
    with PostgresDocumentStore(cdc_dsn) as store:
        load_visit_analyses(store, world.tables["visit_analyses"])

    pipeline = CdcPipeline(cdc_dsn, (tmp_path / "raw").as_uri())
    try:
        result = pipeline.full_load()
        with psycopg.connect(cdc_dsn) as conn:
            for name in TABLES:
                count = conn.execute(f"SELECT count(*) FROM sales.{name}".encode()).fetchone()
                assert result.tables[f"sales.{name}"] == (count[0] if count else None), name
        assert result.tables["behavior.documents"] == world.tables["visit_analyses"].num_rows
        assert {f.split("/")[0] for f in result.files} == {"sales_db", "behavior"}

        # a day of operations: a rep takes an order, a delivery lands, analyses are written and removed
        store_id = world.tables["stores"].column("store_id")[0].as_py()
        sku = world.tables["skus"].column("sku")[0].as_py()
        with psycopg.connect(cdc_dsn) as conn:
            conn.execute(
                "INSERT INTO sales.orders (order_id, store_id, order_date, status) "
                "VALUES ('NEW1', %s, now(), 'open')",
                (store_id,),
            )
            conn.execute(
                "INSERT INTO sales.order_lines (order_id, line_no, sku, qty_ordered, unit_price) "
                "VALUES ('NEW1', 1, %s, 24, 10.50), ('NEW1', 2, %s, 12, 10.50)",
                (sku, sku),
            )
        with psycopg.connect(cdc_dsn) as conn:
            conn.execute("UPDATE sales.order_lines SET qty_delivered = qty_ordered WHERE order_id = 'NEW1'")
            conn.execute("UPDATE sales.orders SET status = 'delivered' WHERE order_id = 'NEW1'")
            conn.execute("DELETE FROM sales.order_lines WHERE order_id = 'NEW1' AND line_no = 2")
        with PostgresDocumentStore(cdc_dsn) as docs:
            docs.put(f"STORE#{store_id}", "VISIT#2099-01-01#REP01", {"cooler": "broken", "stock": {sku: 0}})
            visits = world.tables["visit_analyses"]
            gone = (visits.column("pk")[0].as_py(), visits.column("sk")[0].as_py())
            assert docs.delete(*gone)
        pipeline.capture_once()

        # a re-load of the world (TRUNCATE + COPY in one transaction) is captured too
        load_world(cdc_dsn, world.tables, until=world.history_end)
        while not pipeline.capture_once(max_changes=5_000).drained:
            pass
    finally:
        pipeline.close()

    for table, keys in KEYS.items():
        replayed = replay(raw, "sales_db", table, keys)
        columns = ", ".join(keys)
        expected = source_rows(cdc_dsn, f"SELECT {columns} FROM sales.{table}")
        assert set(replayed) == set(expected), table
    orders = replay(raw, "sales_db", "orders", ("order_id",))
    assert "NEW1" not in {k[0] for k in orders}  # gone with the re-load's TRUNCATE
    documents = replay(raw, "behavior", "documents", ("pk", "sk"))
    expected_docs = source_rows(cdc_dsn, "SELECT pk, sk, doc::text FROM behavior.documents")
    assert {k: v["doc"] for k, v in documents.items()} == {(pk, sk): doc for pk, sk, doc in expected_docs}
    assert (f"STORE#{store_id}", "VISIT#2099-01-01#REP01") in documents
    assert gone not in documents
