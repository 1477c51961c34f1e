"""FreshRetailNet-50K import (data: Dingdong-Inc, CC BY 4.0, arXiv:2505.16319)."""

from __future__ import annotations

import csv
import shutil
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from abasto.errors import InvalidInputError, NotFoundError
from abasto.sources.freshretailnet import import_freshretailnet, read_hourly, read_store_index
from abasto.sources.sales_db import load_world

DATA = Path("/work/shared/data/freshretailnet_dev")
needs_data = pytest.mark.skipif(not (DATA / "stores.csv").is_file(), reason=f"{DATA} is absent")


def _first_stores(n: int) -> list[dict[str, str]]:
    with (DATA / "stores.csv").open() as handle:
        return list(csv.DictReader(handle))[:n]


@needs_data
@pytest.mark.services
def test_import_two_stores(db_dsn: str, world_factory) -> None:
    world, until = world_factory.make(stores=2, skus=1, days=2)
    load_world(db_dsn, world, until=until)  # FreshRetailNet rows go beside the world's
    stores = _first_stores(2)
    expected_rows = sum(int(s["rows"]) for s in stores)
    ids = [int(s["store_id"]) for s in stores]
    source = pq.read_table(
        DATA / stores[0]["file"],
        columns=["store_id", "product_id", "dt", "hour", "hourly_stockout", "hourly_sale"],
        filters=[("store_id", "in", ids)],
    )

    result = import_freshretailnet(db_dsn, DATA, stores=2)
    assert result.rows["sellout_hourly"] == expected_rows
    assert result.rows["customers"] == 2

    with psycopg.connect(db_dsn) as conn:
        count, stockouts, sold = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE out_of_stock), sum(units_sold) "
            "FROM sales.sellout_hourly WHERE store_id LIKE 'FRN-%'"
        ).fetchone() or (None, None, None)
        assert count == expected_rows
        assert stockouts == pc.sum(source.column("hourly_stockout")).as_py() > 0
        assert sold == pytest.approx(pc.sum(source.column("hourly_sale")).as_py())
        # world rows untouched
        assert conn.execute("SELECT count(*) FROM sales.customers WHERE store_id LIKE 'S%'").fetchone() == (
            2,
        )
        channel, region = conn.execute(
            "SELECT channel, region_id FROM sales.customers WHERE store_id = %s", (f"FRN-S{ids[0]:04d}",)
        ).fetchone() or (None, None)
        assert channel == "supermarket" and region == f"FRN-C{int(stores[0]['city_id']):02d}"
        # one known row: first hour of the first day, Shanghai midnight = 16:00 UTC the day before
        first = source.filter(
            pc.and_(pc.equal(source.column("hour"), 0), pc.equal(source.column("dt"), "2024-03-28"))
        )
        product = first.column("product_id")[0].as_py()
        row = conn.execute(
            "SELECT out_of_stock, units_sold FROM sales.sellout_hourly WHERE store_id = %s AND sku = %s "
            "AND hour_start = %s",
            (f"FRN-S{ids[0]:04d}", f"FRN-P{product:04d}", datetime(2024, 3, 27, 16, tzinfo=UTC)),
        ).fetchone()
        assert row == (
            first.column("hourly_stockout")[0].as_py() == 1,
            first.column("hourly_sale")[0].as_py(),
        )
        cats = conn.execute(
            "SELECT count(*) FROM sales.products WHERE sku LIKE 'FRN-%' AND third_category_id IS NOT NULL"
        ).fetchone()
        assert cats is not None and cats[0] == len(set(source.column("product_id").to_pylist()))

    # re-import replaces: same counts, no duplicates
    again = import_freshretailnet(db_dsn, DATA, stores=1)
    with psycopg.connect(db_dsn) as conn:
        assert conn.execute(
            "SELECT count(*) FROM sales.sellout_hourly WHERE store_id LIKE 'FRN-%'"
        ).fetchone() == (int(stores[0]["rows"]),)
    assert again.rows["customers"] == 1


def test_missing_folder_is_named(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="nowhere"):
        read_store_index(tmp_path / "nowhere")
    with pytest.raises(NotFoundError, match=r"stores\.csv"):
        read_store_index(tmp_path)


def test_missing_column_is_named(tmp_path: Path) -> None:
    (tmp_path / "stores.csv").write_text("store_id,city_id,file\n1,2,x.parquet\n")
    with pytest.raises(InvalidInputError, match="rows"):
        read_store_index(tmp_path)


@needs_data
def test_missing_parquet_and_column_are_named(tmp_path: Path) -> None:
    shutil.copy(DATA / "stores.csv", tmp_path / "stores.csv")
    stores = read_store_index(tmp_path)[:1]
    with pytest.raises(NotFoundError, match=stores[0].file):
        read_hourly(tmp_path, stores)
    table = pq.read_table(DATA / stores[0].file, filters=[("store_id", "=", stores[0].store_id)])
    pq.write_table(table.drop_columns(["hourly_stockout"]), tmp_path / stores[0].file)
    with pytest.raises(InvalidInputError, match="hourly_stockout"):
        read_hourly(tmp_path, stores)


@pytest.mark.services
def test_non_positive_store_count_is_refused(db_dsn: str) -> None:
    with pytest.raises(InvalidInputError, match="stores"):
        import_freshretailnet(db_dsn, DATA, stores=0)
