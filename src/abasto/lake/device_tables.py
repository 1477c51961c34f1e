"""Raw device events → curated ``sales_by_hour`` and ``stock_readings`` (issue 4).

Both tables are rebuilt hour by hour from the raw events table
(``<raw>/devices/pos_events/date=…/hour=…/part-….parquet``, :mod:`abasto.delivery.layout`), whose
partitions are the events' own UTC hours. A run of :func:`curate_device_table`:

1. lists the raw files and keeps those not in the table's ledger (:mod:`abasto.lake.device_files`);
2. reads **every** file of the hours those pending files fall in (applied ones included), so a
   late event, or a re-sent copy of an event in another file, recomputes its hour exactly;
3. deduplicates events by (``device_id``, ``seq``), keeping the first copy (lowest stream sequence);
4. checks the rows with :mod:`abasto.lake.quality` (non-null and non-negative quantities, known
   stores/SKUs when ``curated.customers``/``curated.products`` exist, unique keys, freshness);
   failing rows are left out, and those from the pending files go to ``curated.quarantine`` with
   the rule that failed (rows of applied files were quarantined by the run that applied them); a
   file that is not readable device events is quarantined whole (rule ``unreadable_file``) and
   counts as applied; the quarantine append precedes the table's commit and skips rows already
   there (:func:`~abasto.lake.quality.quarantine_new_rows`), so a failed run, re-run, records
   nothing twice;
5. replaces the rows of those hours (``sales_by_hour``: units, revenue, tickets per store, SKU and
   hour; ``stock_readings``: one row per ``stock`` event) and records the applied files, in one
   Iceberg commit. A recomputation identical to the rows in the table writes no snapshot.

Re-running, or replaying a raw file (same name), finds nothing pending and commits nothing.
"""

from __future__ import annotations

import json
import time
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import CommitFailedException, NotInstalledError
from pyiceberg.expressions import BooleanExpression
from pyiceberg.table import Table

from abasto.catalog import CURATED, covering_filter, ensure_table, load_table, parse_partition
from abasto.catalog.arrow_types import normalize_table
from abasto.delivery.layout import POS_EVENTS_PATH
from abasto.delivery.rows import POS_EVENTS_SCHEMA
from abasto.errors import ConfigError, NotFoundError, TransientError
from abasto.lake.append import append_rows
from abasto.lake.curate import CurateResult
from abasto.lake.device_files import DeviceFile, DeviceLedger, discover_device_files
from abasto.lake.ledger import SUMMARY_FILES
from abasto.lake.quality import (
    QUARANTINE_SCHEMA,
    SOURCE_FILE_COLUMN,
    QualityContext,
    QualityReport,
    Rule,
    bad_file_row,
    check_rows,
    freshness,
    known_values,
    non_negative,
    not_null,
    quarantine_new_rows,
    unique_keys,
)
from abasto.lake.storage import fetch_bytes, filesystem_for
from abasto.lake.tables import TableSpec

__all__ = [
    "DEFAULT_MAX_AGE",
    "DEVICE_TABLES",
    "SALES_BY_HOUR",
    "STOCK_READINGS",
    "curate_device_table",
    "get_device_spec",
    "is_device_table",
    "reference_domains",
]

_TS: Final = pa.timestamp("us", tz="UTC")
#: freshness limit of the newest event of a write (a finding, never a refusal)
DEFAULT_MAX_AGE: Final = timedelta(hours=2)

SALES_BY_HOUR: Final = TableSpec(
    name="sales_by_hour",
    source=POS_EVENTS_PATH,
    keys=("store_id", "sku", "hour_start"),
    partition_by="day(hour_start)",
    description="Hourly sales per store and SKU from POS sale scans: units, revenue, tickets",
)
STOCK_READINGS: Final = TableSpec(
    name="stock_readings",
    source=POS_EVENTS_PATH,
    keys=("device_id", "seq"),
    partition_by="day(event_time)",
    description="Shelf stock readings reported by POS devices, one row per stock event",
)
#: curated tables fed by the raw device events, by name
DEVICE_TABLES: Final[dict[str, TableSpec]] = {s.name: s for s in (SALES_BY_HOUR, STOCK_READINGS)}

SALES_SCHEMA: Final = pa.schema(
    [
        pa.field("store_id", pa.string(), nullable=False),
        pa.field("sku", pa.string(), nullable=False),
        pa.field("hour_start", _TS, nullable=False),
        pa.field("units", pa.int64(), nullable=False),
        pa.field("revenue", pa.float64(), nullable=False),
        pa.field("tickets", pa.int64(), nullable=False),
        pa.field("first_event_time", _TS, nullable=False),
        pa.field("last_event_time", _TS, nullable=False),
        pa.field("last_received_at", _TS, nullable=False),
    ]
)
STOCK_SCHEMA: Final = pa.schema(
    [
        pa.field("store_id", pa.string(), nullable=False),
        pa.field("sku", pa.string(), nullable=False),
        pa.field("device_id", pa.string(), nullable=False),
        pa.field("seq", pa.int64(), nullable=False),
        pa.field("event_time", _TS, nullable=False),
        pa.field("on_hand", pa.int32(), nullable=False),
        pa.field("received_at", _TS, nullable=False),
    ]
)

#: raw columns read (``type`` is filtered while reading); every one is in ``POS_EVENTS_SCHEMA``
_RAW_COLUMNS: Final = [
    POS_EVENTS_SCHEMA.field(name)
    for name in (
        "stream_seq",
        "batch_index",
        "device_id",
        "store_id",
        "seq",
        "event_time",
        "sku",
        "qty",
        "price",
        "on_hand",
        "received_at",
    )
]
#: raw columns a table does not use (not read)
_UNUSED: Final = {"sales_by_hour": ("on_hand",), "stock_readings": ("qty", "price")}
#: what each table reads of a raw file, then the index of the file
_READ_SCHEMAS: Final = {
    name: pa.schema(
        [
            *(f.with_nullable(True) for f in _RAW_COLUMNS if f.name not in unused),
            pa.field("_file", pa.int32()),
        ]
    )
    for name, unused in _UNUSED.items()
}
_EVENT_TYPE: Final = {"sales_by_hour": "sale", "stock_readings": "stock"}
_FILE: Final = "_file"
#: the hour partition of an event's file (checked against its ``event_time``)
_HOUR: Final = "_partition_hour"
#: raw files read at once
_READERS: Final = 4


def is_device_table(name: str) -> bool:
    return name.removeprefix(f"{CURATED}.") in DEVICE_TABLES


def get_device_spec(name: str) -> TableSpec:
    """The spec of device table ``name`` (``curated.`` prefix optional).

    Raises:
        NotFoundError: no such device table.
    """
    try:
        return DEVICE_TABLES[name.removeprefix(f"{CURATED}.")]
    except KeyError:
        raise NotFoundError(
            f"no curated device table {name!r}", hint=f"known: {', '.join(sorted(DEVICE_TABLES))}"
        ) from None


def _in_partition(rows: pa.Table, ctx: QualityContext) -> pa.Array | pa.ChunkedArray:
    """Fails an event whose UTC hour is not the ``hour=`` partition of its file (its hour would
    not be rebuilt from that partition)."""
    return pc.not_equal(pc.floor_temporal(rows["event_time"], unit="hour"), rows[_HOUR])


_IN_PARTITION: Final = Rule(
    "in_partition:event_time", "event_time must lie in its file's hour partition", _in_partition
)


def _event_rules(name: str) -> list[Rule]:
    if name == "sales_by_hour":
        return [
            _IN_PARTITION,
            not_null("sku", "qty", "price"),
            non_negative("qty", "price"),
            known_values("store_id", "stores"),
            known_values("sku", "skus"),
        ]
    return [
        _IN_PARTITION,
        not_null("sku", "on_hand"),
        non_negative("on_hand"),
        known_values("store_id", "stores"),
        known_values("sku", "skus"),
        unique_keys(STOCK_READINGS.keys),
    ]


_OUTPUT_RULES: Final = [unique_keys(SALES_BY_HOUR.keys), non_negative("units", "revenue", "tickets")]


def reference_domains(catalog: Catalog) -> dict[str, frozenset[str]]:
    """Known ``stores`` (``curated.customers.store_id``) and ``skus`` (``curated.products.sku``);
    a domain whose table does not exist, or holds no data, is left out (its rule then passes)."""
    domains: dict[str, frozenset[str]] = {}
    for domain, identifier, column in (
        ("stores", f"{CURATED}.customers", "store_id"),
        ("skus", f"{CURATED}.products", "sku"),
    ):
        table = load_table(catalog, identifier)
        if table is None or table.current_snapshot() is None:
            continue
        values = table.scan(selected_fields=(column,)).to_arrow()[column]
        domains[domain] = frozenset(v for v in values.to_pylist() if v is not None)
    return domains


@dataclass
class _Run:
    """Accumulated outcome of one :func:`curate_device_table` call (several commits possible)."""

    files: int = 0
    rows_in: int = 0
    written: int = 0
    replaced: int = 0
    checked: int = 0
    passed: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    findings: dict[str, str] = field(default_factory=dict)
    unreadable: dict[str, str] = field(default_factory=dict)


def curate_device_table(
    name: str,
    *,
    catalog: Catalog,
    raw_uri: str,
    select: Callable[[DeviceFile], bool] | None = None,
    max_files: int | None = None,
    now: datetime | None = None,
    max_age: timedelta = DEFAULT_MAX_AGE,
    domains: dict[str, frozenset[str]] | None = None,
    run_id: str | None = None,
) -> CurateResult:
    """Apply the pending raw device files to ``curated.<name>`` (``sales_by_hour`` or
    ``stock_readings``).

    ``select`` restricts the pending files (a backfill's date range; every pending file of a
    selected file's hour is applied with it); ``max_files`` bounds the
    pending files per commit (whole hours are never split); ``now`` and ``max_age`` drive the
    freshness check; ``domains`` overrides :func:`reference_domains`; ``run_id`` tags quarantined
    rows. The result's ``rows_in`` counts the rows of the pending files, ``rows_upserted`` the
    rows written for the recomputed hours, ``rows_deleted`` the rows they replaced, ``quality``
    the checks of the pending files' events (``rows_checked``/``rows_passed``: their events after
    deduplication; ``failures`` also names aggregated rows refused by the output rules, which the
    aggregation makes unreachable in practice).

    Raises:
        NotFoundError: ``name`` is not a device table.
        InvalidInputError: a file under the events table breaks the layout (a stray name).
        TransientError: a raw file could not be fetched, or another writer committed to the table
            meanwhile; run again.
    """
    spec = get_device_spec(name)
    started = time.perf_counter()
    table = load_table(catalog, spec.identifier)
    ledger = _ledger(table)
    everything = discover_device_files(raw_uri)
    pending = [f for f in ledger.pending(everything) if select is None or select(f)]
    acc = _Run()
    if pending:
        ctx = QualityContext(now=now or datetime.now(UTC), domains=_domains(catalog, domains))
        for group in _groups(pending, max_files):
            hours = {f.partition for f in group}
            inputs = [f for f in everything if f.partition in hours]
            table = _ensure(catalog, spec) if table is None else table
            ledger = _apply(table, spec, catalog, inputs, group, ledger, ctx, max_age, run_id, acc)
            table = catalog.load_table(spec.identifier)
    snap = table.current_snapshot() if table is not None else None
    report = QualityReport(
        spec.identifier, acc.checked, acc.passed, dict(acc.failures), acc.findings, dict(acc.unreadable)
    )
    return CurateResult(
        table=spec.identifier,
        files=acc.files,
        rows_in=acc.rows_in,
        rows_upserted=acc.written,
        rows_deleted=acc.replaced,
        snapshot_id=snap.snapshot_id if snap else None,
        duration_s=time.perf_counter() - started,
        quality=report,
    )


# --- internals ------------------------------------------------------------------------------------


def _ledger(table: Table | None) -> DeviceLedger:
    return DeviceLedger.from_properties(table.properties) if table is not None else DeviceLedger()


def _domains(catalog: Catalog, given: dict[str, frozenset[str]] | None) -> dict[str, frozenset[str]]:
    return dict(given) if given is not None else reference_domains(catalog)


def _ensure(catalog: Catalog, spec: TableSpec) -> Table:
    schema = SALES_SCHEMA if spec.name == "sales_by_hour" else STOCK_SCHEMA
    return ensure_table(
        catalog,
        spec.identifier,
        schema,
        keys=spec.keys,
        partition_by=spec.partition_by,
        metadata=spec.metadata(),
    )


def _groups(pending: list[DeviceFile], max_files: int | None) -> list[list[DeviceFile]]:
    """Pending files cut into commits of about ``max_files`` files, whole hours each."""
    by_hour: dict[str, list[DeviceFile]] = {}
    for f in pending:
        by_hour.setdefault(f.partition, []).append(f)
    if not max_files:
        return [pending]
    groups: list[list[DeviceFile]] = [[]]
    for files in by_hour.values():
        if groups[-1] and len(groups[-1]) + len(files) > max_files:
            groups.append([])
        groups[-1].extend(files)
    return groups


@dataclass(frozen=True)
class _Read:
    """The events of one table's type in a set of files, with the index of their file in
    ``_file``; the rows of each file (all types); the files that could not be read (index → why)."""

    events: pa.Table
    counts: list[int]
    unreadable: dict[int, str]


def _read(spec: TableSpec, inputs: Sequence[DeviceFile]) -> _Read:
    """Read ``inputs`` in parallel.

    Raises:
        TransientError: a file's bytes could not be fetched (storage, not content, failed).
    """
    wanted, schema = _EVENT_TYPE[spec.name], _READ_SCHEMAS[spec.name]
    with ThreadPoolExecutor(max_workers=_READERS) as pool:
        read = list(pool.map(lambda i: _read_one(wanted, schema, i, inputs[i]), range(len(inputs))))
    tables = [r[0] for r in read if not isinstance(r, str)]
    return _Read(
        pa.concat_tables(tables).unify_dictionaries() if tables else _as_read(schema).empty_table(),
        [0 if isinstance(r, str) else r[1] for r in read],
        {i: r for i, r in enumerate(read) if isinstance(r, str)},
    )


def _read_one(wanted: str, schema: pa.Schema, index: int, f: DeviceFile) -> tuple[pa.Table, int] | str:
    """The file's events of type ``wanted`` in ``schema`` (a column the file predates,
    such as ``batch_index``, reads as null) and its row count; or why the file is not a readable
    device-events file.

    Raises:
        TransientError: the bytes could not be fetched.
    """
    fs, path = filesystem_for(f.uri)
    try:
        with fs.open_input_file(path) as handle:
            return _parse(handle, wanted, schema, index)
    except (OSError, pa.ArrowException) as first:
        data = fetch_bytes(f.uri, f.key)  # a storage failure raises; a corrupt file parses badly
        try:
            return _parse(pa.BufferReader(data), wanted, schema, index)
        except (OSError, pa.ArrowException, _NotDeviceEvents) as exc:
            return f"not a readable device-events Parquet file ({len(data)} bytes): {exc or first}"
    except _NotDeviceEvents as exc:
        return str(exc)


class _NotDeviceEvents(Exception):
    """A readable Parquet file whose columns are not device events."""


def _parse(source: pa.NativeFile, wanted: str, schema: pa.Schema, index: int) -> tuple[pa.Table, int]:
    footer = pq.ParquetFile(source)
    present = set(footer.schema_arrow.names)
    missing = sorted(c.name for c in _RAW_COLUMNS if c.name not in present and not c.nullable) + (
        [] if "type" in present else ["type"]
    )
    if missing:
        raise _NotDeviceEvents(f"lacks device-event columns {missing}")
    read = [c for c in _RAW_COLUMNS if c.name in schema.names]
    dictionary = [c for c in _DICTIONARY if c in present]  # ids decode 3x faster as dictionaries
    pf = pq.ParquetFile(source, read_dictionary=dictionary, metadata=footer.metadata)
    table = pf.read(columns=[c.name for c in read if c.name in present] + ["type"])
    table = table.filter(pc.equal(table["type"], wanted))
    columns = [table[c.name] if c.name in present else pa.nulls(table.num_rows, c.type) for c in read]
    columns.append(pa.nulls(table.num_rows, pa.int32()).fill_null(index))
    try:
        return pa.table(columns, names=schema.names).cast(_as_read(schema)), pf.metadata.num_rows
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
        raise _NotDeviceEvents(f"columns of the wrong type ({exc})") from exc


#: string columns read as dictionaries (few distinct values per file)
_DICTIONARY: Final = ("device_id", "store_id", "sku", "type")


def _as_read(schema: pa.Schema) -> pa.Schema:
    """``schema`` with the :data:`_DICTIONARY` columns dictionary-encoded, as they are read."""
    return pa.schema(
        [f.with_type(pa.dictionary(pa.int32(), f.type)) if f.name in _DICTIONARY else f for f in schema]
    )


def _decoded(table: pa.Table, columns: Sequence[str]) -> pa.Table:
    for name in columns:
        i = table.schema.get_field_index(name)
        if pa.types.is_dictionary(table.schema.field(i).type):
            table = table.set_column(i, name, pc.cast(table[name], table.schema.field(i).type.value_type))
    return table


#: rows of ``ev`` that repeat an earlier event (same ``device_id``, ``seq``): only keys whose hash
#: repeats are ranked, so a batch without duplicates costs one pass over a 64-bit hash
_DUPLICATES_SQL: Final = """
WITH repeated AS (SELECT h FROM (SELECT hash(device_id, seq) AS h FROM ev) GROUP BY h HAVING count(*) > 1)
SELECT _i FROM (
    SELECT _i, row_number() OVER (
        PARTITION BY device_id, seq ORDER BY stream_seq, batch_index NULLS FIRST, _file
    ) AS rank
    FROM ev WHERE hash(device_id, seq) IN (SELECT h FROM repeated)
) WHERE rank > 1
"""
#: the hour as an integer (epoch hours): a time-zone-aware ``date_trunc`` costs ten times more
_SALES_SQL: Final = """
SELECT store_id, sku, make_timestamp(epoch_us(event_time) // 3600000000 * 3600000000) AS hour_start,
       sum(qty)::BIGINT AS units,
       (sum(round(qty * price * 100)::BIGINT) / 100.0)::DOUBLE AS revenue,
       count(*)::BIGINT AS tickets,
       min(event_time) AS first_event_time,
       max(event_time) AS last_event_time,
       max(received_at) AS last_received_at
FROM ok GROUP BY store_id, sku, epoch_us(event_time) // 3600000000
"""
_STOCK_SQL: Final = """
SELECT store_id, sku, device_id, seq, event_time, on_hand, received_at FROM ok
"""


def _connect() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
    con.execute("SET TimeZone = 'UTC'")
    return con


def _apply(
    table: Table,
    spec: TableSpec,
    catalog: Catalog,
    inputs: list[DeviceFile],
    group: list[DeviceFile],
    ledger: DeviceLedger,
    ctx: QualityContext,
    max_age: timedelta,
    run_id: str | None,
    acc: _Run,
) -> DeviceLedger:
    """Recompute the hours of ``group`` from ``inputs`` and commit them with the advanced ledger."""
    read = _read(spec, inputs)
    events = read.events
    fresh = [i for i, f in enumerate(inputs) if f.relpath not in ledger.applied]
    fresh_idx = pa.array(fresh, pa.int32())
    acc.rows_in += sum(read.counts[i] for i in fresh)
    con = _connect()
    try:
        indexed = events.append_column("_i", pa.array(np.arange(events.num_rows, dtype=np.int64)))
        con.register("ev", indexed)
        repeats = con.execute(_DUPLICATES_SQL).to_arrow_table()["_i"]
        unique = events.filter(pc.invert(pc.is_in(indexed["_i"], repeats))) if len(repeats) else events
        unique = _decoded(unique, ("store_id", "sku"))  # the domain rules compare plain strings
        names = pa.array([f.key for f in inputs], pa.string())
        new_rows = pc.is_in(unique[_FILE], fresh_idx)
        source = pa.DictionaryArray.from_arrays(unique[_FILE].combine_chunks(), names)  # no string copies
        hours = pa.array([f.hour_start for f in inputs], _TS)
        checked_in = (
            unique.append_column(_HOUR, pc.take(hours, unique[_FILE]))
            .append_column(SOURCE_FILE_COLUMN, source)
            .drop_columns([_FILE])
        )
        outcome = check_rows(
            spec.identifier,
            checked_in,
            _event_rules(spec.name),
            ctx=ctx,
            checks=[freshness("event_time", max_age)],
            run_id=run_id,
        )
        con.register("ok", outcome.passed)
        rows = con.execute(_SALES_SQL if spec.name == "sales_by_hour" else _STOCK_SQL).to_arrow_table()
    finally:
        con.close()
    fresh_names = pc.take(names, fresh_idx)
    acc.checked += pc.sum(new_rows).as_py() or 0
    failed = outcome.failed.filter(pc.is_in(outcome.failed["source_file"], fresh_names))
    event_failures = Counter(failed["rule"].to_pylist())
    acc.failures.update(event_failures)
    acc.passed += (pc.sum(new_rows).as_py() or 0) - sum(event_failures.values())
    acc.findings.update(outcome.report.findings)
    unreadable = [(inputs[i].key, why) for i, why in read.unreadable.items() if i in fresh]
    acc.unreadable.update(unreadable)
    bad_files = [
        bad_file_row(spec.identifier, key, why, run_id=run_id, now=ctx.now) for key, why in unreadable
    ]
    rows = rows.cast(SALES_SCHEMA if spec.name == "sales_by_hour" else STOCK_SCHEMA)
    if spec.name == "sales_by_hour":
        out = check_rows(spec.identifier, rows, _OUTPUT_RULES, ctx=ctx, run_id=run_id)
        rows, failed = out.passed, pa.concat_tables([failed, out.failed])
        acc.failures.update(out.report.failures)
    quarantine_new_rows(catalog, pa.concat_tables([failed.cast(QUARANTINE_SCHEMA), *bad_files]))
    advanced = ledger.advance(inputs)
    acc.written, acc.replaced = _commit(table, spec, rows, inputs, group, ledger, advanced, acc)
    acc.files += len([f for f in inputs if f.relpath not in ledger.applied])
    return advanced


def _commit(
    table: Table,
    spec: TableSpec,
    rows: pa.Table,
    inputs: list[DeviceFile],
    group: list[DeviceFile],
    before: DeviceLedger,
    after: DeviceLedger,
    acc: _Run,
) -> tuple[int, int]:
    """Replace the hours of ``group`` by ``rows`` and store ``after``, in one commit; returns the
    accumulated (rows written, rows replaced)."""
    written, replaced = acc.written, acc.replaced
    hours = sorted({f.hour_start for f in group})
    time_column = parse_partition(spec.partition_by or "").column
    clause = parse_partition(f"hour({time_column})")
    where: BooleanExpression = covering_filter(clause, pa.array(hours, _TS))
    seen_before = any(f.relpath in before.applied for f in inputs)  # else no row of these hours exists
    current = normalize_table(table.scan(row_filter=where).to_arrow()) if seen_before else None
    new_files = [f for f in inputs if f.relpath not in before.applied]
    summary = {SUMMARY_FILES: _lineage(new_files)}
    try:
        with table.transaction() as tx:
            if current is not None and current.num_rows and _same(current, rows, spec.keys):
                pass  # the recomputation changes nothing: only the ledger advances
            else:
                if current is not None and current.num_rows:
                    with warnings.catch_warnings():
                        warnings.filterwarnings(
                            "ignore", message="Delete operation did not match any records"
                        )
                        tx.delete(delete_filter=where, snapshot_properties=summary)
                    replaced += current.num_rows
                if rows.num_rows:
                    append_rows(tx, table.io, rows, summary)
                    written += rows.num_rows
            tx.set_properties(after.as_properties())
    except NotInstalledError as exc:
        raise ConfigError(str(exc), hint="pip install pyiceberg-core==0.10.1") from exc
    except CommitFailedException as exc:
        raise TransientError(f"{spec.identifier}: another writer committed meanwhile ({exc})") from exc
    return written, replaced


def _same(current: pa.Table, rows: pa.Table, keys: tuple[str, ...]) -> bool:
    if current.num_rows != rows.num_rows:
        return False
    order = [(k, "ascending") for k in keys]
    cols = rows.column_names
    a = current.select(cols).sort_by(order)
    b = rows.sort_by(order)
    return bool(a.cast(b.schema).equals(b))


def _lineage(files: list[DeviceFile]) -> str:
    return json.dumps([[f.key, f.first_seq, f.last_seq] for f in files], separators=(",", ":"))
