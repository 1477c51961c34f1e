"""The data-quality rules of each curated change-captured table (see :mod:`abasto.lake.quality`).

Every table: its keys are not null and unique among the batch's latest images, and the newest
``_commit_ts`` of the batch is no older than :data:`DEFAULT_MAX_AGE` (a finding, never a
quarantine). Tables with quantities: those are ≥ 0. Tables naming a store or a SKU: the value is
a known one, the domain being the keys of ``curated.customers`` / ``curated.products`` plus those
in their raw files not curated yet (a new customer and its first order may arrive in the same
capture); a domain whose table has neither is unknown and its rule passes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.catalog import Catalog

from abasto.catalog import CURATED, load_table
from abasto.lake.ledger import Ledger
from abasto.lake.quality import (
    QualityContext,
    Rule,
    TableCheck,
    freshness,
    known_values,
    non_negative,
    not_null,
    unique_keys,
)
from abasto.lake.raw_files import discover_raw_files, read_readable_changes
from abasto.lake.tables import ALL_TABLES, TableSpec

__all__ = [
    "DEFAULT_MAX_AGE",
    "DOMAINS",
    "TABLE_RULES",
    "Domain",
    "TableRules",
    "checks_for",
    "domains_for",
    "load_domains",
    "rules_for",
    "unique_sorted_keys",
]

#: how old the newest change of a batch may be before the report notes it (a backlog replay)
DEFAULT_MAX_AGE: Final = timedelta(days=2)


@dataclass(frozen=True)
class Domain:
    """A set of known values: the keys ``column`` of the curated ``table`` (and its pending raw files)."""

    name: str
    table: str
    column: str


DOMAINS: Final[dict[str, Domain]] = {
    "stores": Domain("stores", "customers", "store_id"),
    "skus": Domain("skus", "products", "sku"),
}


@dataclass(frozen=True)
class TableRules:
    """What one table is checked for beyond its keys: columns that must be ≥ 0 and columns
    referencing a :data:`DOMAINS` entry, as (column, domain)."""

    non_negative: tuple[str, ...] = ()
    references: tuple[tuple[str, str], ...] = ()
    max_age: timedelta = DEFAULT_MAX_AGE

    def __post_init__(self) -> None:
        unknown = [d for _, d in self.references if d not in DOMAINS]
        if unknown:
            raise ValueError(f"unknown domains {unknown}; known: {sorted(DOMAINS)}")

    @property
    def domains(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(d for _, d in self.references))


_STORE = ("store_id", "stores")
_SKU = ("sku", "skus")

#: rules per curated table (``curated.<name>``); a table absent here gets the key rules only
TABLE_RULES: Final[dict[str, TableRules]] = {
    "regions": TableRules(),
    "reps": TableRules(),
    "routes": TableRules(non_negative=("delivery_lag_days",)),
    "customers": TableRules(non_negative=("coolers",)),
    "products": TableRules(non_negative=("price", "units_per_case", "size_ml")),
    "assortment": TableRules(non_negative=("base_daily_units", "capacity_units"), references=(_STORE, _SKU)),
    "orders": TableRules(references=(_STORE,)),
    "order_lines": TableRules(
        non_negative=("qty_ordered", "qty_delivered", "unit_price"), references=(_SKU,)
    ),
    "deliveries": TableRules(references=(_STORE,)),
    "sellout_hourly": TableRules(non_negative=("units_sold", "on_hand_end"), references=(_STORE, _SKU)),
    "behavior_documents": TableRules(),
}


def _table_rules(spec: TableSpec) -> TableRules:
    return TABLE_RULES.get(spec.name, TableRules())


def rules_for(spec: TableSpec) -> list[Rule]:
    """The row rules of ``spec``'s table, in the order a failing row is attributed."""
    declared = _table_rules(spec)
    rules = [not_null(*spec.keys), unique_sorted_keys(spec.keys)]
    if declared.non_negative:
        rules.append(non_negative(*declared.non_negative))
    rules.extend(known_values(column, domain) for column, domain in declared.references)
    return rules


def unique_sorted_keys(keys: tuple[str, ...]) -> Rule:
    """:func:`~abasto.lake.quality.unique_keys` (same name and verdicts), in one linear pass when
    the rows come sorted by ``keys`` without nulls, as the merge's latest images do: repeats are then
    neighbours. Any other input takes the hash-grouping rule."""
    general = unique_keys(keys)

    def fails(rows: pa.Table, ctx: QualityContext) -> pa.Array | pa.ChunkedArray:
        n = rows.num_rows
        if n < 2 or any(k not in rows.column_names for k in keys):
            return general.fails(rows, ctx)
        ordered: pa.Array | None = None  # row i <= row i+1 by keys
        same: pa.Array | None = None  # row i == row i+1 by keys
        for k in reversed(keys):  # lexicographic: the first key decides, the next ones break ties
            column = rows[k].combine_chunks()
            if column.null_count:
                return general.fails(rows, ctx)
            a, b = column.slice(0, n - 1), column.slice(1)
            equal = pc.equal(a, b)
            ordered = (
                pc.less_equal(a, b) if ordered is None else pc.or_(pc.less(a, b), pc.and_(equal, ordered))
            )
            same = equal if same is None else pc.and_(equal, same)
        if ordered is None or same is None or not pc.all(ordered).as_py():
            return general.fails(rows, ctx)
        if not pc.any(same).as_py():
            return pa.array(np.zeros(n, dtype=bool))
        return pc.or_(
            pa.concat_arrays([same, pa.array([False])]), pa.concat_arrays([pa.array([False]), same])
        )

    return Rule(general.name, general.description, fails, general.sql)


def checks_for(spec: TableSpec) -> list[TableCheck]:
    """The table-level checks of ``spec``'s table (findings only)."""
    return [freshness("_commit_ts", _table_rules(spec).max_age)]


def domains_for(spec: TableSpec) -> tuple[str, ...]:
    """Names of the domains ``spec``'s rules read."""
    return _table_rules(spec).domains


def load_domains(catalog: Catalog, raw_uri: str, names: Iterable[str]) -> dict[str, frozenset[str]]:
    """The known values of each domain in ``names``: the curated table's key column plus the keys
    in its raw files the table's ledger has not applied yet. A domain with neither is left out
    (its rules pass); unreadable raw files are ignored here (their own job quarantines them)."""
    found: dict[str, frozenset[str]] = {}
    for name in names:
        domain = DOMAINS[name]
        values: set[str] = set()
        seen = False
        table = load_table(catalog, f"{CURATED}.{domain.table}")
        if table is not None:
            seen = True
            column = table.scan(selected_fields=(domain.column,)).to_arrow()[domain.column]
            values.update(_strings(column))
        ledger = Ledger.from_properties(table.properties) if table is not None else Ledger()
        pending = ledger.pending(discover_raw_files(raw_uri, ALL_TABLES[domain.table].source))
        if pending:
            seen = True
            changes = read_readable_changes(pending).changes
            if domain.column in changes.column_names:
                values.update(_strings(changes[domain.column]))
        if seen:
            found[name] = frozenset(values)
    return found


def _strings(column: pa.ChunkedArray | pa.Array) -> Iterable[str]:
    distinct = pc.unique(pc.drop_null(column))
    return (str(v) for v in distinct.to_pylist())
