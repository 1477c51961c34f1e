"""The CLI of the sources and the capture: load-world, import freshretailnet, cdc full-load/run/status."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from abasto.cli import app
from abasto.errors import NotFoundError, TerminalError
from abasto.settings import WorldSettings
from abasto.world import generate

pytestmark = pytest.mark.services

DATA = Path("/work/shared/data/freshretailnet_dev")


@pytest.fixture
def cli_env(db_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ABASTO_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ABASTO_POSTGRES__URL", db_dsn)
    monkeypatch.delenv("ABASTO_CONFIG", raising=False)
    return tmp_path / "home"


def test_load_world_then_capture_from_the_cli(cli_env: Path, db_dsn: str) -> None:
    generate(WorldSettings(stores=4, skus=3, history_days=7), horizon_days=1).save(cli_env / "world")
    runner = CliRunner()

    loaded = runner.invoke(app, ["load-world"])
    assert loaded.exit_code == 0, loaded.output
    assert "sellout_hourly" in loaded.output and "visit analyses" in loaded.output

    full = runner.invoke(app, ["cdc", "full-load"])
    assert full.exit_code == 0, full.output
    assert "full load at LSN" in full.output
    again = runner.invoke(app, ["cdc", "full-load"])
    assert again.exit_code != 0
    assert isinstance(again.exception, TerminalError) and "--reload" in (again.exception.hint or "")

    with psycopg.connect(db_dsn, autocommit=True) as conn:
        conn.execute("UPDATE sales.customers SET phone = '+52 55 9999'")
    once = runner.invoke(app, ["cdc", "run", "--once"])
    assert once.exit_code == 0, once.output
    assert "captured 4 changes" in once.output

    status = runner.invoke(app, ["cdc", "status", "--json"])
    assert status.exit_code == 0, status.output
    data = json.loads(status.output)
    assert data["exists"] is True and data["confirmed_lsn"] == data["raw_confirmed_lsn"]
    assert list((cli_env / "lake" / "raw" / "sales_db" / "customers" / "cdc").rglob("CDC-*.parquet"))


def test_import_freshretailnet_names_a_wrong_path(cli_env: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["import", "freshretailnet", str(tmp_path / "nowhere")])
    assert result.exit_code != 0
    assert isinstance(result.exception, NotFoundError) and "nowhere" in str(result.exception)
    assert "Dingdong-Inc" in result.output and "CC BY 4.0" in result.output


@pytest.mark.skipif(not (DATA / "stores.csv").is_file(), reason=f"{DATA} is absent")
def test_import_freshretailnet_from_the_cli(cli_env: Path, db_dsn: str) -> None:
    result = CliRunner().invoke(app, ["import", "freshretailnet", str(DATA), "--stores", "1"])
    assert result.exit_code == 0, result.output
    assert "arXiv:2505.16319" in result.output
    with psycopg.connect(db_dsn) as conn:
        assert conn.execute(
            "SELECT count(*) FROM sales.customers WHERE store_id LIKE 'FRN-%'"
        ).fetchone() == (1,)
