"""Recorded runs of the device-table jobs (``sales_by_hour``, ``stock_readings``).

The counterpart of :meth:`JobRunner._execute_locked` for the tables fed by the raw device events
(:mod:`abasto.lake.device_tables`): which files a run applied is read from the table's device
ledger before and after the run (the ledger commits with the data), so a re-run records 0 files
and a failed run still names what it committed. A run's quality counts are kept in its
``detail["quality"]``; its ``run_id`` tags the rows it quarantined. An input file is recorded with
``kind="pos_events"`` and the stream-sequence range of its delivery batch as (first, last).
A date-bounded backfill applies the pending files of the ``date=`` partitions in range; the device
ledger is a set, not a watermark, so earlier pending files may stay pending.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

from pyiceberg.catalog import Catalog
from pyiceberg.table import Table

from abasto.catalog import load_table
from abasto.errors import TransientError
from abasto.lake.device_files import DeviceFile, DeviceLedger, discover_device_files
from abasto.lake.device_tables import curate_device_table
from abasto.lake.jobs.runs import InputFile, JobRun, JobRunStore, RunStatus, Trigger
from abasto.lake.tables import TableSpec

__all__ = ["DEVICE_FILE_KIND", "device_pending", "in_dates", "run_device_job"]

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
    the table's lock)."""
    run_id = uuid.uuid4().hex
    started, t0 = datetime.now(UTC), time.perf_counter()
    before = load_table(catalog, spec.identifier)
    known = {s.snapshot_id for s in before.snapshots()} if before is not None else set()
    select = in_dates(date_from, date_to)
    pending: list[DeviceFile] = []
    error: str | None = None
    rows = (0, 0, 0)
    try:
        pending = [f for f in _ledger(before).pending(discover_device_files(raw_uri)) if select(f)]
        result = curate_device_table(
            spec.name, catalog=catalog, raw_uri=raw_uri, select=select, max_files=max_files, run_id=run_id
        )
        rows = (result.rows_in, result.rows_upserted, result.rows_deleted)
        if result.quality is not None:
            detail["quality"] = result.quality.as_dict()
    except Exception as exc:  # noqa: BLE001 - any failure of the job is recorded, never lost
        error = f"{type(exc).__name__}: {exc}"
        detail["retryable"] = isinstance(exc, TransientError)
    after = load_table(catalog, spec.identifier)
    held = _ledger(after).applied
    applied = [f for f in pending if f.relpath in held]
    new = sorted(
        (s for s in (after.snapshots() if after is not None else []) if s.snapshot_id not in known),
        key=lambda s: s.sequence_number or 0,
    )
    current = after.current_snapshot() if after is not None else None
    run = JobRun(
        run_id=run_id,
        job=f"curate.{spec.name}",
        table=spec.identifier,
        trigger=trigger,
        status=RunStatus.OK if error is None else RunStatus.FAILED,
        started_at=started,
        finished_at=datetime.now(UTC),
        duration_s=time.perf_counter() - t0,
        inputs=tuple(InputFile(f.relpath, DEVICE_FILE_KIND, f.first_seq, f.last_seq) for f in applied),
        snapshot_ids=tuple(s.snapshot_id for s in new),
        snapshot_id=current.snapshot_id if current is not None else None,
        rows_in=rows[0],
        rows_upserted=rows[1],
        rows_deleted=rows[2],
        pending_before=len(pending),
        error=error,
        detail=detail,
    )
    store.record(run)
    return run
