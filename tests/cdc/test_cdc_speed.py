"""Throughput of the sources and the capture on the default-size world (slow tier).

Prints rows/s for the world load and the full load, and changes/s for the capture; the floors are
far below what a 2-core machine does, so they only catch order-of-magnitude regressions.
"""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from abasto.cdc import CdcPipeline
from abasto.settings import WorldSettings
from abasto.sources.sales_db import load_world
from abasto.world import generate

pytestmark = [pytest.mark.services, pytest.mark.slow]


def test_load_and_capture_speed(cdc_dsn: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    world = generate(WorldSettings())
    loaded = load_world(cdc_dsn, world.tables, until=world.history_end)
    with CdcPipeline(cdc_dsn, (tmp_path / "raw").as_uri(), schemas=("sales",)) as pipeline:
        full = pipeline.full_load()
        with psycopg.connect(cdc_dsn, autocommit=True) as conn:
            conn.execute("UPDATE sales.sellout_hourly SET units_sold = units_sold + 1")
        changes, seconds = 0, 0.0
        while True:
            step = pipeline.capture_once(max_changes=50_000)
            changes += step.changes
            seconds += step.seconds
            if step.drained and not step.changes:
                break
    with capsys.disabled():
        print(
            f"\nload_world {loaded.total_rows:,} rows {loaded.rows_per_second:,.0f} rows/s · "
            f"full load {full.rows:,} rows {full.rows_per_second:,.0f} rows/s · "
            f"capture {changes:,} changes {changes / seconds:,.0f} changes/s"
        )
    assert changes == loaded.rows["sellout_hourly"]
    assert loaded.rows_per_second > 20_000
    assert full.rows_per_second > 20_000
    assert changes / seconds > 5_000
