from __future__ import annotations

import pytest
from pyiceberg.catalog.sql import SqlCatalog
from raw_builders import write_orders_cdc, write_orders_load

from abasto.catalog.crawler import crawl
from abasto.catalog.lineage import JOB_CURATE, lineage, resolve_name
from abasto.catalog.raw_registry import RawRegistry
from abasto.errors import NotFoundError
from abasto.lake import curate_table, get_spec
from abasto.settings import Settings


def test_curated_orders_lineage_names_raw_dataset_files_and_runs(
    settings: Settings, catalog: SqlCatalog, registry: RawRegistry
) -> None:
    raw = settings.raw_uri
    load = write_orders_load(raw)
    spec = get_spec("orders")
    first = curate_table(spec, catalog=catalog, raw_uri=raw)
    change = write_orders_cdc(raw, first_lsn=0x200)
    second = curate_table(spec, catalog=catalog, raw_uri=raw)
    crawl(raw, registry)

    result = lineage("curated.orders", catalog=catalog, registry=registry)

    (upstream,) = result.upstream
    assert upstream.name == "raw.sales_db_orders"
    assert upstream.location.endswith("sales_db/orders")
    assert upstream.files == tuple(sorted([load.relpath, change.relpath]))
    assert [run.job for run in result.runs] == [JOB_CURATE, JOB_CURATE]
    assert [run.files for run in result.runs] == [(load.relpath,), (change.relpath,)]
    assert [run.snapshot_id for run in result.runs] == [first.snapshot_id, second.snapshot_id]
    assert result.runs[0].records_added == 2


def test_raw_lineage_names_source_system_and_downstream(
    settings: Settings, catalog: SqlCatalog, registry: RawRegistry
) -> None:
    raw = settings.raw_uri
    load = write_orders_load(raw)
    curate_table(get_spec("orders"), catalog=catalog, raw_uri=raw)
    crawl(raw, registry)

    result = lineage("sales_db/orders", catalog=catalog, registry=registry)

    assert result.table == "raw.sales_db_orders"
    (origin,) = result.upstream
    assert origin.kind == "source"
    assert origin.name.startswith("sales_db PostgreSQL table orders")
    assert origin.files == (load.relpath,)
    assert result.downstream == ("curated.orders",)


def test_names_resolve_and_unknown_names_fail(
    settings: Settings, catalog: SqlCatalog, registry: RawRegistry
) -> None:
    write_orders_load(settings.raw_uri)
    curate_table(get_spec("orders"), catalog=catalog, raw_uri=settings.raw_uri)
    crawl(settings.raw_uri, registry)
    assert resolve_name("orders", catalog, registry) == "curated.orders"
    assert resolve_name("raw.sales_db_orders", catalog, registry) == "raw.sales_db_orders"
    with pytest.raises(NotFoundError):
        resolve_name("curated.nope", catalog, registry)
