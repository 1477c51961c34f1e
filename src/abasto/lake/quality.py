"""Data-quality rules checked on every curated write, and the quarantine table for rows that fail.

A curate job builds the rows it is about to write, runs :func:`check_rows` with the table's
:class:`Rule` list, writes only :attr:`QualityOutcome.passed`, and hands
:attr:`QualityOutcome.failed` to :func:`quarantine_rows`, which appends them to
``curated.quarantine`` (one row per failing row and rule that failed first: the table, the rule,
a human-readable detail, the raw file and job run it came from, and the row itself as JSON). The
job reports :attr:`QualityOutcome.report` (rows checked/passed, failures per rule, table-level
findings such as freshness).

Row rules return a boolean mask, ``True`` where a row fails; a row is quarantined under the first
rule (in list order) that fails it, so counts per rule add up to the quarantined rows. Table-level
checks (:func:`freshness`) never quarantine rows: they add a finding to the report.

The rules built here also have a SQL form (:attr:`Rule.sql`, same verdicts) so a job holding its
rows in DuckDB checks them inside its own query: :func:`rules_case_sql` names each row's first
failing rule, :func:`register_domains` provides the reference domains it reads, and
:func:`failed_rows` shapes the failing rows for the quarantine as :func:`check_rows` does.

``curated.quarantine`` is an ordinary Iceberg table, queryable with ``abasto sql``; a row fixed at
the source comes back through change capture like any other change.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import CommitFailedException
from pyiceberg.expressions import In, IsNull, Or

from abasto.catalog import CURATED, TableMetadata, ensure_table, load_table
from abasto.errors import TransientError

__all__ = [
    "QUARANTINE_IDENTITY",
    "QUARANTINE_SCHEMA",
    "QUARANTINE_TABLE",
    "ROW_ID",
    "SOURCE_FILE_COLUMN",
    "QualityContext",
    "QualityOutcome",
    "QualityReport",
    "Rule",
    "SqlMask",
    "TableCheck",
    "bad_file_row",
    "check_rows",
    "combine_reports",
    "domain_relation",
    "failed_rows",
    "freshness",
    "known_values",
    "non_negative",
    "not_null",
    "quarantine_new_rows",
    "quarantine_rows",
    "register_domains",
    "rules_case_sql",
    "unique_keys",
]

QUARANTINE_TABLE: Final = f"{CURATED}.quarantine"

_TS: Final = pa.timestamp("us", tz="UTC")

#: columns of ``curated.quarantine``
QUARANTINE_SCHEMA: Final = pa.schema(
    [
        pa.field("table_name", pa.string(), nullable=False),
        pa.field("rule", pa.string(), nullable=False),
        pa.field("detail", pa.string(), nullable=False),
        pa.field("source_file", pa.string()),
        pa.field("run_id", pa.string()),
        pa.field("row_json", pa.string(), nullable=False),
        pa.field("quarantined_at", _TS, nullable=False),
    ]
)

_QUARANTINE_META: Final = TableMetadata(
    owner="data-platform",
    description="Rows refused by data-quality rules on a curated write: table, rule, detail, origin, row",
    classification="confidential",  # rows of any table, PII included
    source="abasto.lake.quality",
)

#: column a checked table may carry to name the raw file of each row (dropped from passed rows)
SOURCE_FILE_COLUMN: Final = "_source_file"


@dataclass(frozen=True)
class QualityContext:
    """What rules may need beyond the rows: reference domains and the check's instant."""

    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    #: named sets of known values (``"stores"``, ``"skus"``); a rule over a domain absent here passes
    domains: dict[str, frozenset[str]] = field(default_factory=dict)


Mask = Callable[[pa.Table, QualityContext], pa.Array | pa.ChunkedArray]
#: a rule's SQL form: ``(relation, its columns, ctx)`` → a DuckDB boolean expression over a row of
#: ``relation``, ``TRUE`` where the row breaks the rule (``NULL`` passes, as a null mask entry does)
SqlMask = Callable[[str, Collection[str], QualityContext], str]

#: unique BIGINT row id a relation checked through :attr:`Rule.sql` carries (batch-level rules
#: such as :func:`unique_keys` name the failing rows by it)
ROW_ID: Final = "_i"


@dataclass(frozen=True)
class Rule:
    """A row rule: ``fails(rows, ctx)`` is a boolean mask, ``True`` where a row breaks it;
    ``sql``, when set, gives the same verdicts inside a DuckDB query (see :data:`SqlMask`)."""

    name: str
    description: str
    fails: Mask
    sql: SqlMask | None = None


@dataclass(frozen=True)
class TableCheck:
    """A table-level check: returns a finding (text) or ``None`` when the batch is fine."""

    name: str
    description: str
    check: Callable[[pa.Table, QualityContext], str | None]


@dataclass(frozen=True)
class QualityReport:
    table: str
    rows_checked: int
    rows_passed: int
    failures: dict[str, int]
    findings: dict[str, str]
    #: raw files that could not be read at all (relpath → reason), quarantined as ``unreadable_file``
    unreadable_files: dict[str, str] = field(default_factory=dict)

    @property
    def rows_quarantined(self) -> int:
        return self.rows_checked - self.rows_passed

    def as_dict(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "rows_checked": self.rows_checked,
            "rows_passed": self.rows_passed,
            "rows_quarantined": self.rows_quarantined,
            "failures": dict(self.failures),
            "findings": dict(self.findings),
            "unreadable_files": dict(self.unreadable_files),
        }


def combine_reports(table: str, reports: Sequence[QualityReport]) -> QualityReport:
    """One report for several batches of ``table``: counts added, findings and unreadable files
    united (a later batch's finding of the same check replaces an earlier one)."""
    failures: dict[str, int] = {}
    findings: dict[str, str] = {}
    unreadable: dict[str, str] = {}
    for r in reports:
        for rule, n in r.failures.items():
            failures[rule] = failures.get(rule, 0) + n
        findings.update(r.findings)
        unreadable.update(r.unreadable_files)
    return QualityReport(
        table,
        sum(r.rows_checked for r in reports),
        sum(r.rows_passed for r in reports),
        failures,
        findings,
        unreadable,
    )


@dataclass(frozen=True)
class QualityOutcome:
    """``passed``: the rows to write (input columns, :data:`SOURCE_FILE_COLUMN` dropped);
    ``failed``: rows in :data:`QUARANTINE_SCHEMA` shape, ready for :func:`quarantine_rows`."""

    passed: pa.Table
    failed: pa.Table
    report: QualityReport


def _column(rows: pa.Table, name: str) -> pa.ChunkedArray:
    return rows[name]


def not_null(*columns: str) -> Rule:
    """Each of ``columns`` has a value (a column missing from the batch counts as null)."""

    def fails(rows: pa.Table, ctx: QualityContext) -> pa.Array | pa.ChunkedArray:
        mask = pa.array([False] * rows.num_rows)
        for c in columns:
            if c not in rows.column_names:
                return pa.array([True] * rows.num_rows)
            mask = pc.or_(mask, pc.is_null(_column(rows, c)))
        return mask

    def sql(relation: str, present: Collection[str], ctx: QualityContext) -> str:
        if any(c not in present for c in columns):
            return "TRUE"
        return "(" + " OR ".join(f"{_q(c)} IS NULL" for c in columns) + ")"

    return Rule(f"not_null:{','.join(columns)}", f"{', '.join(columns)} must not be null", fails, sql)


def non_negative(*columns: str) -> Rule:
    """Each of ``columns`` present in the batch is ≥ 0 (nulls pass: :func:`not_null` covers them)."""

    def fails(rows: pa.Table, ctx: QualityContext) -> pa.Array | pa.ChunkedArray:
        mask = pa.array([False] * rows.num_rows)
        for c in columns:
            if c in rows.column_names:
                mask = pc.or_(mask, pc.fill_null(pc.less(_column(rows, c), 0), False))
        return mask

    def sql(relation: str, present: Collection[str], ctx: QualityContext) -> str:
        tests = [f"coalesce({_q(c)} < 0, FALSE)" for c in columns if c in present]
        return "(" + " OR ".join(tests) + ")" if tests else "FALSE"

    return Rule(f"non_negative:{','.join(columns)}", f"{', '.join(columns)} must be >= 0", fails, sql)


def known_values(column: str, domain: str) -> Rule:
    """``column`` is in ``ctx.domains[domain]`` (rows with a null value, and batches checked
    without that domain, pass)."""

    def fails(rows: pa.Table, ctx: QualityContext) -> pa.Array | pa.ChunkedArray:
        known = ctx.domains.get(domain)
        if known is None or column not in rows.column_names:
            return pa.array([False] * rows.num_rows)
        values = _column(rows, column)
        inside = pc.is_in(values, pa.array(sorted(known), values.type))
        return pc.and_(pc.is_valid(values), pc.invert(inside))

    def sql(relation: str, present: Collection[str], ctx: QualityContext) -> str:
        if ctx.domains.get(domain) is None or column not in present:
            return "FALSE"
        c = _q(column)
        return f"({c} IS NOT NULL AND {c} NOT IN (SELECT value FROM {_q(domain_relation(domain))}))"

    return Rule(f"known:{column}", f"{column} must be a known {domain} value", fails, sql)


def unique_keys(keys: Sequence[str]) -> Rule:
    """No two rows of the batch share ``keys``; every copy of a repeated key fails."""

    def fails(rows: pa.Table, ctx: QualityContext) -> pa.Array | pa.ChunkedArray:
        if rows.num_rows == 0:
            return pa.array([], pa.bool_())
        counts = rows.select(list(keys)).group_by(list(keys)).aggregate([([], "count_all")])
        repeated = counts.filter(pc.greater(counts["count_all"], 1)).select(list(keys))
        if repeated.num_rows == 0:
            return pa.array([False] * rows.num_rows)
        marked = repeated.append_column("_dup", pa.array([True] * repeated.num_rows))
        indexed = rows.select(list(keys)).append_column("_i", pa.array(range(rows.num_rows), pa.int64()))
        joined = indexed.join(marked, keys=list(keys), join_type="left outer").sort_by("_i")
        return pc.fill_null(joined["_dup"], False)

    def sql(relation: str, present: Collection[str], ctx: QualityContext) -> str:
        # only rows whose key hash repeats are counted exactly: a batch without repeats costs one
        # hash aggregation; a row with a null key never fails (``fails`` joins on the keys)
        k = ", ".join(_q(c) for c in keys)
        valued = " AND ".join(f"{_q(c)} IS NOT NULL" for c in keys)
        return (
            f"({valued} AND {ROW_ID} IN (SELECT {ROW_ID} FROM (SELECT {ROW_ID}, count(*) OVER "
            f"(PARTITION BY {k}) AS _n FROM {relation} WHERE hash({k}) IN (SELECT _h FROM (SELECT "
            f"hash({k}) AS _h FROM {relation}) GROUP BY _h HAVING count(*) > 1)) WHERE _n > 1))"
        )

    return Rule(f"unique:{','.join(keys)}", f"({', '.join(keys)}) must be unique in the batch", fails, sql)


def _q(name: str) -> str:
    """``name`` as a quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def domain_relation(domain: str) -> str:
    """The DuckDB relation (one ``value`` column) :func:`register_domains` gives ``domain``."""
    return f"_domain_{domain}"


def register_domains(con: duckdb.DuckDBPyConnection, ctx: QualityContext) -> None:
    """Register each of ``ctx.domains`` on ``con`` as :func:`domain_relation` (for the SQL form of
    :func:`known_values`)."""
    for domain, values in ctx.domains.items():
        con.register(domain_relation(domain), pa.table({"value": pa.array(sorted(values), pa.string())}))


def rules_case_sql(
    relation: str, columns: Collection[str], rules: Sequence[Rule], ctx: QualityContext
) -> str:
    """A SQL expression naming the first of ``rules`` a row of ``relation`` fails (``NULL`` if it
    passes them all), as :func:`check_rows` attributes rows.

    Raises:
        ValueError: a rule has no SQL form.
    """
    if not rules:
        return "NULL::VARCHAR"
    branches = []
    for rule in rules:
        if rule.sql is None:
            raise ValueError(f"rule {rule.name} has no SQL form")
        literal = "'" + rule.name.replace("'", "''") + "'"
        branches.append(f"WHEN {rule.sql(relation, columns, ctx)} THEN {literal}")
    return "CASE " + " ".join(branches) + " END"


def freshness(column: str, max_age: timedelta) -> TableCheck:
    """The newest ``column`` value of the batch is at most ``max_age`` old at ``ctx.now``."""

    def check(rows: pa.Table, ctx: QualityContext) -> str | None:
        if rows.num_rows == 0 or column not in rows.column_names:
            return None
        newest = pc.max(_column(rows, column)).as_py()
        if newest is None:
            return f"{column}: no value"
        if isinstance(newest, datetime) and newest.tzinfo is None:
            newest = newest.replace(tzinfo=UTC)
        age = ctx.now - newest
        if age > max_age:
            return f"newest {column} {newest.isoformat()} is {age} old (limit {max_age})"
        return None

    return TableCheck(f"fresh:{column}", f"newest {column} within {max_age}", check)


def check_rows(
    table: str,
    rows: pa.Table,
    rules: Sequence[Rule],
    *,
    ctx: QualityContext | None = None,
    checks: Sequence[TableCheck] = (),
    run_id: str | None = None,
) -> QualityOutcome:
    """Split ``rows`` into rows to write and rows to quarantine under ``table``'s ``rules``.

    ``rows`` may carry :data:`SOURCE_FILE_COLUMN` (the raw file of each row), copied to the
    quarantine rows and dropped from the passed ones.
    """
    ctx = ctx or QualityContext()
    n = rows.num_rows
    assigned = pa.array([None] * n, pa.string())  # first failing rule per row
    failures: dict[str, int] = {}
    for rule in rules:
        if n == 0:
            break
        mask = pc.fill_null(rule.fails(rows, ctx), False)
        new = pc.and_(mask, pc.is_null(assigned))
        count = pc.sum(new).as_py() or 0
        if count:
            failures[rule.name] = count
            assigned = pc.if_else(new, pa.scalar(rule.name), assigned)
    ok = pc.is_null(assigned)
    data = rows.drop_columns([SOURCE_FILE_COLUMN]) if SOURCE_FILE_COLUMN in rows.column_names else rows
    passed = data.filter(ok) if failures else data
    failed = _quarantine_shape(table, rows, data, pc.invert(ok), assigned, rules, ctx, run_id)
    findings = {c.name: f for c in checks if (f := c.check(passed, ctx)) is not None}
    report = QualityReport(table, n, passed.num_rows, failures, findings)
    return QualityOutcome(passed, failed, report)


def _quarantine_shape(
    table: str,
    rows: pa.Table,
    data: pa.Table,
    bad: pa.Array | pa.ChunkedArray,
    assigned: pa.Array | pa.ChunkedArray,
    rules: Sequence[Rule],
    ctx: QualityContext,
    run_id: str | None,
) -> pa.Table:
    if not pc.any(bad).as_py():
        return QUARANTINE_SCHEMA.empty_table()
    files = (
        rows[SOURCE_FILE_COLUMN].filter(bad).to_pylist() if SOURCE_FILE_COLUMN in rows.column_names else None
    )
    return failed_rows(
        table, data.filter(bad), assigned.filter(bad).to_pylist(), files, rules, ctx=ctx, run_id=run_id
    )


def failed_rows(
    table: str,
    images: pa.Table,
    rule_names: Sequence[str],
    source_files: Sequence[str | None] | None,
    rules: Sequence[Rule],
    *,
    ctx: QualityContext,
    run_id: str | None,
) -> pa.Table:
    """Quarantine rows (:data:`QUARANTINE_SCHEMA`) for failing rows: ``images`` (one row each, as
    checked, without :data:`SOURCE_FILE_COLUMN`), the rule each failed first, its raw file."""
    described = {r.name: r.description for r in rules}
    n = images.num_rows
    return pa.Table.from_pydict(
        {
            "table_name": [table] * n,
            "rule": list(rule_names),
            "detail": [described[r] for r in rule_names],
            "source_file": list(source_files) if source_files is not None else [None] * n,
            "run_id": [run_id] * n,
            "row_json": [json.dumps(r, default=str, sort_keys=True) for r in images.to_pylist()],
            "quarantined_at": [ctx.now] * n,
        },
        schema=QUARANTINE_SCHEMA,
    )


def bad_file_row(table: str, source_file: str, reason: str, *, run_id: str | None, now: datetime) -> pa.Table:
    """A quarantine row for a raw file that could not be read at all (corrupt, truncated, wrong
    types): rule ``unreadable_file``, the reason as detail, an empty row image."""
    return pa.Table.from_pydict(
        {
            "table_name": [table],
            "rule": ["unreadable_file"],
            "detail": [reason],
            "source_file": [source_file],
            "run_id": [run_id],
            "row_json": ["{}"],
            "quarantined_at": [now],
        },
        schema=QUARANTINE_SCHEMA,
    )


def quarantine_rows(catalog: Catalog, failed: pa.Table) -> int:
    """Append ``failed`` (in :data:`QUARANTINE_SCHEMA` shape) to ``curated.quarantine``; returns
    the rows appended. Creates the table on first use."""
    if failed.num_rows == 0:
        return 0
    table = ensure_table(catalog, QUARANTINE_TABLE, QUARANTINE_SCHEMA, keys=(), metadata=_QUARANTINE_META)
    table.append(failed.cast(QUARANTINE_SCHEMA))
    return int(failed.num_rows)


#: columns identifying a quarantined record: the same rule refusing the same change record (its
#: image carries ``_lsn``/``_seq``) from the same raw file is one quarantine row, however often seen
QUARANTINE_IDENTITY: Final = ("table_name", "rule", "source_file", "row_json")


def quarantine_new_rows(catalog: Catalog, failed: pa.Table) -> int:
    """:func:`quarantine_rows` for the rows of ``failed`` not quarantined yet (same
    :data:`QUARANTINE_IDENTITY`); returns the rows appended. Lets a job quarantine before its own
    commit and run again after a failure without recording anything twice."""
    if failed.num_rows == 0:
        return 0
    failed = failed.cast(QUARANTINE_SCHEMA)
    attempt = 1
    while True:  # jobs of other tables append to the same table: retry a lost race
        existing = _quarantined_like(catalog, failed)
        fresh = failed
        if existing.num_rows:
            probe = _identity(failed).append_column("_i", pa.array(range(failed.num_rows), pa.int64()))
            kept = probe.join(_identity(existing), keys=list(QUARANTINE_IDENTITY), join_type="left anti")
            fresh = failed.take(pc.take(kept["_i"], pc.sort_indices(kept["_i"])))
        try:
            return quarantine_rows(catalog, fresh)
        except CommitFailedException as exc:
            if attempt >= _APPEND_ATTEMPTS:
                raise TransientError(
                    f"{QUARANTINE_TABLE}: {attempt} concurrent commits in a row ({exc})",
                    hint="run the job again; nothing is recorded twice",
                ) from exc
            attempt += 1


_APPEND_ATTEMPTS: Final = 5


def _identity(rows: pa.Table) -> pa.Table:
    """The identity columns, a null source file as ``""`` (joins never match nulls)."""
    columns = [pc.fill_null(rows[c], "") for c in QUARANTINE_IDENTITY]
    return pa.Table.from_arrays(columns, names=list(QUARANTINE_IDENTITY))


def _quarantined_like(catalog: Catalog, failed: pa.Table) -> pa.Table:
    """Quarantine rows already recorded for the tables and raw files of ``failed``."""
    table = load_table(catalog, QUARANTINE_TABLE)
    if table is None:
        return QUARANTINE_SCHEMA.empty_table()
    files = [f for f in pc.unique(failed["source_file"]).to_pylist() if f is not None]
    no_file = IsNull(term="source_file")
    by_file = Or(In(term="source_file", literals=files), no_file) if files else no_file
    row_filter = In(term="table_name", literals=pc.unique(failed["table_name"]).to_pylist()) & by_file
    return table.scan(row_filter=row_filter, selected_fields=QUARANTINE_IDENTITY).to_arrow()
