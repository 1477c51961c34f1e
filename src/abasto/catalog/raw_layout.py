"""Where a raw-zone file belongs: its dataset (a prefix), the layout and its hive partition values.

Three layouts are recognised under ``settings.raw_uri`` (docs/CONTRACTS.md):

- ``dms``: change files of a source table, ``<prefix>/full_load/…`` and ``<prefix>/cdc/<date>/…``
  (``sales_db/<table>``, ``behavior/documents``);
- ``hive``: ``<prefix>/<key>=<value>/…/<file>`` (``devices/pos_events/date=…/hour=…/``);
- ``flat``: any other file, whose dataset is its directory.

A dataset ``a/b`` is catalogued as ``raw.a_b`` (Glue table names carry no ``/``).
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import unquote

import pyarrow.fs as pafs

from abasto.lake.storage import filesystem_for, join_uri

__all__ = [
    "RAW",
    "Layout",
    "Placement",
    "RawObject",
    "list_raw_objects",
    "place",
    "raw_table_name",
    "source_system",
]

#: catalog namespace of the raw-zone datasets
RAW = "raw"
Layout = Literal["dms", "hive", "flat"]

_DMS_DIRS = ("full_load", "cdc")
_HIVE = re.compile(r"^([A-Za-z_][\w-]*)=(.*)$")
_NAME_UNSAFE = re.compile(r"[^a-z0-9_]+")


@dataclass(frozen=True)
class RawObject:
    """A file found in the raw zone; ``relpath`` is relative to the raw root."""

    relpath: str
    uri: str
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class Placement:
    """The dataset a file belongs to: ``inner`` is its path relative to ``prefix``."""

    prefix: str
    layout: Layout
    inner: str
    partition: tuple[tuple[str, str], ...] = ()


def place(relpath: str) -> Placement | None:
    """The dataset of ``relpath`` (relative to the raw root), or ``None`` for a file at the root."""
    parts = relpath.split("/")
    dirs = parts[:-1]
    for i, segment in enumerate(dirs):
        if i == 0:
            continue
        if segment in _DMS_DIRS:
            return Placement("/".join(dirs[:i]), "dms", "/".join(parts[i:]))
        if _HIVE.match(segment):
            values = tuple((m[1], unquote(m[2])) for d in dirs[i:] if (m := _HIVE.match(d)) is not None)
            return Placement("/".join(dirs[:i]), "hive", "/".join(parts[i:]), values)
    if not dirs:
        return None
    return Placement("/".join(dirs), "flat", parts[-1])


def raw_table_name(prefix: str) -> str:
    """Catalog name of the dataset at ``prefix``: ``sales_db/orders`` → ``raw.sales_db_orders``."""
    return f"{RAW}.{_NAME_UNSAFE.sub('_', prefix.lower()).strip('_')}"


def source_system(prefix: str) -> str:
    """The system a raw dataset comes from (what a lineage graph starts at)."""
    if prefix.startswith("sales_db/"):
        return f"sales_db PostgreSQL table {prefix.removeprefix('sales_db/')} (full load + CDC)"
    if prefix.startswith("behavior/"):
        return "behavior document store (DynamoDB-style pk/sk documents, change stream)"
    if prefix.startswith("devices/"):
        return "POS devices (MQTT → stream → delivery)"
    return "unknown"


def list_raw_objects(raw_uri: str, *, suffix: str = ".parquet") -> tuple[list[RawObject], list[str]]:
    """Files under ``raw_uri`` ending in ``suffix`` (sorted), and the relpaths of the other files.

    Hidden names (``.x``, ``_x``: temporary files, markers) are skipped at every level.
    """
    fs, root = filesystem_for(raw_uri)
    if fs.get_file_info(root).type == pafs.FileType.NotFound:
        return [], []
    found: list[RawObject] = []
    other: list[str] = []
    for entry in fs.get_file_info(pafs.FileSelector(root, recursive=True, allow_not_found=True)):
        if entry.type != pafs.FileType.File:
            continue
        rel = posixpath.relpath(entry.path, root)
        if any(part.startswith((".", "_")) for part in rel.split("/")):
            continue
        if not rel.endswith(suffix):
            other.append(rel)
            continue
        found.append(RawObject(rel, join_uri(raw_uri, rel), entry.size or 0, entry.mtime_ns or 0))
    return sorted(found, key=lambda o: o.relpath), sorted(other)
