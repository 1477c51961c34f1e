"""CLI commands: ``abasto maintenance compact|expire|orphans|run [TABLE]`` on the lake's Iceberg tables."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table as RichTable

from abasto.cli.app import app
from abasto.settings import load_settings

if TYPE_CHECKING:
    from abasto.lake.maintenance import MaintenancePolicy, TableReport

# pyiceberg and the maintenance code are imported inside the commands (`abasto --help` stays fast).

__all__ = ["maintenance_app"]

maintenance_app = typer.Typer(
    help="Table maintenance: compaction, snapshot expiry, orphan-file removal.", no_args_is_help=True
)
app.add_typer(maintenance_app, name="maintenance")

TableArg = Annotated[str | None, typer.Argument(help="Table (curated.<name> or <name>; default: all).")]
DryRun = Annotated[bool, typer.Option("--dry-run", help="Report what would change; change nothing.")]


@maintenance_app.command("compact")
def compact_command(
    table: TableArg = None,
    partition: Annotated[str | None, typer.Option(help="Only this partition, e.g. region_id=R01.")] = None,
    target_mb: Annotated[float | None, typer.Option(help="Target file size in MiB.")] = None,
    max_files: Annotated[int, typer.Option(help="Rewrite partitions with more files than this.")] = 8,
    dry_run: DryRun = False,
) -> None:
    """Rewrite partitions of many or small data files into few files of the target size."""
    from abasto.lake.maintenance import MaintenancePolicy  # noqa: PLC0415

    target = int(target_mb * 1024 * 1024) if target_mb else None
    policy = MaintenancePolicy(target_file_bytes=target, max_files_per_partition=max_files)
    _run(table, ("compact",), policy, dry_run, partition=partition)


@maintenance_app.command("expire")
def expire_command(
    table: TableArg = None,
    older_than: Annotated[str, typer.Option(help="Retention: expire snapshots older than this.")] = "5d",
    keep_last: Annotated[int, typer.Option(help="Always keep this many recent snapshots.")] = 1,
    dry_run: DryRun = False,
) -> None:
    """Expire old snapshots and delete the files only they reached."""
    from abasto.lake.maintenance import MaintenancePolicy, parse_duration  # noqa: PLC0415

    policy = MaintenancePolicy(snapshot_retention=parse_duration(older_than), keep_last=keep_last)
    _run(table, ("expire",), policy, dry_run)


@maintenance_app.command("orphans")
def orphans_command(
    table: TableArg = None,
    older_than: Annotated[str, typer.Option(help="Safety age: never delete younger files.")] = "3d",
    dry_run: DryRun = False,
) -> None:
    """Delete files under the table that no metadata references (older than the safety age)."""
    from abasto.lake.maintenance import MaintenancePolicy, parse_duration  # noqa: PLC0415

    _run(table, ("orphans",), MaintenancePolicy(orphan_age=parse_duration(older_than)), dry_run)


@maintenance_app.command("run")
def run_command(
    table: TableArg = None,
    older_than: Annotated[str, typer.Option(help="Snapshot retention.")] = "5d",
    orphan_age: Annotated[str, typer.Option(help="Orphan safety age.")] = "3d",
    due_only: Annotated[bool, typer.Option("--due-only", help="Skip tables maintained recently.")] = False,
    dry_run: DryRun = False,
) -> None:
    """Compact, expire snapshots and remove orphans (what the scheduled worker runs)."""
    from abasto.lake.maintenance import STEPS, MaintenancePolicy, parse_duration  # noqa: PLC0415

    policy = MaintenancePolicy(
        snapshot_retention=parse_duration(older_than), orphan_age=parse_duration(orphan_age)
    )
    _run(table, STEPS, policy, dry_run, only_due=due_only)


def _run(
    table: str | None,
    steps: tuple[str, ...],
    policy: MaintenancePolicy,
    dry_run: bool,
    *,
    partition: str | None = None,
    only_due: bool = False,
) -> None:
    from abasto.lake.maintenance import run_maintenance  # noqa: PLC0415

    reports = run_maintenance(
        load_settings(),
        [table] if table else None,
        policy=policy,
        steps=steps,
        dry_run=dry_run,
        only_due=only_due,
        partition=partition,
    )
    console = Console()
    if not reports:
        console.print("no tables to maintain")
        return
    console.print(report_table(reports, dry_run=dry_run))
    if any(r.error for r in reports):
        raise typer.Exit(1)


def report_table(reports: list[TableReport], *, dry_run: bool = False) -> RichTable:
    """One row per table: files rewritten/removed, bytes reclaimed, duration, outcome."""
    view = RichTable(title="maintenance (dry run)" if dry_run else "maintenance")
    view.add_column("table", no_wrap=True)
    for header in ("partitions", "files in→out", "snapshots expired", "files removed", "MiB freed"):
        view.add_column(header, overflow="fold")
    view.add_column("seconds", justify="right")
    view.add_column("outcome", overflow="fold")
    for r in reports:
        c, e = r.compaction, r.expiry
        outcome = "skipped (not due)" if r.skipped else (f"error: {r.error}" if r.error else "ok")
        view.add_row(
            r.table,
            str(len(c.partitions)) if c else "-",
            f"{c.files_removed}→{c.files_added}" if c else "-",
            str(len(e.expired)) if e else "-",
            str(r.files_removed),
            f"{r.bytes_reclaimed / 1024 / 1024:.2f}",
            f"{r.duration_s:.2f}",
            outcome,
        )
    return view
