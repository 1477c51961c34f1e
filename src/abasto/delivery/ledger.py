"""Batch manifests: the delivery's write-ahead record of how the stream was cut into files.

A batch is a set of stream sequences (kept as runs ``[start, end]``), cut by the size or time
trigger on first delivery. Before any data file of a batch is written, its manifest is written
durably: the runs, the files it produces (partition relpath → rows), its ``received_at`` instant
and a digest of its first message. From then on the manifest is the law for those sequences:

* a redelivered (or replayed) message whose sequence is in a manifest is re-assembled into *that*
  batch, so it produces the same file names with the same rows, and files already present are
  skipped;
* a message in no manifest has had no file written for it yet, so it may start a new batch.

Each sequence belongs to one batch at most, hence each event to one file. A manifest also lists
the (``device_id``, ``seq``) keys the batch writes (``written``, runs per device): copies of keys an
earlier batch wrote are left out at the cut (:mod:`abasto.delivery.dedup`), and a batch re-assembled
after a crash keeps exactly these keys, so its files come out byte-identical. Manifests of sequences
the stream no longer holds (below its first sequence) can never be redelivered and are pruned.
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

import msgspec

from abasto.delivery.durable import read_bytes, write_bytes_durable
from abasto.delivery.layout import LEDGER_DIR, manifest_name
from abasto.errors import InvalidInputError, TerminalError
from abasto.lake.storage import filesystem_for, join_uri, list_files

__all__ = ["BatchManifest", "Ledger", "digest", "runs_of"]


class BatchManifest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One batch as planned before its files were written."""

    first_seq: int
    last_seq: int
    #: the batch's stream sequences as inclusive runs, ascending
    runs: list[tuple[int, int]]
    messages: int
    #: partition relpath (``date=…/hour=…/part-….parquet``) → rows
    files: dict[str, int]
    received_at: datetime
    #: sha256 (16 hex) of the first message's bytes: detects a recreated stream reusing sequences
    first_digest: str
    #: device → seq runs the batch's files hold (None: a manifest written before cross-batch dedup)
    written: dict[str, list[tuple[int, int]]] | None = None

    @property
    def name(self) -> str:
        return manifest_name(self.first_seq, self.last_seq)


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def runs_of(seqs: Iterable[int]) -> list[tuple[int, int]]:
    """Sorted distinct sequences as inclusive runs: ``[1, 2, 3, 7]`` → ``[(1, 3), (7, 7)]``."""
    ordered = sorted(set(seqs))
    runs: list[tuple[int, int]] = []
    for _, group in itertools.groupby(enumerate(ordered), key=lambda p: p[1] - p[0]):
        values = [v for _, v in group]
        runs.append((values[0], values[-1]))
    return runs


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(BatchManifest)


@dataclass(frozen=True, slots=True)
class _Run:
    start: int
    end: int
    manifest: BatchManifest


class Ledger:
    """The manifests under ``<table>/_delivery/batches``, indexed by stream sequence."""

    def __init__(self, table_uri: str) -> None:
        self.uri = join_uri(table_uri, LEDGER_DIR)
        self._starts: list[int] = []
        self._runs: list[_Run] = []

    def load(
        self,
        *,
        stream_first_seq: int = 0,
        before_prune: Callable[[list[BatchManifest]], None] | None = None,
    ) -> int:
        """Read the manifests; those entirely below ``stream_first_seq`` are deleted, after
        ``before_prune`` got them (to keep what must outlive them). Returns how many are loaded.

        Raises:
            TerminalError: a manifest cannot be parsed.
        """
        self._starts, self._runs = [], []
        fs, root = filesystem_for(self.uri)
        stale: list[tuple[str, BatchManifest]] = []
        loaded = 0
        for stored in list_files(self.uri, suffix=".json"):
            try:
                manifest = _decoder.decode(read_bytes(stored.uri))
            except msgspec.DecodeError as exc:
                raise TerminalError(f"unreadable delivery manifest {stored.uri}: {exc}") from exc
            if manifest.last_seq < stream_first_seq:
                stale.append((stored.relpath, manifest))
                continue
            self._index(manifest)
            loaded += 1
        if stale and before_prune is not None:
            before_prune([m for _, m in stale])
        for relpath, _ in stale:
            fs.delete_file(f"{root}/{relpath}")
        return loaded

    def manifests(self) -> list[BatchManifest]:
        """The loaded manifests, by first sequence."""
        seen: dict[int, BatchManifest] = {}
        for run in self._runs:
            seen.setdefault(id(run.manifest), run.manifest)
        return sorted(seen.values(), key=lambda m: m.first_seq)

    def record(self, manifest: BatchManifest) -> None:
        """Write ``manifest`` durably and index it.

        Raises:
            InvalidInputError: one of its sequences already belongs to another batch.
        """
        for start, end in manifest.runs:
            if self.find(start) is not None or self.find(end) is not None or self._overlaps(start, end):
                raise InvalidInputError(f"stream sequences {start}..{end} already belong to a batch")
        write_bytes_durable(_encoder.encode(manifest), join_uri(self.uri, manifest.name))
        self._index(manifest)

    def find(self, seq: int) -> BatchManifest | None:
        """The batch holding stream sequence ``seq``, if any."""
        i = bisect.bisect_right(self._starts, seq) - 1
        if i >= 0 and self._runs[i].start <= seq <= self._runs[i].end:
            return self._runs[i].manifest
        return None

    def __len__(self) -> int:
        return len({id(r.manifest) for r in self._runs})

    def _overlaps(self, start: int, end: int) -> bool:
        i = bisect.bisect_left(self._starts, start)
        return i < len(self._starts) and self._starts[i] <= end

    def _index(self, manifest: BatchManifest) -> None:
        for start, end in manifest.runs:
            i = bisect.bisect_left(self._starts, start)
            self._starts.insert(i, start)
            self._runs.insert(i, _Run(start, end, manifest))
