"""Catalog: factory, table creation with keys/partitioning/metadata, partition filters, table specs."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pyarrow as pa
import pytest
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.expressions import AlwaysFalse, And, GreaterThanOrEqual, In, IsNull, LessThan, Or

from abasto.catalog import (
    CURATED,
    PartitionClause,
    TableMetadata,
    covering_filter,
    ensure_table,
    list_tables,
    open_catalog,
    parse_partition,
)
from abasto.errors import ConfigError, InvalidInputError, NotFoundError
from abasto.lake import ALL_TABLES, SALES_TABLES, get_spec
from abasto.settings import Settings, load_settings

META = TableMetadata(owner="ventas", description="stores", classification="pii", pii_columns=("phone",))


def test_open_catalog_creates_its_directories(tmp_path: Path) -> None:
    s = load_settings(home=tmp_path / "h")
    catalog = open_catalog(s)
    assert (tmp_path / "h" / "lake" / "catalog.db").is_file()
    assert (tmp_path / "h" / "lake" / "curated").is_dir()
    assert catalog.name == s.lake.catalog_name
    with pytest.raises(ConfigError, match="glue"):
        open_catalog(load_settings(home=tmp_path / "h", lake={"catalog_uri": "glue://eu-west-1"}))


def test_ensure_table_sets_keys_partitioning_and_metadata(catalog: SqlCatalog) -> None:
    schema = pa.schema(
        [("store_id", pa.string()), ("hour_start", pa.timestamp("us", tz="UTC")), ("phone", pa.string())]
    )
    table = ensure_table(
        catalog,
        "curated.t",
        schema,
        keys=("store_id", "hour_start"),
        partition_by="day(hour_start)",
        metadata=META,
    )
    assert table.schema().identifier_field_names() == {"store_id", "hour_start"}
    assert not table.schema().find_field("phone").required
    assert [(f.name, str(f.transform)) for f in table.spec().fields] == [("hour_start_day", "day")]
    assert table.properties["owner"] == "ventas" and table.properties["classification"] == "pii"
    assert table.properties["abasto.pii-columns"] == "phone" and table.properties["comment"] == "stores"
    again = ensure_table(
        catalog, "curated.t", pa.schema([("other", pa.int64())]), keys=("other",), metadata=META
    )
    assert again.metadata_location == table.metadata_location  # existing table returned unchanged
    with pytest.raises(InvalidInputError, match="missing_key"):
        ensure_table(catalog, "curated.u", schema, keys=("missing_key",), metadata=META)
    with pytest.raises(InvalidInputError, match="classification"):
        TableMetadata(owner="x", description="y", classification="secret")


def test_list_tables(catalog: SqlCatalog) -> None:
    assert list_tables(catalog, "marts") == []
    ensure_table(catalog, "curated.b", pa.schema([("k", pa.string())]), keys=("k",), metadata=META)
    ensure_table(catalog, "curated.a", pa.schema([("k", pa.string())]), keys=("k",), metadata=META)
    infos = list_tables(catalog, CURATED)
    assert [(i.identifier, i.rows, i.snapshot_id, i.owner) for i in infos] == [
        ("curated.a", 0, None, "ventas"),
        ("curated.b", 0, None, "ventas"),
    ]


def test_parse_partition() -> None:
    assert parse_partition("day(hour_start)") == PartitionClause("hour_start", "day")
    assert parse_partition(" region_id ") == PartitionClause("region_id", "identity")
    assert parse_partition("bucket(16, store_id)") == PartitionClause("store_id", "bucket[16]")
    assert parse_partition("month(order_date)").field_name == "order_date_month"
    for bad in ("day(a, b)", "weekly(x)", "bucket(store_id)", "x y", ""):
        with pytest.raises(ConfigError):
            parse_partition(bad)


def test_covering_filter_selects_whole_partitions() -> None:
    ts = pa.array(
        [
            datetime(2026, 9, 1, 5, tzinfo=UTC),
            datetime(2026, 9, 2, 23, tzinfo=UTC),
            datetime(2026, 9, 5, 1, tzinfo=UTC),
        ],
        pa.timestamp("us", tz="UTC"),
    )
    got = covering_filter(PartitionClause("h", "day"), ts)
    expected = Or(
        And(GreaterThanOrEqual("h", "2026-09-01T00:00:00+00:00"), LessThan("h", "2026-09-03T00:00:00+00:00")),
        And(GreaterThanOrEqual("h", "2026-09-05T00:00:00+00:00"), LessThan("h", "2026-09-06T00:00:00+00:00")),
    )
    assert got == expected  # adjacent days merged into one range
    months = covering_filter(PartitionClause("d", "month"), pa.array([date(2026, 12, 9), None]))
    assert months == Or(IsNull("d"), And(GreaterThanOrEqual("d", "2026-12-01"), LessThan("d", "2027-01-01")))
    assert covering_filter(PartitionClause("r", "identity"), pa.array(["N", "S", "N"])) == In("r", ["N", "S"])
    assert covering_filter(PartitionClause("r", "identity"), pa.array([], pa.string())) == AlwaysFalse()


def test_table_specs_for_the_sales_db() -> None:
    assert set(SALES_TABLES) == {
        "regions",
        "reps",
        "routes",
        "customers",
        "products",
        "assortment",
        "orders",
        "order_lines",
        "deliveries",
        "sellout_hourly",
    }
    assert all(spec.source == f"sales_db/{name}" for name, spec in SALES_TABLES.items())
    assert SALES_TABLES["order_lines"].keys == ("order_id", "line_no")
    assert SALES_TABLES["sellout_hourly"].keys == ("store_id", "sku", "hour_start")
    assert SALES_TABLES["sellout_hourly"].partition_by == "day(hour_start)"
    assert (
        SALES_TABLES["customers"].classification == "pii" and "phone" in SALES_TABLES["customers"].pii_columns
    )
    docs = ALL_TABLES["behavior_documents"]
    assert (docs.source, docs.keys, docs.identifier) == (
        "behavior/documents",
        ("pk", "sk"),
        "curated.behavior_documents",
    )
    assert get_spec("curated.products") is SALES_TABLES["products"]
    with pytest.raises(NotFoundError, match="stores"):
        get_spec("stores")


def test_settings_fixture_is_isolated(settings: Settings, tmp_path: Path) -> None:
    assert settings.raw_uri.startswith(tmp_path.as_uri())
