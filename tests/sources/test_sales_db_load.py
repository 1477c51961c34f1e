"""Sales database: schema creation, world load round trip, foreign keys, idempotent re-load."""

from __future__ import annotations

from datetime import datetime

import psycopg
import pyarrow as pa
import pytest

from abasto.errors import InvalidInputError
from abasto.sources.progress import LoadProgress
from abasto.sources.sales_db import TABLES, create_schema, load_world

pytestmark = pytest.mark.services


def _counts(dsn: str) -> dict[str, int]:
    with psycopg.connect(dsn) as conn:
        return {t: conn.execute(f"SELECT count(*) FROM sales.{t}").fetchone()[0] for t in TABLES}


def test_create_schema_is_idempotent_and_declares_keys(db_dsn: str) -> None:
    create_schema(db_dsn)
    create_schema(db_dsn)
    with psycopg.connect(db_dsn) as conn:
        tables = {
            r[0]
            for r in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'sales'"
            )
        }
        fks = conn.execute(
            "SELECT count(*) FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace "
            "WHERE n.nspname = 'sales' AND c.contype = 'f'"
        ).fetchone()
        no_pk = conn.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'sales' AND c.relkind = 'r' AND NOT EXISTS "
            "(SELECT 1 FROM pg_constraint k WHERE k.conrelid = c.oid AND k.contype = 'p')"
        ).fetchall()
    assert tables == set(TABLES)
    assert fks is not None and fks[0] >= 14
    assert no_pk == []


def test_load_world_round_trip(db_dsn: str, world_factory) -> None:
    world, until = world_factory.make(stores=3, skus=2, days=2)
    seen: list[LoadProgress] = []
    result = load_world(db_dsn, world, until=until, on_progress=seen.append)

    counts = _counts(db_dsn)
    assert counts["customers"] == 3
    assert counts["products"] == 2
    assert counts["routes"] == 2
    assert counts["order_lines"] == 3
    # history only: one of two days
    assert counts["sellout_hourly"] == 3 * 2 * 24
    assert result.rows == counts
    assert result.rows_per_second > 0
    assert seen[-1] == LoadProgress("sales.sellout_hourly", 3 * 2 * 24, 3 * 2 * 24)
    assert {p.table for p in seen} == {f"sales.{t}" for t in TABLES}

    with psycopg.connect(db_dsn) as conn:
        assert conn.execute("SELECT max(hour_start) < %s FROM sales.sellout_hourly", (until,)).fetchone() == (
            True,
        )
        # a foreign key holds: every sell-out row's store is a customer, and the FK rejects strangers
        orphans = conn.execute(
            "SELECT count(*) FROM sales.sellout_hourly s LEFT JOIN sales.customers c USING (store_id) "
            "WHERE c.store_id IS NULL"
        ).fetchone()
        assert orphans == (0,)
        with pytest.raises(psycopg.errors.ForeignKeyViolation):
            conn.execute(
                "INSERT INTO sales.sellout_hourly (store_id, sku, hour_start, units_sold) "
                "VALUES ('NOPE', 'COLA-600-NR', now(), 1)"
            )
        conn.rollback()
        weekdays = conn.execute("SELECT visit_weekdays FROM sales.routes ORDER BY route_id").fetchall()
        assert weekdays == [([0, 3],), ([1, 4, 5],)]
        price = conn.execute("SELECT price FROM sales.products LIMIT 1").fetchone()
        assert price is not None and str(price[0]) == "14.50"
        owner = conn.execute("SELECT owner_name FROM sales.customers WHERE store_id = 'S0001'").fetchone()
        assert owner == ("Dueño 0",)
        assert conn.execute("SELECT phone FROM sales.reps WHERE rep_id = 'REP02'").fetchone() == (None,)
        assert conn.execute(
            "SELECT qty_delivered FROM sales.order_lines WHERE order_id = 'O2'"
        ).fetchone() == (None,)


def test_out_of_stock_is_derived_from_stock_readings(db_dsn: str, world_factory) -> None:
    world, until = world_factory.make(stores=2, skus=1, days=2)
    load_world(db_dsn, world, until=until)
    hourly = world["hourly"].to_pylist()
    expected = {
        (r["store_id"], r["hour_start"]): (r["on_hand_end"] == 0 and r["demand"] > r["sold_units"])
        for r in hourly
        if r["hour_start"] < until
    }
    with psycopg.connect(db_dsn) as conn:
        got = {
            (s, h): oos
            for s, h, oos in conn.execute(
                "SELECT store_id, hour_start, out_of_stock FROM sales.sellout_hourly"
            )
        }
    assert got == expected
    assert any(got.values()) and not all(got.values())


def test_reload_replaces_and_is_idempotent(db_dsn: str, world_factory) -> None:
    world, until = world_factory.make(stores=3, skus=2, days=2)
    load_world(db_dsn, world, until=until)
    first = _counts(db_dsn)
    load_world(db_dsn, world, until=until)
    assert _counts(db_dsn) == first

    smaller, until2 = world_factory.make(stores=1, skus=1, days=2)
    load_world(db_dsn, smaller, until=until2)
    counts = _counts(db_dsn)
    assert counts["customers"] == 1
    assert counts["sellout_hourly"] == 24


def test_failed_load_changes_nothing(db_dsn: str, world_factory) -> None:
    world, until = world_factory.make(stores=2, skus=1, days=2)
    load_world(db_dsn, world, until=until)
    before = _counts(db_dsn)
    broken = dict(world)
    broken["order_lines"] = world["order_lines"].set_column(
        2, "sku", pa.array(["UNKNOWN-SKU"] * world["order_lines"].num_rows)
    )
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        load_world(db_dsn, broken, until=until)
    assert _counts(db_dsn) == before


def test_missing_world_column_is_named(db_dsn: str, world_factory) -> None:
    world, until = world_factory.make()
    world["stores"] = world["stores"].drop_columns(["channel"])
    with pytest.raises(InvalidInputError, match=r"'stores'.*channel"):
        load_world(db_dsn, world, until=until)
    del world["hourly"]
    with pytest.raises(InvalidInputError, match="hourly"):
        load_world(db_dsn, world, until=until)
    with pytest.raises(InvalidInputError, match="aware"):
        load_world(db_dsn, world, until=datetime(2026, 9, 2))
