"""Snapshot expiry, then physical removal of the files only expired snapshots reached.

pyiceberg's ``table.maintenance.expire_snapshots()`` removes snapshots from the metadata but deletes
no file. Here: choose the snapshots older than the retention (never the last ``keep_last`` of the
main branch, never a branch or tag head), expire them in one commit, then delete the manifest
lists, manifests and data files that those snapshots reached and no remaining snapshot does (the
"reachable difference", as Iceberg's Java action does: nothing else under the table is touched).
Only files under the table location are deleted.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pyiceberg.exceptions import CommitFailedException
from pyiceberg.table import Table
from pyiceberg.table.snapshots import Snapshot, ancestors_of

from abasto.errors import InvalidInputError, TransientError
from abasto.lake.maintenance.files import ReferenceCollector, delete_paths, is_under, normalize, total_size

__all__ = ["ExpiryResult", "expire_snapshots", "snapshots_to_expire"]


@dataclass(frozen=True)
class ExpiryResult:
    """Expired snapshot ids and the files deleted (with ``dry_run``: that would be)."""

    table: str
    expired: tuple[int, ...] = ()
    kept: int = 0
    files_deleted: tuple[str, ...] = ()
    bytes_deleted: int = 0
    dry_run: bool = False


def snapshots_to_expire(table: Table, *, older_than: datetime, keep_last: int = 1) -> list[Snapshot]:
    """Snapshots committed before ``older_than``, except protected ones.

    Protected: the newest ``keep_last`` snapshots of the main branch's history and the head of
    every branch and tag.

    Raises:
        InvalidInputError: ``keep_last`` < 1 or ``older_than`` without a time zone.
    """
    if keep_last < 1:
        raise InvalidInputError("keep_last must be at least 1: the current snapshot is always kept")
    if older_than.tzinfo is None:
        raise InvalidInputError("older_than needs a time zone (use UTC)")
    metadata = table.metadata
    protected = {ref.snapshot_id for ref in metadata.refs.values()}
    current = table.current_snapshot()
    if current is not None:
        for i, snapshot in enumerate(ancestors_of(current, metadata)):
            if i >= keep_last:
                break
            protected.add(snapshot.snapshot_id)
    cutoff_ms = int(older_than.timestamp() * 1000)
    return [s for s in metadata.snapshots if s.timestamp_ms < cutoff_ms and s.snapshot_id not in protected]


def expire_snapshots(
    table: Table,
    *,
    older_than: datetime,
    keep_last: int = 1,
    name: str | None = None,
    dry_run: bool = False,
) -> ExpiryResult:
    """Expire old snapshots of ``table`` and delete the files only they reached.

    Time travel to a kept snapshot still reads all its files; to an expired one the snapshot is
    unknown (the catalog, DuckDB and pyiceberg all report it as missing).

    Raises:
        TransientError: the expiry commit lost to a concurrent commit.
    """
    name = name or ".".join(table.name())
    expired = snapshots_to_expire(table, older_than=older_than, keep_last=keep_last)
    if not expired:
        return ExpiryResult(table=name, kept=len(table.metadata.snapshots), dry_run=dry_run)
    collector = ReferenceCollector(table.io)
    candidates = collector.files(expired, include_deleted=True)
    expired_ids = {s.snapshot_id for s in expired}
    if not dry_run:
        try:
            table.maintenance.expire_snapshots().by_ids(sorted(expired_ids)).commit()
        except CommitFailedException as exc:
            raise TransientError(f"{name}: snapshot expiry lost to a concurrent commit: {exc}") from exc
        remaining = table.refresh().metadata.snapshots
    else:
        remaining = [s for s in table.metadata.snapshots if s.snapshot_id not in expired_ids]
    live = collector.files(remaining, include_deleted=False)
    location = normalize(table.location())
    doomed = sorted(p for p in candidates - live if is_under(p, location))
    if dry_run:
        size = total_size(table.location(), doomed)
    else:
        _, size = delete_paths(table.location(), doomed)
    return ExpiryResult(
        table=name,
        expired=tuple(sorted(expired_ids)),
        kept=len(remaining),
        files_deleted=tuple(doomed),
        bytes_deleted=size,
        dry_run=dry_run,
    )
