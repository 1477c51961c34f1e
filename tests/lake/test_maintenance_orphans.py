"""Orphan removal deletes old unreferenced files only, never anything the metadata names."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from maintenance_builders import files_on_disk, row_multiset, small_files_table
from pyiceberg.catalog.sql import SqlCatalog

from abasto.lake.maintenance import remove_orphan_files
from abasto.lake.maintenance.files import normalize

NOW = datetime.now(UTC)


def _stray(location: str, rel: str, age: timedelta) -> str:
    path = Path(normalize(location)) / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"PAR1 left by a crashed writer")
    stamp = (NOW - age).timestamp()
    os.utime(path, (stamp, stamp))
    return str(path)


def test_old_orphans_go_young_ones_stay_and_dry_run_only_lists(catalog: SqlCatalog) -> None:
    table = small_files_table(catalog, appends=3)
    before = row_multiset(table)
    old_data = _stray(table.location(), "data/region_id=R1/00000-crashed.parquet", timedelta(days=4))
    old_meta = _stray(table.location(), "metadata/snap-1-crashed.avro", timedelta(days=10))
    tmp = _stray(table.location(), "data/.half-written.parquet.tmp", timedelta(days=5))
    young = _stray(table.location(), "data/region_id=R2/00000-inflight.parquet", timedelta(hours=1))

    dry = remove_orphan_files(table, now=NOW, dry_run=True)
    assert set(dry.files) == {old_data, old_meta, tmp}
    assert dry.too_young == 1 and dry.bytes == 3 * len(b"PAR1 left by a crashed writer")
    assert all(Path(p).exists() for p in (old_data, old_meta, tmp, young))

    result = remove_orphan_files(table, now=NOW)
    assert set(result.files) == {old_data, old_meta, tmp}
    assert not any(Path(p).exists() for p in (old_data, old_meta, tmp))
    assert Path(young).exists()
    assert row_multiset(table.refresh()) == before


def test_referenced_files_survive_even_when_everything_is_old(catalog: SqlCatalog) -> None:
    table = small_files_table(catalog, appends=4)
    snapshots = table.metadata.snapshots
    on_disk = files_on_disk(table)
    result = remove_orphan_files(table, older_than=timedelta(0), now=NOW + timedelta(days=30))
    assert result.files == ()
    assert files_on_disk(table) == on_disk
    assert sum(row_multiset(table, snapshots[0].snapshot_id).values()) == 20  # time travel still reads


def test_metadata_files_dropped_from_the_log_are_orphans(catalog: SqlCatalog) -> None:
    table = small_files_table(catalog, appends=6, properties={"write.metadata.previous-versions-max": "2"})
    table = table.refresh()
    logged = {normalize(e.metadata_file) for e in table.metadata.metadata_log}
    current = normalize(table.metadata_location)
    all_json = {p for p in files_on_disk(table) if p.endswith(".metadata.json")}
    assert len(logged) == 2 and len(all_json) > 3

    result = remove_orphan_files(table, older_than=timedelta(0), now=NOW + timedelta(days=1))

    assert set(result.files) == all_json - logged - {current}
    remaining_json = {p for p in files_on_disk(table) if p.endswith(".metadata.json")}
    assert remaining_json == logged | {current}
    assert row_multiset(catalog.load_table("curated.stock_readings")) == row_multiset(table)
