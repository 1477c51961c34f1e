"""The PostgreSQL side of change capture: publication, replica identity, the logical slot, WAL positions."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import pq, sql

from abasto.cdc.lsn import format_lsn, parse_lsn
from abasto.errors import ConfigError, ServiceUnavailableError, TerminalError
from abasto.sources.pg import connect

PLUGIN = "pgoutput"


@dataclass(frozen=True, slots=True)
class SlotInfo:
    name: str
    plugin: str
    database: str
    active: bool
    confirmed_flush_lsn: int | None
    restart_lsn: int | None


@dataclass(frozen=True, slots=True)
class SlotSnapshot:
    """What ``CREATE_REPLICATION_SLOT … (SNAPSHOT 'export')`` returned."""

    slot: str
    consistent_point: int
    snapshot_name: str


def ensure_publication(
    conn: psycopg.Connection[Any],
    name: str,
    *,
    schemas: Sequence[str] = (),
    tables: Sequence[str] = (),
) -> list[tuple[str, str]]:
    """Create or redefine publication ``name`` for ``tables`` (``schema.table``) if given, else for
    every table in the ``schemas`` that exist. Returns the published (schema, table) pairs.

    Raises:
        ConfigError: nothing to publish (no listed table, no existing schema).
    """
    if tables:
        qualified = [_split(t) for t in tables]
        target = sql.SQL("TABLE {}").format(sql.SQL(", ").join(sql.Identifier(s, t) for s, t in qualified))
    else:
        existing = [
            r[0]
            for r in conn.execute(
                "SELECT nspname FROM pg_namespace WHERE nspname = ANY(%s) ORDER BY nspname", (list(schemas),)
            )
        ]
        if not existing:
            raise ConfigError(
                f"none of the schemas {', '.join(schemas)} exists: nothing to capture",
                hint="create the sources first (`abasto load-world`)",
            )
        target = sql.SQL("TABLES IN SCHEMA {}").format(
            sql.SQL(", ").join(sql.Identifier(s) for s in existing)
        )
    exists = conn.execute("SELECT 1 FROM pg_publication WHERE pubname = %s", (name,)).fetchone()
    verb = "ALTER PUBLICATION {} SET {}" if exists else "CREATE PUBLICATION {} FOR {}"
    conn.execute(sql.SQL(verb).format(sql.Identifier(name), target))
    return published_tables(conn, name)


def published_tables(conn: psycopg.Connection[Any], publication: str) -> list[tuple[str, str]]:
    rows = conn.execute(
        "SELECT schemaname, tablename FROM pg_publication_tables WHERE pubname = %s ORDER BY 1, 2",
        (publication,),
    ).fetchall()
    return [(r[0], r[1]) for r in rows]


def ensure_replica_identity(conn: psycopg.Connection[Any], tables: Sequence[tuple[str, str]]) -> list[str]:
    """Give every table without a primary key (and with the default identity) REPLICA IDENTITY FULL,
    so its updates and deletes can be published and carry the row. Returns the tables changed."""
    changed = []
    for schema, table in tables:
        row = conn.execute(
            "SELECT c.relreplident, "
            "EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary) "
            "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relname = %s",
            (schema, table),
        ).fetchone()
        if row is not None and row[0] == "d" and not row[1]:
            conn.execute(
                sql.SQL("ALTER TABLE {} REPLICA IDENTITY FULL").format(sql.Identifier(schema, table))
            )
            changed.append(f"{schema}.{table}")
    return changed


def slot_info(conn: psycopg.Connection[Any], slot: str) -> SlotInfo | None:
    row = conn.execute(
        "SELECT slot_name, plugin, database, active, confirmed_flush_lsn::text, restart_lsn::text "
        "FROM pg_replication_slots WHERE slot_name = %s",
        (slot,),
    ).fetchone()
    if row is None:
        return None
    return SlotInfo(
        name=row[0],
        plugin=row[1] or "",
        database=row[2] or "",
        active=bool(row[3]),
        confirmed_flush_lsn=parse_lsn(row[4]) if row[4] else None,
        restart_lsn=parse_lsn(row[5]) if row[5] else None,
    )


def drop_slot(conn: psycopg.Connection[Any], slot: str) -> bool:
    """Drop the slot if it exists; True if it did.

    Raises:
        TerminalError: the slot is in use by another session.
    """
    if slot_info(conn, slot) is None:
        return False
    try:
        conn.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
    except psycopg.errors.ObjectInUse as exc:
        raise TerminalError(
            f"replication slot {slot} is in use: {exc}", hint="stop `abasto cdc run` first"
        ) from exc
    return True


def advance_slot(conn: psycopg.Connection[Any], slot: str, lsn: int) -> None:
    """Move the slot's confirmed position to ``lsn`` (never backwards)."""
    conn.execute("SELECT pg_replication_slot_advance(%s, %s::pg_lsn)", (slot, format_lsn(lsn)))


def log_running_xacts(conn: psycopg.Connection[Any]) -> bool:
    """Write a running-transactions record to WAL now (``pg_log_standby_snapshot()``, PostgreSQL 16+).

    Logical decoding can only move a slot's ``restart_lsn`` to such a record, and the server writes
    one by itself only every 15 s (and at checkpoints); every read of the slot decodes again from
    ``restart_lsn``, so under a steady write load a capture reading in small batches would decode
    up to 15 s of WAL per batch. False when the server cannot (older version, a role without the
    right to, a standby): reads are then only slower.
    """
    try:
        conn.execute("SELECT pg_log_standby_snapshot()")
    except (
        psycopg.errors.UndefinedFunction,
        psycopg.errors.InsufficientPrivilege,
        psycopg.errors.ObjectNotInPrerequisiteState,
    ):
        return False
    return True


def wal_positions(conn: psycopg.Connection[Any]) -> tuple[int, int]:
    """(insert position, flush position) read in that order. The insert position is always at a record
    boundary; when it is <= the flush position read after it, every record before it is flushed."""
    insert = conn.execute("SELECT pg_current_wal_insert_lsn()::text").fetchone()
    flush = conn.execute("SELECT pg_current_wal_flush_lsn()::text").fetchone()
    assert insert is not None and flush is not None
    return parse_lsn(insert[0]), parse_lsn(flush[0])


def current_wal_lsn(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()
    assert row is not None
    return parse_lsn(row[0])


@contextmanager
def exported_snapshot_slot(dsn: str, slot: str) -> Iterator[SlotSnapshot]:
    """Create logical slot ``slot`` (pgoutput) on a replication connection, exporting its snapshot.

    The snapshot stays importable (``SET TRANSACTION SNAPSHOT``) while the body runs: the replication
    connection is kept open and idle until the context exits.

    Raises:
        ServiceUnavailableError: the server cannot be reached.
        TerminalError: the slot already exists, or the server refuses (wal_level, max_replication_slots).
    """
    conn = connect(dsn, replication="database", autocommit=True)
    try:
        command = f"CREATE_REPLICATION_SLOT {_quote_ident(slot)} LOGICAL {PLUGIN} (SNAPSHOT 'export')"
        result = conn.pgconn.exec_(command.encode())
        if result.status != pq.ExecStatus.TUPLES_OK:
            message = (result.error_message or b"").decode(errors="replace").strip()
            raise TerminalError(
                f"cannot create replication slot {slot}: {message}",
                hint="the server needs wal_level=logical and a free replication slot",
            )
        values = [result.get_value(0, i) for i in range(result.nfields)]
        names = [(result.fname(i) or b"").decode() for i in range(result.nfields)]
        row = dict(zip(names, [(v or b"").decode() for v in values], strict=True))
        yield SlotSnapshot(
            slot=row["slot_name"],
            consistent_point=parse_lsn(row["consistent_point"]),
            snapshot_name=row["snapshot_name"],
        )
    except psycopg.OperationalError as exc:
        raise ServiceUnavailableError(f"replication connection failed: {exc}") from exc
    finally:
        conn.close()


def _split(qualified: str) -> tuple[str, str]:
    schema, sep, table = qualified.partition(".")
    if not sep or not schema or not table:
        raise ConfigError(f"table {qualified!r} must be written schema.table")
    return schema, table


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
