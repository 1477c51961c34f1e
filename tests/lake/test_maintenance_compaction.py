"""Compaction rewrites small files into few, changing no row and no other partition."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
from maintenance_builders import batch, data_files, row_multiset, small_files_table
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.expressions import EqualTo

from abasto.analytics import SqlEngine
from abasto.analytics.access import AuditLog
from abasto.errors import TransientError
from abasto.lake.maintenance import compact_table, plan_compaction
from abasto.lake.maintenance.files import files_of_disk_under
from abasto.settings import Settings

TARGET = 1 << 20


def test_compaction_keeps_rows_reduces_files_and_spares_other_partitions(
    catalog: SqlCatalog, settings: Settings, tmp_path: Path
) -> None:
    table = small_files_table(catalog, appends=10)
    before = row_multiset(table)
    r3_before = data_files(table, "R3")
    assert len(data_files(table, "R1")) == 10

    result = compact_table(table, target_bytes=TARGET)

    table = catalog.load_table("curated.stock_readings")
    assert result.partitions == ("region_id=R1", "region_id=R2")
    assert (result.files_removed, result.files_added, result.rows) == (20, 2, 400)
    assert row_multiset(table) == before
    assert len(data_files(table, "R1")) == 1 and len(data_files(table, "R2")) == 1
    assert data_files(table, "R3") == r3_before
    snapshot = table.current_snapshot()
    assert snapshot is not None and snapshot.snapshot_id == result.snapshot_id
    assert snapshot.summary is not None
    assert snapshot.summary["abasto.maintenance"] == "compaction"
    # DuckDB's iceberg_scan reads the compacted table the same
    with SqlEngine(settings, catalog=catalog, audit=AuditLog(tmp_path / "audit.jsonl")) as engine:
        got = engine.query(
            "SELECT region_id, count(*) AS n, sum(on_hand) AS s FROM curated.stock_readings "
            "GROUP BY region_id ORDER BY region_id",
            principal="analyst",
        )
    assert got.to_pylist() == [
        {"region_id": "R1", "n": 200, "s": 1900},
        {"region_id": "R2", "n": 200, "s": 1900},
        {"region_id": "R3", "n": 20, "s": 190},
    ]
    # a second run finds nothing to do
    assert compact_table(table, target_bytes=TARGET).files_removed == 0


def test_small_target_writes_several_files_of_about_target_size(catalog: SqlCatalog) -> None:
    table = small_files_table(catalog, appends=12, rows=200)
    before = row_multiset(table)
    r1_bytes = sum(
        t.file.file_size_in_bytes for t in table.scan().plan_files() if t.file.partition[0] == "R1"
    )
    target = r1_bytes // 3
    result = compact_table(table, target_bytes=target, partition="region_id=R1")
    table = table.refresh()
    assert result.partitions == ("region_id=R1",)
    assert 2 <= len(data_files(table, "R1")) <= 4 < 12
    assert len(data_files(table, "R2")) == 12
    assert row_multiset(table) == before


def test_dry_run_plans_without_committing(catalog: SqlCatalog) -> None:
    table = small_files_table(catalog, appends=5)
    snapshot_before = table.current_snapshot()
    files_before = data_files(table)
    result = compact_table(table, target_bytes=TARGET, dry_run=True)
    assert result.dry_run and result.files_removed == 10 and result.files_added == 2
    table = table.refresh()
    assert table.current_snapshot() == snapshot_before
    assert data_files(table) == files_before


def test_partition_with_few_large_files_is_left_alone(catalog: SqlCatalog) -> None:
    table = small_files_table(catalog, appends=3)
    plans, _ = plan_compaction(table, target_bytes=100, max_files=8)  # every file is already "big"
    assert plans == []
    plans, _ = plan_compaction(table, target_bytes=TARGET, max_files=8)
    assert [p.partition for p in plans] == ["region_id=R1", "region_id=R2"]


def test_conflicting_concurrent_commit_surfaces_as_transient_and_leaves_no_files(catalog: SqlCatalog) -> None:
    stale = small_files_table(catalog, appends=4)
    # another writer rewrites partition R1 after the compactor loaded the table
    other = catalog.load_table("curated.stock_readings")
    other.overwrite(batch(9000, 5, "R1"), overwrite_filter=EqualTo("region_id", "R1"))
    expected = row_multiset(other.refresh())
    on_disk = files_of_disk_under(other.location(), "data")

    with pytest.raises(TransientError):
        compact_table(stale, target_bytes=TARGET)

    table = catalog.load_table("curated.stock_readings")
    assert row_multiset(table) == expected
    assert files_of_disk_under(table.location(), "data") == on_disk  # rewritten files discarded


def test_concurrent_append_is_never_lost_and_a_rerun_compacts(catalog: SqlCatalog) -> None:
    # pyiceberg validates overwrites as serializable: a concurrent append makes the commit fail
    # (conservatively, even in another partition); the append survives and a re-run succeeds
    stale = small_files_table(catalog, appends=4)
    other = catalog.load_table("curated.stock_readings")
    other.append(pa.concat_tables([batch(70_000, 3, "R4")]))
    expected = row_multiset(other.refresh())

    try:
        result = compact_table(stale, target_bytes=TARGET)
    except TransientError:
        result = compact_table(catalog.load_table("curated.stock_readings"), target_bytes=TARGET)

    table = catalog.load_table("curated.stock_readings")
    assert result.files_removed == 8
    assert row_multiset(table) == expected
    assert len(data_files(table, "R4")) == 1 and len(data_files(table, "R1")) == 1
