"""The raw → curated merge job for change-captured tables (the Glue job of the seed).

For one :class:`~abasto.lake.tables.TableSpec`: read the raw files not applied yet, keep the
latest image per key by (``_lsn``, ``_seq``), apply deletes, and overwrite only the partitions the
changes touch (the whole table when it is unpartitioned) in one Iceberg commit that also advances
the ledger (:mod:`abasto.lake.ledger`). Re-running, or replaying a file, changes nothing; a column
that appears in the raw files is added to the table (union by name), older rows read it as null.

Two kinds of batch replace the table instead (every partition overwritten): one holding a newer
full load (``--reload``: the table becomes that load plus the changes after its LSN; older loads
and changes at or below it are superseded) and one holding a ``T`` (a source TRUNCATE: the table
becomes the changes after the last ``T``).

pyiceberg's row-level ``upsert`` is avoided on purpose (about a minute per 100k rows): the merge
runs in Arrow/DuckDB (:mod:`abasto.lake.merge`) and the write is a partition-aligned overwrite.
One writer per table at a time is assumed (the trigger layer serialises jobs); a concurrent
commit fails cleanly with a retryable error rather than losing data.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import CommitFailedException, NotInstalledError, ValidationError
from pyiceberg.expressions import AlwaysTrue, BooleanExpression
from pyiceberg.table import Table

from abasto.catalog import covering_filter, ensure_table, load_table, open_catalog, parse_partition
from abasto.catalog.arrow_types import normalize_schema, normalize_table
from abasto.errors import ConfigError, InvalidInputError, TransientError
from abasto.lake.append import append_rows
from abasto.lake.ledger import SEQ_ALL, Ledger, batch_summary
from abasto.lake.merge import (
    after_last_truncate,
    apply_latest,
    insert_latest,
    latest_sorted,
    replace_all,
    sorted_rows,
)
from abasto.lake.raw_files import CDC_COLUMNS, FILE_INDEX, RawFile, discover_raw_files, read_changes
from abasto.lake.tables import ALL_TABLES, TableSpec, get_spec
from abasto.settings import Settings, load_settings

__all__ = ["CurateResult", "curate_table", "run_curate_jobs"]


@dataclass(frozen=True)
class CurateResult:
    """What one run of the job did to ``curated.<table>``.

    ``files``: raw files applied; ``rows_in``: change records read from them; ``rows_upserted``:
    latest images written (inserts and updates, one per key and commit); ``rows_deleted``: rows
    that existed and were removed; ``snapshot_id``: the table's current snapshot afterwards
    (``None`` while it has no data); ``duration_s``: wall time of the run.
    """

    table: str
    files: int
    rows_in: int
    rows_upserted: int
    rows_deleted: int
    snapshot_id: int | None
    duration_s: float


def curate_table(
    spec: TableSpec, *, catalog: Catalog, raw_uri: str, max_files: int | None = None
) -> CurateResult:
    """Apply the pending raw files of ``spec.source`` to ``curated.<spec.name>``.

    ``max_files`` bounds the files merged per commit (a backlog is applied in several commits).

    Raises:
        InvalidInputError: raw files break the contract (layout, columns, null keys, types).
        TransientError: another writer committed to the table meanwhile; run again.
        ConfigError: pyiceberg-core (partition transforms) is not installed.
    """
    started = time.perf_counter()
    files = rows_in = upserted = deleted = 0
    table = load_table(catalog, spec.identifier)
    ledger = Ledger.from_properties(table.properties) if table is not None else Ledger()
    pending = ledger.pending(discover_raw_files(raw_uri, spec.source))
    step = max_files or len(pending) or 1
    for start in range(0, len(pending), step):
        batch = pending[start : start + step]
        changes = read_changes(batch)
        rows_in += changes.num_rows
        changes, replace, ledger = _plan_batch(changes, batch, ledger)
        if table is None:
            table = ensure_table(
                catalog,
                spec.identifier,
                _data_schema(changes.schema, spec.keys),
                keys=spec.keys,
                partition_by=spec.partition_by,
                metadata=spec.metadata(),
            )
        up, dele = _commit_batch(table, spec, changes, batch, ledger, replace=replace)
        files, upserted, deleted = files + len(batch), upserted + up, deleted + dele
        table = catalog.load_table(spec.identifier)
    snap = table.current_snapshot() if table is not None else None
    return CurateResult(
        table=spec.identifier,
        files=files,
        rows_in=rows_in,
        rows_upserted=upserted,
        rows_deleted=deleted,
        snapshot_id=snap.snapshot_id if snap else None,
        duration_s=time.perf_counter() - started,
    )


def run_curate_jobs(
    settings: Settings | None = None, tables: Iterable[str] | None = None, *, catalog: Catalog | None = None
) -> list[CurateResult]:
    """Curate ``tables`` (names of :data:`~abasto.lake.tables.ALL_TABLES`; all if omitted)."""
    settings = settings or load_settings()
    catalog = catalog or open_catalog(settings)
    specs = [get_spec(t) for t in tables] if tables else list(ALL_TABLES.values())
    return [curate_table(spec, catalog=catalog, raw_uri=settings.raw_uri) for spec in specs]


def _plan_batch(changes: pa.Table, batch: list[RawFile], ledger: Ledger) -> tuple[pa.Table, bool, Ledger]:
    """What a batch does to the table: the change records to merge, whether they replace the whole
    table (a newer full load or a truncate) rather than update it, and the advanced ledger.

    Kept: the rows of the newest full load (a newer one than the table holds starts the table over;
    further parts of the one it holds are merged; older ones are superseded), and the CDC records
    after the ledger's position, itself moved to (``L``, :data:`SEQ_ALL`) by a newer load at ``L``.
    Then, if a ``T`` remains, only the records after the last one.
    """
    newest = max((f.first_lsn for f in batch if f.kind == "full_load"), default=-1)
    new_load = newest > ledger.load_lsn
    load_lsn = newest if new_load else ledger.load_lsn
    position = max(ledger.position, (load_lsn, SEQ_ALL)) if new_load else ledger.position
    loads = [i for i, f in enumerate(batch) if f.kind == "full_load" and f.first_lsn == load_lsn]
    cdc = [i for i, f in enumerate(batch) if f.kind == "cdc"]
    if changes.num_rows:
        lsn, seq = changes["_lsn"], changes["_seq"]
        later = pc.or_(
            pc.greater(lsn, position[0]), pc.and_(pc.equal(lsn, position[0]), pc.greater(seq, position[1]))
        )
        keep = pc.or_(
            pc.is_in(changes[FILE_INDEX], pa.array(loads, pa.int32())),
            pc.and_(pc.is_in(changes[FILE_INDEX], pa.array(cdc, pa.int32())), later),
        )
        if not pc.all(keep).as_py():  # a full load keeps every record: no copy
            changes = changes.filter(keep)
        fresh = changes.filter(pc.is_in(changes[FILE_INDEX], pa.array(cdc, pa.int32()))) if cdc else None
        if fresh is not None and fresh.num_rows:
            top = pc.max(fresh["_lsn"]).as_py()
            at_top = fresh.filter(pc.equal(fresh["_lsn"], top))
            position = max(position, (top, pc.max(at_top["_seq"]).as_py()))
    changes, truncated = after_last_truncate(changes)
    advanced = ledger.advance(batch, position=position, load_lsn=load_lsn)
    return changes, new_load or truncated, advanced


def _data_schema(schema: pa.Schema, keys: tuple[str, ...]) -> pa.Schema:
    fields = [f for f in schema if f.name not in (*CDC_COLUMNS, FILE_INDEX)]
    return normalize_schema(pa.schema(fields), required=keys)


def _commit_batch(
    table: Table, spec: TableSpec, changes: pa.Table, batch: list[RawFile], ledger: Ledger, *, replace: bool
) -> tuple[int, int]:
    """One atomic commit: schema evolution, partition (or, if ``replace``, whole-table) overwrite
    and the advanced ledger."""
    latest = latest_sorted(changes, spec.keys)
    data_schema = _data_schema(changes.schema, spec.keys)
    try:
        with table.transaction() as tx:
            if _has_new_columns(table, data_schema):
                with tx.update_schema() as update:
                    update.union_by_name(data_schema)
            target = normalize_schema(tx.table_metadata.schema().as_arrow(), required=spec.keys)
            if replace:
                row_filter: BooleanExpression = AlwaysTrue()
                current = table.scan().to_arrow()
            else:
                row_filter = _affected_partitions(table, spec, latest)
                current = (
                    table.scan(row_filter=row_filter).to_arrow() if latest.num_rows else target.empty_table()
                )
            if current.num_rows == 0:  # nothing to merge with (a first load, new partitions)
                outcome = insert_latest(latest, spec.keys, target)
            elif replace:
                outcome = replace_all(current, latest, spec.keys, target)
            else:
                outcome = apply_latest(current, latest, spec.keys, target)
            summary = batch_summary(batch)
            if current.num_rows == 0 and outcome.table.num_rows:  # nothing to replace there
                append_rows(tx, table.io, outcome.table, summary)
            elif not outcome.table.equals(sorted_rows(current, spec.keys, target)):
                tx.overwrite(outcome.table, overwrite_filter=row_filter, snapshot_properties=summary)
            tx.set_properties(ledger.as_properties())
    except NotInstalledError as exc:  # partition transforms (day, month…) are computed by pyiceberg-core
        raise ConfigError(str(exc), hint="pip install pyiceberg-core==0.10.1") from exc
    except CommitFailedException as exc:
        raise TransientError(f"{spec.identifier}: another writer committed meanwhile ({exc})") from exc
    except ValidationError as exc:
        raise InvalidInputError(f"{spec.identifier}: raw columns cannot evolve the table: {exc}") from exc
    return outcome.upserted, outcome.deleted


def _has_new_columns(table: Table, data_schema: pa.Schema) -> bool:
    current = {f.name: f for f in normalize_schema(table.schema().as_arrow())}
    for f in data_schema:
        known = current.get(f.name)
        if known is None or (known.type != f.type and not _fits(f.type, known.type)):
            return True
    return False


def _fits(new: pa.DataType, old: pa.DataType) -> bool:
    """``new`` values can be stored in an ``old`` column without widening it."""
    return bool(
        (pa.types.is_int32(new) and pa.types.is_int64(old))
        or (pa.types.is_float32(new) and pa.types.is_float64(old))
    )


def _affected_partitions(table: Table, spec: TableSpec, latest: pa.Table) -> BooleanExpression:
    """A row filter covering every partition holding a changed key, before or after the change."""
    if spec.partition_by is None or latest.num_rows == 0:
        return AlwaysTrue()
    clause = parse_partition(spec.partition_by)
    if clause.column in spec.keys:  # rows never move: the key says where they are
        return covering_filter(clause, latest[clause.column])
    images = latest.filter(pc.invert(pc.fill_null(pc.equal(latest["Op"], "D"), False)))
    values = [images[clause.column]] if clause.column in images.column_names else []
    existing = normalize_table(table.scan(selected_fields=(*spec.keys, clause.column)).to_arrow())
    if existing.num_rows:
        moved = existing.join(latest.select(list(spec.keys)), keys=list(spec.keys), join_type="left semi")
        values.append(moved[clause.column])
    if not values:
        return AlwaysTrue()
    typ = values[0].type
    return covering_filter(clause, pa.chunked_array([c for v in values for c in pc.cast(v, typ).chunks], typ))
