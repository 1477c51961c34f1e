"""The marts' SQL for the at-scale engines: sqlglot transpiles the DuckDB text once per dialect.

Dialects: ``athena`` (Trino: Athena engine v3), ``spark`` (Glue/EMR), ``redshift``. Transpiling is
strict: a construct sqlglot cannot express in the target raises instead of being dropped.
"""

from __future__ import annotations

from enum import StrEnum

import sqlglot
from sqlglot.errors import ErrorLevel, SqlglotError

from abasto.analytics.warehouse.marts import MARTS, Mart
from abasto.errors import InvalidInputError

__all__ = ["SOURCE_DIALECT", "Dialect", "transpile", "transpile_all"]

SOURCE_DIALECT = "duckdb"


class Dialect(StrEnum):
    athena = "athena"
    spark = "spark"
    redshift = "redshift"

    @property
    def sqlglot_name(self) -> str:
        """sqlglot's name for it (Athena runs Trino SQL)."""
        return "trino" if self is Dialect.athena else self.value


def transpile(mart: Mart, dialect: Dialect | str, *, pretty: bool = True) -> str:
    """The SQL of ``mart`` in ``dialect``.

    Raises:
        InvalidInputError: unknown dialect, or a construct the target cannot express.
    """
    try:
        target = Dialect(dialect)
    except ValueError:
        known = ", ".join(d.value for d in Dialect)
        raise InvalidInputError(f"unknown dialect {dialect!r}", hint=f"one of: {known}") from None
    try:
        out = sqlglot.transpile(
            mart.sql(),
            read=SOURCE_DIALECT,
            write=target.sqlglot_name,
            pretty=pretty,
            unsupported_level=ErrorLevel.RAISE,
        )
    except SqlglotError as exc:
        raise InvalidInputError(f"{mart.name} cannot be transpiled to {target.value}: {exc}") from exc
    if len(out) != 1:
        raise InvalidInputError(f"{mart.name} must hold exactly one statement (got {len(out)})")
    return out[0]


def transpile_all(dialect: Dialect | str) -> dict[str, str]:
    """Mart name → its SQL in ``dialect``, in build order."""
    return {mart.name: transpile(mart, dialect) for mart in MARTS}
