"""The catalog entries of raw-zone datasets (the Glue Data Catalog's plain-Parquet tables).

pyiceberg cannot register plain Parquet files as Iceberg tables without rewriting their metadata,
and raw data must not be copied, so raw datasets live in a small registry of their own: a SQLite
file ``raw_catalog.db`` next to the SqlCatalog's database (under ``<home>/lake`` when the catalog
is not a SQLite file). It keeps Glue's fields (name, location, data format, columns with types,
partition keys) plus abasto's governance metadata, the schema version history and, per dataset,
the files already described (size, mtime, rows, schema version) that make crawls incremental.
At scale the same entries become Glue tables with ``classification=parquet``.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from abasto.settings import Settings

__all__ = ["RawColumn", "RawFileEntry", "RawRegistry", "RawTable", "SchemaVersion", "registry_path"]

_DDL = (
    "CREATE TABLE IF NOT EXISTS raw_tables (name TEXT PRIMARY KEY, body TEXT NOT NULL, schema BLOB NOT NULL)",
    "CREATE TABLE IF NOT EXISTS raw_files (name TEXT NOT NULL, relpath TEXT NOT NULL, size INTEGER NOT NULL,"
    " mtime_ns INTEGER NOT NULL, rows INTEGER NOT NULL, schema_version INTEGER NOT NULL,"
    " partition TEXT NOT NULL, columns TEXT NOT NULL, PRIMARY KEY (name, relpath))",
)


@dataclass(frozen=True)
class RawColumn:
    """A column: its Arrow type, its Hive/Glue type and whether it holds personal data."""

    name: str
    type: str
    hive_type: str
    pii: bool = False


@dataclass(frozen=True)
class SchemaVersion:
    """One version of a dataset's schema: the columns, what changed and the file that changed it."""

    version: int
    columns: tuple[RawColumn, ...]
    added: tuple[str, ...]
    widened: tuple[str, ...]
    first_file: str
    created_at: datetime


@dataclass(frozen=True)
class RawFileEntry:
    """A described file; ``relpath`` is relative to the dataset's prefix."""

    relpath: str
    size: int
    mtime_ns: int
    rows: int
    schema_version: int
    partition: tuple[tuple[str, str], ...]
    columns: tuple[str, ...]


@dataclass(frozen=True)
class RawTable:
    """A raw dataset's catalog entry. ``data_format`` is Glue's ``classification`` parameter;
    ``classification`` is the governance class (``pii``, ``confidential``…) as on curated tables."""

    name: str
    prefix: str
    location: str
    layout: str
    source_system: str
    owner: str
    description: str
    classification: str
    pii_columns: tuple[str, ...]
    partition_keys: tuple[str, ...]
    schema: pa.Schema
    versions: tuple[SchemaVersion, ...]
    file_count: int
    total_bytes: int
    total_rows: int
    created_at: datetime
    last_crawled: datetime
    data_format: str = "parquet"

    @property
    def schema_version(self) -> int:
        return self.versions[-1].version if self.versions else 0

    @property
    def columns(self) -> tuple[RawColumn, ...]:
        return self.versions[-1].columns if self.versions else ()


def registry_path(settings: Settings) -> Path:
    """``raw_catalog.db`` beside the SQLite catalog file, else under ``<home>/lake``."""
    uri = settings.catalog_uri
    if uri.startswith("sqlite:///") and not uri.endswith(":memory:"):
        return Path(uri.removeprefix("sqlite:///")).with_name("raw_catalog.db")
    return settings.home_dir / "lake" / "raw_catalog.db"


class RawRegistry:
    """Read and write raw-dataset entries in one SQLite file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            for ddl in _DDL:
                db.execute(ddl)

    @classmethod
    def for_settings(cls, settings: Settings) -> RawRegistry:
        return cls(registry_path(settings))

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        with closing(sqlite3.connect(self.path, timeout=30)) as db, db:  # commits on success
            yield db

    def get(self, name: str) -> RawTable | None:
        with self._connect() as db:
            row = db.execute("SELECT body, schema FROM raw_tables WHERE name = ?", (name,)).fetchone()
        return None if row is None else _decode(row[0], row[1])

    def tables(self) -> list[RawTable]:
        with self._connect() as db:
            rows = db.execute("SELECT body, schema FROM raw_tables ORDER BY name").fetchall()
        return [_decode(body, schema) for body, schema in rows]

    def files(self, name: str) -> list[RawFileEntry]:
        with self._connect() as db:
            rows = db.execute(
                "SELECT relpath, size, mtime_ns, rows, schema_version, partition, columns"
                " FROM raw_files WHERE name = ? ORDER BY relpath",
                (name,),
            ).fetchall()
        return [
            RawFileEntry(
                r[0],
                r[1],
                r[2],
                r[3],
                r[4],
                tuple(tuple(p) for p in json.loads(r[5])),
                tuple(json.loads(r[6])),
            )
            for r in rows
        ]

    def partitions(self, name: str) -> list[tuple[str, ...]]:
        """Distinct partition values of the dataset's files, sorted."""
        return sorted({tuple(v for _, v in f.partition) for f in self.files(name) if f.partition})

    def save(self, table: RawTable, files: Sequence[RawFileEntry], removed: Sequence[str] = ()) -> None:
        """Store ``table``, add or replace ``files`` and forget ``removed`` ones, in one transaction."""
        with self._connect() as db:
            db.execute(
                "INSERT OR REPLACE INTO raw_tables (name, body, schema) VALUES (?, ?, ?)",
                (table.name, _encode(table), table.schema.serialize().to_pybytes()),
            )
            db.executemany(
                "DELETE FROM raw_files WHERE name = ? AND relpath = ?", [(table.name, r) for r in removed]
            )
            db.executemany(
                "INSERT OR REPLACE INTO raw_files VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        table.name,
                        f.relpath,
                        f.size,
                        f.mtime_ns,
                        f.rows,
                        f.schema_version,
                        json.dumps(f.partition),
                        json.dumps(f.columns),
                    )
                    for f in files
                ],
            )


def _encode(table: RawTable) -> str:
    body: dict[str, Any] = asdict(table)
    body.pop("schema")
    return json.dumps(body, default=lambda v: v.isoformat() if isinstance(v, datetime) else str(v))


def _decode(body: str, schema: bytes) -> RawTable:
    data: dict[str, Any] = json.loads(body)
    versions = tuple(
        SchemaVersion(
            version=v["version"],
            columns=tuple(RawColumn(**c) for c in v["columns"]),
            added=tuple(v["added"]),
            widened=tuple(v["widened"]),
            first_file=v["first_file"],
            created_at=datetime.fromisoformat(v["created_at"]),
        )
        for v in data.pop("versions")
    )
    return RawTable(
        **{
            **data,
            "pii_columns": tuple(data["pii_columns"]),
            "partition_keys": tuple(data["partition_keys"]),
            "created_at": datetime.fromisoformat(data["created_at"]),
            "last_crawled": datetime.fromisoformat(data["last_crawled"]),
        },
        schema=pa.ipc.read_schema(pa.py_buffer(schema)),
        versions=versions,
    )
