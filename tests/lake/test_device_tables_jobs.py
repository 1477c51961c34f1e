"""The device-table jobs: recorded runs, backfill by ``date=`` partition, status, the object-created
trigger and ``abasto jobs``."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from datetime import date
from pathlib import Path

import pytest
from device_builders import Ev, count_reads, sale, stock, write_batch
from pyiceberg.catalog.sql import SqlCatalog
from test_jobs_builders import regions_cdc
from typer.testing import CliRunner

from abasto.cli import app
from abasto.delivery.layout import POS_EVENTS_PATH
from abasto.errors import InvalidInputError
from abasto.lake.jobs import (
    JobRunner,
    ObjectRef,
    RunStatus,
    TableRouter,
    Trigger,
    TriggerWorker,
    announce_unseen,
    publish_object_created,
)
from abasto.lake.jobs.runner import job_tables
from abasto.lake.quality import QUARANTINE_TABLE
from abasto.settings import Settings
from abasto.stream.ephemeral import EphemeralNatsServer
from abasto.stream.jetstream import JetStreamEventStream
from abasto.stream.port import EventStream, StreamSpec

DAY2 = 24 * 60  # minutes from T0 (2026-10-01 06:00 UTC) to the next day


@pytest.fixture
def runner(settings: Settings, catalog: SqlCatalog) -> JobRunner:
    return JobRunner(settings, catalog=catalog)


def units(catalog: SqlCatalog) -> int:
    return sum(catalog.load_table("curated.sales_by_hour").scan().to_arrow()["units"].to_pylist())


def test_a_run_is_recorded_with_inputs_snapshot_rows_and_quality(
    settings: Settings, catalog: SqlCatalog, runner: JobRunner
) -> None:
    files = write_batch(settings.raw_uri, [sale("pos-0001", 1, 5, qty=3), sale("pos-0001", 2, 6, qty=-2)], 1)

    run = runner.run("sales_by_hour")

    assert run.ok and run.trigger is Trigger.MANUAL and run.table == "curated.sales_by_hour"
    assert [(i.relpath, i.kind, i.first_lsn, i.last_lsn) for i in run.inputs] == [
        (files[0], "pos_events", 1, 2)
    ]
    assert run.rows_in == 2 and run.rows_upserted == 1 and run.pending_before == 1
    table = catalog.load_table("curated.sales_by_hour")
    assert run.snapshot_id == table.current_snapshot().snapshot_id  # type: ignore[union-attr]
    assert run.snapshot_ids and run.snapshot_ids[-1] == run.snapshot_id
    assert run.detail["quality"]["failures"] == {"non_negative:qty,price": 1}
    assert run.detail["quality"]["rows_quarantined"] == 1
    quarantined = catalog.load_table(QUARANTINE_TABLE).scan().to_arrow()
    assert quarantined["run_id"].to_pylist() == [run.run_id]

    again = runner.run("sales_by_hour")
    assert (again.files, again.snapshot_ids, again.snapshot_id) == (0, (), run.snapshot_id)
    assert runner.store.runs("curated.sales_by_hour") == [again, run]


def test_backfill_by_date_partition_and_status(
    settings: Settings, catalog: SqlCatalog, runner: JobRunner
) -> None:
    write_batch(settings.raw_uri, [sale("pos-0001", 1, 5), sale("pos-0001", 2, DAY2 + 5, qty=4)], 1)

    before = {s.table: s for s in runner.status(["sales_by_hour", "stock_readings"])}
    assert len(before["curated.sales_by_hour"].pending) == 2
    assert before["curated.sales_by_hour"].source == POS_EVENTS_PATH

    run = runner.backfill("sales_by_hour", date_from=date(2026, 10, 2), date_to=date(2026, 10, 2))
    assert run.trigger is Trigger.BACKFILL and [i.relpath[:15] for i in run.inputs] == ["date=2026-10-02"]
    assert units(catalog) == 4
    assert runner.backfill("sales_by_hour", date_from=date(2026, 10, 2)).files == 0  # idempotent
    status = runner.status(["sales_by_hour"])[0]
    assert status.applied_files == 1 and [p[:15] for p in status.pending] == ["date=2026-10-01"]
    assert status.last_run is not None and status.last_run.trigger is Trigger.BACKFILL

    rest = runner.backfill("sales_by_hour")
    assert rest.files == 1 and units(catalog) == 5
    assert "sales_by_hour" in job_tables() and "stock_readings" in job_tables()


def test_router_sends_a_device_file_to_both_tables() -> None:
    key = f"{POS_EVENTS_PATH}/date=2026-10-01/hour=06/part-{1:020d}-{9:020d}.parquet"
    routes = TableRouter("file:///lake/raw").routes(ObjectRef("raw", key))
    assert sorted(r.spec.name for r in routes) == ["sales_by_hour", "stock_readings"]
    assert {r.relpath for r in routes} == {key.removeprefix(POS_EVENTS_PATH + "/")}
    assert (
        TableRouter("file:///lake/raw").routes(ObjectRef("raw", f"{POS_EVENTS_PATH}/date=x/y.parquet")) == []
    )


@pytest.fixture(scope="module")
def nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EphemeralNatsServer]:
    with EphemeralNatsServer(tmp_path_factory.mktemp("nats-device-jobs")) as server:
        yield server


@pytest.fixture
async def stream(nats: EphemeralNatsServer) -> AsyncIterator[EventStream]:
    async with JetStreamEventStream(nats.url, name="device-jobs-test") as s:
        await s.ensure_streams([StreamSpec(name="DEVLAKE", subjects=("devlake.>",), duplicate_window_s=60)])
        yield s
        await s.delete_stream("DEVLAKE")


async def test_an_object_created_device_file_starts_both_jobs(
    stream: EventStream, runner: JobRunner, settings: Settings, catalog: SqlCatalog
) -> None:
    subject = "devlake.objects.raw"
    worker = TriggerWorker(
        stream, runner, stream_name="DEVLAKE", subject=subject, durable="dev", max_wait_s=0.1
    )
    (rel,) = write_batch(settings.raw_uri, [sale("pos-0001", 1, 5, qty=2), stock("pos-0001", 2, 6)], 1)
    await publish_object_created(stream, settings.raw_uri, f"{POS_EVENTS_PATH}/{rel}", subject=subject)

    runs = await worker.run_once(fetch_timeout_s=0.3)

    assert sorted((r.table, r.trigger, r.status, r.files) for r in runs) == [
        ("curated.sales_by_hour", Trigger.OBJECT_CREATED, RunStatus.OK, 1),
        ("curated.stock_readings", Trigger.OBJECT_CREATED, RunStatus.OK, 1),
    ]
    assert units(catalog) == 2 and len(catalog.load_table("curated.stock_readings").scan().to_arrow()) == 1
    assert worker.stats.objects == 1

    (late,) = write_batch(
        settings.raw_uri, [Ev("pos-0002", 1, 7, qty=5)], 10
    )  # written while nobody listened
    announced = await announce_unseen(
        stream, runner, subject=subject, tables=["sales_by_hour", "stock_readings"]
    )
    assert announced == [f"{POS_EVENTS_PATH}/{late}"]  # once, though two tables need it
    runs = await worker.run_once(fetch_timeout_s=0.3)
    assert sorted(r.files for r in runs) == [1, 1] and units(catalog) == 7


@pytest.fixture
def cli_env(settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ABASTO_CONFIG", raising=False)
    monkeypatch.setenv("ABASTO_HOME", str(settings.home))
    monkeypatch.setenv("COLUMNS", "240")
    return settings


def test_cli_jobs_run_backfill_and_status_know_the_device_tables(cli_env: Settings) -> None:
    write_batch(cli_env.raw_uri, [sale("pos-0001", 1, 5), stock("pos-0001", 2, DAY2 + 5)], 1)
    cli = CliRunner()

    result = cli.invoke(app, ["jobs", "backfill", "stock_readings", "--from", "2026-10-02", "--json"])
    assert result.exit_code == 0, (result.output, result.exception)
    (run,) = json.loads(result.output)
    assert run["files"] == 1 and run["rows_upserted"] == 1 and run["detail"]["quality"]["rows_checked"] == 1

    result = cli.invoke(app, ["jobs", "run", "sales_by_hour"])
    assert result.exit_code == 0, (result.output, result.exception)
    assert "curated.sales_by_hour" in result.output and "quarantined" in result.output

    result = cli.invoke(app, ["jobs", "status", "--json"])
    tables = {t["table"]: t for t in json.loads(result.output)["tables"]}
    assert tables["curated.sales_by_hour"]["pending_files"] == 0
    assert tables["curated.sales_by_hour"]["applied_files"] == 2
    assert tables["curated.stock_readings"]["pending_files"] == 1
    assert tables["curated.stock_readings"]["last_run"]["trigger"] == "backfill"


def test_a_change_capture_run_records_its_quality_counts_too(settings: Settings, runner: JobRunner) -> None:
    regions_cdc(settings.raw_uri, ["R1", "R2"], lsn=10)
    run = runner.run("regions")
    assert run.ok and run.detail["quality"]["rows_checked"] == 2
    assert runner.store.runs("curated.regions")[0].detail["quality"] == run.detail["quality"]


def test_device_jobs_run_together_record_one_run_per_table(
    settings: Settings, catalog: SqlCatalog, runner: JobRunner
) -> None:
    from abasto.lake.device_tables import DEVICE_TABLES  # noqa: PLC0415
    from abasto.lake.jobs.device_jobs import run_device_jobs  # noqa: PLC0415

    files = write_batch(
        settings.raw_uri, [sale("pos-0001", 1, 5, qty=3), stock("pos-0001", 2, 6, on_hand=-1)], 1
    )
    specs = list(DEVICE_TABLES.values())

    runs = run_device_jobs(catalog, runner.store, specs, Trigger.MANUAL, raw_uri=settings.raw_uri, detail={})

    assert [r.table for r in runs] == ["curated.sales_by_hour", "curated.stock_readings"]
    assert all(r.ok and [i.relpath for i in r.inputs] == files for r in runs)
    assert (runs[0].rows_upserted, runs[1].rows_upserted) == (1, 0)
    assert runs[1].detail["quality"]["failures"] == {"non_negative:on_hand": 1}
    quarantined = catalog.load_table(QUARANTINE_TABLE).scan().to_arrow()
    assert quarantined["run_id"].to_pylist() == [runs[1].run_id]  # tagged by its table's run
    assert runner.store.runs("curated.stock_readings") == [runs[1]]

    again = run_device_jobs(catalog, runner.store, specs, Trigger.MANUAL, raw_uri=settings.raw_uri, detail={})
    assert [(r.files, r.snapshot_ids) for r in again] == [(0, ()), (0, ())]

    Path(settings.raw_uri.removeprefix("file://"), "devices/pos_events/stray.parquet").write_bytes(b"x")
    failed = run_device_jobs(
        catalog, runner.store, specs, Trigger.MANUAL, raw_uri=settings.raw_uri, detail={}
    )
    assert [r.status for r in failed] == [RunStatus.FAILED] * 2
    assert all("not a device-events file path" in (r.error or "") for r in failed)


def test_run_all_runs_the_device_tables_from_one_read(
    settings: Settings, catalog: SqlCatalog, runner: JobRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = write_batch(settings.raw_uri, [sale("pos-0001", 1, 5, qty=3), stock("pos-0001", 2, 6)], 1)
    files += write_batch(settings.raw_uri, [sale("pos-0002", 1, 65, qty=4)], 3)
    reads = count_reads(monkeypatch)

    runs = runner.run_all(["stock_readings", "sales_by_hour"])

    assert dict(reads) == dict.fromkeys(files, 1)  # each file once, for both tables
    assert [(r.table, r.ok, r.files) for r in runs] == [
        ("curated.stock_readings", True, 2),
        ("curated.sales_by_hour", True, 2),
    ]
    assert units(catalog) == 7
    assert runner.store.runs("curated.sales_by_hour") == [runs[1]]
    with pytest.raises(InvalidInputError, match="named twice"):
        runner.run_device_tables(["sales_by_hour", "curated.sales_by_hour"])
