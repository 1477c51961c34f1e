"""The marts of the warehouse (the Redshift of the seed): a star schema written once in SQL.

Each mart is one ``SELECT`` in DuckDB's dialect, shipped as ``sql/<name>.sql``. It reads curated
tables as ``curated.<table>``, the alerts as ``realtime.alerts`` and earlier marts as
``marts.<mart>``, so the same text runs on DuckDB here and, transpiled by
:mod:`abasto.analytics.warehouse.dialects`, on Athena/Trino, Spark (Glue) and Redshift.
:data:`MARTS` lists them in build order (a mart only reads marts listed before it).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from importlib import resources

from abasto.errors import NotFoundError

__all__ = ["MARTS", "SCHEMA", "SELLOUT", "Mart", "Refresh", "get_mart", "mart_sql"]

#: the schema the marts live in (DuckDB file, Redshift, Glue database)
SCHEMA = "marts"
#: the curated table the hourly facts come from, refreshed day by day
SELLOUT = "sellout_hourly"


class Refresh(StrEnum):
    """How a mart is kept current (see :mod:`abasto.analytics.warehouse.build`)."""

    #: rebuilt whole when a curated source's snapshot changed
    SNAPSHOT = "snapshot"
    #: only the (UTC) days of ``curated.sellout_hourly`` whose rows changed are replaced
    DAILY = "daily"
    #: rebuilt whole when a new alerts table is given
    ALERTS = "alerts"
    #: rebuilt whole from other marts whenever a daily or alerts mart changed
    DERIVED = "derived"


@dataclass(frozen=True)
class Mart:
    name: str
    kind: str  # "dimension" | "fact"
    refresh: Refresh
    #: curated tables read (``curated.<name>``)
    sources: tuple[str, ...] = ()
    #: key columns (unique per row)
    keys: tuple[str, ...] = ()

    @property
    def identifier(self) -> str:
        return f"{SCHEMA}.{self.name}"

    def sql(self) -> str:
        return mart_sql(self.name)


MARTS: tuple[Mart, ...] = (
    Mart("dim_store", "dimension", Refresh.SNAPSHOT, ("customers", "regions", "routes"), ("store_id",)),
    Mart("dim_product", "dimension", Refresh.SNAPSHOT, ("products",), ("sku",)),
    Mart("dim_route", "dimension", Refresh.SNAPSHOT, ("routes", "regions"), ("route_id",)),
    Mart("dim_rep", "dimension", Refresh.SNAPSHOT, ("reps",), ("rep_id",)),
    Mart("fact_sales_hourly", "fact", Refresh.DAILY, (SELLOUT,), ("store_id", "sku", "hour_key")),
    Mart("fact_stock_hourly", "fact", Refresh.DAILY, (SELLOUT,), ("store_id", "sku", "hour_key")),
    Mart("fact_alerts", "fact", Refresh.ALERTS, (), ("alert_id",)),
    Mart("fact_stockout_episodes", "fact", Refresh.DERIVED, (), ("store_id", "sku", "start_at")),
    Mart("dim_hour", "dimension", Refresh.DERIVED, (), ("hour_key",)),
    Mart("dim_date", "dimension", Refresh.DERIVED, (), ("date_key",)),
)


def get_mart(name: str) -> Mart:
    """The mart called ``name`` (``marts.`` prefix optional).

    Raises:
        NotFoundError: no such mart.
    """
    short = name.removeprefix(f"{SCHEMA}.")
    for mart in MARTS:
        if mart.name == short:
            return mart
    raise NotFoundError(f"no mart {name!r}", hint=f"known marts: {', '.join(m.name for m in MARTS)}")


@cache
def mart_sql(name: str) -> str:
    """The DuckDB SQL of mart ``name`` (the packaged ``sql/<name>.sql``), without trailing ``;``."""
    text = resources.files(__package__).joinpath("sql", f"{name}.sql").read_text(encoding="utf-8")
    return text.strip().rstrip(";")
