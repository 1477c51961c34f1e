"""Connecting to PostgreSQL with psycopg, translating connection failures into abasto's errors."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from abasto.errors import ServiceUnavailableError


def connect(dsn: str, **kwargs: Any) -> psycopg.Connection[Any]:
    """Open a connection; keyword arguments go to :func:`psycopg.connect`.

    Raises:
        ServiceUnavailableError: the server is down, refuses or is not ready (worth retrying).
    """
    try:
        return psycopg.connect(dsn, **kwargs)
    except psycopg.OperationalError as exc:
        raise ServiceUnavailableError(
            f"cannot connect to PostgreSQL at {describe(dsn)}: {_first_line(exc)}",
            hint="start it with `abasto up`, or check [postgres] in abasto.toml",
        ) from exc


def describe(dsn: str) -> str:
    """``host:port/dbname`` of a DSN, without user or password (safe to print)."""
    try:
        parts = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "<unparseable DSN>"
    return f"{parts.get('host', 'localhost')}:{parts.get('port', 5432)}/{parts.get('dbname', '')}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def with_database(dsn: str, dbname: str) -> str:
    """The same DSN pointing at another database of the same server."""
    return make_conninfo(dsn, dbname=dbname)


def create_database(server_dsn: str, dbname: str) -> str:
    """Create database ``dbname`` on the server of ``server_dsn`` (dropped first if it exists).

    Returns the DSN of the new database.

    Raises:
        ServiceUnavailableError: the server cannot be reached.
    """
    drop_database(server_dsn, dbname)
    with connect(server_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
    return with_database(server_dsn, dbname)


def drop_database(server_dsn: str, dbname: str) -> None:
    """Drop database ``dbname`` and its logical replication slots, disconnecting its sessions.

    Slots pin WAL and block ``DROP DATABASE``, so they go first.

    Raises:
        ServiceUnavailableError: the server cannot be reached.
    """
    with connect(server_dsn, autocommit=True) as conn:
        slots = conn.execute(
            "SELECT slot_name, active_pid FROM pg_replication_slots WHERE database = %s", (dbname,)
        ).fetchall()
        for slot_name, active_pid in slots:
            if active_pid is not None:
                conn.execute("SELECT pg_terminate_backend(%s, 5000)", (active_pid,))
            conn.execute("SELECT pg_drop_replication_slot(%s)", (slot_name,))
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname)))
