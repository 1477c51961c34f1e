"""Recorded curate runs: inputs/outputs of each run, no file applied twice, failures, backfill, CLI."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
from pyiceberg.catalog.sql import SqlCatalog
from test_jobs_builders import PRODUCTS, REGIONS, keyless_products_file, regions_cdc
from typer.testing import CliRunner

import abasto.cli.lake  # noqa: F401  (registers `abasto jobs`)
from abasto.cli.app import app
from abasto.errors import InvalidInputError
from abasto.lake.jobs import InputFile, JobRunner, JobRunStore, RunStatus, Trigger, select_backfill
from abasto.lake.ledger import applied_files
from abasto.settings import Settings


@pytest.fixture
def runner(settings: Settings, catalog: SqlCatalog) -> JobRunner:
    return JobRunner(settings, catalog=catalog)


def region_ids(catalog: SqlCatalog) -> list[str]:
    return sorted(catalog.load_table(REGIONS.identifier).scan().to_arrow()["region_id"].to_pylist())


def test_a_run_records_its_inputs_outputs_and_rows(
    runner: JobRunner, settings: Settings, catalog: SqlCatalog
) -> None:
    f1 = regions_cdc(settings.raw_uri, ["R1", "R2"], lsn=10)
    f2 = regions_cdc(settings.raw_uri, ["R3"], lsn=20)

    run = runner.run("regions")

    assert run.status is RunStatus.OK and run.error is None
    assert run.trigger is Trigger.MANUAL and run.job == "curate.regions" and run.table == "curated.regions"
    assert run.inputs == (InputFile(f1.relpath, "cdc", 10, 11), InputFile(f2.relpath, "cdc", 20, 20))
    assert (run.rows_in, run.rows_upserted, run.rows_deleted, run.pending_before) == (3, 3, 0, 2)
    table = catalog.load_table(REGIONS.identifier)
    current = table.current_snapshot()
    assert current is not None and run.snapshot_id == current.snapshot_id
    assert run.snapshot_ids and run.snapshot_ids[-1] == current.snapshot_id
    assert {s.snapshot_id for s in table.snapshots()} == set(run.snapshot_ids)
    # the ledger's per-file lineage agrees with the record
    assert {a.relpath for a in applied_files(table)} == {f1.relpath, f2.relpath}
    assert run.finished_at >= run.started_at and run.duration_s > 0
    assert region_ids(catalog) == ["R1", "R2", "R3"]

    stored = JobRunStore.for_settings(settings).runs("curated.regions")
    assert len(stored) == 1 and stored[0].as_dict() == run.as_dict()


def test_rerunning_over_applied_files_records_a_run_with_no_files(
    runner: JobRunner, settings: Settings, catalog: SqlCatalog
) -> None:
    regions_cdc(settings.raw_uri, ["R1"], lsn=10)
    first = runner.run("regions")
    again = runner.run("regions")

    assert first.files == 1
    assert again.ok and again.files == 0 and again.pending_before == 0
    assert again.snapshot_ids == () and again.snapshot_id == first.snapshot_id
    assert again.rows_in == 0

    later = regions_cdc(settings.raw_uri, ["R2"], lsn=30)
    third = runner.run("regions")
    assert [f.relpath for f in third.inputs] == [later.relpath]
    assert region_ids(catalog) == ["R1", "R2"]
    assert [r.files for r in runner.store.runs("curated.regions")] == [1, 0, 1]  # newest first


def test_a_failing_job_is_recorded_and_the_other_tables_still_run(
    runner: JobRunner, settings: Settings, catalog: SqlCatalog
) -> None:
    keyless_products_file(settings.raw_uri, lsn=5)
    keyless_products_file(settings.raw_uri, lsn=9)
    regions_cdc(settings.raw_uri, ["R1"], lsn=10)

    products, regions = runner.run_all(["products", "regions"])

    assert products.status is RunStatus.FAILED
    assert products.error is not None and "lack key columns" in products.error
    assert products.detail["retryable"] is False
    assert products.pending_before == 2 and products.inputs == ()  # nothing committed
    assert regions.ok and regions.files == 1
    assert region_ids(catalog) == ["R1"]

    status = {s.table: s for s in runner.status(["products", "regions"])}
    assert len(status[PRODUCTS.identifier].pending) == 2
    last = status[PRODUCTS.identifier].last_run
    assert last is not None and last.status is RunStatus.FAILED and last.error == products.error
    assert status[REGIONS.identifier].pending == () and status[REGIONS.identifier].applied_files == 1


def test_backfill_applies_exactly_the_files_of_the_range(
    runner: JobRunner, settings: Settings, catalog: SqlCatalog
) -> None:
    d1 = regions_cdc(settings.raw_uri, ["R1"], lsn=10, on=1)
    d2 = regions_cdc(settings.raw_uri, ["R2"], lsn=20, on=2)
    d3 = regions_cdc(settings.raw_uri, ["R3"], lsn=30, on=3)

    with pytest.raises(InvalidInputError, match="still pending"):
        runner.backfill("regions", date_from=date(2026, 9, 2), date_to=date(2026, 9, 3))
    assert runner.store.runs() == []  # refused before running

    first = runner.backfill("regions", date_from=date(2026, 9, 1), date_to=date(2026, 9, 2))
    assert first.trigger is Trigger.BACKFILL and first.ok
    assert [f.relpath for f in first.inputs] == [d1.relpath, d2.relpath]
    assert first.detail["from"] == "2026-09-01" and first.detail["to"] == "2026-09-02"
    assert region_ids(catalog) == ["R1", "R2"]
    assert [f.relpath for f in runner.pending("regions")] == [d3.relpath]

    again = runner.backfill("regions", date_from=date(2026, 9, 1), date_to=date(2026, 9, 2))
    assert again.ok and again.files == 0 and region_ids(catalog) == ["R1", "R2"]

    rest = runner.backfill("regions", date_from=date(2026, 9, 3))
    assert [f.relpath for f in rest.inputs] == [d3.relpath]
    assert region_ids(catalog) == ["R1", "R2", "R3"]


def test_backfill_selection_keeps_full_loads_inside_the_range() -> None:
    from abasto.lake.raw_files import RawFile  # noqa: PLC0415

    load = RawFile.parse("full_load/LOAD-0000000000000005-00001.parquet")
    a = RawFile.parse("cdc/2026-09-01/CDC-0000000000000006-0000000000000007.parquet")
    late_load = RawFile.parse("full_load/LOAD-0000000000000008-00001.parquet")
    b = RawFile.parse("cdc/2026-09-02/CDC-0000000000000009-0000000000000009.parquet")
    pending = [load, a, late_load, b]
    assert select_backfill(pending, None, date(2026, 9, 1)) == [load, a]
    assert select_backfill(pending, None, date(2026, 9, 2)) == pending
    assert select_backfill(pending, None, None) == pending
    with pytest.raises(InvalidInputError):
        select_backfill(pending, date(2026, 9, 2), None)


@pytest.fixture
def cli_env(settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ABASTO_CONFIG", raising=False)
    monkeypatch.setenv("ABASTO_HOME", str(settings.home))
    monkeypatch.setenv("COLUMNS", "240")
    return settings


def test_cli_run_backfill_and_status(cli_env: Settings) -> None:
    regions_cdc(cli_env.raw_uri, ["R1"], lsn=10, on=1)
    regions_cdc(cli_env.raw_uri, ["R2"], lsn=20, on=2)
    cli = CliRunner()

    result = cli.invoke(app, ["jobs", "backfill", "regions", "--to", "2026-09-01", "--json"])
    assert result.exit_code == 0, (result.output, result.exception)
    assert [r["files"] for r in json.loads(result.output)] == [1]

    result = cli.invoke(app, ["jobs", "status", "regions", "--json"])
    assert result.exit_code == 0, (result.output, result.exception)
    doc = json.loads(result.output)
    assert doc["tables"][0]["pending_files"] == 1 and doc["tables"][0]["applied_files"] == 1
    assert doc["tables"][0]["last_run"]["trigger"] == "backfill"

    result = cli.invoke(app, ["jobs", "run", "regions", "--json"])
    assert result.exit_code == 0, (result.output, result.exception)
    assert json.loads(result.output)[0]["files"] == 1

    result = cli.invoke(app, ["jobs", "status", "--json"])
    tables = {t["table"]: t for t in json.loads(result.output)["tables"]}
    assert tables["curated.regions"]["pending_files"] == 0
    assert tables["curated.orders"]["last_run"] is None

    result = cli.invoke(app, ["jobs", "status"])
    assert result.exit_code == 0 and "curated.regions" in result.output


def test_cli_exits_non_zero_when_a_job_fails(cli_env: Settings) -> None:
    keyless_products_file(cli_env.raw_uri, lsn=9)
    result = CliRunner().invoke(app, ["jobs", "run", "products"])
    assert result.exit_code == 1
    assert "failed" in result.output
