"""Running curate jobs and recording each run (the local Glue ``StartJobRun`` + job-run history).

:class:`JobRunner` wraps :func:`abasto.lake.curate.curate_table`: it serialises runs per table
(a file lock under ``<home>/lake/locks``, across threads and processes), notes which raw files were
pending, runs the job, and records a :class:`~abasto.lake.jobs.runs.JobRun` whatever the outcome.
Which files a run applied is read from the curate ledger before and after (the ledger commits
with the data), so a re-run over applied files records 0 files and a failed run still names the
files it managed to commit before failing.

A backfill applies the pending files of a date range (``cdc/<YYYY-MM-DD>/`` of the raw layout)
and nothing after it: the ledger is a watermark, so it must start at the first pending file (a
range starting later is refused rather than silently skipping files).

The device tables (``sales_by_hour``, ``stock_readings``, :mod:`abasto.lake.device_tables`) run
through :func:`~abasto.lake.jobs.device_jobs.run_device_job` under the same lock and run store;
their backfill selects the ``date=`` partitions of the raw device events. When several are due
together (``run_all``, the trigger), they run from one read of the raw device files
(:meth:`JobRunner.run_device_tables`), each still recorded as its own run.
"""

from __future__ import annotations

import fcntl
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs
from pyiceberg.catalog import Catalog
from pyiceberg.table import Table

from abasto.catalog import load_table, open_catalog
from abasto.errors import ConfigError, InvalidInputError
from abasto.lake.curate import curate_table
from abasto.lake.device_files import DeviceLedger
from abasto.lake.device_tables import DEVICE_TABLES, get_device_spec, is_device_table
from abasto.lake.jobs.device_jobs import device_pending, run_device_job, run_device_jobs
from abasto.lake.jobs.runs import InputFile, JobRun, JobRunStore, RunRecording, Trigger
from abasto.lake.ledger import Ledger
from abasto.lake.raw_files import RawFile, discover_raw_files
from abasto.lake.storage import filesystem_for
from abasto.lake.tables import ALL_TABLES, TableSpec, get_spec
from abasto.settings import Settings

__all__ = ["JobRunner", "TableStatus", "cdc_file_date", "job_tables", "select_backfill"]


@dataclass(frozen=True)
class TableStatus:
    """Where one curated table stands: files applied (ledger), files pending, its last run."""

    table: str
    source: str
    applied_files: int
    pending: tuple[str, ...]
    last_run: JobRun | None
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "source": self.source,
            "applied_files": self.applied_files,
            "pending_files": len(self.pending),
            "pending": list(self.pending),
            "last_run": self.last_run.as_dict() if self.last_run else None,
            "error": self.error,
        }


def job_tables() -> list[str]:
    """Every table a job curates: the change-captured ones, then the device tables."""
    return [*ALL_TABLES, *DEVICE_TABLES]


def cdc_file_date(raw: RawFile) -> date | None:
    """The commit date in a CDC file's path (``cdc/<YYYY-MM-DD>/…``); None for a full load."""
    if raw.kind != "cdc":
        return None
    return date.fromisoformat(raw.relpath.split("/")[1])


def select_backfill(pending: list[RawFile], date_from: date | None, date_to: date | None) -> list[RawFile]:
    """The pending files (in processing order) a backfill of [``date_from``, ``date_to``] applies.

    Raises:
        InvalidInputError: a file before ``date_from`` is still pending (applying later files first
            would leave it behind the ledger's watermark for ever).
    """
    selected: list[RawFile] = []
    for raw in pending:
        day = cdc_file_date(raw)
        if day is not None and date_to is not None and day > date_to:
            break
        if day is not None and date_from is not None and day < date_from:
            raise InvalidInputError(
                f"{raw.relpath} (before {date_from}) is still pending",
                hint=f"backfill from {day} or earlier, or run `abasto jobs run` first",
            )
        selected.append(raw)
    if date_to is not None:  # a full load after the range's last change belongs to a later day
        while selected and selected[-1].kind == "full_load":
            selected.pop()
    return selected


class JobRunner:
    """Runs curate jobs for one lake and records them in ``store`` (default: beside the catalog).

    ``max_files`` bounds the raw files merged per Iceberg commit (a backlog is applied in several).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        catalog: Catalog | None = None,
        store: JobRunStore | None = None,
        max_files: int | None = None,
    ) -> None:
        self.settings = settings
        self.catalog = catalog if catalog is not None else open_catalog(settings)
        self.store = store if store is not None else JobRunStore.for_settings(settings)
        self.max_files = max_files

    @property
    def raw_uri(self) -> str:
        return self.settings.raw_uri

    # --- runs -------------------------------------------------------------------------------------
    def run(
        self, table: str, trigger: Trigger = Trigger.MANUAL, *, detail: dict[str, Any] | None = None
    ) -> JobRun:
        """Apply every pending raw file of ``table``; the run is recorded, failed or not."""
        if is_device_table(table):
            spec = get_device_spec(table)
            with self._lock(spec):
                return run_device_job(
                    self.catalog,
                    self.store,
                    spec,
                    trigger,
                    raw_uri=self.raw_uri,
                    detail=dict(detail or {}),
                    max_files=self.max_files,
                )
        return self._execute(get_spec(table), trigger, detail=detail)

    def run_all(self, tables: Iterable[str] | None = None, trigger: Trigger = Trigger.MANUAL) -> list[JobRun]:
        """One run per table (all of :func:`job_tables` if omitted), in the order given; a failure
        does not stop the rest. The device tables among them run together, from one read of the
        raw device files (:meth:`run_device_tables`)."""
        names = list(tables) if tables is not None else job_tables()
        device = list(dict.fromkeys(n for n in names if is_device_table(n)))
        together = self.run_device_tables(device, trigger) if len(device) > 1 else {}
        return [together.pop(name) if name in together else self.run(name, trigger) for name in names]

    def run_device_tables(
        self,
        tables: Sequence[str],
        trigger: Trigger = Trigger.MANUAL,
        *,
        detail: dict[str, Any] | None = None,
    ) -> dict[str, JobRun]:
        """Run the jobs of several device tables from one read of the raw device files, holding
        every table's lock (taken in name order); one recorded run per table, by the name given.

        Raises:
            NotFoundError: a name is not a device table.
            InvalidInputError: a table is named twice.
        """
        specs = [get_device_spec(name) for name in tables]
        if len({spec.name for spec in specs}) != len(specs):
            raise InvalidInputError(f"device tables named twice: {', '.join(tables)}")
        with ExitStack() as locks:
            for spec in sorted(specs, key=lambda s: s.name):
                locks.enter_context(self._lock(spec))
            runs = run_device_jobs(
                self.catalog,
                self.store,
                specs,
                trigger,
                raw_uri=self.raw_uri,
                detail=dict(detail or {}),
                max_files=self.max_files,
            )
        return dict(zip(tables, runs, strict=True))

    def backfill(self, table: str, *, date_from: date | None = None, date_to: date | None = None) -> JobRun:
        """Re-discover the raw files of ``table`` and apply the pending ones dated in the range.

        Idempotent: files already applied are skipped by the ledger (a second backfill records 0
        files). Local raw zones only (the range is staged as a view of symlinks).

        Raises:
            InvalidInputError: the range is empty/inverted or leaves earlier pending files behind.
            ConfigError: the raw zone is not on the local filesystem.
        """
        if date_from is not None and date_to is not None and date_from > date_to:
            raise InvalidInputError(f"--from {date_from} is after --to {date_to}")
        detail = {"from": str(date_from) if date_from else None, "to": str(date_to) if date_to else None}
        if is_device_table(table):  # `date=` partitions; the device ledger is a set: no view needed
            device = get_device_spec(table)
            with self._lock(device):
                return run_device_job(
                    self.catalog,
                    self.store,
                    device,
                    Trigger.BACKFILL,
                    raw_uri=self.raw_uri,
                    detail=detail,
                    date_from=date_from,
                    date_to=date_to,
                    max_files=self.max_files,
                )
        spec = get_spec(table)
        if date_from is None and date_to is None:  # the whole backlog: no view needed (works on S3)
            return self._execute(spec, Trigger.BACKFILL, detail=detail)
        with self._lock(spec):
            selected = select_backfill(self._pending(spec, self.raw_uri), date_from, date_to)
            with tempfile.TemporaryDirectory(prefix="abasto-backfill-") as view:
                view_uri = _stage_view(spec, selected, Path(view))
                return self._execute(spec, Trigger.BACKFILL, raw_uri=view_uri, detail=detail, locked=True)

    def pending(self, table: str) -> list[RawFile]:
        """Raw files of change-captured ``table`` not applied yet, in processing order."""
        return self._pending(get_spec(table), self.raw_uri)

    def pending_keys(self, table: str) -> list[str]:
        """Paths (relative to the raw zone) of the raw files ``table`` has not applied yet."""
        if is_device_table(table):
            return [f.key for f in device_pending(self.catalog, get_device_spec(table), self.raw_uri)]
        spec = get_spec(table)
        return [f"{spec.source}/{f.relpath}" for f in self.pending(table)]

    def status(self, tables: Iterable[str] | None = None) -> list[TableStatus]:
        names = list(tables) if tables is not None else job_tables()
        last = self.store.last_runs()
        out: list[TableStatus] = []
        for name in names:
            if is_device_table(name):
                out.append(self._device_status(name, last))
                continue
            spec = get_spec(name)
            current = load_table(self.catalog, spec.identifier)
            ledger = _ledger(current)
            try:
                pending = tuple(
                    f.relpath for f in ledger.pending(discover_raw_files(self.raw_uri, spec.source))
                )
                error = None
            except InvalidInputError as exc:
                pending, error = (), str(exc)
            out.append(
                TableStatus(
                    spec.identifier, spec.source, ledger.files, pending, last.get(spec.identifier), error
                )
            )
        return out

    # --- internals --------------------------------------------------------------------------------
    def _device_status(self, name: str, last: dict[str, JobRun]) -> TableStatus:
        spec = get_device_spec(name)
        table = load_table(self.catalog, spec.identifier)
        applied = DeviceLedger.from_properties(table.properties).files if table is not None else 0
        try:
            pending = tuple(f.relpath for f in device_pending(self.catalog, spec, self.raw_uri))
            error = None
        except InvalidInputError as exc:
            pending, error = (), str(exc)
        return TableStatus(spec.identifier, spec.source, applied, pending, last.get(spec.identifier), error)

    def _pending(self, spec: TableSpec, raw_uri: str) -> list[RawFile]:
        return _ledger(load_table(self.catalog, spec.identifier)).pending(
            discover_raw_files(raw_uri, spec.source)
        )

    def _execute(
        self,
        spec: TableSpec,
        trigger: Trigger,
        *,
        raw_uri: str | None = None,
        detail: dict[str, Any] | None = None,
        locked: bool = False,
    ) -> JobRun:
        with _nullcontext() if locked else self._lock(spec):
            return self._execute_locked(spec, trigger, raw_uri or self.raw_uri, dict(detail or {}))

    def _execute_locked(
        self, spec: TableSpec, trigger: Trigger, raw_uri: str, detail: dict[str, Any]
    ) -> JobRun:
        before = load_table(self.catalog, spec.identifier)
        # its run_id also tags the rows the run quarantines
        rec = RunRecording.start(spec.identifier, trigger, before, detail)
        pending: list[RawFile] = []
        try:
            pending = _ledger(before).pending(discover_raw_files(raw_uri, spec.source))
            result = curate_table(
                spec, catalog=self.catalog, raw_uri=raw_uri, max_files=self.max_files, run_id=rec.run_id
            )
            rec.note_result(result.rows_in, result.rows_upserted, result.rows_deleted, result.quality)
        except Exception as exc:  # noqa: BLE001 - any failure of the job is recorded, never lost
            rec.note_failure(exc)
        after = load_table(self.catalog, spec.identifier)
        still = {f.relpath for f in _ledger(after).pending(pending)}
        inputs = [
            InputFile(f.relpath, f.kind, f.first_lsn, f.last_lsn) for f in pending if f.relpath not in still
        ]
        run = rec.finish(after, inputs, len(pending))
        self.store.record(run)
        return run

    @contextmanager
    def _lock(self, spec: TableSpec) -> Iterator[None]:
        """One run per table at a time, across threads and processes."""
        path = self.store.path.parent / "locks" / f"{spec.name}.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


@contextmanager
def _nullcontext() -> Iterator[None]:
    yield


def _ledger(table: Table | None) -> Ledger:
    return Ledger.from_properties(table.properties) if table is not None else Ledger()


def _stage_view(spec: TableSpec, files: list[RawFile], root: Path) -> str:
    """A raw zone under ``root`` holding only ``files`` (symlinks), for a bounded run."""
    for raw in files:
        fs, path = filesystem_for(raw.uri)
        if not isinstance(fs, pafs.LocalFileSystem):
            raise ConfigError(
                "a date-bounded backfill needs a local raw zone",
                hint="run `abasto jobs backfill TABLE` without --from/--to, or `abasto jobs run`",
            )
        target = root / spec.source / raw.relpath
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(Path(path).resolve())
    (root / spec.source).mkdir(parents=True, exist_ok=True)
    return root.as_uri()
