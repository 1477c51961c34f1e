from __future__ import annotations

import pyarrow as pa
import pytest
from raw_builders import (
    write_customers,
    write_documents,
    write_orders_cdc,
    write_orders_load,
    write_pos_events,
)

from abasto.catalog.crawler import crawl, read_footer
from abasto.catalog.raw_registry import RawRegistry
from abasto.catalog.raw_schema import widen
from abasto.lake.storage import join_uri
from abasto.settings import Settings


class CountingReader:
    def __init__(self) -> None:
        self.read: list[str] = []

    def __call__(self, uri: str) -> tuple[pa.Schema, int]:
        self.read.append(uri)
        return read_footer(uri)


def test_crawl_registers_each_layout_with_schema_and_partitions(
    settings: Settings, registry: RawRegistry
) -> None:
    raw = settings.raw_uri
    write_customers(raw)
    write_orders_load(raw)
    write_documents(raw)
    write_pos_events(raw, "2026-09-01", "06")
    write_pos_events(raw, "2026-09-01", "07")

    report = crawl(raw, registry)

    assert sorted(report.new_datasets) == [
        "raw.behavior_documents",
        "raw.devices_pos_events",
        "raw.sales_db_customers",
        "raw.sales_db_orders",
    ]
    assert report.files_scanned == 5
    orders = registry.get("raw.sales_db_orders")
    assert orders is not None
    assert orders.layout == "dms"
    assert orders.location == join_uri(raw, "sales_db/orders")
    assert orders.data_format == "parquet"
    assert [(c.name, c.hive_type) for c in orders.columns] == [
        ("Op", "string"),
        ("_lsn", "bigint"),
        ("_commit_ts", "timestamp"),
        ("_seq", "bigint"),
        ("order_id", "string"),
        ("store_id", "string"),
        ("status", "string"),
        ("qty", "int"),
    ]
    assert orders.partition_keys == ()
    assert orders.source_system.startswith("sales_db PostgreSQL table orders")
    assert orders.owner == "data-platform"
    assert "Orders taken by reps" in orders.description

    events = registry.get("raw.devices_pos_events")
    assert events is not None
    assert events.layout == "hive"
    assert events.partition_keys == ("date", "hour")
    assert registry.partitions("raw.devices_pos_events") == [("2026-09-01", "06"), ("2026-09-01", "07")]
    assert "date" not in events.schema.names  # partition keys are not data columns
    assert events.file_count == 2
    assert events.total_rows == 6
    assert events.source_system.startswith("POS devices")

    docs = registry.get("raw.behavior_documents")
    assert docs is not None
    assert docs.classification == "confidential"
    assert docs.source_system.startswith("behavior document store")


def test_pii_columns_are_flagged_by_name_and_spec(settings: Settings, registry: RawRegistry) -> None:
    write_customers(settings.raw_uri)
    write_orders_load(settings.raw_uri)
    crawl(settings.raw_uri, registry)

    customers = registry.get("raw.sales_db_customers")
    assert customers is not None
    assert customers.pii_columns == ("name", "owner_name", "phone")
    assert customers.classification == "pii"
    flags = {c.name: c.pii for c in customers.columns}
    assert flags["owner_name"] and flags["phone"]
    assert not flags["channel"] and not flags["store_id"]
    orders = registry.get("raw.sales_db_orders")
    assert orders is not None
    assert orders.pii_columns == ()
    assert orders.classification == "internal"


def test_new_column_opens_schema_version_2_and_old_files_keep_version_1(
    settings: Settings, registry: RawRegistry
) -> None:
    raw = settings.raw_uri
    write_orders_load(raw)
    write_orders_cdc(raw, first_lsn=0x200)
    first = crawl(raw, registry)
    assert first.new_columns == {}

    newer = write_orders_cdc(raw, first_lsn=0x300, with_channel=True)
    report = crawl(raw, registry)

    assert report.new_datasets == []
    assert report.new_columns == {"raw.sales_db_orders": ("channel",)}
    (change,) = report.datasets
    assert change.widened_columns == ("qty",)
    orders = registry.get("raw.sales_db_orders")
    assert orders is not None
    assert orders.schema_version == 2
    v1, v2 = orders.versions
    assert "channel" not in [c.name for c in v1.columns]
    assert v2.added == ("channel",)
    assert v2.first_file == newer.relpath
    assert {c.name: c.hive_type for c in v2.columns}["qty"] == "bigint"
    by_file = {f.relpath: f for f in registry.files("raw.sales_db_orders")}
    assert len(by_file) == 3
    assert by_file[newer.relpath].schema_version == 2
    assert "channel" in by_file[newer.relpath].columns
    old = [f for path, f in by_file.items() if path != newer.relpath]
    assert [f.schema_version for f in old] == [1, 1]
    assert all("channel" not in f.columns for f in old)


def test_recrawl_reads_only_new_files(settings: Settings, registry: RawRegistry) -> None:
    raw = settings.raw_uri
    write_orders_load(raw)
    write_pos_events(raw, "2026-09-01", "06")
    reader = CountingReader()
    crawl(raw, registry, reader=reader)
    assert len(reader.read) == 2

    reader.read.clear()
    again = crawl(raw, registry, reader=reader)
    assert reader.read == []
    assert again.files_scanned == 0
    assert again.files_unchanged == 2

    added = write_orders_cdc(raw, first_lsn=0x200)
    crawl(raw, registry, reader=reader)
    assert reader.read == [added.uri]
    orders = registry.get("raw.sales_db_orders")
    assert orders is not None
    assert orders.file_count == 2
    assert orders.total_rows == 3


def test_removed_and_unreadable_files(settings: Settings, registry: RawRegistry) -> None:
    raw = settings.raw_uri
    write_pos_events(raw, "2026-09-01", "06")
    gone = write_pos_events(raw, "2026-09-01", "07")
    crawl(raw, registry)
    (settings.home_dir / "lake" / "raw" / gone).unlink()
    broken = settings.home_dir / "lake" / "raw" / "devices/pos_events/date=2026-09-02/hour=00/bad.parquet"
    broken.parent.mkdir(parents=True)
    broken.write_bytes(b"not parquet")
    (settings.home_dir / "lake" / "raw" / "README.txt").write_text("notes")

    report = crawl(raw, registry)

    (change,) = report.datasets
    assert change.files_removed == 1
    assert [path for path, _ in report.unreadable] == [
        "devices/pos_events/date=2026-09-02/hour=00/bad.parquet"
    ]
    assert report.ignored == ("README.txt",)
    events = registry.get("raw.devices_pos_events")
    assert events is not None
    assert events.file_count == 1
    assert registry.partitions("raw.devices_pos_events") == [("2026-09-01", "06")]


def test_registry_lives_next_to_the_sqlite_catalog(settings: Settings, registry: RawRegistry) -> None:
    assert registry.path == settings.home_dir / "lake" / "raw_catalog.db"


@pytest.mark.parametrize(
    ("old", "new", "wide"),
    [
        (pa.int32(), pa.int64(), pa.int64()),
        (pa.int64(), pa.float64(), pa.float64()),
        (pa.null(), pa.string(), pa.string()),
        (pa.int64(), pa.string(), pa.string()),
        (pa.decimal128(10, 2), pa.decimal128(12, 3), pa.decimal128(12, 3)),
    ],
)
def test_widen(old: pa.DataType, new: pa.DataType, wide: pa.DataType) -> None:
    assert widen(old, new) == wide
