"""Storage by URI scheme: ``file://`` (or a plain path) on the local disk, ``s3://`` through pyarrow.

One place turns a URI into ``(filesystem, path)`` so the lake code never branches on where data
lives. Writes are atomic for readers: a Parquet file appears complete or not at all (temporary
name + rename locally; a single PUT on S3 is already atomic).
"""

from __future__ import annotations

import posixpath
import uuid
from dataclasses import dataclass
from urllib.parse import unquote, urlparse

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from abasto.errors import ConfigError, TransientError

__all__ = [
    "StoredFile",
    "fetch_bytes",
    "filesystem_for",
    "join_uri",
    "list_files",
    "read_parquet",
    "write_parquet_atomic",
]


@dataclass(frozen=True)
class StoredFile:
    """A file found under a prefix: ``relpath`` is posix, relative to the listed prefix."""

    uri: str
    relpath: str
    size: int


def filesystem_for(uri: str) -> tuple[pafs.FileSystem, str]:
    """Return the filesystem serving ``uri`` and the path to use on it.

    Raises:
        ConfigError: the scheme is not supported.
    """
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        path = unquote(parsed.path) if parsed.scheme else uri
        return pafs.LocalFileSystem(), path
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise ConfigError(f"S3 URI without a bucket: {uri!r}")
        return pafs.S3FileSystem(), f"{parsed.netloc}{parsed.path}".rstrip("/")
    raise ConfigError(
        f"unsupported storage scheme {parsed.scheme!r} in {uri!r}",
        hint="use file:///path (or a plain path) locally, s3://bucket/prefix at scale",
    )


def join_uri(base: str, *parts: str) -> str:
    """Join path parts to a URI or plain path with ``/``."""
    cleaned = [p.strip("/") for p in parts if p.strip("/")]
    return posixpath.join(base.rstrip("/"), *cleaned) if cleaned else base


def write_parquet_atomic(table: pa.Table, uri: str, *, compression: str = "zstd") -> None:
    """Write ``table`` as one Parquet file at ``uri``; readers never see a partial file."""
    fs, path = filesystem_for(uri)
    parent = posixpath.dirname(path)
    if parent:
        fs.create_dir(parent, recursive=True)
    if isinstance(fs, pafs.LocalFileSystem):
        tmp = posixpath.join(parent, f".{posixpath.basename(path)}.{uuid.uuid4().hex}.tmp")
        try:
            pq.write_table(table, tmp, filesystem=fs, compression=compression)
            fs.move(tmp, path)  # rename(2): atomic within one filesystem
        finally:
            if fs.get_file_info(tmp).type != pafs.FileType.NotFound:
                fs.delete_file(tmp)
    else:
        pq.write_table(table, path, filesystem=fs, compression=compression)


def list_files(prefix_uri: str, *, suffix: str = "") -> list[StoredFile]:
    """Files under ``prefix_uri`` (recursively), sorted by relative path; a missing prefix is empty.

    Hidden names (``.x``, ``_x``: temporary files, markers) are skipped at every level.
    """
    fs, root = filesystem_for(prefix_uri)
    info = fs.get_file_info(root)
    if info.type == pafs.FileType.NotFound:
        return []
    selector = pafs.FileSelector(root, recursive=True, allow_not_found=True)
    found: list[StoredFile] = []
    for entry in fs.get_file_info(selector):
        if entry.type != pafs.FileType.File:
            continue
        rel = posixpath.relpath(entry.path, root)
        if any(part.startswith((".", "_")) for part in rel.split("/")):
            continue
        if suffix and not rel.endswith(suffix):
            continue
        found.append(StoredFile(uri=join_uri(prefix_uri, rel), relpath=rel, size=entry.size or 0))
    return sorted(found, key=lambda f: f.relpath)


def read_parquet(uri: str) -> pa.Table:
    """Read one Parquet file."""
    fs, path = filesystem_for(uri)
    return pq.read_table(path, filesystem=fs)


def fetch_bytes(uri: str, name: str) -> bytes:
    """The whole content of ``uri``: after a file failed to parse, this tells a storage failure
    (an error here) from a corrupt file (the bytes arrive but do not parse).

    Raises:
        TransientError: the bytes could not be fetched; ``name`` says which file.
    """
    fs, path = filesystem_for(uri)
    try:
        with fs.open_input_stream(path) as stream:
            return bytes(stream.read())
    except OSError as exc:
        raise TransientError(
            f"raw file {name} could not be fetched: {exc}", hint="check the raw zone's storage, run again"
        ) from exc
