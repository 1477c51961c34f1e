"""The files of an Iceberg table: which ones its metadata references, which ones lie on storage.

Paths are compared in one normal form (:func:`normalize`): the path the table's filesystem uses
(``/dir/x.parquet`` for ``file:///dir/x.parquet``, ``bucket/key`` for ``s3://bucket/key``), so a
location written by pyiceberg and a path listed from storage compare equal.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import unquote, urlparse

import pyarrow.fs as pafs
from pyiceberg.io import FileIO
from pyiceberg.manifest import ManifestEntryStatus, ManifestFile
from pyiceberg.table.metadata import TableMetadata
from pyiceberg.table.snapshots import Snapshot

from abasto.lake.storage import filesystem_for

__all__ = [
    "ListedFile",
    "ReferenceCollector",
    "delete_paths",
    "is_under",
    "list_table_files",
    "normalize",
    "total_size",
]

_S3_SCHEMES = ("s3", "s3a", "s3n")


def normalize(location: str) -> str:
    """``location`` (URI or plain path) as the path its filesystem uses."""
    parsed = urlparse(location)
    if parsed.scheme in _S3_SCHEMES:
        return f"{parsed.netloc}{parsed.path}"
    if parsed.scheme == "file":
        return posixpath.normpath(unquote(parsed.path))
    if parsed.scheme == "":
        return posixpath.normpath(location)
    return location


def is_under(path: str, prefix: str) -> bool:
    """Whether normalised ``path`` lies inside the normalised directory ``prefix``."""
    return path.startswith(prefix.rstrip("/") + "/")


@dataclass(frozen=True)
class ListedFile:
    """A file found on storage: normalised path, size in bytes, last modification (UTC)."""

    path: str
    size: int
    modified: datetime


def list_table_files(location: str) -> list[ListedFile]:
    """Every file under the table ``location`` (hidden and temporary names included), sorted."""
    fs, root = filesystem_for(location)
    if fs.get_file_info(root).type == pafs.FileType.NotFound:
        return []
    selector = pafs.FileSelector(root, recursive=True, allow_not_found=True)
    found = [
        ListedFile(path=normalize(entry.path), size=entry.size or 0, modified=entry.mtime)
        for entry in fs.get_file_info(selector)
        if entry.type == pafs.FileType.File and entry.mtime is not None
    ]
    return sorted(found, key=lambda f: f.path)


class ReferenceCollector:
    """Files reachable from snapshots, reading each manifest once.

    ``live`` files of a snapshot are those a reader of it needs: its manifest list, its manifests
    and the data/delete files of their added or existing entries. ``referenced`` files add the files
    of deleted entries (still named by a manifest, no longer read).
    """

    def __init__(self, io: FileIO) -> None:
        self._io = io
        self._entries: dict[str, list[tuple[bool, str]]] = {}

    def _manifest_entries(self, manifest: ManifestFile) -> list[tuple[bool, str]]:
        entries = self._entries.get(manifest.manifest_path)
        if entries is None:
            entries = [
                (entry.status != ManifestEntryStatus.DELETED, normalize(entry.data_file.file_path))
                for entry in manifest.fetch_manifest_entry(self._io, discard_deleted=False)
            ]
            self._entries[manifest.manifest_path] = entries
        return entries

    def snapshot_files(self, snapshot: Snapshot, *, include_deleted: bool) -> set[str]:
        """Normalised paths of the files ``snapshot`` reaches."""
        files = {normalize(snapshot.manifest_list)}
        for manifest in snapshot.manifests(self._io):
            files.add(normalize(manifest.manifest_path))
            entries = self._manifest_entries(manifest)
            files.update(path for live, path in entries if live or include_deleted)
        return files

    def files(self, snapshots: Iterable[Snapshot], *, include_deleted: bool) -> set[str]:
        """Union of :meth:`snapshot_files` over ``snapshots``."""
        result: set[str] = set()
        for snapshot in snapshots:
            result |= self.snapshot_files(snapshot, include_deleted=include_deleted)
        return result

    def metadata_files(self, metadata: TableMetadata, metadata_location: str) -> set[str]:
        """Everything the table metadata itself names: the current and logged metadata files,
        statistics files, and all files of all its snapshots (deleted entries included)."""
        files = {normalize(metadata_location)}
        files.update(normalize(entry.metadata_file) for entry in metadata.metadata_log)
        files.update(normalize(stats.statistics_path) for stats in metadata.statistics)
        files.update(normalize(stats.statistics_path) for stats in metadata.partition_statistics)
        files |= self.files(metadata.snapshots, include_deleted=True)
        return files


def delete_paths(location: str, paths: Iterable[str]) -> tuple[int, int]:
    """Delete normalised ``paths`` on the filesystem of ``location``; ``(files, bytes)`` deleted.

    A path already gone counts as nothing (another clean-up got there first).
    """
    fs, _ = filesystem_for(location)
    count = size = 0
    for path in paths:
        info = fs.get_file_info(path)
        if info.type != pafs.FileType.File:
            continue
        fs.delete_file(path)
        count += 1
        size += info.size or 0
    return count, size


def total_size(location: str, paths: Iterable[str]) -> int:
    """Bytes of the existing files among normalised ``paths`` on the filesystem of ``location``."""
    fs, _ = filesystem_for(location)
    return sum(info.size or 0 for info in fs.get_file_info(list(paths)) if info.type == pafs.FileType.File)


def files_of_disk_under(location: str, subdir: str) -> set[str]:
    """Normalised paths of the files under ``<location>/<subdir>`` (for checks and reports)."""
    prefix = normalize(location).rstrip("/") + "/" + subdir.strip("/")
    return {f.path for f in list_table_files(location) if is_under(f.path, prefix)}
