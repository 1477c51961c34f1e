"""Job-run records: every run of a curate job, kept in a small SQLite file next to the catalog.

The local counterpart of Glue's job-run history (``GetJobRuns``): which job ran for which table,
why (``manual``, ``backfill``, ``object-created``), the raw files it applied with their LSN range,
the snapshots it committed, row counts, duration and outcome. It is a record, not the source of
truth about what a table holds: that is the curate ledger inside the Iceberg table
(:mod:`abasto.lake.ledger`), which is why a re-run over applied files records a run with 0 files.

The same file keeps the raw objects the trigger layer has seen (announced by a writer or by the
watcher), so the watcher announces only files nobody announced yet.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from abasto.errors import TransientError
from abasto.settings import Settings

if TYPE_CHECKING:
    from pyiceberg.table import Table

__all__ = ["InputFile", "JobRun", "JobRunStore", "RunRecording", "RunStatus", "Trigger", "job_runs_path"]


class Trigger(StrEnum):
    """Why a job ran."""

    MANUAL = "manual"
    BACKFILL = "backfill"
    OBJECT_CREATED = "object-created"


class RunStatus(StrEnum):
    OK = "ok"
    FAILED = "failed"


@dataclass(frozen=True)
class InputFile:
    """A raw file a run applied; ``relpath`` is relative to ``<raw>/<source>``."""

    relpath: str
    kind: str
    first_lsn: int
    last_lsn: int


@dataclass(frozen=True)
class JobRun:
    """One run of the curate job of ``table`` (``curated.<name>``).

    ``inputs``: raw files applied by this run (empty when nothing was pending); ``snapshot_ids``:
    snapshots the run committed, oldest first; ``snapshot_id``: the table's current snapshot after
    the run; ``pending_before``: files pending when it started; ``error``: ``Type: message`` of a
    failed run.
    """

    run_id: str
    job: str
    table: str
    trigger: Trigger
    status: RunStatus
    started_at: datetime
    finished_at: datetime
    duration_s: float
    inputs: tuple[InputFile, ...] = ()
    snapshot_ids: tuple[int, ...] = ()
    snapshot_id: int | None = None
    rows_in: int = 0
    rows_upserted: int = 0
    rows_deleted: int = 0
    pending_before: int = 0
    error: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def files(self) -> int:
        return len(self.inputs)

    @property
    def ok(self) -> bool:
        return self.status is RunStatus.OK

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "job": self.job,
            "table": self.table,
            "trigger": str(self.trigger),
            "status": str(self.status),
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat(),
            "duration_s": round(self.duration_s, 6),
            "files": self.files,
            "inputs": [
                {"relpath": f.relpath, "kind": f.kind, "first_lsn": f.first_lsn, "last_lsn": f.last_lsn}
                for f in self.inputs
            ],
            "snapshot_ids": list(self.snapshot_ids),
            "snapshot_id": self.snapshot_id,
            "rows_in": self.rows_in,
            "rows_upserted": self.rows_upserted,
            "rows_deleted": self.rows_deleted,
            "pending_before": self.pending_before,
            "error": self.error,
            "detail": self.detail,
        }


@dataclass
class RunRecording:
    """What every curate job run records, whatever feeds the table: started with the table as it
    was (:meth:`start`), the job's outcome noted (:meth:`note_result`, :meth:`note_failure`),
    finished into a :class:`JobRun` with the snapshots the run committed (:meth:`finish`)."""

    identifier: str
    trigger: Trigger
    run_id: str
    started: datetime
    t0: float
    known: frozenset[int]
    detail: dict[str, Any]
    rows: tuple[int, int, int] = (0, 0, 0)
    error: str | None = None

    @classmethod
    def start(
        cls, identifier: str, trigger: Trigger, before: Table | None, detail: dict[str, Any]
    ) -> RunRecording:
        known = frozenset(s.snapshot_id for s in before.snapshots()) if before is not None else frozenset()
        run_id, started = uuid.uuid4().hex, datetime.now(UTC)
        return cls(identifier, trigger, run_id, started, time.perf_counter(), known, detail)

    def note_result(self, rows_in: int, rows_upserted: int, rows_deleted: int, quality: Any) -> None:
        """The job's counts; ``quality``: its :class:`~abasto.lake.quality.QualityReport` or None."""
        self.rows = (rows_in, rows_upserted, rows_deleted)
        if quality is not None:
            self.detail["quality"] = quality.as_dict()

    def note_failure(self, exc: Exception) -> None:
        self.error = f"{type(exc).__name__}: {exc}"
        self.detail["retryable"] = isinstance(exc, TransientError)

    def finish(self, after: Table | None, inputs: Sequence[InputFile], pending_before: int) -> JobRun:
        new = sorted(
            (s for s in (after.snapshots() if after is not None else []) if s.snapshot_id not in self.known),
            key=lambda s: s.sequence_number or 0,
        )
        current = after.current_snapshot() if after is not None else None
        name = self.identifier.rsplit(".", 1)[-1]
        return JobRun(
            run_id=self.run_id,
            job=f"curate.{name}",
            table=self.identifier,
            trigger=self.trigger,
            status=RunStatus.OK if self.error is None else RunStatus.FAILED,
            started_at=self.started,
            finished_at=datetime.now(UTC),
            duration_s=time.perf_counter() - self.t0,
            inputs=tuple(inputs),
            snapshot_ids=tuple(s.snapshot_id for s in new),
            snapshot_id=current.snapshot_id if current is not None else None,
            rows_in=self.rows[0],
            rows_upserted=self.rows[1],
            rows_deleted=self.rows[2],
            pending_before=pending_before,
            error=self.error,
            detail=self.detail,
        )


def job_runs_path(settings: Settings) -> Path:
    """``<home>/lake/job_runs.db``, beside the SQLite catalog."""
    return settings.home_dir / "lake" / "job_runs.db"


_SCHEMA = """
CREATE TABLE IF NOT EXISTS job_runs (
    run_id TEXT PRIMARY KEY,
    job TEXT NOT NULL,
    table_name TEXT NOT NULL,
    trigger TEXT NOT NULL,
    status TEXT NOT NULL,
    started_at TEXT NOT NULL,
    finished_at TEXT NOT NULL,
    duration_s REAL NOT NULL,
    files INTEGER NOT NULL,
    inputs TEXT NOT NULL,
    snapshot_ids TEXT NOT NULL,
    snapshot_id INTEGER,
    rows_in INTEGER NOT NULL,
    rows_upserted INTEGER NOT NULL,
    rows_deleted INTEGER NOT NULL,
    pending_before INTEGER NOT NULL,
    error TEXT,
    detail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS job_runs_by_table ON job_runs (table_name, started_at);
CREATE TABLE IF NOT EXISTS raw_objects (
    key TEXT PRIMARY KEY,
    seen_at TEXT NOT NULL,
    via TEXT NOT NULL
);
"""


class JobRunStore:
    """Job-run records in one SQLite file; safe to use from several threads and processes (each
    call opens its own short connection; WAL journal)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)

    @classmethod
    def for_settings(cls, settings: Settings) -> JobRunStore:
        return cls(job_runs_path(settings))

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        with closing(sqlite3.connect(self.path, timeout=30)) as db, db:
            yield db

    def record(self, run: JobRun) -> None:
        with self._connect() as db:
            db.execute(
                "INSERT INTO job_runs VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    run.run_id,
                    run.job,
                    run.table,
                    str(run.trigger),
                    str(run.status),
                    run.started_at.isoformat(),
                    run.finished_at.isoformat(),
                    run.duration_s,
                    run.files,
                    json.dumps([[f.relpath, f.kind, f.first_lsn, f.last_lsn] for f in run.inputs]),
                    json.dumps(list(run.snapshot_ids)),
                    run.snapshot_id,
                    run.rows_in,
                    run.rows_upserted,
                    run.rows_deleted,
                    run.pending_before,
                    run.error,
                    json.dumps(run.detail, default=str),
                ),
            )

    def runs(self, table: str | None = None, *, limit: int | None = None) -> list[JobRun]:
        """Runs of ``table`` (all tables if omitted), newest first."""
        sql = "SELECT * FROM job_runs"
        args: list[Any] = []
        if table is not None:
            sql += " WHERE table_name = ?"
            args.append(table)
        sql += " ORDER BY started_at DESC, rowid DESC"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        with self._connect() as db:
            db.row_factory = sqlite3.Row
            return [_from_row(r) for r in db.execute(sql, args)]

    def last_runs(self) -> dict[str, JobRun]:
        """The newest run of each table that ever ran."""
        with self._connect() as db:
            db.row_factory = sqlite3.Row
            rows = db.execute(
                "SELECT * FROM job_runs j WHERE rowid = (SELECT rowid FROM job_runs k "
                "WHERE k.table_name = j.table_name ORDER BY started_at DESC, rowid DESC LIMIT 1)"
            )
            return {r["table_name"]: _from_row(r) for r in rows}

    # --- raw objects seen by the trigger layer ----------------------------------------------------
    def mark_seen(self, keys: Iterable[str], *, via: str) -> list[str]:
        """Remember ``keys`` as announced; returns those not seen before."""
        now = datetime.now(UTC).isoformat()
        fresh: list[str] = []
        with self._connect() as db:
            for key in keys:
                cur = db.execute("INSERT OR IGNORE INTO raw_objects VALUES (?,?,?)", (key, now, via))
                if cur.rowcount:
                    fresh.append(key)
        return fresh

    def unseen(self, keys: Sequence[str]) -> list[str]:
        """``keys`` never announced, in the given order."""
        with self._connect() as db:
            seen = {r[0] for r in db.execute("SELECT key FROM raw_objects")}
        return [k for k in keys if k not in seen]


def _from_row(row: sqlite3.Row) -> JobRun:
    return JobRun(
        run_id=row["run_id"],
        job=row["job"],
        table=row["table_name"],
        trigger=Trigger(row["trigger"]),
        status=RunStatus(row["status"]),
        started_at=datetime.fromisoformat(row["started_at"]),
        finished_at=datetime.fromisoformat(row["finished_at"]),
        duration_s=row["duration_s"],
        inputs=tuple(InputFile(p, k, int(a), int(b)) for p, k, a, b in json.loads(row["inputs"])),
        snapshot_ids=tuple(int(s) for s in json.loads(row["snapshot_ids"])),
        snapshot_id=row["snapshot_id"],
        rows_in=row["rows_in"],
        rows_upserted=row["rows_upserted"],
        rows_deleted=row["rows_deleted"],
        pending_before=row["pending_before"],
        error=row["error"],
        detail=json.loads(row["detail"]),
    )
