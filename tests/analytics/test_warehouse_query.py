"""Read-only SQL on the marts file and the `abasto warehouse` commands."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner
from warehouse_world import HOURS, SKUS, STORES, build_lake

from abasto.analytics.warehouse import build_marts, marts_path, query_marts
from abasto.cli import warehouse as _warehouse  # noqa: F401  (registers the commands)
from abasto.cli.app import app
from abasto.errors import AccessDeniedError, InvalidInputError, NotFoundError
from abasto.settings import Settings


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    settings, _ = build_lake(tmp_path_factory.mktemp("wq") / "home")
    build_marts(settings)
    return settings


@pytest.mark.parametrize(
    "sql",
    [
        "DELETE FROM marts.fact_sales_hourly",
        "CREATE TABLE marts.x AS SELECT 1",
        "INSERT INTO marts.dim_rep VALUES ('x', 'y', 'z')",
        "SELECT * FROM read_parquet('/etc/passwd')",
        "ATTACH '/tmp/other.duckdb' AS other",
    ],
)
def test_writes_and_file_reads_are_refused(built: Settings, sql: str) -> None:
    with pytest.raises(AccessDeniedError):
        query_marts(sql, settings=built)
    assert query_marts("SELECT count(*) AS n FROM marts.dim_rep", settings=built).to_pylist() == [{"n": 2}]


def test_bad_sql_and_missing_marts(built: Settings, tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError):
        query_marts("SELECT nope FROM marts.dim_rep", settings=built)
    with pytest.raises(NotFoundError):
        query_marts("SELECT 1", path=tmp_path / "none.duckdb")


def test_cli_build_query_and_sql(built: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ABASTO_HOME", str(built.home_dir))
    runner = CliRunner()
    res = runner.invoke(app, ["warehouse", "build"])
    assert res.exit_code == 0, res.output
    assert "skipped" in res.output and marts_path(built).is_file()
    res = runner.invoke(app, ["warehouse", "query", "SELECT count(*) AS n FROM fact_sales_hourly"])
    assert res.exit_code == 0, res.output
    assert f'{{"n": {len(STORES) * len(SKUS) * HOURS}}}' in res.output
    res = runner.invoke(app, ["warehouse", "sql", "--dialect", "spark", "--mart", "fact_sales_hourly"])
    assert res.exit_code == 0 and "FROM_UTC_TIMESTAMP" in res.output
    res = runner.invoke(app, ["warehouse", "sql", "--dialect", "redshift"])
    assert res.exit_code == 0 and res.output.count("-- marts.") == 10
