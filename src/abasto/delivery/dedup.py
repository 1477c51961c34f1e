"""Cross-batch dedup of the raw delivery: which (``device_id``, ``seq``) the raw zone already holds.

Stream duplicates are real: an MQTT device re-sends an un-PUBACKed message after a broker restart
(MQTT 3.1.1 carries no ``Nats-Msg-Id``, so JetStream's duplicate window cannot drop it), and a
device re-sends a batched record cut at other boundaries. The copy may land in a later delivery
batch than the original, so the delivery remembers the keys it wrote.

**State.** Per device, the seqs written as sorted inclusive runs (a device counts up, so a run or
two per device), bounded by the **dedup horizon**: only seqs above ``hwm - window`` are kept,
``hwm`` being the device's highest seq written. A copy of an event whose seq is at or below the
horizon cannot be told from a new event and is written again (counted as ``beyond_horizon``; the
curated device tables still dedup by (``device_id``, ``seq``)). A device whose seq restarts from
0 is therefore not silenced once it is ``window`` below its old high-water mark.

**Order independence.** The state is ``prune(union of the keys written by every batch)``: a union
does not depend on the order batches were cut or re-read in, and pruning at a higher ``hwm``
removes a superset, so pruning as batches arrive equals pruning once at the end. Hence the state
rebuilt on start from the persisted parts (:class:`WrittenState` of pruned manifests, plus the
``written`` runs of each manifest still held) equals what an uninterrupted run holds in memory.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from abasto.delivery.config import DEFAULT_WINDOW
from abasto.delivery.durable import exists, read_bytes, write_bytes_durable
from abasto.delivery.rows import DecodedBatch
from abasto.errors import InvalidInputError, TerminalError

__all__ = [
    "DEFAULT_WINDOW",
    "DedupStore",
    "Runs",
    "Selection",
    "WrittenKeys",
    "WrittenState",
    "drop_written",
    "keep_recorded",
    "keys_of",
]


#: device → its seqs as inclusive runs ``[start, end]``, ascending and disjoint
Runs = dict[str, list[tuple[int, int]]]


class WrittenState(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The persisted part of the state that no manifest holds any more (manifests of sequences the
    stream dropped are deleted): ``devices`` = written runs within the horizon (a device's last run
    ends at its high-water mark)."""

    window: int
    devices: Runs


class WrittenKeys:
    """Keys written to the raw zone within the dedup horizon (see the module doc)."""

    def __init__(self, window: int = DEFAULT_WINDOW) -> None:
        if window < 1:
            raise InvalidInputError(
                f"dedup window must be ≥ 1 seq, got {window}",
                hint="DeliveryConfig.dedup_window counts seqs per device (default 100,000)",
            )
        self.window = window
        self._starts: dict[str, list[int]] = {}
        self._ends: dict[str, list[int]] = {}

    # --- queries -----------------------------------------------------------------------------
    def horizon(self, device_id: str) -> int | None:
        """Seqs at or below this are beyond the horizon for ``device_id`` (None: nothing written)."""
        ends = self._ends.get(device_id)
        return ends[-1] - self.window if ends else None

    def contains(self, device_id: str, seq: int) -> bool:
        starts = self._starts.get(device_id)
        if not starts:
            return False
        i = bisect.bisect_right(starts, seq) - 1
        return i >= 0 and seq <= self._ends[device_id][i]

    def beyond_horizon(self, device_id: str, seq: int) -> bool:
        horizon = self.horizon(device_id)
        return horizon is not None and seq <= horizon

    def clear_of(self, device_id: str, lo: int, hi: int) -> bool:
        """No seq of ``lo..hi`` is held for ``device_id`` and none is beyond its horizon."""
        starts = self._starts.get(device_id)
        if not starts:
            return True
        ends = self._ends[device_id]
        if lo <= ends[-1] - self.window:
            return False
        i = bisect.bisect_right(starts, hi) - 1
        return i < 0 or ends[i] < lo

    def covers(self, device_id: str, lo: int, hi: int) -> bool:
        """Every seq of ``lo..hi`` is held for ``device_id`` (runs are merged: one run holds them)."""
        starts = self._starts.get(device_id)
        if not starts:
            return False
        i = bisect.bisect_right(starts, lo) - 1
        return i >= 0 and hi <= self._ends[device_id][i]

    def runs(self) -> Runs:
        return {
            d: list(zip(self._starts[d], self._ends[d], strict=True))
            for d in sorted(self._starts)
            if self._starts[d]
        }

    def __len__(self) -> int:
        """Keys held (for tests and logs)."""
        return sum(
            e - s + 1 for d in self._starts for s, e in zip(self._starts[d], self._ends[d], strict=True)
        )

    # --- updates -----------------------------------------------------------------------------
    def add(self, runs: Mapping[str, Iterable[tuple[int, int]]]) -> None:
        """Add written runs per device, then prune each touched device to its horizon."""
        for device, new in runs.items():
            merged = _merge(
                [*zip(self._starts.get(device, []), self._ends.get(device, []), strict=True), *new]
            )
            if not merged:
                continue
            floor = merged[-1][1] - self.window  # the high-water mark is never pruned
            kept = [(max(s, floor + 1), e) for s, e in merged if e > floor]
            self._starts[device] = [s for s, _ in kept]
            self._ends[device] = [e for _, e in kept]

    def add_state(self, state: WrittenState) -> None:
        self.add(state.devices)

    def to_state(self) -> WrittenState:
        return WrittenState(window=self.window, devices=self.runs())


def _merge(runs: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Union of inclusive runs, adjacent ones joined."""
    out: list[tuple[int, int]] = []
    for start, end in sorted(runs):
        if out and start <= out[-1][1] + 1:
            if end > out[-1][1]:
                out[-1] = (out[-1][0], end)
        else:
            out.append((start, end))
    return out


def keys_of(batch: DecodedBatch) -> Runs:
    """The (device, seq) keys of a decoded batch's rows as runs per device."""
    return {device: runs for device, runs in _device_runs(batch)}


def _device_runs(batch: DecodedBatch) -> list[tuple[str, list[tuple[int, int]]]]:
    """Per device of ``batch``'s rows, by name: its seqs as runs (what :func:`_merge` makes of
    them). The rows are sorted by (device, seq); a run breaks where the device changes or the seq
    jumps by more than one (a seq twice stays in its run)."""
    tables = [t for t in batch.partitions.values() if t.num_rows]
    if not tables:
        return []
    rows = pa.concat_tables([t.select(["device_id", "seq"]) for t in tables])
    devices = rows["device_id"].combine_chunks().dictionary_encode()
    names: list[str] = devices.dictionary.to_pylist()
    by_name = sorted(range(len(names)), key=names.__getitem__)
    rank = np.empty(len(names), dtype=np.int64)
    rank[by_name] = np.arange(len(names))
    device = rank[np.asarray(devices.indices)]
    seq = np.asarray(rows["seq"])
    if seq.min() >= 0 and seq.max() < 1 << 32:  # seqs (mostly small) fit in one sort key
        order = np.argsort((device << 32) | seq, kind="stable")
    else:
        order = np.lexsort((seq, device))
    device, seq = device[order], seq[order]
    breaks = np.flatnonzero((np.diff(device) != 0) | (np.diff(seq) > 1)) + 1
    firsts = np.concatenate(([0], breaks))
    lasts = np.concatenate((breaks - 1, [len(seq) - 1]))
    run_device: list[int] = device[firsts].tolist()
    runs = list(zip(seq[firsts].tolist(), seq[lasts].tolist(), strict=True))
    out: list[tuple[str, list[tuple[int, int]]]] = []
    lo = 0
    for hi in [*np.flatnonzero(np.diff(device[firsts])).tolist(), len(runs) - 1]:
        out.append((names[by_name[run_device[hi]]], runs[lo : hi + 1]))
        lo = hi + 1
    return out


@dataclass(frozen=True, slots=True)
class Selection:
    """A batch's rows to write, and what was left out or let through."""

    batch: DecodedBatch
    #: copies of events an earlier batch wrote, dropped
    dropped: int
    #: rows at or below their device's horizon: written without knowing whether they are copies
    beyond_horizon: int


def drop_written(batch: DecodedBatch, written: WrittenKeys) -> Selection:
    """``batch`` without the rows whose key ``written`` holds (cutting a new batch)."""
    return _filter(
        batch,
        lambda d, s: not written.contains(d, s),
        written.beyond_horizon,
        written.clear_of,
    )


def keep_recorded(batch: DecodedBatch, runs: Runs) -> Selection:
    """``batch`` reduced to the keys its manifest recorded as written (re-assembling a batch after
    a crash: the same rows as at its cut, whatever the state holds now)."""
    recorded = WrittenKeys(window=_UNBOUNDED)
    recorded.add(runs)
    return _filter(batch, recorded.contains, lambda d, s: False, recorded.covers)


_UNBOUNDED = 2**62


def _filter(
    batch: DecodedBatch,
    keep: Callable[[str, int], bool],
    beyond: Callable[[str, int], bool],
    keeps_all: Callable[[str, int, int], bool],
) -> Selection:
    """The rows ``keep`` keeps, counting those it drops and those ``beyond`` calls late.

    ``keeps_all(device, lo, hi)``: every seq of lo..hi of the device is kept and none is late (a
    sufficient condition). The rows of a device whose seq range in the batch passes it are kept
    without a call per row; only the rows of the other devices are asked one by one.
    """
    out = DecodedBatch(invalid=batch.invalid, duplicates=batch.duplicates)
    devices = _device_runs(batch)
    asked = [d for d, runs in devices if not keeps_all(d, runs[0][0], runs[-1][1])]
    if not asked:
        out.partitions = {part: t for part, t in batch.partitions.items() if t.num_rows}
        return Selection(out, 0, 0)
    value_set = pa.array(asked, pa.string())
    dropped = late = 0
    for part, table in batch.partitions.items():
        rows = np.flatnonzero(np.asarray(pc.is_in(table["device_id"], value_set=value_set)))
        mask = np.ones(table.num_rows, dtype=np.bool_)
        if len(rows):
            some = table.select(["device_id", "seq"]).take(pa.array(rows))
            pairs = zip(some["device_id"].to_pylist(), some["seq"].to_pylist(), strict=True)
            for row, (device, seq) in zip(rows.tolist(), pairs, strict=True):
                if not keep(device, seq):
                    mask[row] = False
                    dropped += 1
                elif beyond(device, seq):
                    late += 1
        selected = table if mask.all() else table.filter(pa.array(mask))
        if selected.num_rows:
            out.partitions[part] = selected
    return Selection(out, dropped, late)


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(WrittenState)


class DedupStore:
    """``<table>/_delivery/dedup/written.json``: the :class:`WrittenState` folded from the manifests
    that were pruned (written durably before they are deleted)."""

    def __init__(self, uri: str) -> None:
        self.uri = uri

    def load(self) -> WrittenState | None:
        """Raises:
        TerminalError: the file cannot be parsed.
        """
        if not exists(self.uri):
            return None
        try:
            return _decoder.decode(read_bytes(self.uri))
        except msgspec.DecodeError as exc:
            raise TerminalError(
                f"unreadable delivery dedup state {self.uri}: {exc}",
                hint="restore it from a backup, or delete it to accept duplicates of old events",
            ) from exc

    def save(self, state: WrittenState) -> None:
        write_bytes_durable(_encoder.encode(state), self.uri)
