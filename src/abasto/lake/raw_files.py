"""The raw zone's change files (DMS-like, see docs/CONTRACTS.md): finding, ordering and reading them.

```
<raw>/<source>/full_load/LOAD-<lsn16>-<nnnnn>.parquet
<raw>/<source>/cdc/<YYYY-MM-DD>/CDC-<first_lsn16>-<last_lsn16>[_<k>].parquet
```
Files are applied in the order of the changes they hold (:attr:`RawFile.order_key`): a CDC file by
its last LSN, a full load after every CDC file ending at or below its snapshot LSN; the files of one
LSN range in suffix order (none, ``_1``, ``_2``…).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from abasto.catalog.arrow_types import normalize_table
from abasto.errors import InvalidInputError
from abasto.lake.storage import fetch_bytes, join_uri, list_files, read_parquet

__all__ = [
    "CDC_COLUMNS",
    "FILE_INDEX",
    "RawFile",
    "ReadOutcome",
    "UnreadableFile",
    "discover_raw_files",
    "read_changes",
    "read_readable_changes",
]

#: change-record columns in front of every row image
CDC_COLUMNS = ("Op", "_lsn", "_commit_ts", "_seq")
#: column added while merging: the file's position in the batch (tie-break between files)
FILE_INDEX = "_file"
#: ``T``: a TRUNCATE of the source table (every earlier row is gone; the image is all nulls)
OPS = ("I", "U", "D", "T")

_LOAD = re.compile(r"^full_load/LOAD-(?P<lsn>[0-9A-Fa-f]{16})-(?P<part>\d+)\.parquet$")
_CDC = re.compile(
    r"^cdc/\d{4}-\d{2}-\d{2}/CDC-(?P<first>[0-9A-Fa-f]{16})-(?P<last>[0-9A-Fa-f]{16})"
    r"(?:_(?P<split>[1-9]\d*))?\.parquet$"
)


@dataclass(frozen=True)
class RawFile:
    """One change file of a source table; ``relpath`` is relative to ``<raw>/<source>``.

    ``part``: a full load's file number; ``split``: a CDC file's ``_<k>`` suffix (0 without one),
    written when a schema change splits one transaction's changes to the table into several files
    sharing an LSN range.
    """

    relpath: str
    uri: str
    kind: Literal["full_load", "cdc"]
    first_lsn: int
    last_lsn: int
    part: int = 0
    split: int = 0

    @classmethod
    def parse(cls, relpath: str, uri: str = "") -> RawFile:
        """Recognise a raw file by its path.

        Raises:
            InvalidInputError: the path does not follow the raw-zone layout.
        """
        if m := _LOAD.match(relpath):
            lsn = int(m["lsn"], 16)
            return cls(relpath, uri, "full_load", lsn, lsn, int(m["part"]))
        if m := _CDC.match(relpath):
            first, last = int(m["first"], 16), int(m["last"], 16)
            if last < first:
                raise InvalidInputError(f"raw file {relpath}: last LSN before first LSN")
            return cls(relpath, uri, "cdc", first, last, split=int(m["split"] or 0))
        raise InvalidInputError(
            f"unexpected file in the raw zone: {relpath}",
            hint="expected full_load/LOAD-<lsn16>-<n>.parquet "
            "or cdc/<date>/CDC-<lsn16>-<lsn16>[_<k>].parquet",
        )

    @property
    def order_key(self) -> tuple[int, int, int, int, str]:
        """Processing order, the order of the changes the files hold.

        A CDC file sorts by its last LSN, then first LSN, then suffix. A full load at LSN ``L``
        replaces every change at or below ``L``, so it sorts after the CDC files ending at or below
        ``L`` and before those ending above it (whose changes above ``L`` apply on top of it); its
        parts in number order. A rewritten range that reaches past the applied ones therefore stays
        pending (its already-applied records are dropped by the ledger's watermark).
        """
        if self.kind == "full_load":
            return (self.first_lsn, 1, self.first_lsn, self.part, self.relpath)
        return (self.last_lsn, 0, self.first_lsn, self.split, self.relpath)


def discover_raw_files(raw_uri: str, source: str) -> list[RawFile]:
    """Every change file of ``source`` (e.g. ``sales_db/orders``) in processing order."""
    prefix = join_uri(raw_uri, source)
    files = [RawFile.parse(f.relpath, f.uri) for f in list_files(prefix, suffix=".parquet")]
    return sorted(files, key=lambda f: f.order_key)


def read_changes(files: list[RawFile]) -> pa.Table:
    """Concatenate ``files`` into one table of change records, columns united by name.

    Row images are cast to curated types; a column missing from a file is null there; the
    position of each file in ``files`` is added as :data:`FILE_INDEX`.

    Raises:
        InvalidInputError: a file lacks the change-record columns or has an unknown ``Op``.
    """
    parts = [_read_one(raw, index) for index, raw in enumerate(files)]
    return _concat(parts)


@dataclass(frozen=True)
class UnreadableFile:
    """A raw file set aside by :func:`read_readable_changes`, and why."""

    file: RawFile
    reason: str


@dataclass(frozen=True)
class ReadOutcome:
    """The change records of the readable files (``FILE_INDEX`` = position in the files given)
    and the files that could not be read."""

    changes: pa.Table
    unreadable: tuple[UnreadableFile, ...]


def read_readable_changes(files: list[RawFile], *, schema: pa.Schema | None = None) -> ReadOutcome:
    """:func:`read_changes`, but a file that cannot be used is set aside instead of failing the batch.

    Set aside: a file that is not Parquet (garbage, truncated, corrupt pages), one lacking the
    change-record columns or holding an unknown ``Op``, and one with a column whose type neither
    equals, widens (int → long, float → double, decimal precision) nor safely casts to the type the
    column has in ``schema`` (the curated table's) or in an earlier file of the batch. A column
    that safely casts is cast (``"12"`` into an int column); new columns are kept (they evolve the
    table). ``FILE_INDEX`` stays the position in ``files``, so ordering is unchanged.

    Raises:
        TransientError: the file's bytes could not be fetched (storage, not content, failed).
        InvalidInputError: the readable files disagree in a way no single file can be blamed for.
    """
    reference: dict[str, pa.DataType] = {}
    if schema is not None:
        reference.update({f.name: f.type for f in schema if f.name not in (*CDC_COLUMNS, FILE_INDEX)})
    parts: list[pa.Table] = []
    unreadable: list[UnreadableFile] = []
    for index, raw in enumerate(files):
        try:
            table = _conform_types(raw, _read_one(raw, index, confirm_corrupt=True), reference)
        except (InvalidInputError, _CorruptFileError) as exc:
            unreadable.append(UnreadableFile(raw, str(exc)))
            continue
        for name in table.column_names:
            reference.setdefault(name, table.schema.field(name).type)
        parts.append(table)
    return ReadOutcome(_concat(parts), tuple(unreadable))


class _CorruptFileError(Exception):
    """The file's bytes were fetched but are not a readable Parquet file."""


def _read_one(raw: RawFile, index: int, *, confirm_corrupt: bool = False) -> pa.Table:
    try:
        table = read_parquet(raw.uri)
    except (OSError, pa.ArrowException) as exc:
        if not confirm_corrupt:
            raise
        table = _reread_from_bytes(raw, exc)
    missing = [c for c in CDC_COLUMNS if c not in table.column_names]
    if missing:
        raise InvalidInputError(f"raw file {raw.relpath} lacks change-record columns {missing}")
    table = normalize_table(table)
    try:
        table = table.set_column(table.column_names.index("_lsn"), "_lsn", pc.cast(table["_lsn"], pa.int64()))
        table = table.set_column(table.column_names.index("_seq"), "_seq", pc.cast(table["_seq"], pa.int64()))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise InvalidInputError(f"raw file {raw.relpath}: _lsn/_seq are not integers ({exc})") from exc
    bad = pc.invert(pc.fill_null(pc.is_in(table["Op"], pa.array(OPS)), False))
    if pc.any(bad).as_py():
        sample = table.filter(bad)["Op"][0].as_py()
        raise InvalidInputError(f"raw file {raw.relpath}: unknown Op {sample!r} (expected I, U, D or T)")
    return table.append_column(FILE_INDEX, pa.array(np.full(table.num_rows, index, np.int32)))


def _reread_from_bytes(raw: RawFile, first: BaseException) -> pa.Table:
    """Tell a corrupt file from a storage failure: fetch the bytes (an error there is transient),
    then parse them in memory (an error there is the content's)."""
    data = fetch_bytes(raw.uri, raw.relpath)
    try:
        return pq.read_table(pa.BufferReader(data))
    except (OSError, pa.ArrowException) as exc:
        raise _CorruptFileError(
            f"raw file {raw.relpath} is not readable Parquet ({len(data)} bytes): {exc}"
        ) from exc


def _widens(old: pa.DataType, new: pa.DataType) -> bool:
    """``old`` values fit ``new`` and Iceberg can promote the column (or the table already holds
    the wider type)."""
    ints, floats = pa.types.is_integer, pa.types.is_floating
    if (ints(old) and ints(new)) or (floats(old) and floats(new)):
        return True
    if pa.types.is_decimal(old) and pa.types.is_decimal(new):
        return bool(old.scale == new.scale)
    return bool(pa.types.is_null(new) or pa.types.is_null(old))


def _conform_types(raw: RawFile, table: pa.Table, reference: Mapping[str, pa.DataType]) -> pa.Table:
    for name in table.column_names:
        want = reference.get(name)
        have = table.schema.field(name).type
        if want is None or have.equals(want) or _widens(want, have) or _widens(have, want):
            continue
        try:
            column = pc.cast(table[name], want)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
            raise InvalidInputError(
                f"raw file {raw.relpath}: column {name!r} is {have}, which cannot be cast to {want} ({exc})"
            ) from exc
        table = table.set_column(table.column_names.index(name), name, column)
    return table


def _concat(parts: list[pa.Table]) -> pa.Table:
    if not parts:
        return pa.table({})
    try:
        return pa.concat_tables(parts, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise InvalidInputError(f"raw files of one table disagree on column types: {exc}") from exc
