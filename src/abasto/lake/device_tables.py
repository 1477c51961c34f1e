"""Raw device events → curated ``sales_by_hour`` and ``stock_readings`` (issue 4).

Both tables are rebuilt hour by hour from the raw events table
(``<raw>/devices/pos_events/date=…/hour=…/part-….parquet``, :mod:`abasto.delivery.layout`), whose
partitions are the events' own UTC hours. A run of :func:`curate_device_table` (one table) or
:func:`curate_device_tables` (both, sharing one read of the files they both need):

1. lists the raw files and keeps those not in the table's ledger (:mod:`abasto.lake.device_files`);
2. reads **every** file of the hours those pending files fall in (applied ones included), so a
   late event, or a re-sent copy of an event in another file, recomputes its hour exactly;
3. deduplicates the table's events (``sale`` or ``stock``) by (``device_id``, ``seq``), keeping
   the first copy (lowest stream sequence, then position in its batch, then file);
4. checks the rows with :mod:`abasto.lake.quality` (non-null and non-negative quantities, known
   stores/SKUs when ``curated.customers``/``curated.products`` exist, unique keys, freshness), the
   row rules in one DuckDB query over the batch (their SQL forms);
   failing rows are left out, and those from the pending files go to ``curated.quarantine`` with
   the rule that failed (rows of applied files were quarantined by the run that applied them); a
   file that is not readable device events is quarantined whole (rule ``unreadable_file``) and
   counts as applied; the quarantine append precedes the table's commit and skips rows already
   there (:func:`~abasto.lake.quality.quarantine_new_rows`), so a failed run, re-run, records
   nothing twice;
5. replaces the rows of those hours (``sales_by_hour``: units, revenue, tickets per store, SKU and
   hour; ``stock_readings``: one row per ``stock`` event) and records the applied files, in one
   Iceberg commit. A recomputation identical to the rows in the table writes no snapshot.

The batch stays one Arrow table throughout: the deduplication and the ``sales_by_hour``
aggregation run on numpy over dictionary indices (equal values, equal integers) with the exact
results of their SQL references (``_DUPLICATES_SQL``, ``_SALES_SQL``), which run instead where
that exactness is not assured (nulls, sparse sequences, times before 1970).

Each table keeps its own ledger and commit: :func:`curate_device_tables` reads a file once for both
tables where their pending work covers the same hours, then each table, on a thread of its own,
is checked, quarantines its failures and commits; one table failing leaves the other's commit
standing (its ledger holds it).

Re-running, or replaying a raw file (same name), finds nothing pending and commits nothing.
"""

from __future__ import annotations

import json
import threading
import time
import warnings
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

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
    ROW_ID,
    QualityContext,
    QualityReport,
    Rule,
    bad_file_row,
    failed_rows,
    freshness,
    known_values,
    non_negative,
    not_null,
    quarantine_new_rows,
    register_domains,
    rules_case_sql,
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
    "curate_device_tables",
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
#: raw columns a table does not use (not read for it)
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
#: the hour partition of an event's file (checked against its ``event_time``), and its end
_HOUR: Final = "_partition_hour"
_HOUR_END: Final = "_partition_end"
#: row id of the events relation, and the ``device_id`` dictionary index (one dictionary for all
#: chunks after ``unify_dictionaries``, so equal ids ⟺ equal indices; a null id has a null index)
_ROW: Final = ROW_ID
_DEV: Final = "_dev"
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


def _in_partition_sql(relation: str, columns: Collection[str], ctx: QualityContext) -> str:
    if _HOUR_END in columns:  # plain comparisons, with the partition's end beside its start
        return f'(event_time < "{_HOUR}" OR event_time >= "{_HOUR_END}")'
    # the partition hour is a whole hour: the event lies in it iff 0 <= offset < 1 h
    return f'(epoch_us(event_time) - epoch_us("{_HOUR}") NOT BETWEEN 0 AND 3599999999)'


_IN_PARTITION: Final = Rule(
    "in_partition:event_time",
    "event_time must lie in its file's hour partition",
    _in_partition,
    _in_partition_sql,
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
        _UNIQUE_READING,
    ]


def _unique_reading() -> Rule:
    """``unique_keys(("device_id", "seq"))`` whose SQL form keys on the ``device_id`` dictionary
    index (same verdicts: one dictionary, each value once, null for null) instead of the string."""
    general, indexed = unique_keys(STOCK_READINGS.keys), unique_keys((_DEV, "seq"))
    return Rule(general.name, general.description, general.fails, indexed.sql)


_UNIQUE_READING: Final = _unique_reading()
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
    """Accumulated outcome of one table in one call (several commits possible)."""

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
    results = curate_device_tables(
        (spec.name,),
        catalog=catalog,
        raw_uri=raw_uri,
        select=select,
        max_files=max_files,
        now=now,
        max_age=max_age,
        domains=domains,
        run_ids={spec.name: run_id},
    )
    return results[spec.name]


def curate_device_tables(
    names: Iterable[str] | None = None,
    *,
    catalog: Catalog,
    raw_uri: str,
    select: Callable[[DeviceFile], bool] | None = None,
    max_files: int | None = None,
    now: datetime | None = None,
    max_age: timedelta = DEFAULT_MAX_AGE,
    domains: dict[str, frozenset[str]] | None = None,
    run_ids: Mapping[str, str | None] | None = None,
) -> dict[str, CurateResult]:
    """:func:`curate_device_table` for each of ``names`` (default: every device table) from one
    read of the raw files: each result (by table name, ``curated.`` prefix dropped) is the one
    that table alone would give, but a file both tables need is read once, and the tables' rows
    are checked and committed side by side (each result's ``duration_s``: the whole call).
    ``run_ids`` tags each table's quarantined rows.

    Each table still quarantines and commits alone, with its own ledger: when one table fails,
    the other tables' commits stand, and the first error is raised once they are done (a later
    commit step, under ``max_files``, is not attempted).

    Raises:
        NotFoundError: a name is not a device table.
        InvalidInputError: a file under the events table breaks the layout (a stray name).
        TransientError: a raw file could not be fetched, or another writer committed to a table
            meanwhile; run again.
    """
    wanted = DEVICE_TABLES if names is None else names
    specs = list({s.name: s for s in (get_device_spec(n) for n in wanted)}.values())
    started = time.perf_counter()
    everything = discover_device_files(raw_uri)
    states: list[_Table] = []
    for spec in specs:
        table = load_table(catalog, spec.identifier)
        ledger = _ledger(table)
        pending = [f for f in ledger.pending(everything) if select is None or select(f)]
        run_id = (run_ids or {}).get(spec.name)
        states.append(_Table(spec, table, ledger, _groups(pending, max_files) if pending else [], run_id))
    if any(s.groups for s in states):
        ctx = QualityContext(now=now or datetime.now(UTC), domains=_domains(catalog, domains))
        for step in range(max(len(s.groups) for s in states)):
            _apply_step(catalog, [s for s in states if step < len(s.groups)], step, everything, ctx, max_age)
    results: dict[str, CurateResult] = {}
    for s in states:
        snap = s.table.current_snapshot() if s.table is not None else None
        acc = s.acc
        report = QualityReport(
            s.spec.identifier, acc.checked, acc.passed, dict(acc.failures), acc.findings, dict(acc.unreadable)
        )
        results[s.spec.name] = CurateResult(
            table=s.spec.identifier,
            files=acc.files,
            rows_in=acc.rows_in,
            rows_upserted=acc.written,
            rows_deleted=acc.replaced,
            snapshot_id=snap.snapshot_id if snap else None,
            duration_s=time.perf_counter() - started,
            quality=report,
        )
    return results


# --- internals ------------------------------------------------------------------------------------


@dataclass
class _Table:
    """One device table through a :func:`curate_device_tables` call: its table (``None`` until
    created), ledger, commits to make (pending files, whole hours each) and outcome."""

    spec: TableSpec
    table: Table | None
    ledger: DeviceLedger
    groups: list[list[DeviceFile]]
    run_id: str | None
    acc: _Run = field(default_factory=_Run)


@dataclass(frozen=True)
class _Prepared:
    """What one table commits for one group: its recomputed rows, the files read (``inputs``),
    the pending files applied (``group``), and its rows for the quarantine."""

    state: _Table
    rows: pa.Table
    inputs: list[DeviceFile]
    group: list[DeviceFile]
    quarantine: pa.Table


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


def _apply_step(
    catalog: Catalog,
    states: list[_Table],
    step: int,
    everything: list[DeviceFile],
    ctx: QualityContext,
    max_age: timedelta,
) -> None:
    """Recompute group ``step`` of each of ``states`` (one read per distinct set of input files);
    each table then, on a thread of its own, quarantines its failing rows and commits with its
    advanced ledger. The first error is raised once every table is done."""
    by_inputs: dict[tuple[str, ...], tuple[list[DeviceFile], list[_Table]]] = {}
    for s in states:
        hours = {f.partition for f in s.groups[step]}
        inputs = [f for f in everything if f.partition in hours]
        by_inputs.setdefault(tuple(f.relpath for f in inputs), (inputs, []))[1].append(s)
    work: list[Callable[[], Exception | None]] = []
    threads = 1 if len(states) > 1 else None  # side by side: one DuckDB worker each
    for inputs, sharing in by_inputs.values():
        reads = _read([s.spec.name for s in sharing], inputs)
        work += [
            _later(
                _apply_table, catalog, s, reads[s.spec.name], inputs, s.groups[step], ctx, max_age, threads
            )
            for s in sharing
        ]
    errors = [e for e in _run_all(work) if e is not None]
    if errors:
        raise errors[0]


#: held while a table quarantines rows or is created (catalog writes the tables' threads share)
_CATALOG: Final = threading.Lock()


def _apply_table(
    catalog: Catalog,
    s: _Table,
    read: _Read,
    inputs: list[DeviceFile],
    group: list[DeviceFile],
    ctx: QualityContext,
    max_age: timedelta,
    threads: int | None,
) -> Exception | None:
    """Recompute, quarantine, then commit one table's group; the error instead of raising it (the
    other tables go on)."""
    try:
        p = _prepare(s, read, inputs, group, ctx, max_age, threads)
        with _CATALOG:
            quarantine_new_rows(catalog, p.quarantine)
            if s.table is None:
                s.table = _ensure(catalog, s.spec)
        _commit_prepared(catalog, p)
    except Exception as exc:  # noqa: BLE001 - raised by the caller once the other tables are done
        return exc
    return None


def _later(fn: Callable[..., Any], *args: Any) -> Callable[[], Any]:
    return lambda: fn(*args)


def _run_all(work: Sequence[Callable[[], Any]]) -> list[Any]:
    """Run ``work`` side by side (the heavy parts, DuckDB and Parquet, release the GIL); results
    in order; the first exception is raised once all are done."""
    if len(work) == 1:
        return [work[0]()]
    with ThreadPoolExecutor(max_workers=len(work)) as pool:
        futures = [pool.submit(w) for w in work]
        return [f.result() for f in futures]


def _commit_prepared(catalog: Catalog, p: _Prepared) -> None:
    """Commit ``p`` and advance its table's ledger and outcome."""
    s = p.state
    assert s.table is not None
    advanced = s.ledger.advance(p.inputs)
    s.acc.written, s.acc.replaced = _commit(
        s.table, s.spec, p.rows, p.inputs, p.group, s.ledger, advanced, s.acc
    )
    s.acc.files += len([f for f in p.inputs if f.relpath not in s.ledger.applied])
    s.ledger = advanced
    s.table = catalog.load_table(s.spec.identifier)


@dataclass(frozen=True)
class _Read:
    """The events of one table's type in a set of files, with the index of their file in
    ``_file``; the rows of each file (all types); the files that could not be read (index → why)."""

    events: pa.Table
    counts: list[int]
    unreadable: dict[int, str]


def _read(names: Sequence[str], inputs: Sequence[DeviceFile]) -> dict[str, _Read]:
    """Read ``inputs`` in parallel, once for all of the tables ``names``.

    Raises:
        TransientError: a file's bytes could not be fetched (storage, not content, failed).
    """
    with ThreadPoolExecutor(max_workers=_READERS) as pool:
        read = list(pool.map(lambda i: _read_one(names, i, inputs[i]), range(len(inputs))))
    out: dict[str, _Read] = {}
    for name in names:
        schema = _READ_SCHEMAS[name]
        mine = [r[name] for r in read]
        tables = [r[0] for r in mine if not isinstance(r, str)]
        out[name] = _Read(
            _one_dictionary(pa.concat_tables(tables)) if tables else _as_read(schema).empty_table(),
            [0 if isinstance(r, str) else r[1] for r in mine],
            {i: r for i, r in enumerate(mine) if isinstance(r, str)},
        )
    return out


def _read_one(names: Sequence[str], index: int, f: DeviceFile) -> dict[str, tuple[pa.Table, int] | str]:
    """For each table of ``names``: the file's events of its type in its read schema (a column
    the file predates, such as ``batch_index``, reads as null) and the file's row count; or why
    the file is not readable device events for it.

    Raises:
        TransientError: the bytes could not be fetched.
    """
    fs, path = filesystem_for(f.uri)
    try:
        with fs.open_input_file(path) as handle:
            return _parse(handle, names, index)
    except (OSError, pa.ArrowException) as first:
        data = fetch_bytes(f.uri, f.key)  # a storage failure raises; a corrupt file parses badly
        try:
            return _parse(pa.BufferReader(data), names, index)
        except (OSError, pa.ArrowException, _NotDeviceEvents) as exc:
            why = f"not a readable device-events Parquet file ({len(data)} bytes): {exc or first}"
            return dict.fromkeys(names, why)
    except _NotDeviceEvents as exc:
        return dict.fromkeys(names, str(exc))


class _NotDeviceEvents(Exception):
    """A readable Parquet file whose columns are not device events."""


def _parse(source: pa.NativeFile, names: Sequence[str], index: int) -> dict[str, tuple[pa.Table, int] | str]:
    footer = pq.ParquetFile(source)
    present = set(footer.schema_arrow.names)
    missing = sorted(c.name for c in _RAW_COLUMNS if c.name not in present and not c.nullable) + (
        [] if "type" in present else ["type"]
    )
    if missing:
        raise _NotDeviceEvents(f"lacks device-event columns {missing}")
    wanted = {c.name for name in names for c in _RAW_COLUMNS if c.name in _READ_SCHEMAS[name].names}
    dictionary = [c for c in _DICTIONARY if c in present]  # ids decode 3x faster as dictionaries
    pf = pq.ParquetFile(source, read_dictionary=dictionary, metadata=footer.metadata)
    table = pf.read(
        columns=[c.name for c in _RAW_COLUMNS if c.name in wanted and c.name in present] + ["type"]
    )
    out: dict[str, tuple[pa.Table, int] | str] = {}
    for name in names:
        schema = _READ_SCHEMAS[name]
        events = table.filter(pc.equal(table["type"], _EVENT_TYPE[name]))
        read = [c for c in _RAW_COLUMNS if c.name in schema.names]
        n = events.num_rows
        columns = [events[c.name] if c.name in present else pa.nulls(n, c.type) for c in read]
        columns.append(pa.nulls(n, pa.int32()).fill_null(index))
        try:
            out[name] = pa.table(columns, names=schema.names).cast(_as_read(schema)), pf.metadata.num_rows
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
            out[name] = f"columns of the wrong type ({exc})"
    return out


def _one_dictionary(table: pa.Table) -> pa.Table:
    """``table`` with each dictionary column's chunks sharing one dictionary that holds each value
    once, so that equal values have equal indices (the deduplication and the aggregation key on
    them)."""
    table = table.unify_dictionaries()
    for i, f in enumerate(table.schema):
        column = table.column(i)
        if not pa.types.is_dictionary(f.type) or column.num_chunks == 0:
            continue
        dictionary = column.chunk(0).dictionary
        if pc.count_distinct(dictionary, mode="all").as_py() != len(dictionary):  # re-encode it
            table = table.set_column(i, f, pc.dictionary_encode(column.cast(f.type.value_type)).cast(f.type))
    return table.unify_dictionaries()


#: string columns read as dictionaries (few distinct values per file)
_DICTIONARY: Final = ("device_id", "store_id", "sku", "type")


def _as_read(schema: pa.Schema) -> pa.Schema:
    """``schema`` with the :data:`_DICTIONARY` columns dictionary-encoded, as they are read."""
    return pa.schema(
        [f.with_type(pa.dictionary(pa.int32(), f.type)) if f.name in _DICTIONARY else f for f in schema]
    )


#: rows of ``ev`` that repeat an earlier event (same ``device_id``, ``seq``), with their file: only
#: keys whose hash repeats are ranked, so a batch without duplicates costs one pass over a 64-bit hash
_DUPLICATES_SQL: Final = f"""
CREATE TEMP TABLE dup AS
WITH repeated AS (SELECT h FROM (SELECT hash({_DEV}, seq) AS h FROM ev) GROUP BY h HAVING count(*) > 1)
SELECT {_ROW}, {_FILE} FROM (
    SELECT {_ROW}, {_FILE}, row_number() OVER (
        PARTITION BY {_DEV}, seq ORDER BY stream_seq, batch_index NULLS FIRST, {_FILE}
    ) AS rank
    FROM ev WHERE hash({_DEV}, seq) IN (SELECT h FROM repeated)
) WHERE rank > 1
"""
#: the deduplicated events (checked by the rules)
_CHECKED_SQL: Final = f"CREATE TEMP VIEW u AS SELECT * FROM ev WHERE {_ROW} NOT IN (SELECT {_ROW} FROM dup)"
#: ``sales_by_hour`` rows of the kept events ``ok`` in SQL, the reference :func:`_sales_rows` follows
#: (used when its exact fast path does not apply); the hour as an integer (epoch hours): a
#: time-zone-aware ``date_trunc`` costs ten times more
_SALES_SQL: Final = """
CREATE TEMP TABLE agg AS
SELECT row_number() OVER () AS _i,
       store_id::VARCHAR AS store_id, sku::VARCHAR AS sku,
       make_timestamp(epoch_us(event_time) // 3600000000 * 3600000000) AS hour_start,
       sum(qty)::BIGINT AS units,
       (sum(round(qty * price * 100)::BIGINT) / 100.0)::DOUBLE AS revenue,
       count(*)::BIGINT AS tickets,
       min(event_time) AS first_event_time,
       max(event_time) AS last_event_time,
       max(received_at) AS last_received_at
FROM ok GROUP BY store_id, sku, epoch_us(event_time) // 3600000000
"""
_STOCK_COLUMNS: Final = STOCK_SCHEMA.names
_HOUR_US: Final = 3_600_000_000
#: largest magnitude a float64 sum of integers keeps exact
_EXACT: Final = 2**53


def _connect(threads: int | None = None) -> duckdb.DuckDBPyConnection:
    config: dict[str, str | bool | int | float | list[str]] = {
        "autoinstall_known_extensions": False,
        "autoload_known_extensions": False,
    }
    if threads is not None:
        config["threads"] = threads
    con = duckdb.connect(config=config)
    con.execute("SET TimeZone = 'UTC'")
    return con


def _prepare(
    state: _Table,
    read: _Read,
    inputs: list[DeviceFile],
    group: list[DeviceFile],
    ctx: QualityContext,
    max_age: timedelta,
    threads: int | None = None,
) -> _Prepared:
    """Recompute the hours of ``group`` from ``read`` (the events of ``inputs``) and count the
    pending files' events in the table's outcome.

    The batch is one Arrow relation (plus its file's hour, the ``device_id`` dictionary index and
    a row id); :func:`_duplicates` finds the repeated copies, DuckDB (``threads`` workers) the rows
    failing the rules, both only as row ids (few); the kept rows are then taken (stock readings)
    or aggregated (:func:`_sales_rows`) without another pass of SQL over the batch."""
    spec, acc, run_id = state.spec, state.acc, state.run_id
    fresh = [i for i, f in enumerate(inputs) if f.relpath not in state.ledger.applied]
    acc.rows_in += sum(read.counts[i] for i in fresh)
    names = pa.array([f.key for f in inputs], pa.string())
    events = read.events
    hours = pa.array([f.hour_start for f in inputs], _TS)
    ends = pa.array([f.hour_start + timedelta(hours=1) for f in inputs], _TS)
    schema = SALES_SCHEMA if spec.name == "sales_by_hour" else STOCK_SCHEMA
    rules = _event_rules(spec.name)
    relation = (
        events.append_column(_HOUR, pc.take(hours, events[_FILE]))
        .append_column(_HOUR_END, pc.take(ends, events[_FILE]))
        .append_column(_DEV, _indices(events["device_id"]))
        .append_column(_ROW, pa.array(np.arange(events.num_rows, dtype=np.int64)))
    )
    con = _connect(threads)
    try:
        con.register("ev", relation)
        register_domains(con, ctx)
        losers = _duplicates(relation)
        if losers is None:  # sparse sequences: rank the repeats in SQL
            con.execute(_DUPLICATES_SQL)
        else:
            con.register("dup", relation.select([_ROW, _FILE]).take(losers))
        con.execute(_CHECKED_SQL)
        case = rules_case_sql("u", relation.column_names, rules, ctx)
        con.execute(
            f"CREATE TEMP TABLE bad AS SELECT {_ROW}, {_FILE}, _rule "
            f"FROM (SELECT {_ROW}, {_FILE}, {case} AS _rule FROM u) WHERE _rule IS NOT NULL"
        )
        dup = con.execute(f"SELECT {_ROW}, {_FILE} FROM dup").to_arrow_table()
        bad = con.execute(f"SELECT {_ROW}, {_FILE}, _rule FROM bad ORDER BY {_ROW}").to_arrow_table()
        keep = np.ones(relation.num_rows, dtype=bool)
        keep[np.asarray(dup[_ROW])] = False
        keep[np.asarray(bad[_ROW])] = False
        out_rule: pa.ChunkedArray | pa.Array | None = None
        if spec.name == "sales_by_hour":
            fast = _sales_rows(relation, keep)
            if fast is not None:
                rows, out_rule = fast
            else:  # nulls or pre-1970 times: the SQL reference, output rules in SQL too
                con.execute(
                    f"CREATE TEMP VIEW ok AS SELECT * FROM u WHERE {_ROW} NOT IN (SELECT {_ROW} FROM bad)"
                )
                con.execute(_SALES_SQL)
                case = rules_case_sql("agg", [_ROW, *schema.names], _OUTPUT_RULES, ctx)
                out = con.execute(f"SELECT * EXCLUDE ({_ROW}), {case} AS _rule FROM agg").to_arrow_table()
                rows, out_rule = out.drop_columns(["_rule"]).cast(schema), out["_rule"]
            newest = rows["last_event_time"]
        else:
            kept = relation.select(_STOCK_COLUMNS)
            rows = (kept if keep.all() else kept.filter(pa.array(keep))).cast(schema)
            newest = rows["event_time"]
    finally:
        con.close()
    in_fresh = np.zeros(len(inputs), dtype=bool)
    in_fresh[fresh] = True
    typed = np.bincount(np.asarray(relation[_FILE]), minlength=len(inputs)) if relation.num_rows else None
    checked = int(typed[in_fresh].sum()) if typed is not None else 0
    checked -= int(in_fresh[np.asarray(dup[_FILE])].sum())
    failed = bad.filter(pa.array(in_fresh[np.asarray(bad[_FILE])], pa.bool_()))
    failures = Counter(failed["_rule"].to_pylist())
    acc.checked += checked
    acc.passed += checked - failures.total()
    acc.failures.update(failures)
    passed = pa.table({"event_time": pa.chunked_array(newest.chunks, _TS)})
    checks = [freshness("event_time", max_age)]
    acc.findings.update({c.name: f for c in checks if (f := c.check(passed, ctx)) is not None})
    quarantine: list[pa.Table] = []
    if failed.num_rows:
        images = relation.take(failed[_ROW]).drop_columns([_FILE, _HOUR_END, _DEV, _ROW])
        files = pc.take(names, failed[_FILE]).to_pylist()
        rule_names = failed["_rule"].to_pylist()
        quarantine.append(
            failed_rows(spec.identifier, images, rule_names, files, rules, ctx=ctx, run_id=run_id)
        )
    if out_rule is not None and out_rule.null_count < len(out_rule):  # aggregated rows refused
        refused = pc.is_valid(out_rule)
        rule_names = out_rule.filter(refused).to_pylist()
        acc.failures.update(rule_names)
        quarantine.append(
            failed_rows(
                spec.identifier, rows.filter(refused), rule_names, None, _OUTPUT_RULES, ctx=ctx, run_id=run_id
            )
        )
        rows = rows.filter(pc.invert(refused))
    unreadable = [(inputs[i].key, why) for i, why in read.unreadable.items() if i in fresh]
    acc.unreadable.update(unreadable)
    quarantine += [
        bad_file_row(spec.identifier, key, why, run_id=run_id, now=ctx.now) for key, why in unreadable
    ]
    return _Prepared(
        state,
        rows,
        inputs,
        group,
        pa.concat_tables([q.cast(QUARANTINE_SCHEMA) for q in quarantine])
        if quarantine
        else QUARANTINE_SCHEMA.empty_table(),
    )


def _duplicates(relation: pa.Table) -> pa.Array | None:
    """Row ids of the events of ``relation`` repeating an earlier copy, as :data:`_DUPLICATES_SQL`
    finds them, with numpy: each (device, seq) gets a dense integer (the device's offset plus seq
    minus the device's lowest seq), so repeats are counted in place; only rows of repeated keys
    are sorted (by key, ``stream_seq``, ``batch_index`` nulls first, file) to keep the first.

    ``None`` when the sequences are too sparse for a dense key, or null: use SQL.
    """
    n = relation.num_rows
    if n == 0:
        return pa.array([], pa.int64())
    seq_column = relation["seq"]
    if seq_column.null_count:
        return None
    seq = _int64(seq_column)
    if seq.min() < -(2**62) or seq.max() > 2**62:
        return None
    device = np.asarray(pc.fill_null(relation[_DEV].combine_chunks(), -1)).astype(np.int64) + 1  # null: 0
    devices = int(device.max()) + 1
    low = np.full(devices, np.iinfo(np.int64).max)
    np.minimum.at(low, device, seq)
    high = np.full(devices, np.iinfo(np.int64).min)
    np.maximum.at(high, device, seq)
    width = np.where(high >= low, high - low + 1, 0)
    span = int(width.sum())
    if span > 4 * n + (1 << 20):
        return None
    key = (np.cumsum(width) - width)[device] + (seq - low[device])
    repeated = np.flatnonzero(np.bincount(key, minlength=span)[key] > 1)
    if repeated.size == 0:
        return pa.array([], pa.int64())
    stream = relation["stream_seq"].take(repeated)
    batch = relation["batch_index"].take(repeated)
    order = np.lexsort(
        (
            np.asarray(relation[_FILE].take(repeated)),
            np.asarray(pc.fill_null(batch, 0)).astype(np.int64),
            np.asarray(pc.is_valid(batch)),  # nulls first
            np.asarray(pc.fill_null(stream, 0)).astype(np.int64),
            np.asarray(pc.is_null(stream)),  # nulls last, as SQL's default
            key[repeated],
        )
    )
    ranked = repeated[order]
    ranked_key = key[ranked]
    later = np.empty(ranked.size, dtype=bool)
    later[0] = False
    later[1:] = ranked_key[1:] == ranked_key[:-1]
    return pa.array(np.sort(ranked[later]))


def _sales_rows(relation: pa.Table, keep: np.ndarray) -> tuple[pa.Table, pa.Array] | None:
    """The ``sales_by_hour`` rows of the ``keep`` events of ``relation`` and the first output rule
    each fails (null: none), exactly as :data:`_SALES_SQL` and the output rules' SQL compute them,
    with numpy: each event's group is one integer (hour, store and SKU dictionary indices; a
    dictionary holds each value once, so equal integers ⟺ equal keys), sums by ``bincount``.

    ``None`` where that exactness is not assured (a null time, quantity or price, a time before
    1970 where SQL's integer division truncates, sums beyond float64's exact integers): use SQL.
    """
    columns = ["store_id", "sku", "event_time", "qty", "price", "received_at"]
    kept = relation.select(columns)
    kept = kept if keep.all() else kept.filter(pa.array(keep))
    n = kept.num_rows
    if n == 0:
        return SALES_SCHEMA.empty_table(), pa.nulls(0, pa.string())
    if any(kept[c].null_count for c in ("event_time", "qty", "price", "received_at")):
        return None
    times = _int64(kept["event_time"])
    received = _int64(kept["received_at"])
    qty = _int64(kept["qty"])
    amount = pc.multiply(pc.multiply(kept["qty"].cast(pa.float64()), kept["price"]), 100.0)
    cents_array = pc.round(amount, round_mode="half_towards_infinity")  # SQL's round(): half away from 0
    cents_float = np.asarray(
        cents_array.combine_chunks() if isinstance(cents_array, pa.ChunkedArray) else cents_array
    )
    if (
        times.min() < 0
        or not np.isfinite(cents_float).all()
        or np.abs(qty).max() * n >= _EXACT
        or np.abs(cents_float).max() * n >= _EXACT
    ):
        return None
    hour = times // _HOUR_US
    first_hour = int(hour.min())
    stores, store_idx = _codes(kept["store_id"])
    skus, sku_idx = _codes(kept["sku"])
    width_store, width_sku = len(stores) + 1, len(skus) + 1  # the last code of each: null
    key = ((hour - first_hour) * width_store + store_idx) * width_sku + sku_idx
    span = int(key.max()) + 1
    if span <= 2 * n + (1 << 20):  # dense keys: count them in place, no sort
        counts = np.bincount(key, minlength=span)
        groups = np.flatnonzero(counts)
        number = np.zeros(span, dtype=np.int64)
        number[groups] = np.arange(len(groups))
        group_of = number[key]
        tickets = counts[groups]
    else:
        groups, group_of = np.unique(key, return_inverse=True)
        tickets = np.bincount(group_of, minlength=len(groups))
    size = len(groups)
    units = np.bincount(group_of, weights=qty, minlength=size).astype(np.int64)
    cents = np.bincount(group_of, weights=cents_float, minlength=size).astype(np.int64)
    first = np.full(size, np.iinfo(np.int64).max)
    np.minimum.at(first, group_of, times)
    last = np.full(size, np.iinfo(np.int64).min)
    np.maximum.at(last, group_of, times)
    last_received = np.full(size, np.iinfo(np.int64).min)
    np.maximum.at(last_received, group_of, received)
    sku_of, rest = groups % width_sku, groups // width_sku
    store_of, hour_of = rest % width_store, rest // width_store + first_hour
    rows = pa.table(
        [
            pc.take(stores, pa.array(store_of, mask=store_of == len(stores))),
            pc.take(skus, pa.array(sku_of, mask=sku_of == len(skus))),
            pa.array(hour_of * _HOUR_US, pa.int64()).cast(_TS),
            pa.array(units),
            pa.array(cents / 100.0),
            pa.array(tickets.astype(np.int64)),
            pa.array(first).cast(_TS),
            pa.array(last).cast(_TS),
            pa.array(last_received).cast(_TS),
        ],
        schema=SALES_SCHEMA,
    )
    # the output rules: keys unique (the group integers are sorted: repeats are neighbours), sums >= 0
    repeated = np.zeros(size, dtype=bool)
    same = groups[1:] == groups[:-1]
    repeated[1:] |= same
    repeated[:-1] |= same
    unique_rule, non_negative_rule = _OUTPUT_RULES
    negative = np.asarray(pc.fill_null(non_negative_rule.fails(rows, QualityContext()), False))
    if not repeated.any() and not negative.any():
        return rows, pa.nulls(size, pa.string())
    rule = np.where(repeated, unique_rule.name, np.where(negative, non_negative_rule.name, ""))
    return rows, pa.array(rule, pa.string(), mask=~(repeated | negative))


def _int64(column: pa.ChunkedArray) -> np.ndarray:
    """A null-free integer or timestamp column as one int64 numpy array."""
    return np.asarray(column.combine_chunks().cast(pa.int64()))


def _codes(column: pa.ChunkedArray) -> tuple[pa.Array, np.ndarray]:
    """A dictionary column's shared dictionary and its indices (a null's index: the dictionary's
    length), as int64."""
    if column.num_chunks == 0:
        return pa.array([], pa.string()), np.zeros(0, dtype=np.int64)
    dictionary = column.chunk(0).dictionary
    indices = _indices(column).combine_chunks()
    codes = np.asarray(pc.fill_null(indices, len(dictionary))).astype(np.int64)
    return dictionary, codes


def _indices(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """The indices of a dictionary column whose chunks share one dictionary."""
    return pa.chunked_array([c.indices for c in column.chunks], pa.int32())


def _scalar(con: duckdb.DuckDBPyConnection, sql: str) -> int:
    row = con.execute(sql).fetchone()
    return int(row[0]) if row is not None and row[0] is not None else 0


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
                    with _WARNINGS, warnings.catch_warnings():  # the filters are process-wide
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


#: held around ``warnings.catch_warnings`` (not thread-safe) while tables commit side by side
_WARNINGS: Final = threading.Lock()


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
