"""Durable, atomic file writes by URI: a file is complete and on disk before its name appears.

Locally: write a hidden temporary file in the target directory, ``fsync`` it, ``rename`` it onto
the final name, then ``fsync`` the directory so the rename itself survives a power cut. On object
stores (``s3://``) a single PUT is atomic and durable when it returns.
"""

from __future__ import annotations

import contextlib
import io
import os
import posixpath
import uuid
from collections.abc import Iterable, Sequence

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from abasto.lake.storage import filesystem_for

__all__ = ["exists", "make_dirs_durable", "read_bytes", "write_bytes_durable", "write_parquet_durable"]


def exists(uri: str) -> bool:
    fs, path = filesystem_for(uri)
    return bool(fs.get_file_info(path).type == pafs.FileType.File)


def read_bytes(uri: str) -> bytes:
    fs, path = filesystem_for(uri)
    with fs.open_input_stream(path) as stream:
        return bytes(stream.read())


def write_parquet_durable(
    table: pa.Table, uri: str, *, compression: str = "zstd", use_dictionary: bool | Sequence[str] = True
) -> None:
    """Write ``table`` as one Parquet file at ``uri`` (replacing nothing: callers check first).

    ``use_dictionary``: dictionary-encode every column, none, or the named ones.
    """
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression=compression, use_dictionary=use_dictionary)
    write_bytes_durable(buffer.getvalue(), uri)


def write_bytes_durable(data: bytes, uri: str) -> None:
    """Write ``data`` at ``uri`` atomically and durably."""
    fs, path = filesystem_for(uri)
    parent = posixpath.dirname(path)
    if not isinstance(fs, pafs.LocalFileSystem):
        if parent:
            fs.create_dir(parent, recursive=True)
        with fs.open_output_stream(path) as out:
            out.write(data)
        return
    _make_dirs_durable(parent or ".")
    tmp = posixpath.join(parent, f".{posixpath.basename(path)}.{uuid.uuid4().hex}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    _fsync_dir(parent or ".")


def make_dirs_durable(uris: Iterable[str]) -> None:
    """``mkdir -p`` of several directories (a batch's partitions), each new entry durable: the
    parents of new directories are synced once each, after all their new children are made,
    rather than once per child (one date directory holds up to 24 new hour directories).
    Object stores have no directories: nothing to do."""
    parents: set[str] = set()
    for uri in uris:
        fs, path = filesystem_for(uri)
        if not isinstance(fs, pafs.LocalFileSystem):
            return
        for new in _missing(path or "."):
            with contextlib.suppress(FileExistsError):
                os.mkdir(new)
            parents.add(os.path.dirname(new))
    for parent in sorted(parents, key=lambda p: (-p.count(os.sep), p)):
        _fsync_dir(parent)


def _missing(directory: str) -> list[str]:
    """The directories to create for ``directory`` to exist, outermost first."""
    missing: list[str] = []
    current = os.path.abspath(directory)
    while not os.path.isdir(current):
        missing.append(current)
        current = os.path.dirname(current)
    return missing[::-1]


def _make_dirs_durable(directory: str) -> None:
    """``mkdir -p`` whose new entries survive a crash (each new directory's parent is synced)."""
    for new in _missing(directory):
        with contextlib.suppress(FileExistsError):
            os.mkdir(new)
        _fsync_dir(os.path.dirname(new))


def _fsync_dir(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
