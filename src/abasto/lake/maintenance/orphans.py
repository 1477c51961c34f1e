"""Orphan files: files under a table's location that no metadata names (left by crashed writers,
failed commits, or metadata files dropped from the metadata log).

A file is removed only when nothing references it *and* it is older than a safety age (default
3 days): a writer may be between writing its files and committing them. Referenced means: the
current metadata file, every metadata file in the metadata log, statistics files, and every
manifest list, manifest and data/delete file of every snapshot (deleted manifest entries
included).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pyiceberg.table import Table

from abasto.errors import InvalidInputError
from abasto.lake.maintenance.files import ListedFile, ReferenceCollector, delete_paths, list_table_files

__all__ = ["DEFAULT_ORPHAN_AGE", "OrphanResult", "find_orphan_files", "remove_orphan_files"]

DEFAULT_ORPHAN_AGE = timedelta(days=3)
#: never removed even when unreferenced (written by file-system catalogs)
_KEEP_NAMES = ("version-hint.text",)


@dataclass(frozen=True)
class OrphanResult:
    """Orphans removed (with ``dry_run``: found), and unreferenced files spared for being young."""

    table: str
    files: tuple[str, ...] = ()
    bytes: int = 0
    too_young: int = 0
    dry_run: bool = False


def find_orphan_files(
    table: Table, *, older_than: timedelta = DEFAULT_ORPHAN_AGE, now: datetime | None = None
) -> tuple[list[ListedFile], int]:
    """Unreferenced files older than ``older_than`` and the count of younger unreferenced ones.

    Raises:
        InvalidInputError: ``older_than`` is negative.
    """
    if older_than < timedelta(0):
        raise InvalidInputError("the orphan safety age cannot be negative")
    now = now or datetime.now(UTC)
    # list first, then read the metadata: a file committed meanwhile is referenced or too young
    listed = list_table_files(table.location())
    table = table.refresh()
    referenced = ReferenceCollector(table.io).metadata_files(table.metadata, table.metadata_location)
    cutoff = now - older_than
    orphans: list[ListedFile] = []
    young = 0
    for f in listed:
        if f.path in referenced or f.path.rsplit("/", 1)[-1] in _KEEP_NAMES:
            continue
        if f.modified < cutoff:
            orphans.append(f)
        else:
            young += 1
    return orphans, young


def remove_orphan_files(
    table: Table,
    *,
    older_than: timedelta = DEFAULT_ORPHAN_AGE,
    now: datetime | None = None,
    name: str | None = None,
    dry_run: bool = False,
) -> OrphanResult:
    """Delete (or with ``dry_run`` only list) the orphan files of ``table``."""
    name = name or ".".join(table.name())
    orphans, young = find_orphan_files(table, older_than=older_than, now=now)
    paths = tuple(f.path for f in orphans)
    if dry_run:
        size = sum(f.size for f in orphans)
    else:
        _, size = delete_paths(table.location(), paths)
    return OrphanResult(table=name, files=paths, bytes=size, too_young=young, dry_run=dry_run)
