"""Run compaction, snapshot expiry and orphan removal over the lake's tables, with a report."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from pyiceberg.catalog import Catalog
from pyiceberg.table import Table

from abasto.errors import AbastoError, NotFoundError
from abasto.lake.maintenance.compaction import CompactionResult, compact_table
from abasto.lake.maintenance.orphans import DEFAULT_ORPHAN_AGE, OrphanResult, remove_orphan_files
from abasto.lake.maintenance.schedule import due, record_run
from abasto.lake.maintenance.snapshots import ExpiryResult, expire_snapshots
from abasto.settings import Settings

__all__ = ["STEPS", "MaintenancePolicy", "TableReport", "resolve_tables", "run_maintenance"]

STEPS = ("compact", "expire", "orphans")


@dataclass(frozen=True)
class MaintenancePolicy:
    """Thresholds of one maintenance run (defaults follow Iceberg's own)."""

    target_file_bytes: int | None = None  # None: the table's write.target-file-size-bytes or 128 MiB
    max_files_per_partition: int = 8
    snapshot_retention: timedelta = timedelta(days=5)
    keep_last: int = 1
    orphan_age: timedelta = DEFAULT_ORPHAN_AGE


@dataclass(frozen=True)
class TableReport:
    """One table's maintenance: each step's result, duration and the error that stopped it."""

    table: str
    compaction: CompactionResult | None = None
    expiry: ExpiryResult | None = None
    orphans: OrphanResult | None = None
    duration_s: float = 0.0
    error: str | None = None
    skipped: bool = False
    steps: tuple[str, ...] = field(default_factory=tuple)

    @property
    def files_rewritten(self) -> int:
        return self.compaction.files_removed if self.compaction else 0

    @property
    def files_removed(self) -> int:
        expired = len(self.expiry.files_deleted) if self.expiry else 0
        return expired + (len(self.orphans.files) if self.orphans else 0)

    @property
    def bytes_reclaimed(self) -> int:
        expired = self.expiry.bytes_deleted if self.expiry else 0
        return expired + (self.orphans.bytes if self.orphans else 0)


def resolve_tables(catalog: Catalog, tables: Sequence[str] | None) -> list[str]:
    """Qualified names: ``tables`` (a bare name means ``curated.<name>``), else every catalog table.

    Raises:
        NotFoundError: a named table does not exist.
    """
    from abasto.catalog import CURATED, ZONES, list_tables  # noqa: PLC0415

    if not tables:
        return [info.identifier for zone in ZONES for info in list_tables(catalog, zone)]
    names = [t if "." in t else f"{CURATED}.{t}" for t in tables]
    for name in names:
        if not catalog.table_exists(name):
            raise NotFoundError(f"no table {name}", hint="see `abasto tables`")
    return names


def maintain_table(
    table: Table,
    name: str,
    *,
    policy: MaintenancePolicy,
    now: datetime,
    steps: Sequence[str] = STEPS,
    dry_run: bool = False,
    partition: str | None = None,
) -> TableReport:
    """Run ``steps`` on one table; an abasto error stops it and is reported, not raised."""
    started = time.perf_counter()
    compaction: CompactionResult | None = None
    expiry: ExpiryResult | None = None
    orphans: OrphanResult | None = None
    error: str | None = None
    try:
        if "compact" in steps:
            compaction = compact_table(
                table,
                name=name,
                target_bytes=policy.target_file_bytes,
                max_files=policy.max_files_per_partition,
                partition=partition,
                dry_run=dry_run,
            )
            table = table.refresh()
        if "expire" in steps:
            expiry = expire_snapshots(
                table,
                name=name,
                older_than=now - policy.snapshot_retention,
                keep_last=policy.keep_last,
                dry_run=dry_run,
            )
        if "orphans" in steps:
            orphans = remove_orphan_files(
                table, name=name, older_than=policy.orphan_age, now=now, dry_run=dry_run
            )
        if not dry_run and tuple(steps) == STEPS:
            record_run(table.refresh(), now)
    except AbastoError as exc:
        error = str(exc)
    return TableReport(
        table=name,
        duration_s=time.perf_counter() - started,
        error=error,
        steps=tuple(steps),
        compaction=compaction,
        expiry=expiry,
        orphans=orphans,
    )


def run_maintenance(
    settings: Settings,
    tables: Sequence[str] | None = None,
    *,
    catalog: Catalog | None = None,
    policy: MaintenancePolicy | None = None,
    steps: Sequence[str] = STEPS,
    dry_run: bool = False,
    only_due: bool = False,
    now: datetime | None = None,
    partition: str | None = None,
) -> list[TableReport]:
    """Maintain ``tables`` (default: all), one report per table.

    With ``only_due`` a table whose last run is more recent than its interval is skipped (see
    :func:`~abasto.lake.maintenance.schedule.due`): a worker calls this periodically. A full run
    (all steps, not a dry run) records its time on the table. ``partition`` limits compaction.

    Raises:
        NotFoundError: a named table does not exist.
    """
    from abasto.catalog import open_catalog  # noqa: PLC0415

    catalog = catalog or open_catalog(settings)
    policy = policy or MaintenancePolicy()
    now = now or datetime.now(UTC)
    reports: list[TableReport] = []
    for name in resolve_tables(catalog, tables):
        table = catalog.load_table(name)
        if only_due and not due(table, now):
            reports.append(TableReport(table=name, skipped=True))
            continue
        reports.append(
            maintain_table(
                table, name, policy=policy, now=now, steps=steps, dry_run=dry_run, partition=partition
            )
        )
    return reports
