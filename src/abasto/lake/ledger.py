"""Which raw files a curated table already contains.

The ledger lives in the Iceberg table itself, so it commits atomically with the data (one catalog
commit updates both) and travels with the table to any catalog:

- table properties hold the watermark: the last applied file (by :attr:`RawFile.order_key`), the
  position (``_lsn``, ``_seq``) of the last applied change, the LSN of the full load the table
  holds and the count of applied files. A file is pending iff its order key is greater than the
  last applied file's. A CDC record at or before the applied position is already reflected, so
  files overlapping a previous range after a writer restart are harmless, while the second file of
  a split transaction (``CDC-…_1``, same LSNs, later ``_seq``) is still applied. A full load at
  ``L`` sets the position to (``L``, :data:`SEQ_ALL`): every change at or below ``L`` is in it;
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

__all__ = ["SEQ_ALL", "AppliedFile", "Ledger", "applied_files", "batch_summary"]

PROP_LAST_FILE = "abasto.ledger.last-file"
PROP_LAST_LSN = "abasto.ledger.last-lsn"
PROP_LAST_SEQ = "abasto.ledger.last-seq"
PROP_LOAD_LSN = "abasto.ledger.load-lsn"
PROP_FILES = "abasto.ledger.files"
SUMMARY_FILES = "abasto.raw-files"
#: a watermark ``_seq`` meaning "every change of that LSN" (a full load's snapshot; ledgers written
#: before ``last-seq`` existed, which tracked the LSN alone)
SEQ_ALL = 2**63 - 1


@dataclass(frozen=True)
class Ledger:
    """The watermark of applied raw files.

    ``last_file``: the last applied file; (``last_lsn``, ``last_seq``): the last applied change (a
    CDC record at or before it is already reflected); ``load_lsn``: the snapshot LSN of the full
    load the table holds (-1: none); ``files``: how many files were applied.
    """

    last_file: RawFile | None = None
    last_lsn: int = -1
    files: int = 0
    last_seq: int = SEQ_ALL
    load_lsn: int = -1

    @classmethod
    def from_properties(cls, props: Mapping[str, str]) -> Ledger:
        last = props.get(PROP_LAST_FILE)
        last_file = RawFile.parse(last) if last else None
        load = props.get(PROP_LOAD_LSN)
        if load is None:  # a ledger from before load-lsn: only a full load ending it names one
            load_lsn = last_file.first_lsn if last_file is not None and last_file.kind == "full_load" else -1
        else:
            load_lsn = int(load)
        return cls(
            last_file=last_file,
            last_lsn=int(props.get(PROP_LAST_LSN, "-1")),
            files=int(props.get(PROP_FILES, "0")),
            last_seq=int(props.get(PROP_LAST_SEQ, str(SEQ_ALL))),
            load_lsn=load_lsn,
        )

    @property
    def position(self) -> tuple[int, int]:
        """(``_lsn``, ``_seq``) of the last applied change."""
        return (self.last_lsn, self.last_seq)

    def pending(self, files: Sequence[RawFile]) -> list[RawFile]:
        """Files not applied yet, in processing order."""
        ordered = sorted(files, key=lambda f: f.order_key)
        if self.last_file is None:
            return ordered
        mark = self.last_file.order_key
        return [f for f in ordered if f.order_key > mark]

    def advance(
        self, applied: Sequence[RawFile], *, position: tuple[int, int], load_lsn: int | None = None
    ) -> Ledger:
        """The ledger once ``applied`` is in the table: the last applied change is ``position`` (the
        current one if that is later), the table holds the full load at ``load_lsn`` (unchanged if
        omitted)."""
        if not applied:
            return self
        last = max(applied, key=lambda f: f.order_key)
        lsn, seq = max(self.position, position)
        return Ledger(
            last_file=last,
            last_lsn=lsn,
            files=self.files + len(applied),
            last_seq=seq,
            load_lsn=self.load_lsn if load_lsn is None else load_lsn,
        )

    def as_properties(self) -> dict[str, str]:
        props = {
            PROP_LAST_LSN: str(self.last_lsn),
            PROP_LAST_SEQ: str(self.last_seq),
            PROP_LOAD_LSN: str(self.load_lsn),
            PROP_FILES: str(self.files),
        }
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
