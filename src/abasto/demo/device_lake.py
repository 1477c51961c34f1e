"""The demo's lakehouse figures: device events delivered to raw Parquet, curated by the device jobs,
checked against what the devices sent, and the data-quality outcome of the CDC curate runs.

While the live day streams, :class:`BackgroundDelivery` runs the raw-zone delivery (the Firehose
stand-in) until the POS stream is drained; then :func:`run_device_jobs` runs the
``sales_by_hour`` and ``stock_readings`` jobs through the :class:`~abasto.lake.jobs.JobRunner` the
CLI uses (so the runs are recorded); :func:`read_device_figures` reads the tables back over SQL.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pyiceberg.catalog import Catalog

from abasto.analytics import SqlEngine
from abasto.catalog import load_table
from abasto.contracts.events import DeviceEvent, SaleScan
from abasto.delivery import DeliveryConfig, DeliveryMetrics, RawDelivery
from abasto.errors import InvalidInputError, TerminalError, TransientError
from abasto.lake import CurateResult
from abasto.lake.device_tables import DEVICE_TABLES
from abasto.lake.jobs import JobRun, JobRunner, RunStatus, Trigger
from abasto.lake.quality import QUARANTINE_TABLE
from abasto.settings import Settings
from abasto.stream.port import EventStream

__all__ = [
    "BackgroundDelivery",
    "DeviceTableFigures",
    "LakehouseSummary",
    "cdc_quality",
    "read_device_figures",
    "run_device_jobs",
    "run_figures",
    "units_sent",
]

#: the demo's own durable consumer on the POS stream (the stream is recreated by each demo run)
DELIVERY_DURABLE = "demo-delivery-raw"
#: who reads the figures back (may read the curated zone)
READER = "analyst"


@dataclass(frozen=True)
class DeviceTableFigures:
    """What the curated device tables hold after the jobs ran."""

    sales_by_hour_rows: int
    stock_readings_rows: int
    #: Σ units of ``curated.sales_by_hour`` over the live day's hours
    units_sold: int
    quarantine_rows: int


@dataclass
class LakehouseSummary:
    """The lakehouse section of the report (``demo.json`` key ``lakehouse``)."""

    delivery: dict[str, int]
    tables: DeviceTableFigures
    #: Σ qty of the distinct sale events of the live day the devices published
    units_sent: int
    #: rows checked / quarantined per rule / unreadable files, summed over the CDC curate runs
    cdc_quality: dict[str, Any]
    #: device job → {run_id, status, files, rows_in, rows_upserted, quarantined}
    device_runs: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def units_match(self) -> bool:
        return self.tables.units_sold == self.units_sent

    def as_dict(self) -> dict[str, Any]:
        return {
            "delivery": dict(self.delivery),
            "sales_by_hour_rows": self.tables.sales_by_hour_rows,
            "stock_readings_rows": self.tables.stock_readings_rows,
            "units_sold_sales_by_hour": self.tables.units_sold,
            "units_sent_by_devices": self.units_sent,
            "units_match": self.units_match,
            "cdc_quality": self.cdc_quality,
            "quarantine_rows": self.tables.quarantine_rows,
            "device_runs": {k: dict(v) for k, v in self.device_runs.items()},
        }


def units_sent(events: Iterable[DeviceEvent], start: datetime, end: datetime) -> int:
    """Σ qty of the sale events in [``start``, ``end``), a re-sent copy (same device, seq) once."""
    seen: set[tuple[str, int]] = set()
    total = 0
    for e in events:
        if not isinstance(e.payload, SaleScan) or not start <= e.event_time < end:
            continue
        key = (e.device_id, e.seq)
        if key not in seen:
            seen.add(key)
            total += e.payload.qty
    return total


def cdc_quality(results: Sequence[CurateResult]) -> dict[str, Any]:
    """The quality reports of the CDC curate runs summed across tables.

    ``failures``: rule → rows quarantined (every table); ``by_table``: table → rows quarantined
    (tables with none left out); ``unreadable_files``: raw files quarantined as unreadable.
    """
    failures: dict[str, int] = {}
    by_table: dict[str, int] = {}
    checked = quarantined = unreadable = 0
    for r in results:
        q = r.quality
        if q is None:
            continue
        checked += q.rows_checked
        quarantined += q.rows_quarantined
        unreadable += len(q.unreadable_files)
        for rule, n in q.failures.items():
            failures[rule] = failures.get(rule, 0) + n
        if q.rows_quarantined or q.unreadable_files:
            by_table[r.table] = q.rows_quarantined + len(q.unreadable_files)
    return {
        "tables": len(results),
        "rows_checked": checked,
        "rows_quarantined": quarantined,
        "failures": dict(sorted(failures.items())),
        "by_table": dict(sorted(by_table.items())),
        "unreadable_files": unreadable,
    }


class BackgroundDelivery:
    """The raw-zone delivery running beside the live day (the Firehose stand-in).

    ``async with BackgroundDelivery(stream, raw_uri) as delivery: …publish…; await delivery.drain()``
    — it consumes the POS stream while the devices publish; :meth:`drain` (once the stream holds
    every event) cuts the buffer and delivers the rest until the consumer is idle. Leaving the
    block without draining stops it (what it wrote stays: every file is written durably).
    """

    def __init__(self, stream: EventStream, raw_uri: str) -> None:
        config = DeliveryConfig(durable=DELIVERY_DURABLE, fetch_timeout_s=0.25)
        self._delivery = RawDelivery(stream, raw_uri, config)
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> BackgroundDelivery:
        await self._delivery.start()
        self._task = asyncio.create_task(self._delivery.run(self._stop), name="demo-delivery")
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stopped()

    async def drain(self) -> DeliveryMetrics:
        """Deliver everything the stream holds now; the counters of the whole delivery."""
        await self._stopped()
        return await self._delivery.run_until_idle()

    async def _stopped(self) -> None:
        self._stop.set()
        if self._task is not None:
            task, self._task = self._task, None
            await task


def run_device_jobs(
    settings: Settings, catalog: Catalog, progress: Callable[[str], None]
) -> dict[str, JobRun]:
    """Run the curate jobs of every device table once, together from one read of the raw device
    files (one run per table recorded in the job-run store).

    Raises:
        TransientError: a job failed on a passing condition (raw bytes unreadable now): run again.
        TerminalError: a job failed otherwise (its run is recorded with the error).
    """
    runner = JobRunner(settings, catalog=catalog)
    runs: dict[str, JobRun] = {}
    progress(f"jobs {', '.join(f'curate.{name}' for name in DEVICE_TABLES)}")
    together = runner.run_device_tables(list(DEVICE_TABLES), Trigger.MANUAL, detail={"by": "demo"})
    for name, run in together.items():
        if run.status is not RunStatus.OK:
            error = TransientError if run.detail.get("retryable") else TerminalError
            raise error(
                f"device job curate.{name} failed: {run.error}",
                hint=f"see `abasto jobs status` (run {run.run_id})",
            )
        runs[name] = run
    return runs


def run_figures(runs: dict[str, JobRun]) -> dict[str, dict[str, Any]]:
    """The per-job figures shown in the report (run id, files applied, rows, quarantined)."""
    out: dict[str, dict[str, Any]] = {}
    for name, run in runs.items():
        quality = run.detail.get("quality") or {}
        out[name] = {
            "run_id": run.run_id,
            "status": str(run.status),
            "files": len(run.inputs),
            "rows_in": run.rows_in,
            "rows_upserted": run.rows_upserted,
            "rows_quarantined": int(quality.get("rows_quarantined", 0)),
        }
    return out


def read_device_figures(
    sql: SqlEngine, catalog: Catalog, start: datetime, end: datetime
) -> DeviceTableFigures:
    """Row counts of the device tables, the live day's units in ``sales_by_hour``, quarantined rows."""
    counts = sql.query(
        "SELECT (SELECT count(*) FROM curated.sales_by_hour) AS sales, "
        "(SELECT count(*) FROM curated.stock_readings) AS stock, "
        "(SELECT coalesce(sum(units), 0) FROM curated.sales_by_hour "
        f"WHERE hour_start >= {_ts(start)} AND hour_start < {_ts(end)}) AS units",
        principal=READER,
    ).to_pylist()[0]
    quarantined = 0
    if load_table(catalog, QUARANTINE_TABLE) is not None:
        rows = sql.query(f"SELECT count(*) AS n FROM {QUARANTINE_TABLE}", principal=READER).to_pylist()
        quarantined = int(rows[0]["n"])
    return DeviceTableFigures(int(counts["sales"]), int(counts["stock"]), int(counts["units"]), quarantined)


def _ts(value: datetime) -> str:
    if value.tzinfo is None:
        raise InvalidInputError(
            f"naive timestamp {value!r} for a TIMESTAMPTZ bound", hint="pass UTC-aware datetimes"
        )
    return f"TIMESTAMPTZ '{value.isoformat()}'"
