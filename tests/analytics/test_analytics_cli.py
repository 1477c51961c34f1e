from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest
from analytics_world import T0
from typer.testing import CliRunner

from abasto.cli import app
from abasto.errors import AccessDeniedError
from abasto.lake import SALES_TABLES
from abasto.lake.raw_writer import write_full_load
from abasto.settings import load_settings


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ABASTO_HOME", str(tmp_path / "home"))
    settings = load_settings()
    regions = pa.table({"region_id": ["N", "S"], "name": ["Norte", "Sur"], "base_temp_c": [24.0, 31.5]})
    write_full_load(settings.raw_uri, SALES_TABLES["regions"].source, regions, lsn=5, commit_ts=T0)
    return tmp_path / "home"


def test_jobs_tables_and_sql(home: Path) -> None:
    runner = CliRunner()
    run = runner.invoke(app, ["jobs", "run", "regions"])
    assert run.exit_code == 0, run.output
    assert "curated.regions" in run.output
    listed = runner.invoke(app, ["tables"])
    assert listed.exit_code == 0 and "curated.regions" in listed.output
    as_json = runner.invoke(
        app, ["sql", "SELECT region_id, name FROM curated.regions ORDER BY 1", "--format", "json"]
    )
    assert as_json.exit_code == 0, as_json.output
    assert json.loads(as_json.output) == [
        {"region_id": "N", "name": "Norte"},
        {"region_id": "S", "name": "Sur"},
    ]
    as_csv = runner.invoke(app, ["sql", "SELECT region_id FROM curated.regions ORDER BY 1", "-f", "csv"])
    assert as_csv.output.splitlines() == ['"region_id"', '"N"', '"S"']
    as_table = runner.invoke(app, ["sql", "SELECT name FROM curated.regions ORDER BY 1"])
    assert "Norte" in as_table.output and "Sur" in as_table.output
    denied = runner.invoke(app, ["sql", "SELECT * FROM curated.regions", "--as", "planner"])
    assert isinstance(denied.exception, AccessDeniedError)
    assert (home / "audit" / "sql.jsonl").read_text().count("\n") == 4


def test_unknown_table_for_jobs(home: Path) -> None:
    result = CliRunner().invoke(app, ["jobs", "run", "nope"])
    assert result.exit_code != 0
    assert "nope" in str(result.exception)
