"""Recorded runs of the device-table jobs (``sales_by_hour``, ``stock_readings``).

The counterpart of :meth:`JobRunner._execute_locked` for the tables fed by the raw device events
(:mod:`abasto.lake.device_tables`): which files a run applied is read from the table's device
ledger before and after the run (the ledger commits with the data), so a re-run records 0 files
and a failed run still names what it committed. A run's quality counts are kept in its
``detail["quality"]``; its ``run_id`` tags the rows it quarantined. An input file is recorded with
``kind="pos_events"`` and the stream-sequence range of its delivery batch as (first, last).
A date-bounded backfill applies the pending files of the ``date=`` partitions in range; the device
ledger is a set, not a watermark, so earlier pending files may stay pending.

:func:`run_device_jobs` runs several device tables' jobs from one read of the raw files
(:func:`~abasto.lake.device_tables.curate_device_tables`) and records one run per table, each as
:func:`run_device_job` would.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date
from typing import Any

from pyiceberg.catalog import Catalog
from pyiceberg.table import Table

from abasto.catalog import load_table
from abasto.lake.device_files import DeviceFile, DeviceLedger, discover_device_files
from abasto.lake.device_tables import curate_device_tables
from abasto.lake.jobs.runs import InputFile, JobRun, JobRunStore, RunRecording, Trigger
from abasto.lake.tables import TableSpec

__all__ = ["DEVICE_FILE_KIND", "device_pending", "in_dates", "run_device_job", "run_device_jobs"]

DEVICE_FILE_KIND = "pos_events"


def _ledger(table: Table | None) -> DeviceLedger:
    return DeviceLedger.from_properties(table.properties) if table is not None else DeviceLedger()


def device_pending(catalog: Catalog, spec: TableSpec, raw_uri: str) -> list[DeviceFile]:
    """Raw device files ``curated.<spec.name>`` does not hold yet, sorted by path."""
    return _ledger(load_table(catalog, spec.identifier)).pending(discover_device_files(raw_uri))


def in_dates(date_from: date | None, date_to: date | None) -> Callable[[DeviceFile], bool]:
    """A file filter: its ``date=`` partition lies in [``date_from``, ``date_to``]."""

    def select(f: DeviceFile) -> bool:
        return (date_from is None or f.day >= date_from) and (date_to is None or f.day <= date_to)

    return select


def run_device_job(
    catalog: Catalog,
    store: JobRunStore,
    spec: TableSpec,
    trigger: Trigger,
    *,
    raw_uri: str,
    detail: dict[str, Any],
    date_from: date | None = None,
    date_to: date | None = None,
    max_files: int | None = None,
) -> JobRun:
    """Run the job of device table ``spec`` once and record it, failed or not (the caller holds
    the table's lock): :func:`run_device_jobs` for one table."""
    (run,) = run_device_jobs(
        catalog,
        store,
        [spec],
        trigger,
        raw_uri=raw_uri,
        detail=detail,
        date_from=date_from,
        date_to=date_to,
        max_files=max_files,
    )
    return run


def run_device_jobs(
    catalog: Catalog,
    store: JobRunStore,
    specs: Sequence[TableSpec],
    trigger: Trigger,
    *,
    raw_uri: str,
    detail: dict[str, Any],
    date_from: date | None = None,
    date_to: date | None = None,
    max_files: int | None = None,
) -> list[JobRun]:
    """Run the jobs of the device tables ``specs`` together, each raw file read once for all of
    them, and record one run per table (in ``specs`` order), failed or not (the caller holds every
    table's lock). A failure fails every table's run; each still names the files its table
    committed (a table's commit may stand while another's failed: its ledger says so)."""
    befores = [load_table(catalog, spec.identifier) for spec in specs]
    recordings = [
        RunRecording.start(spec.identifier, trigger, before, dict(detail))
        for spec, before in zip(specs, befores, strict=True)
    ]
    select = in_dates(date_from, date_to)
    pending: list[list[DeviceFile]] = [[] for _ in specs]
    try:
        everything = discover_device_files(raw_uri)
        pending = [[f for f in _ledger(before).pending(everything) if select(f)] for before in befores]
        results = curate_device_tables(
            [spec.name for spec in specs],
            catalog=catalog,
            raw_uri=raw_uri,
            select=select,
            max_files=max_files,
            run_ids={spec.name: rec.run_id for spec, rec in zip(specs, recordings, strict=True)},
        )
        for spec, rec in zip(specs, recordings, strict=True):
            result = results[spec.name]
            rec.note_result(result.rows_in, result.rows_upserted, result.rows_deleted, result.quality)
    except Exception as exc:  # noqa: BLE001 - any failure of the jobs is recorded, never lost
        for rec in recordings:
            rec.note_failure(exc)
    runs: list[JobRun] = []
    for spec, rec, files in zip(specs, recordings, pending, strict=True):
        after = load_table(catalog, spec.identifier)
        held = _ledger(after).applied
        inputs = [
            InputFile(f.relpath, DEVICE_FILE_KIND, f.first_seq, f.last_seq)
            for f in files
            if f.relpath in held
        ]
        run = rec.finish(after, inputs, len(files))
        store.record(run)
        runs.append(run)
    return runs
