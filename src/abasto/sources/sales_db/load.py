"""Load the generated world's history into the sales database: one transaction, COPY, re-load replaces."""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import datetime

import pyarrow as pa
from psycopg import sql

from abasto.sources.deferred_indexes import indexes_deferred
from abasto.sources.pg import connect
from abasto.sources.pg_copy import copy_arrow
from abasto.sources.progress import LoadResult, ProgressCallback, ignore_progress
from abasto.sources.sales_db.schema import SCHEMA, TABLES, create_schema
from abasto.sources.sales_db.world_mapping import world_to_sales

#: tables receiving at least this many rows are loaded without indexes, which are rebuilt after
BULK_ROWS = 50_000


def load_world(
    dsn: str,
    world_tables: Mapping[str, pa.Table],
    *,
    until: datetime,
    on_progress: ProgressCallback = ignore_progress,
) -> LoadResult:
    """Replace the content of schema ``sales`` by the world's history (``hour_start < until``).

    Creates the schema if needed, then in ONE transaction truncates every sales table and COPYs
    the new rows in, so readers see either the old database or the new one, and a re-load with the
    same world gives the same database. Imported datasets (FreshRetailNet) in the same tables are
    replaced too: the world *is* the bottler's database.

    Raises:
        InvalidInputError: a world table/column is missing or malformed, or ``until`` is naive.
        ServiceUnavailableError: PostgreSQL cannot be reached.
        psycopg.Error: PostgreSQL rejected the data (for example a broken foreign key); nothing is changed.
    """
    rows = world_to_sales(world_tables, until=until)
    create_schema(dsn)
    started = time.perf_counter()
    counts: dict[str, int] = {}
    with connect(dsn) as conn:
        conn.execute("SET LOCAL maintenance_work_mem = '256MB'")
        conn.execute(
            sql.SQL("TRUNCATE {}").format(sql.SQL(", ").join(sql.Identifier(SCHEMA, name) for name in TABLES))
        )
        for name in TABLES:
            data = rows[name]
            if data.num_rows >= BULK_ROWS:
                with indexes_deferred(conn, SCHEMA, name):
                    counts[name] = copy_arrow(conn, SCHEMA, name, data, on_progress=on_progress)
            else:
                counts[name] = copy_arrow(conn, SCHEMA, name, data, on_progress=on_progress)
    return LoadResult(rows=counts, seconds=time.perf_counter() - started)
