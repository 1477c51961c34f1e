"""Which raw files a curated table already contains.

The ledger lives in the Iceberg table itself, so it commits atomically with the data (one catalog
commit updates both) and travels with the table to any catalog:

- table properties hold the watermark: the last applied file (by :attr:`RawFile.order_key`), the
  highest applied LSN and the count of applied files. A file is pending iff its order key is
  greater than the watermark's; a CDC record at or below the applied LSN is already reflected
  (files overlapping a previous range after a writer restart are therefore harmless);
- each data snapshot's summary lists the files it applied with their (first, last) LSN
  (``abasto.raw-files``), the per-file lineage, kept as long as the snapshot is.

A batch whose records change nothing advances the watermark without a snapshot.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pyiceberg.table import Table

from abasto.lake.raw_files import RawFile

__all__ = ["AppliedFile", "Ledger", "applied_files", "batch_summary"]

PROP_LAST_FILE = "abasto.ledger.last-file"
PROP_LAST_LSN = "abasto.ledger.last-lsn"
PROP_FILES = "abasto.ledger.files"
SUMMARY_FILES = "abasto.raw-files"


@dataclass(frozen=True)
class Ledger:
    """The watermark of applied raw files."""

    last_file: RawFile | None = None
    last_lsn: int = -1
    files: int = 0

    @classmethod
    def from_properties(cls, props: Mapping[str, str]) -> Ledger:
        last = props.get(PROP_LAST_FILE)
        return cls(
            last_file=RawFile.parse(last) if last else None,
            last_lsn=int(props.get(PROP_LAST_LSN, "-1")),
            files=int(props.get(PROP_FILES, "0")),
        )

    def pending(self, files: Sequence[RawFile]) -> list[RawFile]:
        """Files not applied yet, in processing order."""
        ordered = sorted(files, key=lambda f: f.order_key)
        if self.last_file is None:
            return ordered
        mark = self.last_file.order_key
        return [f for f in ordered if f.order_key > mark]

    def advance(self, applied: Sequence[RawFile]) -> Ledger:
        if not applied:
            return self
        last = max(applied, key=lambda f: f.order_key)
        return Ledger(last, max(self.last_lsn, *(f.last_lsn for f in applied)), self.files + len(applied))

    def as_properties(self) -> dict[str, str]:
        props = {PROP_LAST_LSN: str(self.last_lsn), PROP_FILES: str(self.files)}
        if self.last_file is not None:
            props[PROP_LAST_FILE] = self.last_file.relpath
        return props


@dataclass(frozen=True)
class AppliedFile:
    relpath: str
    first_lsn: int
    last_lsn: int
    snapshot_id: int


def batch_summary(files: Sequence[RawFile]) -> dict[str, str]:
    """Snapshot-summary properties naming the raw files a commit applied."""
    return {
        SUMMARY_FILES: json.dumps(
            [[f.relpath, f.first_lsn, f.last_lsn] for f in files], separators=(",", ":")
        ),
    }


def applied_files(table: Table) -> list[AppliedFile]:
    """Per-file lineage of the table's retained snapshots, oldest first."""
    found: dict[str, AppliedFile] = {}  # an overwrite's delete and append snapshots both carry the list
    for snap in sorted(table.snapshots(), key=lambda s: s.sequence_number or 0):
        raw = snap.summary.additional_properties.get(SUMMARY_FILES) if snap.summary else None
        for path, first, last in json.loads(raw) if raw else []:
            found[path] = AppliedFile(path, int(first), int(last), snap.snapshot_id)
    return list(found.values())
