"""Bulk-load a pyarrow Table into a PostgreSQL table with ``COPY ... FROM STDIN (FORMAT csv)``.

pyarrow's C++ CSV writer renders the rows (fast, no Python per value); every valid value is quoted
and nulls are left empty and unquoted, so PostgreSQL tells NULL from the empty string exactly.
List columns become PostgreSQL array literals (``{1,2,3}``) first, since CSV has no list type.
"""

from __future__ import annotations

import io

import psycopg
import pyarrow as pa
import pyarrow.csv as pa_csv
from psycopg import sql

from abasto.errors import InvalidInputError
from abasto.sources.progress import LoadProgress, ProgressCallback, ignore_progress

#: rows rendered and sent per COPY write (also the progress granularity)
DEFAULT_CHUNK_ROWS = 100_000

_WRITE_OPTIONS = pa_csv.WriteOptions(include_header=False, quoting_style="all_valid")


def copy_arrow(
    conn: psycopg.Connection[object],
    schema: str,
    table: str,
    data: pa.Table,
    *,
    on_progress: ProgressCallback = ignore_progress,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> int:
    """COPY every row of ``data`` into ``schema.table``; columns are matched by name.

    Runs inside the connection's current transaction and sets its TimeZone to UTC (``SET LOCAL``),
    which is how time-zone-aware timestamps are sent. Returns the number of rows copied.

    Raises:
        InvalidInputError: a list column holds values that cannot be written as an array literal.
        psycopg.Error: PostgreSQL rejected a row (constraint, type).
    """
    prepared = _csv_ready(data)
    statement = sql.SQL("COPY {}.{} ({}) FROM STDIN (FORMAT csv)").format(
        sql.Identifier(schema),
        sql.Identifier(table),
        sql.SQL(", ").join(sql.Identifier(name) for name in prepared.column_names),
    )
    total = prepared.num_rows
    done = 0
    conn.execute("SET LOCAL TimeZone = 'UTC'")
    with conn.cursor() as cur, cur.copy(statement) as copy:
        for start in range(0, total, chunk_rows):
            chunk = prepared.slice(start, chunk_rows)
            buffer = io.BytesIO()
            pa_csv.write_csv(chunk, buffer, _WRITE_OPTIONS)
            copy.write(buffer.getvalue())
            done += chunk.num_rows
            on_progress(LoadProgress(table=f"{schema}.{table}", rows_done=done, rows_total=total))
    if total == 0:
        on_progress(LoadProgress(table=f"{schema}.{table}", rows_done=0, rows_total=0))
    return done


def _csv_ready(data: pa.Table) -> pa.Table:
    """Replace list columns by PostgreSQL array literals; write time-zone-aware timestamps in UTC.

    Arrow renders a time-zone-aware timestamp ~15x slower than a naive one, so aware columns are
    reinterpreted as naive UTC wall time (a metadata-only cast) and the COPY runs with TimeZone UTC.
    """
    columns: list[pa.ChunkedArray | pa.Array] = []
    for name, column in zip(data.column_names, data.columns, strict=True):
        if pa.types.is_list(column.type) or pa.types.is_large_list(column.type):
            columns.append(array_literals(column, name))
        elif pa.types.is_timestamp(column.type) and column.type.tz is not None:
            columns.append(
                column.cast(pa.timestamp(column.type.unit, tz="UTC")).cast(pa.timestamp(column.type.unit))
            )
        else:
            columns.append(column)
    return pa.table(columns, names=data.column_names)


def array_literals(column: pa.ChunkedArray | pa.Array, name: str = "?") -> pa.Array:
    """``[1, 2]`` → ``'{1,2}'`` for lists of numbers or booleans (null elements become NULL).

    Done in Python: list columns are small (route weekdays), never the big fact tables.

    Raises:
        InvalidInputError: the list's values are not numbers or booleans.
    """
    value_type = column.type.value_type
    if not (
        pa.types.is_integer(value_type) or pa.types.is_floating(value_type) or pa.types.is_boolean(value_type)
    ):
        raise InvalidInputError(
            f"column {name!r}: lists of {value_type} cannot be copied; "
            "only lists of numbers or booleans are supported"
        )
    literals = [
        None if values is None else "{" + ",".join(_element(v) for v in values) + "}"
        for values in column.to_pylist()
    ]
    return pa.array(literals, pa.string())


def _element(value: object) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "t" if value else "f"
    return repr(value) if isinstance(value, float) else str(value)
