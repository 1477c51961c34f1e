"""The raw zone as the change capture writes it (docs/CONTRACTS.md, "Raw zone layout").

::

    <raw>/<source>/<table>/full_load/LOAD-<lsn16>-<nnnnn>.parquet
    <raw>/<source>/<table>/cdc/<YYYY-MM-DD>/CDC-<first_lsn16>-<last_lsn16>[_<k>].parquet
    <raw>/_cdc/<slot>/state.json, full_load.json          (the capture's own bookkeeping)

``<source>`` is ``sales_db`` for schema ``sales`` and the schema name otherwise. A file is written
under a ``.tmp`` name first and renamed when complete, so readers never see half a file; on a local
file system it is fsync'ed (file and directory) before and after the rename, which is what lets the
capture confirm an LSN only after the changes it covers are durable. ``_<k>`` only appears when one
transaction's changes to a table are split by a schema change.

Other URIs (``s3://``…) go through :mod:`pyarrow.fs`: each object appears whole when written.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from abasto.cdc.lsn import lsn16
from abasto.errors import ConfigError

#: schema → folder under the raw zone (the contract's names); other schemas keep their name
SOURCE_DIRS: dict[str, str] = {"sales": "sales_db", "behavior": "behavior"}
CONTROL_DIR = "_cdc"
TMP_SUFFIX = ".tmp"


def source_dir(schema: str) -> str:
    return SOURCE_DIRS.get(schema, schema)


def full_load_name(schema: str, table: str, lsn: int, part: int) -> str:
    return f"{source_dir(schema)}/{table}/full_load/LOAD-{lsn16(lsn)}-{part:05d}.parquet"


def cdc_name(schema: str, table: str, day: str, first_lsn: int, last_lsn: int, *, split: int = 0) -> str:
    suffix = f"_{split}" if split else ""
    return f"{source_dir(schema)}/{table}/cdc/{day}/CDC-{lsn16(first_lsn)}-{lsn16(last_lsn)}{suffix}.parquet"


@dataclass
class StagedFile:
    """A Parquet file being written under a temporary name; :meth:`RawZone.publish` makes it visible."""

    name: str
    tmp_path: str
    writer: pq.ParquetWriter
    rows: int = 0
    #: folders created for this file (their entries must be made durable too)
    new_dirs: tuple[str, ...] = ()

    def write(self, batch: pa.RecordBatch | pa.Table) -> None:
        if isinstance(batch, pa.RecordBatch):
            self.writer.write_batch(batch)
        else:
            self.writer.write_table(batch)
        self.rows += batch.num_rows


class RawZone:
    """Files of the raw zone under one base URI (``file://…``, a plain path, or a pyarrow.fs URI)."""

    def __init__(self, uri: str) -> None:
        """Raises:
        ConfigError: the URI names a file system pyarrow cannot open.
        """
        try:
            if "://" in uri:
                fs, base = pafs.FileSystem.from_uri(uri)
            else:
                fs, base = pafs.LocalFileSystem(), str(Path(uri).resolve())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as exc:
            raise ConfigError(f"cannot open the raw zone at {uri}: {exc}") from exc
        self.uri = uri
        self.fs: pafs.FileSystem = fs
        self.base = base.rstrip("/")
        self.local = isinstance(fs, pafs.LocalFileSystem)

    def path(self, name: str) -> str:
        return f"{self.base}/{name}"

    def exists(self, name: str) -> bool:
        info = self.fs.get_file_info(self.path(name))
        return bool(info.type == pafs.FileType.File)

    def list(self, folder: str, *, suffix: str = ".parquet") -> list[str]:
        """Names (relative to the base) of the files under ``folder`` ending in ``suffix``, sorted."""
        selector = pafs.FileSelector(self.path(folder), recursive=True, allow_not_found=True)
        prefix = self.base + "/"
        return sorted(
            info.path[len(prefix) :]
            for info in self.fs.get_file_info(selector)
            if info.type == pafs.FileType.File and info.path.endswith(suffix)
        )

    # --- Parquet ----------------------------------------------------------------------------

    def stage(self, name: str, schema: pa.Schema) -> StagedFile:
        """Open ``name`` for writing under a temporary name."""
        tmp = f"{self.path(name)}.{secrets.token_hex(4)}{TMP_SUFFIX}"
        new_dirs = self._make_dirs(tmp.rsplit("/", 1)[0])
        writer = pq.ParquetWriter(tmp, schema, filesystem=self.fs, compression="zstd")
        return StagedFile(name=name, tmp_path=tmp, writer=writer, new_dirs=new_dirs)

    def publish(self, staged: StagedFile) -> bool:
        """Close, make durable and rename into place. False (and nothing changes) if ``name`` exists."""
        staged.writer.close()
        if self.exists(staged.name):
            self.fs.delete_file(staged.tmp_path)
            return False
        self._durable_move(staged.tmp_path, self.path(staged.name))
        if self.local:
            for folder in staged.new_dirs:  # deepest first: each entry lives in its parent
                _fsync_dir(os.path.dirname(folder))
        return True

    def discard(self, staged: StagedFile) -> None:
        """Abandon a staged file."""
        try:
            staged.writer.close()
        finally:
            info = self.fs.get_file_info(staged.tmp_path)
            if info.type == pafs.FileType.File:
                self.fs.delete_file(staged.tmp_path)

    def remove_stale_temporaries(self, folder: str = "") -> int:
        """Delete ``*.tmp`` files left by a crashed writer; returns how many."""
        stale = self.list(folder, suffix=TMP_SUFFIX) if folder else self.list("", suffix=TMP_SUFFIX)
        for name in stale:
            self.fs.delete_file(self.path(name))
        return len(stale)

    # --- JSON bookkeeping -------------------------------------------------------------------

    def read_json(self, name: str) -> dict[str, Any] | None:
        if not self.exists(name):
            return None
        with self.fs.open_input_stream(self.path(name)) as handle:
            data = json.loads(handle.read().decode())
        return data if isinstance(data, dict) else None

    def write_json(self, name: str, data: dict[str, Any]) -> None:
        """Replace ``name`` atomically and durably."""
        final = self.path(name)
        tmp = f"{final}.{secrets.token_hex(4)}{TMP_SUFFIX}"
        new_dirs = self._make_dirs(final.rsplit("/", 1)[0])
        with self.fs.open_output_stream(tmp) as handle:
            handle.write(json.dumps(data, indent=2, sort_keys=True).encode())
        if self.exists(name):
            self._durable_move(tmp, final, replace=True)
        else:
            self._durable_move(tmp, final)
        if self.local:
            for folder in new_dirs:
                _fsync_dir(os.path.dirname(folder))

    # --- durability -------------------------------------------------------------------------

    def _make_dirs(self, folder: str) -> tuple[str, ...]:
        """Create ``folder`` and missing parents; returns the created ones, deepest first."""
        created: list[str] = []
        probe = folder
        while probe and probe != "/" and self.fs.get_file_info(probe).type == pafs.FileType.NotFound:
            created.append(probe)
            probe = probe.rsplit("/", 1)[0]
        self.fs.create_dir(folder, recursive=True)
        return tuple(created)

    def _durable_move(self, src: str, dst: str, *, replace: bool = False) -> None:
        if not self.local:
            if replace:
                self.fs.delete_file(dst)
            self.fs.move(src, dst)
            return
        _fsync_file(src)
        os.replace(src, dst)  # atomic on POSIX, also when replacing
        _fsync_dir(os.path.dirname(dst))


def _fsync_file(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
