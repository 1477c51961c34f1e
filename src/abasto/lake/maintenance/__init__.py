"""Table maintenance for the lake's Iceberg tables (what pyiceberg does not do by itself).

- :func:`compact_table`: rewrite partitions of many/small files into few files of target size;
- :func:`expire_snapshots`: expire old snapshots and delete the files only they reached;
- :func:`remove_orphan_files`: delete unreferenced files older than a safety age;
- :func:`run_maintenance`: all three over the catalog, scheduled through :func:`due`.
"""

from abasto.lake.maintenance.compaction import CompactionResult, compact_table, plan_compaction
from abasto.lake.maintenance.orphans import (
    DEFAULT_ORPHAN_AGE,
    OrphanResult,
    find_orphan_files,
    remove_orphan_files,
)
from abasto.lake.maintenance.runner import (
    STEPS,
    MaintenancePolicy,
    TableReport,
    maintain_table,
    resolve_tables,
    run_maintenance,
)
from abasto.lake.maintenance.schedule import due, last_run, parse_duration, record_run
from abasto.lake.maintenance.snapshots import ExpiryResult, expire_snapshots, snapshots_to_expire

__all__ = [
    "DEFAULT_ORPHAN_AGE",
    "STEPS",
    "CompactionResult",
    "ExpiryResult",
    "MaintenancePolicy",
    "OrphanResult",
    "TableReport",
    "compact_table",
    "due",
    "expire_snapshots",
    "find_orphan_files",
    "last_run",
    "maintain_table",
    "parse_duration",
    "plan_compaction",
    "record_run",
    "remove_orphan_files",
    "resolve_tables",
    "run_maintenance",
    "snapshots_to_expire",
]
