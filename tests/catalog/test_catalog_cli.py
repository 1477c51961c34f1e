from __future__ import annotations

from pathlib import Path

import pytest
from pyiceberg.catalog.sql import SqlCatalog
from raw_builders import write_customers, write_orders_cdc, write_orders_load, write_pos_events
from typer.testing import CliRunner

import abasto.cli.catalog  # noqa: F401  (registers `abasto catalog`)
from abasto.cli.app import app
from abasto.lake import curate_table, get_spec
from abasto.settings import Settings


@pytest.fixture
def cli_env(settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ABASTO_CONFIG", raising=False)
    monkeypatch.setenv("ABASTO_HOME", str(settings.home))
    monkeypatch.setenv("COLUMNS", "240")
    return settings


def run(*args: str) -> str:
    result = CliRunner().invoke(app, ["catalog", *args])
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


def test_crawl_list_show_lineage(cli_env: Settings, catalog: SqlCatalog) -> None:
    raw = cli_env.raw_uri
    write_customers(raw)
    load = write_orders_load(raw)
    write_pos_events(raw, "2026-09-01", "06")
    curate_table(get_spec("orders"), catalog=catalog, raw_uri=raw)

    crawled = run("crawl")
    assert "raw.sales_db_customers" in crawled
    assert "3 files scanned, 0 unchanged, 3 new datasets" in crawled

    write_orders_cdc(raw, first_lsn=0x300, with_channel=True)
    again = run("crawl")
    assert "1 files scanned, 3 unchanged, 0 new datasets" in again
    assert "channel" in again

    listed = run("list")
    lines = {line.split("│")[1].strip(): line for line in listed.splitlines() if line.count("│") > 3}
    assert "pii" in lines["raw.sales_db_customers"]
    assert "data-platform" in lines["raw.sales_db_customers"]
    assert "curated" in lines["curated.orders"]
    assert "raw.devices_pos_events" in lines

    shown = run("show", "sales_db/customers")
    owner_row = next(line for line in shown.splitlines() if "owner_name" in line)
    assert "PII" in owner_row
    channel_row = next(line for line in shown.splitlines() if " channel " in line)
    assert "PII" not in channel_row

    events = run("show", "raw.devices_pos_events")
    assert "partitioned by date, hour: 1 partitions" in events
    assert "2026-09-01/06" in events
    assert "timestamp[us, tz=UTC]" in events

    orders = run("show", "raw.sales_db_orders")
    version_rows = [line for line in orders.splitlines() if "│ 2 " in line or "│ 1 " in line]
    assert any("channel" in line for line in version_rows)

    curated = run("show", "curated.orders")
    assert "(iceberg)" in curated
    assert "append" in curated

    tree = run("lineage", "curated.orders")
    assert "raw.sales_db_orders [raw]" in tree
    assert load.relpath in tree
    assert "curate → snapshot" in tree


def test_unknown_table_fails(cli_env: Settings) -> None:
    result = CliRunner().invoke(app, ["catalog", "show", "curated.nope"])
    assert result.exit_code != 0
