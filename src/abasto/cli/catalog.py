"""CLI commands: the data catalog (``abasto catalog list|show|lineage|crawl``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table as RichTable
from rich.text import Text
from rich.tree import Tree

from abasto.cli.app import app
from abasto.settings import Settings, load_settings

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog

    from abasto.catalog.raw_registry import RawRegistry, RawTable

# pyarrow, pyiceberg and the crawler are imported inside the commands: `abasto --help` must not pay.

__all__ = ["catalog_app"]

catalog_app = typer.Typer(help="Data catalog: raw datasets and curated tables.", no_args_is_help=True)
app.add_typer(catalog_app, name="catalog")


def _open(settings: Settings) -> tuple[Catalog, RawRegistry]:
    from abasto.catalog import open_catalog  # noqa: PLC0415
    from abasto.catalog.raw_registry import RawRegistry  # noqa: PLC0415

    return open_catalog(settings), RawRegistry.for_settings(settings)


@catalog_app.command("crawl")
def crawl_command() -> None:
    """Scan the raw zone: register new datasets, evolve schemas, record partitions."""
    from abasto.catalog.crawler import crawl  # noqa: PLC0415
    from abasto.catalog.raw_registry import RawRegistry  # noqa: PLC0415

    settings = load_settings()
    report = crawl(settings.raw_uri, RawRegistry.for_settings(settings))
    rows = [
        [
            d.name,
            "new" if d.new else "",
            str(d.files_scanned),
            str(d.files_removed),
            str(d.schema_version),
            ", ".join(d.added_columns),
            ", ".join(d.widened_columns),
        ]
        for d in report.datasets
    ]
    headers = ["dataset", "", "files scanned", "removed", "schema v", "new columns", "widened"]
    console = Console()
    console.print(_table(headers, rows))
    console.print(
        f"{report.files_scanned} files scanned, {report.files_unchanged} unchanged, "
        f"{len(report.new_datasets)} new datasets, {len(report.ignored)} ignored"
    )
    for path, error in report.unreadable:
        console.print(f"unreadable: {path}: {error}", markup=False)


@catalog_app.command("list")
def list_command() -> None:
    """Every catalogued table, raw and curated, with its owner and classification."""
    from abasto.catalog import ZONES, list_tables  # noqa: PLC0415

    catalog, registry = _open(load_settings())
    rows = [
        [
            t.name,
            "raw",
            t.owner,
            t.classification,
            f"{t.file_count} files",
            t.last_crawled.strftime("%Y-%m-%d %H:%M"),
        ]
        for t in registry.tables()
    ]
    for zone in ZONES:
        for info in list_tables(catalog, zone):
            updated = info.updated_at.strftime("%Y-%m-%d %H:%M") if info.updated_at else "-"
            rows.append(
                [info.identifier, zone, info.owner, info.classification, f"{info.rows} rows", updated]
            )
    if not rows:
        typer.echo("the catalog is empty: run `abasto catalog crawl` and `abasto jobs run`")
        return
    Console().print(_table(["table", "zone", "owner", "class", "size", "updated (UTC)"], rows))


@catalog_app.command("show")
def show_command(table: Annotated[str, typer.Argument(help="raw.x, curated.x, or a raw prefix.")]) -> None:
    """Columns, types, PII flags, partitions and snapshots or schema versions of one table."""
    from abasto.catalog.lineage import resolve_name  # noqa: PLC0415

    catalog, registry = _open(load_settings())
    name = resolve_name(table, catalog, registry)
    raw = registry.get(name)
    if raw is not None:
        _show_raw(raw, registry)
    else:
        _show_iceberg(name, catalog)


@catalog_app.command("lineage")
def lineage_command(table: Annotated[str, typer.Argument(help="raw.x, curated.x, or a raw prefix.")]) -> None:
    """Where a table's data comes from: upstream datasets, raw files and job runs."""
    from abasto.catalog.lineage import lineage  # noqa: PLC0415

    catalog, registry = _open(load_settings())
    result = lineage(table, catalog=catalog, registry=registry)
    tree = Tree(Text(f"{result.table} ({result.zone})"))
    upstream = tree.add("upstream")
    for up in result.upstream:
        node = upstream.add(Text(f"{up.name} [{up.kind}] {up.location}"))
        for path in up.files:
            node.add(Text(path))
    if result.runs:
        runs = tree.add("job runs")
        for run in result.runs:
            node = runs.add(
                Text(
                    f"{run.job} → snapshot {run.snapshot_id} at {run.committed_at:%Y-%m-%d %H:%M:%S} "
                    f"({run.operation}, {run.records_added} records added)"
                )
            )
            for path in run.files:
                node.add(Text(path))
    if result.downstream:
        down = tree.add("downstream")
        for name in result.downstream:
            down.add(Text(name))
    Console(highlight=False).print(tree, markup=False)


def _show_raw(raw: RawTable, registry: RawRegistry) -> None:
    console = Console(highlight=False)
    console.print(f"{raw.name}  ({raw.data_format}, {raw.layout} layout)  {raw.location}", markup=False)
    console.print(
        f"owner: {raw.owner}   class: {raw.classification}   source: {raw.source_system}", markup=False
    )
    console.print(raw.description, markup=False)
    console.print(
        f"{raw.file_count} files, {raw.total_bytes} bytes, {raw.total_rows} rows; "
        f"last crawled {raw.last_crawled:%Y-%m-%d %H:%M:%S} UTC"
    )
    rows = [[c.name, c.hive_type, c.type, "PII" if c.pii else ""] for c in raw.columns]
    console.print(_table(["column", "type", "arrow type", "pii"], rows))
    if raw.partition_keys:
        values = ["/".join(v) for v in registry.partitions(raw.name)]
        console.print(
            f"partitioned by {', '.join(raw.partition_keys)}: {len(values)} partitions", markup=False
        )
        for value in values[:20]:
            console.print(f"  {value}", markup=False)
    versions = [
        [
            str(v.version),
            f"{v.created_at:%Y-%m-%d %H:%M:%S}",
            ", ".join(v.added),
            ", ".join(v.widened),
            v.first_file,
        ]
        for v in raw.versions
    ]
    console.print(_table(["schema version", "crawled", "added", "widened", "first file"], versions))


def _show_iceberg(name: str, catalog: Catalog) -> None:
    from abasto.catalog.raw_schema import detect_pii, hive_type  # noqa: PLC0415

    table = catalog.load_table(name)
    props = table.properties
    console = Console(highlight=False)
    console.print(f"{name}  (iceberg)  {table.location()}", markup=False)
    console.print(
        f"owner: {props.get('owner', '')}   class: {props.get('classification', '')}   "
        f"source: {props.get('abasto.source', '')}",
        markup=False,
    )
    console.print(props.get("comment", ""), markup=False)
    schema = table.schema().as_arrow()
    declared = [c for c in props.get("abasto.pii-columns", "").split(",") if c]
    pii = set(detect_pii(schema.names, declared))
    rows = [[f.name, hive_type(f.type), str(f.type), "PII" if f.name in pii else ""] for f in schema]
    console.print(_table(["column", "type", "arrow type", "pii"], rows))
    spec = table.spec()
    if spec.fields:
        console.print("partitioned by " + ", ".join(f"{f.transform}({f.name})" for f in spec.fields))
    snaps = [
        [
            str(s.snapshot_id),
            str(s.summary.operation.value) if s.summary else "",
            str(s.schema_id),
            f"{datetime.fromtimestamp(s.timestamp_ms / 1000, tz=UTC):%Y-%m-%d %H:%M:%S}",
        ]
        for s in table.snapshots()
    ]
    console.print(_table(["snapshot", "operation", "schema id", "committed (UTC)"], snaps))
    console.print(f"schema versions: {', '.join(str(s.schema_id) for s in table.schemas().values())}")


def _table(headers: list[str], rows: list[list[str]]) -> RichTable:
    view = RichTable()
    for i, header in enumerate(headers):
        widest = max([len(header), *(len(row[i]) for row in rows)])
        view.add_column(header, min_width=min(widest, 40), overflow="fold")
    for row in rows:
        view.add_row(*(Text(cell) for cell in row))  # types like timestamp[us] are not markup
    return view
