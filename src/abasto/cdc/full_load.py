"""Full load consistent with the slot: every published table copied out at the slot's snapshot.

The slot is created on a replication connection with ``SNAPSHOT 'export'``; while that connection
stays open, a second connection imports the snapshot (``SET TRANSACTION SNAPSHOT``) in a
REPEATABLE READ transaction and reads every table. What the files hold is exactly the database at
the slot's consistent point, and the slot will stream exactly the transactions committed after it:
nothing is missed, nothing is counted twice. Full-load rows are ``Op = 'I'`` with ``_lsn`` = the
consistent point, ``_commit_ts`` = the snapshot's time and ``_seq`` = the row's position.

Files are staged and only renamed into place once every table has been read.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
import pyarrow as pa
from psycopg import sql

from abasto.cdc.change_files import META_FIELDS
from abasto.cdc.pgtypes import ColumnType, column_type
from abasto.cdc.raw_zone import RawZone, StagedFile, full_load_name
from abasto.cdc.replication import exported_snapshot_slot
from abasto.cdc.shapes import catalog_lookup
from abasto.sources.pg import connect

ROWS_PER_FILE = 1_000_000
FETCH_ROWS = 50_000

FullLoadProgress = Callable[[str, int], None]


@dataclass(frozen=True, slots=True)
class FullLoadResult:
    """The snapshot LSN, rows per table (``schema.table``), files written and wall time."""

    lsn: int
    tables: dict[str, int]
    files: list[str]
    seconds: float

    @property
    def rows(self) -> int:
        return sum(self.tables.values())

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else float("inf")


@dataclass(frozen=True, slots=True)
class _Column:
    name: str
    type: ColumnType


def published_columns(
    conn: psycopg.Connection[Any], publication: str, schema: str, table: str
) -> list[_Column]:
    """The columns the publication sends for a table (its column list, no generated columns), typed."""
    rows = conn.execute(
        "SELECT a.attname, a.atttypid, a.atttypmod FROM pg_publication_tables p "
        "JOIN pg_attribute a ON a.attrelid = format('%%I.%%I', p.schemaname, p.tablename)::regclass "
        "AND a.attname = ANY (p.attnames) "
        "WHERE p.pubname = %s AND p.schemaname = %s AND p.tablename = %s ORDER BY a.attnum",
        (publication, schema, table),
    ).fetchall()
    lookup = catalog_lookup(conn)
    return [_Column(r[0], column_type(int(r[1]), int(r[2]), lookup)) for r in rows]


def run_full_load(
    dsn: str,
    raw: RawZone,
    *,
    slot: str,
    publication: str,
    tables: Sequence[tuple[str, str]],
    rows_per_file: int = ROWS_PER_FILE,
    on_progress: FullLoadProgress = lambda _table, _rows: None,
) -> FullLoadResult:
    """Create ``slot`` and write the full load of ``tables`` at its snapshot.

    Raises:
        TerminalError: the slot exists already or cannot be created.
        ServiceUnavailableError: PostgreSQL cannot be reached.
        psycopg.Error: reading a table failed (nothing is published; the caller drops the slot).
    """
    started = time.perf_counter()
    staged: list[StagedFile] = []
    counts: dict[str, int] = {}
    try:
        with exported_snapshot_slot(dsn, slot) as snap, connect(dsn) as conn:
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            conn.read_only = True
            conn.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(snap.snapshot_name)))
            snapshot_time = conn.execute("SELECT now()").fetchone()
            assert snapshot_time is not None
            for schema, table in tables:
                columns = published_columns(conn, publication, schema, table)
                rows = _copy_table(
                    conn,
                    raw,
                    schema,
                    table,
                    columns,
                    snap.consistent_point,
                    snapshot_time[0],
                    rows_per_file,
                    staged,
                )
                counts[f"{schema}.{table}"] = rows
                on_progress(f"{schema}.{table}", rows)
            conn.rollback()
        names = []
        for file in staged:
            raw.publish(file)
            names.append(file.name)
        staged.clear()
        return FullLoadResult(
            lsn=snap.consistent_point, tables=counts, files=names, seconds=time.perf_counter() - started
        )
    finally:
        for file in staged:
            raw.discard(file)


def _copy_table(
    conn: psycopg.Connection[Any],
    raw: RawZone,
    schema: str,
    table: str,
    columns: list[_Column],
    lsn: int,
    snapshot_time: datetime,
    rows_per_file: int,
    staged: list[StagedFile],
) -> int:
    arrow_schema = pa.schema([*META_FIELDS, *(pa.field(c.name, c.type.arrow) for c in columns)])
    select = sql.SQL("SELECT {} FROM {}").format(
        sql.SQL(", ").join(_select_item(c) for c in columns) if columns else sql.SQL("NULL"),
        sql.Identifier(schema, table),
    )
    part = 0
    current: StagedFile | None = None
    total = 0
    with conn.cursor(name=f"abasto_full_load_{part}", binary=True) as cur:
        cur.itersize = FETCH_ROWS
        cur.execute(select)
        while True:
            rows = cur.fetchmany(FETCH_ROWS)
            if current is None or (rows and current.rows >= rows_per_file):
                part += 1
                current = raw.stage(full_load_name(schema, table, lsn, part), arrow_schema)
                staged.append(current)
            if not rows:
                break
            n = len(rows)
            meta = [
                pa.array(["I"] * n, pa.string()),
                pa.array([lsn] * n, pa.int64()),
                pa.array([snapshot_time] * n, META_FIELDS[2].type),
                pa.array(range(total, total + n), pa.int64()),
            ]
            values = list(zip(*rows, strict=True)) if columns else []
            image = [pa.array(v, type=c.type.arrow) for v, c in zip(values, columns, strict=True)]
            current.write(pa.RecordBatch.from_arrays([*meta, *image], schema=arrow_schema))
            total += n
    return total


def _select_item(column: _Column) -> sql.Composable:
    ident = sql.Identifier(column.name)
    if column.type.select_cast is None:
        return ident
    return sql.SQL("{}::{} AS {}").format(ident, sql.SQL(column.type.select_cast), ident)
