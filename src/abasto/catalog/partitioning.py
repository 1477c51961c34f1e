"""Partition clauses (``"day(hour_start)"``, ``"region_id"``, ``"bucket(16, store_id)"``) and the
row filters that select whole partitions.

A merge job overwrites only the partitions its changes touch: :func:`covering_filter` turns the
partition-column values of the affected rows into a predicate that selects every row of those
partitions (identity: ``IN``; year/month/day/hour: ranges of whole periods). For bucket/truncate
the predicate is ``IN`` on the values: still correct (it covers every affected row), merely not
aligned with files, so pyiceberg rewrites the files it cuts through.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.types as pat
from pyiceberg.expressions import (
    AlwaysFalse,
    And,
    BooleanExpression,
    GreaterThanOrEqual,
    In,
    IsNull,
    LessThan,
    Or,
)

from abasto.errors import ConfigError

__all__ = ["PartitionClause", "covering_filter", "parse_partition"]

_TEMPORAL = ("year", "month", "day", "hour")
_CLAUSE = re.compile(r"^\s*(?:(\w+)\s*\(\s*(?:(\d+)\s*,\s*)?(\w+)\s*\)|(\w+))\s*$")


@dataclass(frozen=True)
class PartitionClause:
    """One partition field: a source column and an Iceberg transform (``day``, ``bucket[16]``…)."""

    column: str
    transform: str

    @property
    def field_name(self) -> str:
        """Partition field name as Spark/Athena would call it (``hour_start_day``)."""
        return (
            self.column if self.transform == "identity" else f"{self.column}_{self.transform.split('[')[0]}"
        )


def parse_partition(expr: str) -> PartitionClause:
    """Parse ``col``, ``identity(col)``, ``year|month|day|hour(col)``, ``bucket|truncate(n, col)``.

    Raises:
        ConfigError: the clause is not one of those forms.
    """
    m = _CLAUSE.match(expr)
    if not m:
        raise ConfigError(f"invalid partition clause {expr!r}", hint="e.g. day(hour_start) or region_id")
    func, width, column, bare = m.groups()
    if bare:
        return PartitionClause(bare, "identity")
    func = func.lower()
    if func in ("bucket", "truncate"):
        if width is None:
            raise ConfigError(f"{func} needs a width: {func}(16, {column})")
        return PartitionClause(column, f"{func}[{int(width)}]")
    if width is not None or func not in (*_TEMPORAL, "identity"):
        raise ConfigError(
            f"invalid partition clause {expr!r}",
            hint="transforms: identity, year, month, day, hour, bucket, truncate",
        )
    return PartitionClause(column, func)


def covering_filter(clause: PartitionClause, values: pa.Array | pa.ChunkedArray) -> BooleanExpression:
    """A predicate on ``clause.column`` selecting every row of the partitions holding ``values``."""
    has_null = values.null_count > 0
    present = pc.unique(pc.drop_null(values))
    parts: list[BooleanExpression] = [IsNull(term=clause.column)] if has_null else []
    if len(present) > 0:
        if clause.transform in _TEMPORAL and (pat.is_timestamp(values.type) or pat.is_date(values.type)):
            parts.extend(_period_ranges(clause, present))
        else:
            parts.append(In(term=clause.column, literals=[_literal(v) for v in present.to_pylist()]))
    if not parts:
        return AlwaysFalse()
    return parts[0] if len(parts) == 1 else Or(*parts)


def _period_ranges(clause: PartitionClause, present: pa.Array) -> list[BooleanExpression]:
    unit = clause.transform
    starts = sorted(set(pc.floor_temporal(present, unit=unit).to_pylist()))
    ranges: list[list[Any]] = []
    for start in starts:
        end = _next_period(start, unit)
        if ranges and ranges[-1][1] == start:
            ranges[-1][1] = end  # merge adjacent periods into one range
        else:
            ranges.append([start, end])
    return [
        And(
            GreaterThanOrEqual(term=clause.column, value=_literal(lo)),
            LessThan(term=clause.column, value=_literal(hi)),
        )
        for lo, hi in ranges
    ]


def _next_period(start: date | datetime, unit: str) -> date | datetime:
    if unit == "hour":
        return start + timedelta(hours=1)
    if unit == "day":
        return start + timedelta(days=1)
    if unit == "month":
        return start.replace(year=start.year + start.month // 12, month=start.month % 12 + 1)
    return start.replace(year=start.year + 1)


def _literal(value: Any) -> Any:
    """pyiceberg binds ISO strings to date/timestamp/timestamptz columns; other values pass through."""
    if isinstance(value, date | datetime):
        return value.isoformat()
    return value
