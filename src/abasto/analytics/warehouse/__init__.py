"""The warehouse (the Redshift of the seed): star-schema marts built incrementally from the curated
tables into a DuckDB file, their SQL written once and transpiled to Athena, Spark and Redshift."""

from abasto.analytics.warehouse.alerts import ALERTS_SCHEMA, alerts_table
from abasto.analytics.warehouse.build import BuildReport, build_marts, marts_path
from abasto.analytics.warehouse.dialects import Dialect, transpile, transpile_all
from abasto.analytics.warehouse.marts import MARTS, Mart, Refresh, get_mart
from abasto.analytics.warehouse.query import query_marts

__all__ = [
    "ALERTS_SCHEMA",
    "MARTS",
    "BuildReport",
    "Dialect",
    "Mart",
    "Refresh",
    "alerts_table",
    "build_marts",
    "get_mart",
    "marts_path",
    "query_marts",
    "transpile",
    "transpile_all",
]
