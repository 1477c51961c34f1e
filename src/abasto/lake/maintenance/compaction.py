"""Compaction: rewrite partitions made of many (or small) data files into few files of ~target size.

One Iceberg commit per table: the data files of the chosen partitions are deleted and the same rows,
written again in files of about ``target_file_bytes`` each, are added (an ``overwrite`` snapshot
that changes no row). Other partitions keep their files. pyiceberg retries the commit on a
concurrent one and validates that the rewritten files still exist; a conflict it cannot resolve
surfaces as :class:`~abasto.errors.TransientError` (run compaction again later).
"""

from __future__ import annotations

import itertools
import math
import uuid
from collections import defaultdict
from dataclasses import dataclass, field, replace

from pyiceberg.exceptions import CommitFailedException, ValidationException
from pyiceberg.expressions import AlwaysTrue
from pyiceberg.io.pyarrow import ArrowScan, _dataframe_to_data_files
from pyiceberg.manifest import DataFile
from pyiceberg.table import FileScanTask, Table, TableProperties

from abasto.errors import TransientError

__all__ = [
    "DEFAULT_TARGET_FILE_BYTES",
    "CompactionResult",
    "PartitionPlan",
    "compact_table",
    "plan_compaction",
]

DEFAULT_TARGET_FILE_BYTES = 128 * 1024 * 1024
#: a file below this fraction of the target counts as small
SMALL_FILE_FRACTION = 0.75
#: snapshot summary property marking compaction commits
OPERATION_PROPERTY = "abasto.maintenance"


@dataclass(frozen=True)
class PartitionPlan:
    """One partition to rewrite: its path (``region_id=R01``), current files and expected outputs."""

    partition: str
    files: tuple[DataFile, ...]
    rows: int
    bytes: int
    expected_files: int


@dataclass(frozen=True)
class CompactionResult:
    """What a compaction did (or, with ``dry_run``, would do) to one table."""

    table: str
    partitions: tuple[str, ...] = ()
    files_removed: int = 0
    files_added: int = 0
    bytes_removed: int = 0
    bytes_added: int = 0
    rows: int = 0
    snapshot_id: int | None = None
    dry_run: bool = False
    skipped: tuple[str, ...] = field(default_factory=tuple)


def target_file_bytes(table: Table, override: int | None = None) -> int:
    """``override``, else the table's ``write.target-file-size-bytes``, else 128 MiB."""
    if override is not None:
        return override
    value = table.properties.get(TableProperties.WRITE_TARGET_FILE_SIZE_BYTES)
    return int(value) if value else DEFAULT_TARGET_FILE_BYTES


def _partition_path(table: Table, data_file: DataFile) -> str:
    spec = table.specs()[data_file.spec_id]
    if spec.is_unpartitioned():
        return ""
    return spec.partition_to_path(data_file.partition, table.schema())


def plan_compaction(
    table: Table,
    *,
    target_bytes: int,
    max_files: int = 8,
    partition: str | None = None,
) -> tuple[list[PartitionPlan], list[str]]:
    """Partitions worth rewriting, and partitions skipped because they carry delete files.

    A partition qualifies when it has more than ``max_files`` data files or at least two files
    smaller than ``SMALL_FILE_FRACTION`` of ``target_bytes``, and the rewrite would leave fewer
    files. ``partition`` (a path such as ``region_id=R01``; ``""`` for an unpartitioned table)
    limits the plan to that partition.
    """
    groups: dict[str, list[FileScanTask]] = defaultdict(list)
    for task in table.scan().plan_files():
        groups[_partition_path(table, task.file)].append(task)
    plans: list[PartitionPlan] = []
    skipped: list[str] = []
    small = target_bytes * SMALL_FILE_FRACTION
    for path in sorted(groups):
        if partition is not None and path != partition:
            continue
        tasks = groups[path]
        if any(task.delete_files for task in tasks):
            skipped.append(path)
            continue
        files = tuple(task.file for task in tasks)
        size = sum(f.file_size_in_bytes for f in files)
        expected = max(1, math.ceil(size / target_bytes))
        n_small = sum(1 for f in files if f.file_size_in_bytes < small)
        if (len(files) > max_files or n_small >= 2) and expected < len(files):
            rows = sum(f.record_count for f in files)
            plans.append(PartitionPlan(path, files, rows, size, expected))
    return plans, skipped


def compact_table(
    table: Table,
    *,
    name: str | None = None,
    target_bytes: int | None = None,
    max_files: int = 8,
    partition: str | None = None,
    dry_run: bool = False,
) -> CompactionResult:
    """Rewrite the partitions :func:`plan_compaction` selects, in one commit.

    ``table`` is used as loaded (its current snapshot is what gets rewritten); the commit is
    checked against the catalog's latest metadata.

    Raises:
        TransientError: a concurrent commit removed or changed files being rewritten.
    """
    name = name or ".".join(table.name())
    target = target_file_bytes(table, target_bytes)
    plans, skipped = plan_compaction(table, target_bytes=target, max_files=max_files, partition=partition)
    base = CompactionResult(
        table=name,
        partitions=tuple(p.partition for p in plans),
        files_removed=sum(len(p.files) for p in plans),
        bytes_removed=sum(p.bytes for p in plans),
        rows=sum(p.rows for p in plans),
        dry_run=dry_run,
        skipped=tuple(skipped),
    )
    if dry_run or not plans:
        return replace(base, files_added=sum(p.expected_files for p in plans))
    written: list[DataFile] = []
    tx = table.transaction()
    try:
        update = tx.update_snapshot(snapshot_properties={OPERATION_PROPERTY: "compaction"})
        with update.overwrite() as rewrite:
            counter = itertools.count(0)
            for plan in plans:
                for data_file in _rewrite(table, plan, target, rewrite.commit_uuid, counter):
                    written.append(data_file)
                    rewrite.append_data_file(data_file)
                for data_file in plan.files:
                    rewrite.delete_data_file(data_file)
        committed = tx.commit_transaction()
    except (CommitFailedException, ValidationException) as exc:
        _discard(table, written)
        raise TransientError(
            f"{name}: compaction conflicts with a concurrent commit: {exc}",
            hint="run `abasto maintenance compact` again",
        ) from exc
    except BaseException:
        _discard(table, written)
        raise
    snapshot = committed.current_snapshot()
    return replace(
        base,
        files_added=len(written),
        bytes_added=sum(f.file_size_in_bytes for f in written),
        snapshot_id=snapshot.snapshot_id if snapshot else None,
    )


def _rewrite(
    table: Table, plan: PartitionPlan, target: int, write_uuid: uuid.UUID, counter: itertools.count[int]
) -> list[DataFile]:
    """Read the partition's rows and write them as ``plan.expected_files`` files of equal rows."""
    tasks = [FileScanTask(data_file) for data_file in plan.files]
    rows = ArrowScan(table.metadata, table.io, table.schema(), AlwaysTrue()).to_table(tasks)
    if rows.num_rows == 0:
        return []
    per_file = max(1, math.ceil(rows.num_rows / max(1, math.ceil(plan.bytes / target))))
    # one output file per slice: pyiceberg's own bin-packing must not split it again
    unbounded = table.metadata.model_copy(
        update={
            "properties": {
                **table.metadata.properties,
                TableProperties.WRITE_TARGET_FILE_SIZE_BYTES: str(2**62),
            }
        }
    )
    written: list[DataFile] = []
    for offset in range(0, rows.num_rows, per_file):
        chunk = rows.slice(offset, per_file)
        written.extend(
            _dataframe_to_data_files(
                table_metadata=unbounded, df=chunk, io=table.io, write_uuid=write_uuid, counter=counter
            )
        )
    return written


def _discard(table: Table, written: list[DataFile]) -> None:
    """Best-effort removal of files written by a commit that did not happen (else orphans)."""
    for data_file in written:
        try:
            table.io.delete(data_file.file_path)
        except OSError:
            continue
