"""The crawler (Glue Crawler): scan the raw zone, infer each dataset's schema and partitions,
register and evolve it in the raw registry with its owner, classification and PII columns.

Incremental: a file already described with the same size and mtime is not opened again; only its
footer is read otherwise (Parquet schema and row count, no data). A file that appears with a new
column, or a wider type, opens a new schema version; files described before keep the version they
were read with. A file that cannot be read is reported and retried on the next crawl.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.parquet as pq

from abasto.catalog.raw_layout import (
    Placement,
    RawObject,
    list_raw_objects,
    place,
    raw_table_name,
    source_system,
)
from abasto.catalog.raw_registry import RawColumn, RawFileEntry, RawRegistry, RawTable, SchemaVersion
from abasto.catalog.raw_schema import detect_pii, hive_type, merge_schema
from abasto.errors import InvalidInputError
from abasto.lake.raw_files import RawFile
from abasto.lake.storage import filesystem_for, join_uri
from abasto.lake.tables import ALL_TABLES, DEFAULT_OWNER, TableSpec

__all__ = ["CrawlReport", "DatasetCrawl", "FooterReader", "crawl", "read_footer"]

#: reads a Parquet file's schema and row count (the footer only)
FooterReader = Callable[[str], tuple[pa.Schema, int]]


@dataclass(frozen=True)
class DatasetCrawl:
    """What one crawl did to one dataset: ``added_columns``/``widened_columns`` exclude the columns
    of a dataset's first version."""

    name: str
    new: bool
    files_scanned: int
    files_removed: int
    schema_version: int
    added_columns: tuple[str, ...]
    widened_columns: tuple[str, ...]


@dataclass(frozen=True)
class CrawlReport:
    datasets: tuple[DatasetCrawl, ...]
    files_scanned: int
    files_unchanged: int
    ignored: tuple[str, ...]
    unreadable: tuple[tuple[str, str], ...]

    @property
    def new_datasets(self) -> list[str]:
        return [d.name for d in self.datasets if d.new]

    @property
    def new_columns(self) -> dict[str, tuple[str, ...]]:
        return {d.name: d.added_columns for d in self.datasets if d.added_columns}


def read_footer(uri: str) -> tuple[pa.Schema, int]:
    """Schema and row count of one Parquet file, from its footer."""
    fs, path = filesystem_for(uri)
    with fs.open_input_file(path) as handle:
        parquet = pq.ParquetFile(handle)
        return parquet.schema_arrow, parquet.metadata.num_rows


def crawl(
    raw_uri: str, registry: RawRegistry, *, reader: FooterReader = read_footer, now: datetime | None = None
) -> CrawlReport:
    """Crawl every dataset under ``raw_uri`` into ``registry``."""
    now = now or datetime.now(UTC)
    objects, other = list_raw_objects(raw_uri)
    grouped: dict[str, list[tuple[RawObject, Placement]]] = {}
    ignored = list(other)
    for obj in objects:
        placement = place(obj.relpath)
        if placement is None:
            ignored.append(obj.relpath)
        else:
            grouped.setdefault(placement.prefix, []).append((obj, placement))
    results: list[DatasetCrawl] = []
    unreadable: list[tuple[str, str]] = []
    scanned = unchanged = 0
    for prefix, found in sorted(grouped.items()):
        result, bad, skipped = _crawl_dataset(raw_uri, prefix, found, registry, reader, now)
        results.append(result)
        unreadable.extend(bad)
        scanned, unchanged = scanned + result.files_scanned, unchanged + skipped
    return CrawlReport(tuple(results), scanned, unchanged, tuple(sorted(ignored)), tuple(unreadable))


def _crawl_dataset(
    raw_uri: str,
    prefix: str,
    found: list[tuple[RawObject, Placement]],
    registry: RawRegistry,
    reader: FooterReader,
    now: datetime,
) -> tuple[DatasetCrawl, list[tuple[str, str]], int]:
    name = raw_table_name(prefix)
    existing = registry.get(name)
    known = {f.relpath: f for f in registry.files(name)} if existing else {}
    present = {p.inner for _, p in found}
    removed = [r for r in known if r not in present]
    todo = [
        (o, p)
        for o, p in found
        if (k := known.get(p.inner)) is None or (k.size, k.mtime_ns) != (o.size, o.mtime_ns)
    ]
    todo.sort(key=lambda op: _order(op[1]))
    schema = existing.schema if existing else pa.schema([])
    versions = list(existing.versions) if existing else []
    keys = list(existing.partition_keys) if existing else []
    spec = _spec_for(prefix)
    entries: list[RawFileEntry] = []
    bad: list[tuple[str, str]] = []
    added: list[str] = []
    widened: list[str] = []
    for obj, placement in todo:
        try:
            file_schema, rows = reader(obj.uri)
        except (OSError, pa.ArrowException) as exc:
            bad.append((obj.relpath, str(exc)))
            continue
        merged = merge_schema(schema, file_schema)
        if merged.changed or not versions:
            schema = merged.schema
            pii = detect_pii(schema.names, spec.pii_columns if spec else ())
            columns = tuple(RawColumn(f.name, str(f.type), hive_type(f.type), f.name in pii) for f in schema)
            versions.append(
                SchemaVersion(len(versions) + 1, columns, merged.added, merged.widened, placement.inner, now)
            )
            if len(versions) > 1:
                added.extend(merged.added)
                widened.extend(c for c in merged.widened if c not in widened)
        keys.extend(k for k, _ in placement.partition if k not in keys)
        entries.append(
            RawFileEntry(
                placement.inner,
                obj.size,
                obj.mtime_ns,
                rows,
                len(versions),
                placement.partition,
                tuple(file_schema.names),
            )
        )
    all_files = {**{r: f for r, f in known.items() if r not in removed}, **{e.relpath: e for e in entries}}
    if versions:
        table = _entry(
            raw_uri, found[0][1], spec, schema, versions, keys, list(all_files.values()), existing, now
        )
        registry.save(table, entries, removed)
    result = DatasetCrawl(
        name,
        existing is None and bool(versions),
        len(entries),
        len(removed),
        len(versions),
        tuple(added),
        tuple(widened),
    )
    return result, bad, len(found) - len(todo)


def _order(placement: Placement) -> tuple[int, tuple[object, ...]]:
    """Files in the order their data was produced: change files by LSN, others by path."""
    if placement.layout == "dms":
        try:
            return (0, RawFile.parse(placement.inner).order_key)
        except InvalidInputError:
            pass
    return (1, (placement.inner,))


def _spec_for(prefix: str) -> TableSpec | None:
    return next((s for s in ALL_TABLES.values() if s.source == prefix), None)


def _entry(
    raw_uri: str,
    placement: Placement,
    spec: TableSpec | None,
    schema: pa.Schema,
    versions: Sequence[SchemaVersion],
    keys: Sequence[str],
    files: Collection[RawFileEntry],
    existing: RawTable | None,
    now: datetime,
) -> RawTable:
    """The catalog entry: Glue's fields, the spec's governance metadata, PII from the columns."""
    prefix = placement.prefix
    pii = tuple(c.name for c in versions[-1].columns if c.pii)
    return RawTable(
        name=raw_table_name(prefix),
        prefix=prefix,
        location=join_uri(raw_uri, prefix),
        layout=existing.layout if existing else placement.layout,
        source_system=source_system(prefix),
        owner=spec.owner if spec else DEFAULT_OWNER,
        description=(spec.description if spec else "") or f"Raw {placement.layout} dataset at {prefix}",
        classification="pii" if pii else (spec.classification if spec else "internal"),
        pii_columns=pii,
        partition_keys=tuple(keys),
        schema=schema,
        versions=tuple(versions),
        file_count=len(files),
        total_bytes=sum(f.size for f in files),
        total_rows=sum(f.rows for f in files),
        created_at=existing.created_at if existing else now,
        last_crawled=now,
    )
