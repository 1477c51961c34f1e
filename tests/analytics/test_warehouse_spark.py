"""Heavy tier: the Spark transpilation of every mart, run in local pyspark over the same Parquet,
gives the same rows as DuckDB. Skipped without pyspark or java."""

from __future__ import annotations

import math
import shutil
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from warehouse_world import build_lake

from abasto.analytics.warehouse import ALERTS_SCHEMA, MARTS, build_marts, query_marts, transpile
from abasto.analytics.warehouse.build import PRINCIPAL
from abasto.bootstrap import Platform

pytestmark = pytest.mark.slow

pyspark_sql = pytest.importorskip("pyspark.sql")
if shutil.which("java") is None:
    pytest.skip("java is not installed", allow_module_level=True)


@pytest.fixture(scope="module")
def spark(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    base = tmp_path_factory.mktemp("spark")
    session = (
        pyspark_sql.SparkSession.builder.master("local[1]")
        .appName("abasto-warehouse-test")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.warehouse.dir", str(base / "warehouse"))
        .config("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .getOrCreate()
    )
    yield session
    session.stop()


def normalized(table: pa.Table, keys: tuple[str, ...]) -> list[tuple[Any, ...]]:
    def value(v: Any) -> Any:
        if isinstance(v, datetime):
            return v.replace(tzinfo=None) if v.tzinfo is None else v.astimezone(tz=None).replace(tzinfo=None)
        if isinstance(v, float | int) and not isinstance(v, bool):
            return round(float(v), 9) if not math.isnan(v) else None
        return v

    names = sorted(table.column_names)
    rows = table.select(names).sort_by([(k, "ascending") for k in keys]).to_pylist()
    return [tuple(value(r[n]) for n in names) for r in rows]


def test_spark_marts_equal_duckdb_marts(tmp_path: Path, spark: Any) -> None:
    settings, _ = build_lake(tmp_path / "home")
    report = build_marts(settings)
    parquet = tmp_path / "parquet"
    with Platform(settings).sql() as engine:
        for name in sorted({s for m in MARTS for s in m.sources}):
            table = engine.query(f"SELECT * FROM curated.{name}", principal=PRINCIPAL)
            (parquet / name).mkdir(parents=True)
            pq.write_table(table, parquet / name / "part-0.parquet")
    (parquet / "alerts").mkdir()
    pq.write_table(ALERTS_SCHEMA.empty_table(), parquet / "alerts" / "part-0.parquet")
    for db in ("curated", "realtime", "marts"):
        spark.sql(f"CREATE DATABASE IF NOT EXISTS {db}")
    for path in sorted(parquet.iterdir()):
        db = "realtime" if path.name == "alerts" else "curated"
        spark.sql(f"CREATE TABLE {db}.{path.name} USING parquet LOCATION '{path}'")
    out = tmp_path / "spark_marts"
    for mart in MARTS:
        spark.sql(transpile(mart, "spark", pretty=False)).write.parquet(str(out / mart.name))
        spark.sql(f"CREATE TABLE marts.{mart.name} USING parquet LOCATION '{out / mart.name}'")
        from_spark = pq.read_table(out / mart.name)
        from_duckdb = query_marts(f"SELECT * FROM marts.{mart.name}", path=report.path)
        assert sorted(from_spark.column_names) == sorted(from_duckdb.column_names), mart.name
        assert normalized(from_spark, mart.keys) == normalized(from_duckdb, mart.keys), mart.name
