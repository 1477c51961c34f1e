"""The warehouse's own bookkeeping, kept in the marts file (schema ``_abasto``) and committed in
the same transaction as the marts it describes, so a crash never leaves them out of step.

- ``versions``: source → version last built from (a curated table's Iceberg snapshot id, or the
  fingerprint of the alerts table).
- ``day_checksums``: per UTC day of ``curated.sellout_hourly``, the row count and checksum that
  the daily facts were last built from.
"""

from __future__ import annotations

from datetime import date

import duckdb
import pyarrow as pa

__all__ = ["STATE_SCHEMA", "DayChecksums", "ensure_state", "load_checksums", "load_versions", "save_state"]

STATE_SCHEMA = "_abasto"

#: UTC day → (rows, checksum)
DayChecksums = dict[date, tuple[int, str]]


def ensure_state(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {STATE_SCHEMA}")
    con.execute(f"CREATE TABLE IF NOT EXISTS {STATE_SCHEMA}.versions (source VARCHAR, version VARCHAR)")
    con.execute(
        f"CREATE TABLE IF NOT EXISTS {STATE_SCHEMA}.day_checksums (day DATE, n BIGINT, checksum VARCHAR)"
    )


def load_versions(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    rows = con.execute(f"SELECT source, version FROM {STATE_SCHEMA}.versions").fetchall()
    return {str(s): str(v) for s, v in rows}


def load_checksums(con: duckdb.DuckDBPyConnection) -> DayChecksums:
    rows = con.execute(f"SELECT day, n, checksum FROM {STATE_SCHEMA}.day_checksums").fetchall()
    return {d: (int(n), str(c)) for d, n, c in rows}


def save_state(con: duckdb.DuckDBPyConnection, versions: dict[str, str], checksums: DayChecksums) -> None:
    """Replace the bookkeeping (call inside the build's transaction)."""
    con.execute(f"DELETE FROM {STATE_SCHEMA}.versions")
    con.execute(f"DELETE FROM {STATE_SCHEMA}.day_checksums")
    ver = pa.table({"source": list(versions), "version": list(versions.values())}, schema=_VERSIONS)
    days = sorted(checksums)
    chk = pa.table(
        {"day": days, "n": [checksums[d][0] for d in days], "checksum": [checksums[d][1] for d in days]},
        schema=_CHECKSUMS,
    )
    con.register("_abasto_versions", ver)
    con.register("_abasto_checksums", chk)
    try:
        con.execute(f"INSERT INTO {STATE_SCHEMA}.versions SELECT * FROM _abasto_versions")
        con.execute(f"INSERT INTO {STATE_SCHEMA}.day_checksums SELECT * FROM _abasto_checksums")
    finally:
        con.unregister("_abasto_versions")
        con.unregister("_abasto_checksums")


_VERSIONS = pa.schema([("source", pa.string()), ("version", pa.string())])
_CHECKSUMS = pa.schema([("day", pa.date32()), ("n", pa.int64()), ("checksum", pa.string())])
