"""Change records → Parquet files of the raw zone, one file per table, row-image schema and day.

A capture batch (whole transactions) feeds records here; each (table, schema, commit day) gets a
*segment*, written to a staged file as it grows. :meth:`ChangeFileWriter.publish` names each file
after the first and last commit LSN it holds and renames it into place; a name that already exists
was published by an earlier attempt at the same batch and is skipped, so a replay never duplicates.

Record columns: ``Op`` (``I``/``U``/``D``, and ``T`` for a TRUNCATE: every earlier row of the table
is gone; the image is all nulls), ``_lsn`` (commit LSN), ``_commit_ts``, ``_seq`` (position of the
change inside its transaction, so ``(_lsn, _seq)`` orders every change of a table, across files),
then the row image typed like the source columns.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from abasto.cdc.pgtypes import ColumnType
from abasto.cdc.raw_zone import RawZone, StagedFile, cdc_name
from abasto.cdc.text_columns import text_column

UTC_TS = pa.timestamp("us", tz="UTC")
META_FIELDS = (
    pa.field("Op", pa.string()),
    pa.field("_lsn", pa.int64()),
    pa.field("_commit_ts", UTC_TS),
    pa.field("_seq", pa.int64()),
)
META_NAMES = tuple(f.name for f in META_FIELDS)
#: rows buffered before they are written out as one row group
ROW_GROUP_ROWS = 50_000


@dataclass(frozen=True, slots=True)
class Transaction:
    """The commit a change belongs to: commit LSN, commit time (µs since the Unix epoch), UTC day."""

    lsn: int
    commit_ts_us: int
    day: str


@dataclass(frozen=True)
class TableShape:
    """A source table as the capture sees it at one point of the stream."""

    schema: str
    table: str
    columns: tuple[str, ...]
    types: tuple[ColumnType, ...]
    #: what identifies the shape: a new Relation with another signature starts a new file
    signature: tuple[Any, ...]
    arrow_schema: pa.Schema = field(init=False, compare=False)

    def __post_init__(self) -> None:
        image = [pa.field(name, typ.arrow) for name, typ in zip(self.columns, self.types, strict=True)]
        object.__setattr__(self, "arrow_schema", pa.schema([*META_FIELDS, *image]))

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.table}"


#: op codes of :attr:`ChangeBlock.ops`, as indexes into this array
OPS = pa.array(["I", "U", "D"], pa.string())


@dataclass
class ChangeBlock:
    """Consecutive change records of one table and one commit day, in stream order."""

    shape: TableShape
    day: str
    #: indexes into :data:`OPS` (``I``, ``U``, ``D``)
    ops: npt.NDArray[np.int8]
    lsn: npt.NDArray[np.int64]
    commit_ts_us: npt.NDArray[np.int64]
    seq: npt.NDArray[np.int64]
    #: one ``binary`` array per column of ``shape`` (text values as sent; null for SQL NULL)
    values: list[pa.Array]

    @property
    def rows(self) -> int:
        return len(self.lsn)


class _Segment:
    """One staged file: records buffered (row tuples from the per-message path, column blocks from
    :mod:`abasto.cdc.vector_decode`, in arrival order), typed column by column when flushed."""

    def __init__(self, raw: RawZone, shape: TableShape, day: str, first_lsn: int) -> None:
        self.raw = raw
        self.shape = shape
        self.day = day
        self.first_lsn = first_lsn
        self.last_lsn = first_lsn
        self.rows = 0
        self.buffer: list[tuple[Any, ...]] = []
        self.pieces: list[list[tuple[Any, ...]] | ChangeBlock] = []
        self.buffered = 0
        provisional = cdc_name(shape.schema, shape.table, day, first_lsn, first_lsn)
        self.staged: StagedFile = raw.stage(provisional, shape.arrow_schema)

    def add(self, op: str, lsn: int, commit_ts_us: int, seq: int, values: tuple[Any, ...]) -> None:
        self.buffer.append((op, lsn, commit_ts_us, seq, *values))
        self.last_lsn = lsn
        self.rows += 1
        self.buffered += 1
        if self.buffered >= ROW_GROUP_ROWS:
            self.flush()

    def add_block(self, block: ChangeBlock) -> None:
        if self.buffer:
            self.pieces.append(self.buffer)
            self.buffer = []
        self.pieces.append(block)
        self.last_lsn = int(block.lsn[-1])
        self.rows += block.rows
        self.buffered += block.rows
        if self.buffered >= ROW_GROUP_ROWS:
            self.flush()

    def flush(self) -> None:
        """Write the buffered records as one row group.

        Raises:
            DecodeError: a value does not parse as its column type.
            TerminalError: a value arrived in binary form.
        """
        if self.buffer:
            self.pieces.append(self.buffer)
            self.buffer = []
        if not self.pieces:
            return
        shape = self.shape
        parts = [self._typed(piece) for piece in self.pieces]
        arrays = (
            parts[0] if len(parts) == 1 else [pa.concat_arrays(list(c)) for c in zip(*parts, strict=True)]
        )
        self.staged.write(pa.RecordBatch.from_arrays(arrays, schema=shape.arrow_schema))
        self.pieces = []
        self.buffered = 0

    def _typed(self, piece: list[tuple[Any, ...]] | ChangeBlock) -> list[pa.Array]:
        """The Arrow arrays (meta fields, then the row image typed) of one buffered piece."""
        shape = self.shape
        if isinstance(piece, ChangeBlock):
            arrays = [
                OPS.take(pa.array(piece.ops)),
                pa.array(piece.lsn, pa.int64()),
                pa.array(piece.commit_ts_us, UTC_TS),
                pa.array(piece.seq, pa.int64()),
            ]
            image: list[Sequence[Any] | pa.Array] = list(piece.values)
        else:
            columns = list(zip(*piece, strict=True))
            arrays = [
                pa.array(values, type=f.type) for values, f in zip(columns[:4], META_FIELDS, strict=True)
            ]
            image = list(columns[4:])
        for values, name, typ in zip(image, shape.columns, shape.types, strict=True):
            arrays.append(text_column(values, typ, f"{shape.qualified}.{name}"))
        return arrays


@dataclass(frozen=True, slots=True)
class PublishedFiles:
    """Names of a batch's files: all of them, and those this attempt wrote (not already present)."""

    names: list[str]
    written: list[str]


class ChangeFileWriter:
    """Collects the change records of one capture batch and publishes them as raw files."""

    def __init__(self, raw: RawZone) -> None:
        self.raw = raw
        self._open: dict[tuple[str, str], _Segment] = {}
        self._done: list[_Segment] = []
        self.records = 0

    def add(self, shape: TableShape, op: str, txn: Transaction, seq: int, values: tuple[Any, ...]) -> None:
        """Append one change record: ``values`` in ``shape.columns`` order, each the text form
        PostgreSQL sent (``bytes``) or None; they are typed when written (:mod:`abasto.cdc.text_columns`).
        """
        key = (shape.schema, shape.table)
        segment = self._open.get(key)
        if segment is None or segment.shape.signature != shape.signature or segment.day != txn.day:
            if segment is not None:
                self._done.append(segment)
            segment = _Segment(self.raw, shape, txn.day, txn.lsn)
            self._open[key] = segment
        segment.add(op, txn.lsn, txn.commit_ts_us, seq, values)
        self.records += 1

    def add_block(self, block: ChangeBlock) -> None:
        """Append change records decoded together (:mod:`abasto.cdc.vector_decode`): the same
        as :meth:`add` for each of them, in order."""
        shape = block.shape
        key = (shape.schema, shape.table)
        segment = self._open.get(key)
        if segment is None or segment.shape.signature != shape.signature or segment.day != block.day:
            if segment is not None:
                self._done.append(segment)
            segment = _Segment(self.raw, shape, block.day, int(block.lsn[0]))
            self._open[key] = segment
        segment.add_block(block)
        self.records += block.rows

    def publish(self) -> PublishedFiles:
        """Write out, name and rename every file of the batch (skipping names already present).

        Raises:
            OSError: the raw zone cannot be written; staged files are removed, nothing is published.
        """
        segments = [*self._done, *self._open.values()]
        self._done, self._open = [], {}
        names: list[str] = []
        written: list[str] = []
        used: set[str] = set()
        try:
            for segment in segments:
                segment.flush()
                shape = segment.shape
                split = 0
                name = cdc_name(shape.schema, shape.table, segment.day, segment.first_lsn, segment.last_lsn)
                while name in used:  # one transaction's changes split by a schema change
                    split += 1
                    name = cdc_name(
                        shape.schema,
                        shape.table,
                        segment.day,
                        segment.first_lsn,
                        segment.last_lsn,
                        split=split,
                    )
                used.add(name)
                segment.staged.name = name
            for segment in segments:
                if self.raw.publish(segment.staged):
                    written.append(segment.staged.name)
                names.append(segment.staged.name)
        except BaseException:
            for segment in segments:
                if segment.staged.name not in names:
                    self.raw.discard(segment.staged)
            raise
        return PublishedFiles(names=names, written=written)

    def discard(self) -> None:
        """Abandon every staged file of the batch."""
        for segment in [*self._done, *self._open.values()]:
            self.raw.discard(segment.staged)
        self._done, self._open = [], {}
        self.records = 0
