"""The lake: raw zone (change files) → curated zone (Iceberg tables), storage by URI."""

from abasto.lake.curate import CurateResult, curate_table, run_curate_jobs
from abasto.lake.tables import ALL_TABLES, BEHAVIOR_TABLES, SALES_TABLES, TableSpec, get_spec

__all__ = [
    "ALL_TABLES",
    "BEHAVIOR_TABLES",
    "SALES_TABLES",
    "CurateResult",
    "TableSpec",
    "curate_table",
    "get_spec",
    "run_curate_jobs",
]
