"""run_maintenance over the catalog, its schedule, and the ``abasto maintenance`` commands."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from maintenance_builders import data_files, files_on_disk, row_multiset, small_files_table
from pyiceberg.catalog.sql import SqlCatalog
from typer.testing import CliRunner

from abasto.cli import maintenance as _maintenance  # noqa: F401  (registers `abasto maintenance`)
from abasto.cli.app import app
from abasto.errors import InvalidInputError, NotFoundError
from abasto.lake.maintenance import (
    MaintenancePolicy,
    due,
    last_run,
    parse_duration,
    record_run,
    run_maintenance,
)
from abasto.lake.maintenance.files import normalize
from abasto.settings import Settings

POLICY = MaintenancePolicy(target_file_bytes=1 << 20, snapshot_retention=timedelta(0))


def test_full_run_compacts_expires_cleans_and_records_the_run(
    catalog: SqlCatalog, settings: Settings
) -> None:
    table = small_files_table(catalog, appends=8)
    before = row_multiset(table)
    orphan = Path(normalize(table.location())) / "data" / "lost.parquet"
    orphan.write_bytes(b"x" * 100)
    stamp = (datetime.now(UTC) - timedelta(days=4)).timestamp()
    os.utime(orphan, (stamp, stamp))
    disk_before = files_on_disk(table)
    now = datetime.now(UTC) + timedelta(seconds=1)

    [report] = run_maintenance(settings, ["stock_readings"], catalog=catalog, policy=POLICY, now=now)

    assert report.error is None and report.table == "curated.stock_readings"
    assert report.files_rewritten == 16
    assert report.compaction is not None and report.compaction.files_added == 2
    assert report.expiry is not None and report.expiry.kept == 1
    assert report.orphans is not None and report.orphans.files == (str(orphan),)
    assert report.bytes_reclaimed > 100 and report.duration_s > 0
    table = catalog.load_table("curated.stock_readings")
    assert row_multiset(table) == before
    assert len(data_files(table)) == 3
    assert len(files_on_disk(table)) < len(disk_before) - report.files_removed + 10
    assert not orphan.exists()
    assert last_run(table) == now
    assert not due(table, now + timedelta(hours=1))
    assert due(table, now + timedelta(hours=25))
    skipped = run_maintenance(settings, catalog=catalog, policy=POLICY, now=now, only_due=True)
    assert [(r.table, r.skipped) for r in skipped] == [("curated.stock_readings", True)]


def test_schedule_interval_property_and_durations(catalog: SqlCatalog) -> None:
    table = small_files_table(catalog, appends=1, properties={"abasto.maintenance.interval": "2h"})
    now = datetime(2026, 10, 1, 12, tzinfo=UTC)
    assert due(table, now)  # never maintained
    record_run(table, now)
    assert not due(table, now + timedelta(minutes=119))
    assert due(table, now + timedelta(hours=2))
    assert parse_duration("3d") == timedelta(days=3) and parse_duration("90m") == timedelta(minutes=90)
    with pytest.raises(InvalidInputError):
        parse_duration("three days")


def test_unknown_table_is_not_found(catalog: SqlCatalog, settings: Settings) -> None:
    with pytest.raises(NotFoundError):
        run_maintenance(settings, ["nope"], catalog=catalog)


def test_cli_dry_run_then_run(
    catalog: SqlCatalog, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ABASTO_HOME", str(settings.home_dir))
    table = small_files_table(catalog, appends=4)
    files = data_files(table)
    runner = CliRunner()

    dry = runner.invoke(app, ["maintenance", "compact", "stock_readings", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "8→2" in dry.output and "dry run" in dry.output
    assert data_files(table.refresh()) == files

    done = runner.invoke(app, ["maintenance", "run", "--older-than", "0s"])
    assert done.exit_code == 0, done.output
    assert "curated.stock_readings" in done.output and "ok" in done.output
    assert len(data_files(catalog.load_table("curated.stock_readings"))) == 3
