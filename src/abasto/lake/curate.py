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

Data quality (:mod:`abasto.lake.quality`, rules in :mod:`abasto.lake.table_rules`): before each
commit the batch's latest images (and any change record with a null key) are checked; failing
rows go to ``curated.quarantine`` and only passing rows are merged (a quarantined update leaves the
key's previous image in place; deletes are never checked). A raw file that cannot be read is
quarantined as ``unreadable_file`` and skipped. Either way the ledger moves past the batch: what
was refused is recorded, not retried. Iceberg commits one table at a time, so the quarantine
append comes first and is keyed (:func:`~abasto.lake.quality.quarantine_new_rows`): a run that
fails after it, or a re-run, records nothing twice; the reverse order could lose the record of a
refused row behind an advanced ledger.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import CommitFailedException, NotInstalledError, ValidationError
from pyiceberg.expressions import AlwaysTrue, BooleanExpression
from pyiceberg.table import Table, Transaction
from pyiceberg.table.metadata import TableMetadata
from pyiceberg.table.update import TableUpdate

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
from abasto.lake.quality import (
    QUARANTINE_SCHEMA,
    SOURCE_FILE_COLUMN,
    QualityContext,
    QualityOutcome,
    QualityReport,
    Rule,
    TableCheck,
    bad_file_row,
    check_rows,
    combine_reports,
    quarantine_new_rows,
)
from abasto.lake.raw_files import (
    CDC_COLUMNS,
    FILE_INDEX,
    RawFile,
    UnreadableFile,
    discover_raw_files,
    read_readable_changes,
)
from abasto.lake.table_rules import checks_for, domains_for, load_domains, rules_for
from abasto.lake.tables import ALL_TABLES, TableSpec, get_spec
from abasto.settings import Settings, load_settings

__all__ = ["CurateResult", "curate_table", "run_curate_jobs"]


@dataclass(frozen=True)
class CurateResult:
    """What one run of the job did to ``curated.<table>``.

    ``files``: raw files applied; ``rows_in``: change records read from them; ``rows_upserted``:
    latest images written (inserts and updates, one per key and commit); ``rows_deleted``: rows
    that existed and were removed; ``snapshot_id``: the table's current snapshot afterwards
    (``None`` while it has no data); ``duration_s``: wall time of the run; ``quality``: the
    data-quality report (rows checked, passed, quarantined per rule, findings, unreadable files).
    """

    table: str
    files: int
    rows_in: int
    rows_upserted: int
    rows_deleted: int
    snapshot_id: int | None
    duration_s: float
    quality: QualityReport | None = None


def curate_table(
    spec: TableSpec,
    *,
    catalog: Catalog,
    raw_uri: str,
    max_files: int | None = None,
    run_id: str | None = None,
    now: datetime | None = None,
) -> CurateResult:
    """Apply the pending raw files of ``spec.source`` to ``curated.<spec.name>``.

    ``max_files`` bounds the files merged per commit (a backlog is applied in several commits).
    Rows failing the table's quality rules and unreadable raw files are quarantined (tagged with
    ``run_id``) and skipped; ``now`` is the instant freshness is judged against (default: now).

    Raises:
        InvalidInputError: raw files break the contract beyond a row or a file (a key column
            absent from the batch, readable files that cannot be united).
        TransientError: another writer committed to the table meanwhile, or a raw file could not
            be fetched; run again.
        ConfigError: pyiceberg-core (partition transforms) is not installed.
    """
    started = time.perf_counter()
    files = rows_in = upserted = deleted = 0
    table = load_table(catalog, spec.identifier)
    ledger = Ledger.from_properties(table.properties) if table is not None else Ledger()
    pending = ledger.pending(discover_raw_files(raw_uri, spec.source))
    step = max_files or len(pending) or 1
    rules, checks = rules_for(spec), checks_for(spec)
    ctx: QualityContext | None = None
    reports: list[QualityReport] = []
    for start in range(0, len(pending), step):
        batch = pending[start : start + step]
        read = read_readable_changes(batch, schema=_table_schema(table))
        changes = read.changes
        rows_in += changes.num_rows
        if ctx is None:  # domains once per run, and only when there is something to check
            ctx = QualityContext(
                now=now or datetime.now(UTC), domains=load_domains(catalog, raw_uri, domains_for(spec))
            )
        bad_files = _bad_files(spec, read.unreadable, run_id, ctx.now)
        if not changes.num_columns:  # no readable file in the batch: record them, move on
            quarantine_new_rows(catalog, bad_files)
            reports.append(QualityReport(spec.identifier, 0, 0, {}, {}, _reasons(read.unreadable)))
            if table is not None:  # a table not created yet re-reads them next run (keyed: no repeat)
                ledger = ledger.advance(batch, position=ledger.position)
                _commit_ledger(table, spec, ledger)
                files += len(batch)
                table = catalog.load_table(spec.identifier)
            continue
        unreadable = {i for i, f in enumerate(batch) if any(u.file == f for u in read.unreadable)}
        changes, replace, ledger = _plan_batch(changes, batch, ledger, unreadable=unreadable)
        latest, checked = _check_batch(spec, changes, batch, rules, checks, ctx, run_id)
        quarantine_new_rows(catalog, pa.concat_tables([checked.failed, bad_files]))
        reports.append(dataclasses.replace(checked.report, unreadable_files=_reasons(read.unreadable)))
        data_schema = _data_schema(changes.schema, spec.keys)
        if table is None:
            table = ensure_table(
                catalog,
                spec.identifier,
                data_schema,
                keys=spec.keys,
                partition_by=spec.partition_by,
                metadata=spec.metadata(),
            )
        up, dele = _commit_batch(table, spec, latest, data_schema, batch, ledger, replace=replace)
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
        quality=combine_reports(spec.identifier, reports),
    )


def run_curate_jobs(
    settings: Settings | None = None, tables: Iterable[str] | None = None, *, catalog: Catalog | None = None
) -> list[CurateResult]:
    """Curate ``tables`` (names of :data:`~abasto.lake.tables.ALL_TABLES`; all if omitted)."""
    settings = settings or load_settings()
    catalog = catalog or open_catalog(settings)
    specs = [get_spec(t) for t in tables] if tables else list(ALL_TABLES.values())
    return [curate_table(spec, catalog=catalog, raw_uri=settings.raw_uri) for spec in specs]


def _plan_batch(
    changes: pa.Table, batch: list[RawFile], ledger: Ledger, *, unreadable: set[int] | None = None
) -> tuple[pa.Table, bool, Ledger]:
    """What a batch does to the table: the change records to merge, whether they replace the whole
    table (a newer full load or a truncate) rather than update it, and the advanced ledger.

    Kept: the rows of the newest full load (a newer one than the table holds starts the table over;
    further parts of the one it holds are merged; older ones are superseded), and the CDC records
    after the ledger's position, itself moved to (``L``, :data:`SEQ_ALL`) by a newer load at ``L``.
    Then, if a ``T`` remains, only the records after the last one.

    ``unreadable``: positions in ``batch`` of files that could not be read. They count as applied
    (the ledger moves past them) but hold no rows: an unreadable load is ignored, and a newer load
    missing a part is merged into the table rather than replacing it (no row is lost for a part
    that could not be read).
    """
    skipped = unreadable or set()
    readable = [(i, f) for i, f in enumerate(batch) if i not in skipped]
    newest = max((f.first_lsn for _, f in readable if f.kind == "full_load"), default=-1)
    new_load = newest > ledger.load_lsn
    complete = not any(batch[i].kind == "full_load" and batch[i].first_lsn == newest for i in skipped)
    load_lsn = newest if new_load else ledger.load_lsn
    position = max(ledger.position, (load_lsn, SEQ_ALL)) if new_load else ledger.position
    loads = [i for i, f in readable if f.kind == "full_load" and f.first_lsn == load_lsn]
    cdc = [i for i, f in readable if f.kind == "cdc"]
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
    return changes, (new_load and complete) or truncated, advanced


def _check_batch(
    spec: TableSpec,
    changes: pa.Table,
    batch: list[RawFile],
    rules: Sequence[Rule],
    checks: Sequence[TableCheck],
    ctx: QualityContext,
    run_id: str | None,
) -> tuple[pa.Table, QualityOutcome]:
    """The latest change record per key that passed the rules (deletes included, unchecked), and
    the check's outcome. Checked: the latest non-delete images, plus every change record with a
    null key (it cannot be merged; it fails the key rule and is quarantined whatever its ``Op``).

    Raises:
        InvalidInputError: a key column is absent from the batch.
    """
    keys = spec.keys
    null_key: pa.Array | pa.ChunkedArray | None = None
    if changes.num_rows and all(k in changes.column_names for k in keys):
        for k in keys:
            if changes[k].null_count:
                mask = pc.is_null(changes[k])
                null_key = mask if null_key is None else pc.or_(null_key, mask)
    keyed = changes.filter(pc.invert(null_key)) if null_key is not None else changes
    latest = latest_sorted(keyed, keys)
    is_delete = pc.fill_null(pc.equal(latest["Op"], "D"), False) if latest.num_rows else None
    has_deletes = is_delete is not None and bool(pc.any(is_delete).as_py())
    images = latest.filter(pc.invert(is_delete)) if has_deletes and is_delete is not None else latest
    checked = pa.concat_tables([changes.filter(null_key), images]) if null_key is not None else images
    outcome = check_rows(
        spec.identifier, _with_source_file(checked, batch), rules, ctx=ctx, checks=checks, run_id=run_id
    )
    passed = outcome.passed
    if has_deletes and is_delete is not None:  # images stay first, in key order (insert_latest's input)
        passed = pa.concat_tables([passed, latest.filter(is_delete).drop_columns([FILE_INDEX])])
    return passed, outcome


def _with_source_file(rows: pa.Table, batch: list[RawFile]) -> pa.Table:
    """``rows`` with :data:`FILE_INDEX` (position in ``batch``) replaced by the raw file's path
    (dictionary-encoded: no string per row)."""
    names = pa.array([f.relpath for f in batch], pa.string())
    chunks = [pa.DictionaryArray.from_arrays(c, names) for c in rows[FILE_INDEX].chunks]
    source = pa.chunked_array(chunks, pa.dictionary(pa.int32(), pa.string()))
    return rows.drop_columns([FILE_INDEX]).append_column(SOURCE_FILE_COLUMN, source)


def _bad_files(
    spec: TableSpec, unreadable: Sequence[UnreadableFile], run_id: str | None, now: datetime
) -> pa.Table:
    rows = [
        bad_file_row(spec.identifier, u.file.relpath, u.reason, run_id=run_id, now=now) for u in unreadable
    ]
    return pa.concat_tables(rows) if rows else QUARANTINE_SCHEMA.empty_table()


def _reasons(unreadable: Sequence[UnreadableFile]) -> dict[str, str]:
    return {u.file.relpath: u.reason for u in unreadable}


def _table_schema(table: Table | None) -> pa.Schema | None:
    return normalize_schema(table.schema().as_arrow()) if table is not None else None


class _Transaction(Transaction):
    """A ``Transaction`` that computes ``table_metadata`` once per state of the transaction.

    pyiceberg 0.12 re-applies every pending update to the table's metadata and deep-copies the
    result (every snapshot with its summary) on each access, some fifty times per merge commit: half
    the commit's time once a table has a few dozen snapshots. The result only changes when the
    table's metadata or the pending updates do, and both are replaced (never changed in place) when
    they do, so the last result is returned until either object is another one.
    """

    _last: tuple[TableMetadata, tuple[TableUpdate, ...], TableMetadata] | None = None

    @property
    def table_metadata(self) -> TableMetadata:
        base, updates, last = self._table.metadata, self._updates, self._last
        if last is not None and last[0] is base and last[1] is updates:
            return last[2]
        metadata = super().table_metadata
        self._last = (base, updates, metadata)
        return metadata


def _commit_ledger(table: Table, spec: TableSpec, ledger: Ledger) -> None:
    """Advance the ledger alone (a batch with nothing to merge)."""
    try:
        with _Transaction(table) as tx:
            tx.set_properties(ledger.as_properties())
    except CommitFailedException as exc:
        raise TransientError(f"{spec.identifier}: another writer committed meanwhile ({exc})") from exc


def _data_schema(schema: pa.Schema, keys: tuple[str, ...]) -> pa.Schema:
    fields = [f for f in schema if f.name not in (*CDC_COLUMNS, FILE_INDEX)]
    return normalize_schema(pa.schema(fields), required=keys)


def _commit_batch(
    table: Table,
    spec: TableSpec,
    latest: pa.Table,
    data_schema: pa.Schema,
    batch: list[RawFile],
    ledger: Ledger,
    *,
    replace: bool,
) -> tuple[int, int]:
    """One atomic commit of ``latest`` (one change record per key, images before deletes):
    schema evolution, partition (or, if ``replace``, whole-table) overwrite and the advanced ledger."""
    try:
        with _Transaction(table) as tx:
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
