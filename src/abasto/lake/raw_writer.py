"""Write change files in the raw-zone layout (docs/CONTRACTS.md).

The change-capture service is the real producer; this writer serves tests, benchmarks and the
demo's offline path, and pins the file naming next to its parser (:class:`RawFile`).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa

from abasto.errors import InvalidInputError
from abasto.lake.raw_files import CDC_COLUMNS, OPS, RawFile
from abasto.lake.storage import join_uri, write_parquet_atomic

__all__ = ["cdc_relpath", "load_relpath", "write_cdc", "write_full_load"]


def load_relpath(lsn: int, part: int = 1) -> str:
    return f"full_load/LOAD-{lsn:016X}-{part:05d}.parquet"


def cdc_relpath(first_lsn: int, last_lsn: int, commit_date: str, *, split: int = 0) -> str:
    suffix = f"_{split}" if split else ""
    return f"cdc/{commit_date}/CDC-{first_lsn:016X}-{last_lsn:016X}{suffix}.parquet"


def write_full_load(
    raw_uri: str, source: str, rows: pa.Table, *, lsn: int, commit_ts: datetime, part: int = 1
) -> RawFile:
    """One full-load file: every row an ``I`` at the snapshot ``lsn``."""
    relpath = load_relpath(lsn, part)
    table = _with_cdc_columns(rows, ["I"] * rows.num_rows, [lsn] * rows.num_rows, [commit_ts] * rows.num_rows)
    uri = join_uri(raw_uri, source, relpath)
    write_parquet_atomic(table, uri)
    return RawFile.parse(relpath, uri)


def write_cdc(
    raw_uri: str,
    source: str,
    rows: pa.Table,
    *,
    ops: Sequence[str],
    lsns: Sequence[int],
    commit_ts: Sequence[datetime] | datetime,
    seqs: Sequence[int] | None = None,
    split: int = 0,
) -> RawFile:
    """One CDC file of ``rows`` (row images; deletes carry the keys; a ``T`` all nulls) in commit
    order. ``_seq`` is ``seqs`` (default: the row's position in the file; files sharing an LSN must
    pass ``seqs`` continuing the earlier file's, as the capture's do); ``split`` > 0 names the file
    ``…_<split>.parquet``, as the capture does for a transaction split by a schema change.

    Raises:
        InvalidInputError: lengths differ, an op is unknown or (``_lsn``, ``_seq``) goes backwards.
    """
    n = rows.num_rows
    stamps = [commit_ts] * n if isinstance(commit_ts, datetime) else list(commit_ts)
    seq_values = list(range(n)) if seqs is None else list(seqs)
    if not n or len(ops) != n or len(lsns) != n or len(stamps) != n or len(seq_values) != n:
        raise InvalidInputError(
            "a CDC file needs one op, LSN, _seq and commit time per row, and at least one row"
        )
    if any(b <= a for a, b in itertools.pairwise(zip(lsns, seq_values, strict=True))):
        raise InvalidInputError("(_lsn, _seq) of a CDC file must increase")
    if split < 0:
        raise InvalidInputError("a CDC file's split suffix is positive")
    day = stamps[-1].astimezone(UTC).date().isoformat()
    relpath = cdc_relpath(lsns[0], lsns[-1], day, split=split)
    uri = join_uri(raw_uri, source, relpath)
    write_parquet_atomic(_with_cdc_columns(rows, list(ops), list(lsns), stamps, seq_values), uri)
    return RawFile.parse(relpath, uri)


def _with_cdc_columns(
    rows: pa.Table, ops: list[str], lsns: list[int], stamps: list[datetime], seqs: list[int] | None = None
) -> pa.Table:
    """``rows`` behind the change-record columns; ``_seq`` is the row position unless given."""
    if bad := set(ops) - set(OPS):
        raise InvalidInputError(f"unknown ops {sorted(bad)}")
    cdc = [
        pa.array(ops, pa.string()),
        pa.array(lsns, pa.int64()),
        pa.array(stamps, pa.timestamp("us", tz="UTC")),
        pa.array(np.arange(rows.num_rows, dtype=np.int64) if seqs is None else seqs, pa.int64()),
    ]
    return pa.Table.from_arrays([*cdc, *rows.columns], names=[*CDC_COLUMNS, *rows.column_names])
