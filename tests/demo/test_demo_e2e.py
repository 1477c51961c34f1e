"""`abasto demo --json` end to end, as a user runs it, on its own embedded services (small world)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq
import pytest

from abasto.catalog import load_table, open_catalog
from abasto.lake.jobs import JobRunStore, RunStatus
from abasto.lake.quality import QUARANTINE_TABLE
from abasto.services import down
from abasto.settings import Settings
from abasto.world import World

SettingsFactory = Callable[..., Settings]

pytestmark = pytest.mark.services

ARGS = ["--scale", "0.25", "--days", "21", "--json"]


def _env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ABASTO_")}
    env |= {
        "ABASTO_HOME": str(settings.home_dir),
        "ABASTO_NATS__PORT": str(settings.nats.port),
        "ABASTO_NATS__MQTT_PORT": str(settings.nats.mqtt_port),
        "ABASTO_NATS__MONITOR_PORT": str(settings.nats.monitor_port),
        "ABASTO_POSTGRES__PORT": str(settings.postgres.port),
    }
    return env


def _run_demo(settings: Settings, cwd: Path) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-m", "abasto.cli", "demo", *ARGS],
        env=_env(settings),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stdout[-2000:]  # --json prints exactly one object on stdout
    out: dict[str, Any] = json.loads(lines[0])
    out["_stderr"] = proc.stderr
    return out


@pytest.fixture(scope="module")
def demo_runs(
    isolated_settings_factory: SettingsFactory, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Settings, dict[str, Any], dict[str, Any]]]:
    settings = isolated_settings_factory()
    cwd = tmp_path_factory.mktemp("demo-cwd")
    try:
        first = _run_demo(settings, cwd)
        second = _run_demo(settings, cwd)  # re-runnable on the same home and services
        yield settings, first, second
    finally:
        down(settings)


def test_json_has_the_figures(demo_runs: tuple[Settings, dict[str, Any], dict[str, Any]]) -> None:
    _, out, _ = demo_runs
    for key in (
        "alerts",
        "true_stockouts",
        "precision",
        "recall",
        "lead_time_minutes_median",
        "events_per_second",
    ):
        assert key in out
    assert out["alerts"] > 0 and out["true_stockouts"] > 0
    assert out["events_published"] == out["events_accepted"] > 1000
    assert out["events_per_second"] > 0
    # the figures follow from the counts, not from constants
    assert out["precision"] == pytest.approx(out["true_positive_alerts"] / out["alerts"])
    assert out["recall"] == pytest.approx(out["warned"] / out["true_stockouts"])
    assert out["warned"] + out["late"] + out["missed"] == out["true_stockouts"]
    assert 0.3 <= out["recall"] <= 1.0
    assert out["lead_time_minutes_median"] > 0


def test_true_stockouts_come_from_the_generated_ground_truth(
    demo_runs: tuple[Settings, dict[str, Any], dict[str, Any]],
) -> None:
    settings, out, _ = demo_runs
    world = World.load(settings.world_dir)
    eps = world.stockout_episodes.to_pylist()
    live = [e for e in eps if world.live_start <= e["start_at"] < world.live_end]
    assert out["true_stockouts"] == len(live)
    assert out["stores"] == world.stores.num_rows


def test_every_alert_was_notified_and_points_to_the_world(
    demo_runs: tuple[Settings, dict[str, Any], dict[str, Any]],
) -> None:
    settings, out, _ = demo_runs
    lines = (settings.alerts_dir / "notifications.jsonl").read_text().splitlines()
    notified = {json.loads(line)["alert"]["alert_id"] for line in lines}
    assert len(notified) == out["alerts"]
    assert out["notifications"]["webhook_verified"] == out["alerts"]
    assert out["notifications"]["webhook_rejected"] == 0
    world = World.load(settings.world_dir)
    pairs = {(r["store_id"], r["sku"]) for r in world.assortment.to_pylist()}
    for line in lines:
        alert = json.loads(line)["alert"]
        assert (alert["store_id"], alert["sku"]) in pairs


def test_artefacts_exist(demo_runs: tuple[Settings, dict[str, Any], dict[str, Any]]) -> None:
    settings, out, _ = demo_runs
    html = (settings.reports_dir / "demo.html").read_text()
    assert f"<b>{out['true_stockouts']}</b>" in html and f"<b>{out['alerts']}</b>" in html
    assert json.loads((settings.reports_dir / "demo.json").read_text())["alerts"] == out["alerts"]
    raw = Path(settings.raw_uri.removeprefix("file://"))
    assert list(raw.glob("sales_db/orders/cdc/*/CDC-*.parquet")), "live-day changes reached raw"
    full = list(raw.glob("sales_db/sellout_hourly/full_load/*.parquet"))
    assert sum(pq.read_metadata(f).num_rows for f in full) > 10_000
    assert out["model_version"]


def test_rerun_gives_the_same_result(demo_runs: tuple[Settings, dict[str, Any], dict[str, Any]]) -> None:
    _, first, second = demo_runs
    for key in (
        "alerts",
        "true_stockouts",
        "true_positive_alerts",
        "warned",
        "precision",
        "recall",
        "lead_time_minutes_median",
        "events_published",
    ):
        assert first[key] == second[key], key
    for key in (
        "sales_by_hour_rows",
        "stock_readings_rows",
        "units_sold_sales_by_hour",
        "units_sent_by_devices",
        "cdc_quality",
        "quarantine_rows",
    ):
        assert first["lakehouse"][key] == second["lakehouse"][key], key
    assert first["lakehouse"]["delivery"]["rows_written"] == second["lakehouse"]["delivery"]["rows_written"]
    assert int(second["model_version"]) == int(first["model_version"]) + 1


# --- the lakehouse section: delivery → device tables, units check, data quality --------------------


def _raw_device_sql(settings: Settings, sql: str) -> tuple[Any, ...]:
    """One row of ``sql`` over the raw device events (``events``), read with DuckDB, not the demo."""
    raw = Path(settings.raw_uri.removeprefix("file://")) / "devices" / "pos_events"
    files = sorted(raw.glob("date=*/hour=*/*.parquet"))
    assert files, f"no raw device events under {raw}"
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")  # hours are UTC hours, whatever the machine's zone
        listed = ", ".join(f"'{f}'" for f in files)
        con.execute(f"CREATE VIEW events AS SELECT * FROM read_parquet([{listed}], union_by_name = true)")
        row = con.execute(sql).fetchone()
    finally:
        con.close()
    assert row is not None
    return tuple(row)


def test_json_has_the_lakehouse_figures(demo_runs: tuple[Settings, dict[str, Any], dict[str, Any]]) -> None:
    _, out, _ = demo_runs
    lake = out["lakehouse"]
    for key in (
        "delivery",
        "sales_by_hour_rows",
        "stock_readings_rows",
        "units_sold_sales_by_hour",
        "units_sent_by_devices",
        "units_match",
        "cdc_quality",
        "quarantine_rows",
        "device_runs",
    ):
        assert key in lake, key
    assert lake["sales_by_hour_rows"] > 0 and lake["stock_readings_rows"] > 0
    assert lake["units_match"] is True
    assert lake["units_sold_sales_by_hour"] == lake["units_sent_by_devices"] > 0
    # every accepted event was delivered to raw, once
    assert lake["delivery"]["rows_written"] == out["events_accepted"]
    q = lake["cdc_quality"]
    assert q["rows_checked"] > 10_000  # the full load of sellout_hourly alone
    assert q["rows_quarantined"] == sum(q["failures"].values())
    assert q["unreadable_files"] >= 0 and q["tables"] >= 10
    assert "curate device tables (jobs): sales_by_hour, stock_readings; quality" in out["steps"]


def test_sales_by_hour_units_equal_the_sale_events_in_raw(
    demo_runs: tuple[Settings, dict[str, Any], dict[str, Any]],
) -> None:
    settings, _, second = demo_runs  # the raw zone holds the last run's events
    world = World.load(settings.world_dir)
    units, hours, stock = _raw_device_sql(
        settings,
        f"""
        WITH firsts AS (
            SELECT * FROM events
            QUALIFY row_number() OVER (PARTITION BY device_id, seq ORDER BY stream_seq, batch_index) = 1
        )
        SELECT
            (SELECT sum(qty) FROM firsts WHERE type = 'sale'
               AND event_time >= TIMESTAMPTZ '{world.live_start.isoformat()}'
               AND event_time < TIMESTAMPTZ '{world.live_end.isoformat()}'),
            (SELECT count(DISTINCT (store_id, sku, date_trunc('hour', event_time))) FROM firsts
               WHERE type = 'sale'),
            (SELECT count(*) FROM firsts WHERE type = 'stock')
        """,
    )
    lake = second["lakehouse"]
    assert lake["units_sold_sales_by_hour"] == units == lake["units_sent_by_devices"]
    assert lake["sales_by_hour_rows"] == hours
    assert lake["stock_readings_rows"] == stock


def test_quarantine_count_is_the_quarantine_table(
    demo_runs: tuple[Settings, dict[str, Any], dict[str, Any]],
) -> None:
    settings, _, second = demo_runs
    table = load_table(open_catalog(settings), QUARANTINE_TABLE)
    rows = table.scan().to_arrow().num_rows if table is not None else 0
    assert second["lakehouse"]["quarantine_rows"] == rows


def test_device_jobs_are_recorded_runs(demo_runs: tuple[Settings, dict[str, Any], dict[str, Any]]) -> None:
    settings, _, second = demo_runs
    runs = {r.run_id: r for r in JobRunStore.for_settings(settings).runs()}
    for name, fig in second["lakehouse"]["device_runs"].items():
        run = runs[fig["run_id"]]
        assert run.table == f"curated.{name}" and run.status is RunStatus.OK
        assert len(run.inputs) == fig["files"] > 0
        assert {i.kind for i in run.inputs} == {"pos_events"}


def test_html_report_shows_the_lakehouse_section(
    demo_runs: tuple[Settings, dict[str, Any], dict[str, Any]],
) -> None:
    settings, _, second = demo_runs
    html = (settings.reports_dir / "demo.html").read_text()
    lake = second["lakehouse"]
    assert "Lakehouse: device tables and data quality" in html
    assert f'id="lake-sales-rows">{lake["sales_by_hour_rows"]:,}<' in html
    assert f'id="lake-units-table">{lake["units_sold_sales_by_hour"]:,}<' in html
    assert f'id="lake-quarantine">{lake["quarantine_rows"]}<' in html
    assert f'id="lake-checked">{lake["cdc_quality"]["rows_checked"]:,}<' in html
    saved = json.loads((settings.reports_dir / "demo.json").read_text())
    assert saved["lakehouse"]["units_sold_sales_by_hour"] == lake["units_sold_sales_by_hour"]
