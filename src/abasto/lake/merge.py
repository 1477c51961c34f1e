"""Merge change records into a table's current rows, in Arrow (DuckDB only ranks and joins row ids).

Pure functions over Arrow tables, so the same merge serves any writer. DuckDB computes which rows
survive (window ranking, anti-join) and returns row positions; the rows themselves are taken from
the Arrow inputs, so column types never round-trip through another type system.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from abasto.errors import InvalidInputError
from abasto.lake.raw_files import CDC_COLUMNS, FILE_INDEX

__all__ = [
    "MergeOutcome",
    "after_last_truncate",
    "apply_latest",
    "conform",
    "insert_latest",
    "latest_per_key",
    "latest_sorted",
    "replace_all",
    "sorted_rows",
]

_ROW = "__row"


@dataclass(frozen=True)
class MergeOutcome:
    """The merged rows and what the change records did."""

    table: pa.Table
    upserted: int
    deleted: int


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _connect() -> duckdb.DuckDBPyConnection:
    return duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})


def _for_duckdb(table: pa.Table, columns: Sequence[str]) -> pa.Table:
    """``columns`` of ``table`` as DuckDB compares them; zoned timestamps as epoch integers (exact,
    and DuckDB would otherwise need pytz to map Arrow zone names like ``+00:00``)."""
    arrays = []
    for name in columns:
        column = table[name]
        if pa.types.is_timestamp(column.type) and column.type.tz is not None:
            column = pc.cast(column, pa.int64())
        arrays.append(column)
    return pa.Table.from_arrays(arrays, names=list(columns))


def _with_row_ids(table: pa.Table, columns: Sequence[str]) -> pa.Table:
    ids = pa.array(np.arange(table.num_rows, dtype=np.int64))
    return _for_duckdb(table, columns).append_column(_ROW, ids)


def _check_keys(changes: pa.Table, keys: Sequence[str]) -> None:
    missing = [k for k in keys if k not in changes.column_names]
    if missing:
        raise InvalidInputError(f"change records lack key columns {missing}")
    for k in keys:
        if changes[k].null_count:
            raise InvalidInputError(f"{changes[k].null_count} change records have a null key column {k!r}")


def _row_ids(con: duckdb.DuckDBPyConnection, sql: str) -> pa.Array:
    return con.execute(sql).to_arrow_table()[_ROW].combine_chunks()


def after_last_truncate(changes: pa.Table) -> tuple[pa.Table, bool]:
    """The change records after the last ``T`` (TRUNCATE) by (``_lsn``, file, ``_seq``), and whether
    there was one. Without a ``T``, ``changes`` unchanged; with one, the table is empty at that
    point, so only what follows it matters (the ``T`` records themselves, key-less, are dropped)."""
    if changes.num_rows == 0:
        return changes, False
    is_truncate = pc.fill_null(pc.equal(changes["Op"], "T"), False)
    if not pc.any(is_truncate).as_py():
        return changes, False
    marks = changes.filter(is_truncate)
    lsn, file, seq = max(
        zip(
            marks["_lsn"].to_pylist(),
            marks[FILE_INDEX].to_pylist(),
            marks["_seq"].to_pylist(),
            strict=True,
        )
    )
    c_lsn, c_file, c_seq = changes["_lsn"], changes[FILE_INDEX], changes["_seq"]
    later = pc.or_(
        pc.greater(c_lsn, lsn),
        pc.and_(
            pc.equal(c_lsn, lsn),
            pc.or_(
                pc.greater(c_file, file),
                pc.and_(pc.equal(c_file, file), pc.greater(c_seq, seq)),
            ),
        ),
    )
    return changes.filter(later), True


def latest_per_key(changes: pa.Table, keys: Sequence[str]) -> pa.Table:
    """The last change record of every key, ordered by (``_lsn``, file, ``_seq``).

    Raises:
        InvalidInputError: a key column is missing or null in a change record.
    """
    _check_keys(changes, keys)
    if changes.num_rows == 0:
        return changes
    order = ("_lsn", FILE_INDEX, "_seq")
    con = _connect()
    try:
        con.register("changes", _with_row_ids(changes, [*keys, *order]))
        part = ", ".join(_quote(k) for k in keys)
        ids = _row_ids(
            con,
            f"SELECT {_ROW} FROM changes QUALIFY row_number() OVER "
            f"(PARTITION BY {part} ORDER BY _lsn DESC, {FILE_INDEX} DESC, _seq DESC) = 1 ORDER BY {_ROW}",
        )
    finally:
        con.close()
    return changes.take(ids)


def latest_sorted(changes: pa.Table, keys: Sequence[str]) -> pa.Table:
    """The rows of :func:`latest_per_key`, sorted by ``keys`` rather than in input order.

    One stable sort by (``keys``, ``_lsn``, file, ``_seq``): the last record of each run of equal
    keys is the latest. Cheaper than the window ranking (no round trip through DuckDB, one
    ``take``), and a batch whose keys are all distinct (a full load) keeps every row.

    Raises:
        InvalidInputError: a key column is missing or null in a change record.
    """
    _check_keys(changes, keys)
    if changes.num_rows == 0:
        return changes
    order = pc.sort_indices(
        changes.select([*keys, "_lsn", FILE_INDEX, "_seq"]),
        [(name, "ascending") for name in (*keys, "_lsn", FILE_INDEX, "_seq")],
    )
    rows = changes.take(order)
    last = _last_of_runs(rows, keys)
    return rows if last is None else rows.filter(last)


def _last_of_runs(rows: pa.Table, keys: Sequence[str]) -> pa.Array | None:
    """Mask of the rows (sorted by ``keys``) whose next row has other keys; ``None`` if all do."""
    n = rows.num_rows
    if n < 2:  # a single row is the last of its run
        return None
    same: pa.Array | None = None
    for k in keys:
        column = rows[k].combine_chunks()
        equal = pc.equal(column.slice(0, n - 1), column.slice(1))
        same = equal if same is None else pc.and_(same, equal)
    if same is None or not pc.any(same).as_py():
        return None
    return pa.concat_arrays([pc.invert(same), pa.array([True])])


def insert_latest(latest: pa.Table, keys: Sequence[str], schema: pa.Schema) -> MergeOutcome:
    """:func:`apply_latest` onto no current rows, for ``latest`` from :func:`latest_sorted`: its
    images are already one per key in key order, so they are only conformed to ``schema``."""
    if latest.num_rows == 0:
        return apply_latest(schema.empty_table(), latest, keys, schema)
    is_delete = pc.fill_null(pc.equal(latest["Op"], "D"), False)
    images = latest.filter(pc.invert(is_delete)) if pc.any(is_delete).as_py() else latest
    data_columns = [c for c in images.column_names if c not in (*CDC_COLUMNS, FILE_INDEX)]
    return MergeOutcome(conform(images.select(data_columns), schema), upserted=images.num_rows, deleted=0)


def apply_latest(current: pa.Table, latest: pa.Table, keys: Sequence[str], schema: pa.Schema) -> MergeOutcome:
    """``current`` with every key of ``latest`` replaced by its image, or removed if its last op is ``D``.

    ``latest`` holds one change record per key (see :func:`latest_per_key`); the result has
    ``schema`` (columns absent from an input are null), sorted by ``keys``.
    """
    is_delete = (
        pc.fill_null(pc.equal(latest["Op"], "D"), False) if latest.num_rows else pa.array([], pa.bool_())
    )
    images = latest.filter(pc.invert(is_delete)) if latest.num_rows else latest
    deleted = 0
    kept = current
    if current.num_rows and latest.num_rows:
        con = _connect()
        try:
            con.register("cur", _with_row_ids(current, keys))
            con.register("lat", _for_duckdb(latest, keys).append_column("_del", is_delete))
            on = " AND ".join(f"c.{_quote(k)} = l.{_quote(k)}" for k in keys)
            kept = current.take(
                _row_ids(con, f"SELECT c.{_ROW} FROM cur c ANTI JOIN lat l ON {on} ORDER BY 1")
            )
            row = con.execute(f"SELECT count(*) FROM cur c JOIN lat l ON {on} WHERE l._del").fetchone()
            deleted = int(row[0]) if row else 0
        finally:
            con.close()
    data_columns = [c for c in images.column_names if c not in (*CDC_COLUMNS, FILE_INDEX)]
    merged = pa.concat_tables([conform(kept, schema), conform(images.select(data_columns), schema)])
    return MergeOutcome(sorted_rows(merged, keys, schema), upserted=images.num_rows, deleted=deleted)


def replace_all(current: pa.Table, latest: pa.Table, keys: Sequence[str], schema: pa.Schema) -> MergeOutcome:
    """The table overwritten by ``latest``'s images (a truncate or a new full load: nothing of
    ``current`` survives); ``deleted`` counts the rows of ``current`` whose key is gone."""
    outcome = apply_latest(schema.empty_table(), latest, keys, schema)
    deleted = current.num_rows
    if current.num_rows and outcome.table.num_rows:
        con = _connect()
        try:
            con.register("cur", _for_duckdb(current, keys))
            con.register("new", _for_duckdb(outcome.table, keys))
            on = " AND ".join(f"c.{_quote(k)} = n.{_quote(k)}" for k in keys)
            row = con.execute(f"SELECT count(*) FROM cur c ANTI JOIN new n ON {on}").fetchone()
            deleted = int(row[0]) if row else 0
        finally:
            con.close()
    return MergeOutcome(outcome.table, upserted=outcome.upserted, deleted=deleted)


def sorted_rows(table: pa.Table, keys: Sequence[str], schema: pa.Schema) -> pa.Table:
    """``table`` conformed to ``schema`` and sorted by ``keys`` (the layout the job writes)."""
    table = conform(table, schema)
    return table.sort_by([(k, "ascending") for k in keys]) if table.num_rows else table


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` with exactly ``schema``'s columns and types (missing columns are null)."""
    columns = []
    for field in schema:
        if field.name in table.column_names:
            columns.append(pc.cast(table[field.name], field.type))
        else:
            columns.append(pa.nulls(table.num_rows, field.type))
    return pa.Table.from_arrays(columns, schema=schema)
