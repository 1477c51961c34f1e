"""Many pgoutput messages decoded at once with numpy: the capture's fast path.

A fetch of the slot is a list of messages (``bytes``). :class:`MessageChunk` lays them end to end
in one buffer; :func:`decode_run` then decodes a run of consecutive Begin, Commit, Insert, Update
and Delete messages column by column over all the run's rows (one numpy operation per column and
field, not one Python call per value) into :class:`ChangeBlock`\\ s: per table, the change records
in stream order with each column's text values as one Arrow ``binary`` array, typed later like any
other text value (:mod:`abasto.cdc.text_columns`).

The result is exactly what the per-message path (:func:`~abasto.cdc.pgoutput.row_change`,
:func:`~abasto.cdc.shapes.text_image`) gives. Whatever this path does not cover — a malformed or
truncated message, a column count that differs from the table's, a binary (``b``) value, an
unchanged TOASTed value (``u``) in a new row image, a change outside a transaction — makes
:func:`decode_run` return None *before any side effect*, and the caller decodes that run message by
message, which either handles it or raises the error naming what is wrong.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from abasto.cdc.change_files import ChangeBlock, TableShape

I64 = npt.NDArray[np.int64]
U8 = npt.NDArray[np.uint8]
Mask = npt.NDArray[np.bool_]

_B, _C, _I, _U, _D = (ord(c) for c in "BCIUD")
_N, _K, _O = (ord(c) for c in "NKO")
_T_VALUE, _T_NULL, _T_UNCHANGED = (ord(c) for c in "tnu")
#: kinds :func:`decode_run` handles; any other message is decoded on its own
FAST_KINDS = np.array([_B, _C, _I, _U, _D], dtype=np.uint8)
_PAD = 16  # zero bytes after the last message: fixed-width reads near the end never leave the buffer
_DAY_US = 86_400_000_000
#: microseconds from the Unix epoch to PostgreSQL's (2000-01-01)
_PG_EPOCH_US = 946_684_800_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class MessageChunk:
    """Messages laid end to end in one buffer, with where each starts and ends and its type byte
    (0 for an empty message)."""

    def __init__(self, messages: Sequence[bytes]) -> None:
        self.count = len(messages)
        lengths = np.fromiter(map(len, messages), dtype=np.int64, count=self.count)
        self.ends: I64 = np.cumsum(lengths)
        self.starts: I64 = self.ends - lengths
        raw = b"".join(messages)
        self.buf: U8 = np.frombuffer(raw + bytes(_PAD), dtype=np.uint8)
        kinds = self.buf[self.starts]
        kinds[lengths == 0] = 0
        self.kinds: U8 = kinds

    def special(self) -> list[int]:
        """Positions of the messages :func:`decode_run` does not handle (Relation, Truncate, …)."""
        return [int(i) for i in np.flatnonzero(~np.isin(self.kinds, FAST_KINDS))]


@dataclass
class TxnCursor:
    """Where the stream stands between runs: the open transaction (commit LSN, commit time in µs
    since the Unix epoch, day) or None, and the changes it has had so far."""

    lsn: int | None = None
    commit_ts_us: int = 0
    day: str = ""
    seq: int = 0


@dataclass
class RunResult:
    """What a run did: its change blocks, transactions committed and the changes they held, the
    end LSN of the last commit (None if none), and the cursor after the run."""

    blocks: list[ChangeBlock]
    transactions: int
    changes: int
    end_lsn: int | None
    cursor: TxnCursor


def _be(buf: U8, pos: I64, width: int, dtype: str) -> I64:
    """Big-endian integers (``dtype``, ``width`` bytes) at each of ``pos``, as int64 (the buffer
    is padded, so a read near its end stays inside it)."""
    values: I64 = buf[pos[:, None] + np.arange(width)].view(dtype).ravel().astype(np.int64)
    return values


@dataclass
class _Columns:
    """One tuple per row, column by column: value kinds, value starts and lengths (0 unless 't')."""

    kinds: list[U8]
    starts: list[I64]
    lengths: list[I64]


def _tuples(buf: U8, pos: I64, end: I64, ncols: int) -> tuple[_Columns, I64] | None:
    """TupleData at ``pos`` (one per row): its columns and the positions after it; None if a tuple
    is truncated, has another column count, or holds a kind other than ``t``, ``n``, ``u``."""
    if np.any(pos + 2 > end):
        return None
    if np.any(_be(buf, pos, 2, ">u2") != ncols):
        return None
    pos = pos + 2
    out = _Columns([], [], [])
    for _ in range(ncols):
        if np.any(pos >= end):
            return None
        kinds = buf[pos]
        text = kinds == _T_VALUE
        if not np.all(text | (kinds == _T_NULL) | (kinds == _T_UNCHANGED)):
            return None
        lengths = np.zeros(len(pos), dtype=np.int64)
        if text.any():
            at = pos[text]
            if np.any(at + 5 > end[text]):
                return None
            lengths[text] = _be(buf, at + 1, 4, ">i4")
            if np.any(lengths < 0):
                return None
        after = np.where(text, pos + 5 + lengths, pos + 1)
        if np.any(after > end):
            return None
        out.kinds.append(kinds)
        out.starts.append(pos + 5)
        out.lengths.append(lengths)
        pos = after
    return out, pos


def _binary(buf: U8, starts: I64, lengths: I64, valid: Mask) -> pa.Array:
    """A ``binary`` array of ``buf[start:start + length]`` per row, null where not ``valid``."""
    lengths = np.where(valid, lengths, 0)
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    total = int(offsets[-1])
    if total:
        gather = np.repeat(starts - offsets[:-1], lengths) + np.arange(total, dtype=np.int64)
        data = buf[gather]
    else:
        data = np.zeros(0, dtype=np.uint8)
    nulls = int(len(valid) - np.count_nonzero(valid))
    bitmap = pa.py_buffer(np.packbits(valid, bitorder="little")) if nulls else None
    if total < 2**31:
        return pa.Array.from_buffers(
            pa.binary(),
            len(lengths),
            [bitmap, pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(data)],
            null_count=nulls,
        )
    large = pa.Array.from_buffers(
        pa.large_binary(), len(lengths), [bitmap, pa.py_buffer(offsets), pa.py_buffer(data)], null_count=nulls
    )
    return large.cast(pa.binary())  # raises if one array cannot hold it; the caller's chunks are small


def _day(ts_us: int) -> str:
    return (_EPOCH + timedelta(microseconds=ts_us)).date().isoformat()


def decode_run(
    chunk: MessageChunk,
    first: int,
    stop: int,
    cursor: TxnCursor,
    shape_of: Callable[[int], TableShape],
) -> RunResult | None:
    """Decode messages ``first`` … ``stop - 1`` of ``chunk`` (all Begin, Commit, Insert, Update or
    Delete) starting from ``cursor``. None: the run needs the per-message path (see the module).

    Raises:
        DecodeError: a change names a relation no Relation message announced (``shape_of``).
    """
    buf = chunk.buf
    index = np.arange(first, stop, dtype=np.int64)
    kinds = chunk.kinds[first:stop]
    starts = chunk.starts[first:stop]
    ends = chunk.ends[first:stop]
    sizes = ends - starts
    is_begin, is_commit = kinds == _B, kinds == _C
    is_change = ~(is_begin | is_commit)
    if np.any(is_begin & (sizes != 21)) or np.any(is_commit & (sizes != 26)):
        return None
    if np.any(is_change & (sizes < 8)):
        return None
    # which transaction each message belongs to: the last Begin or Commit before it decides
    marks = np.where(is_begin | is_commit, np.arange(len(kinds)), -1)
    last_mark = np.maximum.accumulate(marks) if len(marks) else marks
    change_pos = np.flatnonzero(is_change)
    owner = last_mark[change_pos]
    carried = owner < 0
    if np.any(carried) and cursor.lsn is None:
        return None  # a change outside a transaction
    if np.any(~carried & ~is_begin[np.maximum(owner, 0)]):
        return None  # a change after a Commit, before the next Begin
    begin_pos = np.flatnonzero(is_begin)
    begin_lsn = _be(buf, starts[begin_pos] + 1, 8, ">u8")
    begin_ts = _be(buf, starts[begin_pos] + 9, 8, ">i8").astype(np.int64) + _PG_EPOCH_US
    commit_pos = np.flatnonzero(is_commit)
    commit_end = _be(buf, starts[commit_pos] + 10, 8, ">u8")
    # per change: its transaction's commit LSN, commit time and position in it
    changes_before = np.cumsum(is_change) - is_change  # changes earlier in the run
    txn_of = np.searchsorted(begin_pos, owner)  # index into begin_pos (for non-carried changes)
    txn_of_safe = np.where(carried, 0, txn_of)
    lsn = np.where(carried, cursor.lsn or 0, begin_lsn[txn_of_safe] if len(begin_pos) else 0)
    ts = np.where(carried, cursor.commit_ts_us, begin_ts[txn_of_safe] if len(begin_pos) else 0)
    base = np.where(carried, -cursor.seq, changes_before[np.maximum(owner, 0)])
    seq = changes_before[change_pos] - base
    # changes per committed transaction: a Commit closes the Begin before it, or the carried one
    committed = 0
    for c in commit_pos.tolist():
        o = int(last_mark[c - 1]) if c > 0 else -1
        if o < 0 and cursor.lsn is not None:
            committed += int(changes_before[c]) + cursor.seq
        elif o >= 0 and is_begin[o]:
            committed += int(changes_before[c] - changes_before[o])
        else:
            return None  # a Commit with no open transaction
    blocks = _blocks(chunk, index[change_pos], lsn, ts, seq, shape_of)
    if blocks is None:
        return None
    # the cursor after the run
    after = TxnCursor(cursor.lsn, cursor.commit_ts_us, cursor.day, cursor.seq)
    last = int(last_mark[-1]) if len(kinds) else -1
    if last >= 0:
        if is_begin[last]:
            t = int(np.searchsorted(begin_pos, last))
            ts_us = int(begin_ts[t])
            total = int(changes_before[-1] + is_change[-1])
            after = TxnCursor(int(begin_lsn[t]), ts_us, _day(ts_us), total - int(changes_before[last]))
        else:
            after = TxnCursor()
    elif len(change_pos):
        after.seq = cursor.seq + len(change_pos)
    return RunResult(
        blocks=blocks,
        transactions=len(commit_pos),
        changes=committed,
        end_lsn=int(commit_end[-1]) if len(commit_pos) else None,
        cursor=after,
    )


def _blocks(
    chunk: MessageChunk,
    messages: I64,
    lsn: I64,
    ts: I64,
    seq: I64,
    shape_of: Callable[[int], TableShape],
) -> list[ChangeBlock] | None:
    """The change messages ``messages`` (positions in ``chunk``) as blocks per table and day."""
    if not len(messages):
        return []
    buf = chunk.buf
    starts, ends = chunk.starts[messages], chunk.ends[messages]
    kinds = chunk.kinds[messages]
    relations = _be(buf, starts + 1, 4, ">u4")
    markers = buf[starts + 5]
    out: list[tuple[int, ChangeBlock]] = []  # (first message, block): stream order across tables
    for relation in np.unique(relations).tolist():
        rows = np.flatnonzero(relations == relation)
        shape = shape_of(int(relation))
        ncols = len(shape.columns)
        n = len(rows)
        ops = np.zeros(n, dtype=np.int8)
        col_kinds = [np.zeros(n, dtype=np.uint8) for _ in range(ncols)]
        col_starts = [np.zeros(n, dtype=np.int64) for _ in range(ncols)]
        col_lengths = [np.zeros(n, dtype=np.int64) for _ in range(ncols)]
        k, m = kinds[rows], markers[rows]
        s, e = starts[rows], ends[rows]
        keyed = (m == _K) | (m == _O)
        groups = [
            (0, (k == _I) & (m == _N), False, False),
            (1, (k == _U) & (m == _N), False, False),
            (1, (k == _U) & keyed, True, False),
            (2, (k == _D) & keyed, False, True),
        ]
        covered = np.zeros(n, dtype=bool)
        for op, mask, has_old, is_delete in groups:
            if not mask.any():
                continue
            covered |= mask
            pos, end = s[mask] + 6, e[mask]
            if has_old:  # the old key/row first, then 'N' and the new row
                parsed_old = _tuples(buf, pos, end, ncols)
                if parsed_old is None:
                    return None
                pos = parsed_old[1]
                if np.any(pos >= end) or np.any(buf[pos] != _N):
                    return None
                pos = pos + 1
            parsed = _tuples(buf, pos, end, ncols)
            if parsed is None or np.any(parsed[1] != end):
                return None
            columns = parsed[0]
            if not is_delete and any(np.any(c == _T_UNCHANGED) for c in columns.kinds):
                return None  # an unchanged TOASTed value: the per-message path fills it from the old row
            ops[mask] = op
            for c in range(ncols):
                col_kinds[c][mask] = columns.kinds[c]
                col_starts[c][mask] = columns.starts[c]
                col_lengths[c][mask] = columns.lengths[c]
        if not covered.all():
            return None  # an unknown marker
        values = [_binary(buf, col_starts[c], col_lengths[c], col_kinds[c] == _T_VALUE) for c in range(ncols)]
        r_lsn, r_ts, r_seq = lsn[rows], ts[rows], seq[rows]
        day_no = np.floor_divide(r_ts, _DAY_US)
        cuts = [0, *(np.flatnonzero(day_no[1:] != day_no[:-1]) + 1).tolist(), n]
        for a, b in itertools.pairwise(cuts):
            block = ChangeBlock(
                shape=shape,
                day=_day(int(r_ts[a])),
                ops=ops[a:b],
                lsn=r_lsn[a:b],
                commit_ts_us=r_ts[a:b],
                seq=r_seq[a:b],
                values=[v.slice(a, b - a) for v in values],
            )
            out.append((int(messages[rows[a]]), block))
    out.sort(key=lambda item: item[0])
    return [block for _, block in out]
