"""Bulk-load recipe: drop a table's indexes and constraints, load, rebuild them (inside one transaction).

Building a B-tree once from sorted data and validating a foreign key with one anti-join is several
times faster than maintaining three indexes and firing two foreign-key triggers per copied row. The
definitions are read from the catalog (``pg_get_indexdef`` / ``pg_get_constraintdef``), so the table
comes back exactly as its DDL declared it. Only tables that no other table references qualify (their
primary key can be dropped without touching the referencing side).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import sql


@contextmanager
def indexes_deferred(conn: psycopg.Connection[Any], schema: str, table: str) -> Iterator[bool]:
    """Within the current transaction, load ``schema.table`` without indexes; rebuild them on exit.

    Yields whether the indexes were dropped (False: the table is referenced by a foreign key and
    is loaded with its indexes in place). If the body raises, nothing is rebuilt: the caller's
    transaction is going to roll back and restores everything.

    Raises:
        psycopg.Error: rebuilding failed (for example a foreign key does not hold for the new rows).
    """
    qualified = sql.Identifier(schema, table)
    relid = conn.execute("SELECT to_regclass(%s)::oid", (f"{schema}.{table}",)).fetchone()
    if relid is None or relid[0] is None:
        raise psycopg.errors.UndefinedTable(f"relation {schema}.{table} does not exist")
    oid = relid[0]
    referenced = conn.execute("SELECT count(*) FROM pg_constraint WHERE confrelid = %s", (oid,)).fetchone()
    if referenced is not None and referenced[0] > 0:
        yield False
        return
    constraints = conn.execute(
        "SELECT conname, contype, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = %s AND contype IN ('p', 'u', 'f') "
        "ORDER BY CASE contype WHEN 'f' THEN 0 ELSE 1 END, conname",
        (oid,),
    ).fetchall()
    indexes = conn.execute(
        "SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) FROM pg_index i "
        "WHERE i.indrelid = %s AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid "
        "AND c.conrelid = %s) ORDER BY 1",
        (oid, oid),
    ).fetchall()
    for name, _, _ in constraints:
        conn.execute(sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(qualified, sql.Identifier(name)))
    for name, _ in indexes:
        conn.execute(sql.SQL("DROP INDEX {}").format(sql.SQL(name)))
    yield True
    for _, definition in indexes:
        conn.execute(sql.SQL(definition))  # catalog text, not user input
    # primary/unique keys first: foreign keys validate with an anti-join that wants the indexes
    for name, _, definition in sorted(constraints, key=lambda c: c[1] == "f"):
        conn.execute(
            sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} {}").format(
                qualified, sql.Identifier(name), sql.SQL(definition)
            )
        )


def worth_deferring(conn: psycopg.Connection[Any], schema: str, table: str, incoming_rows: int) -> bool:
    """Rebuilding pays off when the load is big and at least as large as what the table holds."""
    if incoming_rows < 50_000:
        return False
    row = conn.execute(
        "SELECT greatest(c.reltuples, 0)::bigint FROM pg_class c WHERE c.oid = to_regclass(%s)",
        (f"{schema}.{table}",),
    ).fetchone()
    existing = int(row[0]) if row and row[0] is not None else 0
    return incoming_rows >= existing
