"""The lakehouse benchmark's ``curate_rows_per_s`` figure runs the device-table jobs (small plan)."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest
from pyiceberg.catalog.sql import SqlCatalog

from abasto.benchmarks.lakehouse import QUICK, _curate_figure, _pos_event_files
from abasto.lake.device_files import discover_device_files
from abasto.settings import Settings

pytestmark = pytest.mark.slow


def test_raw_files_follow_the_delivery_layout_with_resent_events(settings: Settings) -> None:
    paths = _pos_event_files(settings.raw_uri, 20_000, batch=5_000)
    files = discover_device_files(settings.raw_uri)
    assert len(files) == len(paths) and len({f.first_seq for f in files}) == 4  # four batches
    rows = sum(pq.read_metadata(p).num_rows for p in paths)
    assert 20_000 < rows < 20_000 * 1.01  # ~0.5 % re-sent


def test_curate_figure_reports_rows_per_s_beside_duckdb_copy(settings: Settings, catalog: SqlCatalog) -> None:
    plan = type(QUICK)(
        cdc_windows=1, cdc_window_s=1.0, curate_rows=30_000, curate_repeats=2, sql_rows=1, sql_repeats=1
    )
    figure = _curate_figure(settings, catalog, plan)
    assert figure.name == "curate_rows_per_s" and figure.value > 0 and figure.limit > 0
    sales = catalog.load_table("curated.sales_by_hour").scan().to_arrow()
    assert sum(sales["tickets"].to_pylist()) > 0.5 * 30_000  # 60 % of the events are sales
