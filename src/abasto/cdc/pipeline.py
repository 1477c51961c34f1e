"""DMS-like change capture from PostgreSQL into the raw zone: full load, then ongoing replication.

:class:`CdcPipeline` owns a publication (``abasto_pub``) and a logical replication slot
(``abasto_slot``, pgoutput) on the source database.

- :meth:`~CdcPipeline.full_load` creates the slot, and copies every published table at the slot's
  exported snapshot (:mod:`abasto.cdc.full_load`).
- :meth:`~CdcPipeline.capture_once` reads whole transactions from the slot, writes them as change
  files (:mod:`abasto.cdc.capture`), and only then confirms them to PostgreSQL. The order is
  1. record the batch's end LSN as *pending* (``state.json``),
  2. rename the staged files into place (each fsync'ed), skipping names already present,
  3. record the end LSN as *confirmed*, 4. advance the slot to it.
  A crash anywhere leaves the slot at or behind what the raw zone holds; the next run resumes from
  the slot, replays a pending batch up to exactly its recorded end (same files, skipped), and never
  confirms an LSN whose changes are not durable.
- When a read finds nothing more to capture, the slot is also moved past WAL that touched no
  published table (up to a record boundary read before the read), so an idle source pins no WAL.
- Every read (and every advance) decodes WAL from the slot's ``restart_lsn``, which only moves to
  a running-transactions record; when it trails the confirmed position by more than
  :data:`RESTART_LAG_BYTES`, a step ends by writing one
  (:func:`~abasto.cdc.replication.log_running_xacts`), which the next step's advance passes, so
  under a steady write load each read decodes about two batches of WAL rather than up to 15 s of it
  (PostgreSQL writes such a record by itself every 15 s only).

One capture at a time per slot: a session-level advisory lock is held while the pipeline is open.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from abasto.cdc.capture import run_batch
from abasto.cdc.full_load import FullLoadProgress, FullLoadResult, run_full_load
from abasto.cdc.lsn import format_lsn
from abasto.cdc.raw_zone import RawZone
from abasto.cdc.replication import (
    advance_slot,
    drop_slot,
    ensure_publication,
    ensure_replica_identity,
    log_running_xacts,
    slot_info,
    wal_positions,
)
from abasto.cdc.shapes import ShapeCatalog, catalog_lookup
from abasto.cdc.state import CaptureState, StateStore
from abasto.cdc.status import CdcStatus, read_status
from abasto.errors import ServiceUnavailableError, TerminalError, TransientError
from abasto.sources.pg import connect, describe

log = logging.getLogger(__name__)

DEFAULT_SLOT = "abasto_slot"
DEFAULT_PUBLICATION = "abasto_pub"
DEFAULT_SCHEMAS: tuple[str, ...] = ("sales", "behavior")
DEFAULT_MAX_CHANGES = 20_000
#: how long opening a session waits for the capture lock held by another (maybe dying) session
LOCK_WAIT_S = 5.0
#: WAL between the slot's restart and confirmed positions beyond which a capture step writes a
#: running-transactions record, so the slot's restart position can follow (see
#: :func:`~abasto.cdc.replication.log_running_xacts`)
RESTART_LAG_BYTES = 1 << 20

_SESSION_SETTINGS = (
    "SET TimeZone = 'UTC'",
    "SET DateStyle = 'ISO, YMD'",
    "SET IntervalStyle = 'postgres'",
    "SET bytea_output = 'hex'",
    "SET extra_float_digits = 3",
)


@dataclass(frozen=True, slots=True)
class CaptureResult:
    """One capture step: changes and transactions captured, the raw files that hold them (``files``;
    ``written`` = those this call created), the slot's confirmed LSN afterwards, and whether the
    slot was drained."""

    changes: int
    files: list[str]
    last_lsn: int | None
    transactions: int = 0
    written: tuple[str, ...] = ()
    drained: bool = True
    seconds: float = 0.0

    @property
    def changes_per_second(self) -> float:
        return self.changes / self.seconds if self.seconds > 0 else 0.0


class CdcPipeline:
    """Full load + change capture of one PostgreSQL database into the raw zone."""

    def __init__(
        self,
        dsn: str,
        raw_uri: str,
        *,
        tables: Sequence[str] | None = None,
        schemas: Sequence[str] = DEFAULT_SCHEMAS,
        slot: str = DEFAULT_SLOT,
        publication: str = DEFAULT_PUBLICATION,
        lock_wait_s: float = LOCK_WAIT_S,
    ) -> None:
        """``tables`` (``schema.table``) limits the capture; by default every table of ``schemas``,
        including tables created there later. ``lock_wait_s``: how long opening a session waits for
        the capture lock another session holds (a capture killed just now still holds it briefly).

        Raises:
            ConfigError: ``raw_uri`` cannot be opened.
        """
        self.dsn = dsn
        self.raw = RawZone(raw_uri)
        self.tables = tuple(tables or ())
        self.schemas = tuple(schemas)
        self.slot = slot
        self.publication = publication
        self.lock_wait_s = lock_wait_s
        self._states = StateStore(self.raw, slot)
        self._conn: psycopg.Connection[Any] | None = None
        self._shapes: ShapeCatalog | None = None
        self._lock = threading.Lock()
        self._log_xacts = True  # until the server refuses pg_log_standby_snapshot()

    # --- setup and full load --------------------------------------------------------------------

    def setup(self) -> list[tuple[str, str]]:
        """Create/redefine the publication and give key-less tables REPLICA IDENTITY FULL.

        Returns the published (schema, table) pairs.

        Raises:
            ConfigError: nothing to publish.
            ServiceUnavailableError: PostgreSQL cannot be reached.
        """
        with self._session() as conn:
            return self._setup(conn)

    def _setup(self, conn: psycopg.Connection[Any]) -> list[tuple[str, str]]:
        published = ensure_publication(conn, self.publication, schemas=self.schemas, tables=self.tables)
        changed = ensure_replica_identity(conn, published)
        if changed:
            log.info("REPLICA IDENTITY FULL set on %s (no primary key)", ", ".join(changed))
        return published

    def full_load(
        self,
        *,
        reload: bool = False,
        rows_per_file: int | None = None,
        on_progress: FullLoadProgress | None = None,
    ) -> FullLoadResult:
        """Create the slot and copy every published table at its snapshot into ``full_load/`` files.

        A full load that was interrupted (slot created, no completion marker) is started over.

        Raises:
            TerminalError: a full load was already completed for this slot and ``reload`` is False
                (reloading drops the slot and starts from a new snapshot).
            ConfigError: nothing to publish.
            ServiceUnavailableError: PostgreSQL cannot be reached.
        """
        with self._session() as conn:
            tables = self._setup(conn)
            marker = self._states.full_load()
            if slot_info(conn, self.slot) is not None:
                if marker is not None and not reload:
                    raise TerminalError(
                        f"the full load of slot {self.slot} was done at {format_lsn(marker.lsn)}",
                        hint="capture with `abasto cdc run`; start over with `abasto cdc full-load --reload`",
                    )
                drop_slot(conn, self.slot)
            self._states.clear()
            self.raw.remove_stale_temporaries()
            kwargs: dict[str, Any] = {}
            if rows_per_file is not None:
                kwargs["rows_per_file"] = rows_per_file
            if on_progress is not None:
                kwargs["on_progress"] = on_progress
            try:
                result = run_full_load(
                    self.dsn, self.raw, slot=self.slot, publication=self.publication, tables=tables, **kwargs
                )
            except BaseException:
                drop_slot(conn, self.slot)
                raise
            self._states.save_state(CaptureState(confirmed=result.lsn))
            self._states.save_full_load(result.lsn, result.tables)
            return result

    # --- capture --------------------------------------------------------------------------------

    def capture_once(self, max_changes: int = DEFAULT_MAX_CHANGES) -> CaptureResult:
        """Capture up to ``max_changes`` changes (rounded up to whole transactions) into raw files,
        then confirm them. Returns what was captured; ``files`` is empty when nothing was pending.

        Raises:
            TerminalError: no completed full load / no slot, or a change cannot be represented.
            ServiceUnavailableError: PostgreSQL failed or cannot be reached (retry later).
            TransientError: the raw zone could not be written (retry later).
        """
        started = time.perf_counter()
        try:
            with self._session() as conn:
                return self._capture(conn, max_changes, started)
        except psycopg.OperationalError as exc:
            self._reset()
            raise ServiceUnavailableError(f"change capture from {describe(self.dsn)} failed: {exc}") from exc
        except OSError as exc:  # the raw zone (disk full, permissions, object store): nothing was confirmed
            raise TransientError(f"writing the raw zone at {self.raw.uri} failed: {exc}") from exc

    def _capture(self, conn: psycopg.Connection[Any], max_changes: int, started: float) -> CaptureResult:
        if self._states.full_load() is None:
            raise TerminalError(
                f"no completed full load for slot {self.slot}", hint="run `abasto cdc full-load` first"
            )
        slot = slot_info(conn, self.slot)
        if slot is None or slot.confirmed_flush_lsn is None:
            raise TerminalError(
                f"replication slot {self.slot} does not exist",
                hint="run `abasto cdc full-load --reload` to start over from a new snapshot",
            )
        state = self._states.state() or CaptureState(confirmed=slot.confirmed_flush_lsn)
        confirmed = slot.confirmed_flush_lsn
        if state.confirmed > confirmed:  # the raw zone is ahead: confirm what it already holds
            advance_slot(conn, self.slot, state.confirmed)
            confirmed = state.confirmed
        shapes = self._shape_catalog(conn)

        def record_intent(end_lsn: int) -> None:
            self._states.save_state(CaptureState(confirmed=confirmed, pending_end=end_lsn))

        if state.pending_end is not None and state.pending_end > confirmed:
            log.info("replaying the batch that ended at %s", format_lsn(state.pending_end))
            outcome = run_batch(
                conn,
                self.raw,
                slot=self.slot,
                publication=self.publication,
                shapes=shapes,
                max_changes=None,
                upto_lsn=state.pending_end,
                before_publish=record_intent,
            )
            new_confirmed = max(confirmed, outcome.end_lsn or confirmed)
            drained = False
        else:
            boundary, flushed = wal_positions(conn)
            outcome = run_batch(
                conn,
                self.raw,
                slot=self.slot,
                publication=self.publication,
                shapes=shapes,
                max_changes=max_changes,
                before_publish=record_intent,
            )
            new_confirmed = max(confirmed, outcome.end_lsn or confirmed)
            drained = outcome.drained
            if drained and boundary <= flushed:
                # everything before `boundary` was decoded; what produced no rows touched no table of ours
                new_confirmed = max(new_confirmed, boundary)
        if new_confirmed != state.confirmed or state.pending_end is not None:
            self._states.save_state(CaptureState(confirmed=new_confirmed))
        if new_confirmed > confirmed:
            advance_slot(conn, self.slot, new_confirmed)
        if (
            self._log_xacts
            and slot.restart_lsn is not None
            and new_confirmed - slot.restart_lsn > RESTART_LAG_BYTES
        ):
            # the next read decodes from restart_lsn: give the slot a point to move it to
            self._log_xacts = log_running_xacts(conn)
        return CaptureResult(
            changes=outcome.changes,
            files=outcome.files.names,
            last_lsn=new_confirmed,
            transactions=outcome.transactions,
            written=tuple(outcome.files.written),
            drained=drained,
            seconds=time.perf_counter() - started,
        )

    def run(
        self,
        stop_event: threading.Event,
        poll_interval: float = 1.0,
        *,
        max_changes: int = DEFAULT_MAX_CHANGES,
        on_batch: Callable[[CaptureResult], None] | None = None,
        max_backoff: float = 30.0,
    ) -> None:
        """Capture until ``stop_event`` is set: back-to-back while changes are pending, every
        ``poll_interval`` seconds when idle, with exponential back-off on transient failures.

        Raises:
            TerminalError: a failure retrying cannot fix (no full load, an unrepresentable change).
        """
        backoff = poll_interval
        prepared = False
        while not stop_event.is_set():
            try:
                if not prepared:  # inside the retry loop: the server may be down when the worker starts
                    self._prepare_run()
                    prepared = True
                result = self.capture_once(max_changes)
            except TransientError as exc:
                log.warning("change capture failed, retrying in %.1fs: %s", backoff, exc)
                stop_event.wait(backoff)
                backoff = min(max_backoff, backoff * 2)
                continue
            backoff = poll_interval
            if on_batch is not None:
                on_batch(result)
            if result.drained:
                stop_event.wait(poll_interval)

    def _prepare_run(self) -> None:
        """Give tables published since the full load the replica identity their changes need.

        Raises:
            ServiceUnavailableError: PostgreSQL failed or cannot be reached (retry later).
        """
        try:
            with self._session() as conn:
                ensure_replica_identity(conn, self._published(conn))
        except psycopg.OperationalError as exc:
            self._reset()
            raise ServiceUnavailableError(f"change capture from {describe(self.dsn)} failed: {exc}") from exc

    # --- inspection and teardown ------------------------------------------------------------------

    def status(self) -> CdcStatus:
        """Slot position, lag and what the raw zone holds.

        Raises:
            ServiceUnavailableError: PostgreSQL cannot be reached.
        """
        return read_status(self.dsn, self.slot, self._states)

    def drop(self, *, publication: bool = False) -> None:
        """Drop the slot (it pins WAL) and, if asked, the publication; forget the capture state.
        Raw files stay.

        Raises:
            TerminalError: the slot is in use by another session.
        """
        with self._session() as conn:
            drop_slot(conn, self.slot)
            if publication:
                conn.execute(
                    sql.SQL("DROP PUBLICATION IF EXISTS {}").format(sql.Identifier(self.publication))
                )
        self._states.clear()

    def close(self) -> None:
        """Close the connection (releasing the capture lock)."""
        self._reset()

    def __enter__(self) -> CdcPipeline:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # --- connection ---------------------------------------------------------------------------

    @contextmanager
    def _session(self) -> Iterator[psycopg.Connection[Any]]:
        with self._lock:
            if self._conn is None or self._conn.closed or self._conn.broken:
                self._conn = self._open()
                self._shapes = None
            yield self._conn

    def _open(self) -> psycopg.Connection[Any]:
        conn = connect(self.dsn, autocommit=True)
        try:
            for statement in _SESSION_SETTINGS:
                conn.execute(statement.encode())
            if not self._take_capture_lock(conn):
                raise TerminalError(
                    f"another change capture holds slot {self.slot}",
                    hint="stop the other `abasto cdc run` first",
                )
        except BaseException:
            conn.close()
            raise
        return conn

    def _take_capture_lock(self, conn: psycopg.Connection[Any]) -> bool:
        """Take the slot's advisory lock, waiting up to ``lock_wait_s``: the session of a capture
        that was just killed holds it until its server process notices the client is gone."""
        deadline = time.monotonic() + self.lock_wait_s
        while True:
            row = conn.execute(
                "SELECT pg_try_advisory_lock(hashtext(%s))", (f"abasto-cdc:{self.slot}",)
            ).fetchone()
            if row is not None and row[0]:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.1)

    def _shape_catalog(self, conn: psycopg.Connection[Any]) -> ShapeCatalog:
        if self._shapes is None:
            self._shapes = ShapeCatalog(catalog_lookup(conn))
        return self._shapes

    def _published(self, conn: psycopg.Connection[Any]) -> list[tuple[str, str]]:
        rows = conn.execute(
            "SELECT schemaname, tablename FROM pg_publication_tables WHERE pubname = %s", (self.publication,)
        ).fetchall()
        return [(r[0], r[1]) for r in rows]

    def _reset(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
            self._conn = None
            self._shapes = None
