"""Snapshot expiry removes old snapshots and physically deletes the files only they reached."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from maintenance_builders import data_files, files_on_disk, row_multiset, small_files_table
from pyiceberg.catalog.sql import SqlCatalog

from abasto.analytics import SqlEngine
from abasto.analytics.access import AuditLog
from abasto.errors import InvalidInputError, NotFoundError
from abasto.lake.maintenance import compact_table, expire_snapshots, snapshots_to_expire
from abasto.lake.maintenance.files import ReferenceCollector
from abasto.settings import Settings

FUTURE = datetime.now(UTC) + timedelta(days=1)


def test_expiry_after_compaction_deletes_superseded_files_and_keeps_time_travel(
    catalog: SqlCatalog, settings: Settings, tmp_path: Path
) -> None:
    table = small_files_table(catalog, appends=8)
    small_files = data_files(table, "R1") | data_files(table, "R2")
    before = row_multiset(table)
    compact_table(table, target_bytes=1 << 20)
    table = table.refresh()
    snapshots = table.metadata.snapshots
    kept_previous, expired_old = snapshots[-2].snapshot_id, snapshots[0].snapshot_id

    result = expire_snapshots(table, older_than=FUTURE, keep_last=2)

    table = catalog.load_table("curated.stock_readings")
    assert [s.snapshot_id for s in table.metadata.snapshots] == [s.snapshot_id for s in snapshots[-2:]]
    assert len(result.expired) == len(snapshots) - 2 and result.kept == 2
    assert result.bytes_deleted > 0
    on_disk = files_on_disk(table)
    # the small files are still needed by the kept pre-compaction snapshot ...
    assert small_files <= on_disk
    assert not set(result.files_deleted) & on_disk
    # ... every file any kept snapshot reaches is on disk, and the contents did not change
    live = ReferenceCollector(table.io).files(table.metadata.snapshots, include_deleted=False)
    assert live <= on_disk
    assert row_multiset(table) == before
    assert row_multiset(table, kept_previous) == before

    # keep only the current snapshot: now the small files go too
    second = expire_snapshots(table, older_than=FUTURE, keep_last=1)
    assert second.expired == (kept_previous,)
    assert small_files <= set(second.files_deleted)
    assert not small_files & files_on_disk(table)

    with SqlEngine(settings, catalog=catalog, audit=AuditLog(tmp_path / "a.jsonl")) as engine:
        sql = "SELECT count(*) AS n FROM curated.stock_readings"
        assert engine.query(sql, principal="analyst").to_pylist() == [{"n": 340}]
        with pytest.raises(NotFoundError):
            engine.query(sql, principal="analyst", snapshot_id=expired_old)


def test_retention_cutoff_and_tags_protect_snapshots(catalog: SqlCatalog) -> None:
    table = small_files_table(catalog, appends=6)
    snapshots = table.metadata.snapshots
    tagged = snapshots[1]
    table.manage_snapshots().create_tag(tagged.snapshot_id, "audit-2026").commit()
    tagged_rows = row_multiset(table, tagged.snapshot_id)
    cutoff = datetime.fromtimestamp(snapshots[4].timestamp_ms / 1000, tz=UTC)

    result = expire_snapshots(table, older_than=cutoff, keep_last=1)

    remaining = {s.snapshot_id for s in table.refresh().metadata.snapshots}
    assert set(result.expired) == {snapshots[i].snapshot_id for i in (0, 2, 3)}
    assert remaining == {s.snapshot_id for s in snapshots} - set(result.expired)
    assert row_multiset(table, tagged.snapshot_id) == tagged_rows  # its files are still there


def test_dry_run_deletes_nothing_and_predicts_the_real_run(catalog: SqlCatalog) -> None:
    table = small_files_table(catalog, appends=5)
    compact_table(table, target_bytes=1 << 20)
    table = table.refresh()
    on_disk = files_on_disk(table)
    snapshot_ids = [s.snapshot_id for s in table.metadata.snapshots]

    dry = expire_snapshots(table, older_than=FUTURE, dry_run=True)

    assert files_on_disk(table) == on_disk
    assert [s.snapshot_id for s in table.refresh().metadata.snapshots] == snapshot_ids
    real = expire_snapshots(table, older_than=FUTURE)
    assert (real.expired, real.files_deleted, real.bytes_deleted) == (
        dry.expired,
        dry.files_deleted,
        dry.bytes_deleted,
    )
    assert dry.bytes_deleted > 0


def test_nothing_old_enough_is_a_no_op_and_bad_arguments_are_refused(catalog: SqlCatalog) -> None:
    table = small_files_table(catalog, appends=2)
    past = datetime(2000, 1, 1, tzinfo=UTC)
    assert expire_snapshots(table, older_than=past).expired == ()
    assert snapshots_to_expire(table, older_than=FUTURE, keep_last=99) == []
    with pytest.raises(InvalidInputError):
        snapshots_to_expire(table, older_than=FUTURE, keep_last=0)
    with pytest.raises(InvalidInputError):
        snapshots_to_expire(table, older_than=datetime(2030, 1, 1), keep_last=1)
