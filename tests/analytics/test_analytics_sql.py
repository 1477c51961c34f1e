from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest
from analytics_world import SELLOUT, Lake

from abasto.analytics import AuditLog, SqlEngine, authorize, query
from abasto.analytics.sql import audit_log_path
from abasto.errors import AccessDeniedError, InvalidInputError, NotFoundError


def test_view_equals_pyiceberg_scan(lake: Lake, engine: SqlEngine) -> None:
    via_duckdb = engine.query(
        "SELECT * FROM curated.sellout_hourly ORDER BY store_id, sku, hour_start", principal="analyst"
    )
    via_iceberg = (
        lake.catalog.load_table(SELLOUT.identifier)
        .scan()
        .to_arrow()
        .sort_by([("store_id", "ascending"), ("sku", "ascending"), ("hour_start", "ascending")])
    )
    assert via_duckdb.num_rows == 2 * 2 * 48
    assert via_duckdb.column_names == via_iceberg.column_names
    assert via_duckdb.to_pylist() == via_iceberg.to_pylist()
    assert via_duckdb.schema.field("hour_start").type == pa.timestamp("us", tz="UTC")


def test_time_travel_to_previous_snapshot(lake: Lake, engine: SqlEngine) -> None:
    sql = "SELECT sum(units_sold)::BIGINT AS units FROM curated.sellout_hourly"
    now = engine.query(sql, principal="analyst").column("units")[0].as_py()
    before = (
        engine.query(sql, principal="analyst", snapshot_id=lake.first_snapshot).column("units")[0].as_py()
    )
    assert (before, now) == (192, 192 + 6)
    assert engine.query(sql, principal="analyst").column("units")[0].as_py() == now  # view restored
    with pytest.raises(NotFoundError, match="no snapshot 42"):
        engine.query(sql, principal="analyst", snapshot_id=42)
    with pytest.raises(InvalidInputError, match="exactly one table"):
        engine.query(
            "SELECT * FROM curated.sellout_hourly, curated.products",
            principal="analyst",
            snapshot_id=lake.first_snapshot,
        )


def test_read_only_forms_are_accepted(engine: SqlEngine) -> None:
    assert (
        engine.query("WITH s AS (FROM curated.products) SELECT count(*) AS n FROM s", principal="analyst")
        .column("n")[0]
        .as_py()
        == 2
    )
    assert (
        "sku"
        in engine.query("DESCRIBE curated.products", principal="analyst").column("column_name").to_pylist()
    )
    assert engine.query("EXPLAIN SELECT * FROM curated.products", principal="analyst").num_rows >= 1
    assert engine.query("SELECT * FROM range(3)", principal="analyst").num_rows == 3


@pytest.mark.parametrize(
    ("sql", "error", "reason"),
    [
        ("DELETE FROM curated.products", AccessDeniedError, "DELETE statements are not allowed"),
        ("INSERT INTO curated.products VALUES ('x', 'y', 1.0)", AccessDeniedError, "INSERT"),
        ("CREATE TABLE t AS SELECT 1", AccessDeniedError, "CREATE"),
        ("COPY curated.products TO '/tmp/x.csv'", AccessDeniedError, "COPY"),
        ("EXPLAIN ANALYZE COPY (SELECT 1) TO '/tmp/x.csv'", AccessDeniedError, "COPY"),
        ("ATTACH '/tmp/x.db'", AccessDeniedError, "ATTACH"),
        ("SET enable_external_access = true", AccessDeniedError, "SET"),
        ("INSTALL httpfs", AccessDeniedError, "LOAD"),
        ("SELECT * FROM read_parquet('/etc/passwd')", AccessDeniedError, "read_parquet"),
        ("SELECT * FROM iceberg_scan('/x')", AccessDeniedError, "iceberg_scan"),
        ("SELECT * FROM '/etc/passwd'", AccessDeniedError, "not a catalog table"),
        ("SELECT 1; SELECT 2", InvalidInputError, "exactly one statement"),
        ("SELEKT 1", InvalidInputError, "cannot parse"),
        ("SELECT * FROM curated.nope", InvalidInputError, "nope"),
    ],
)
def test_refused_statements_explain_why(
    engine: SqlEngine, sql: str, error: type[Exception], reason: str
) -> None:
    with pytest.raises(error, match=reason):
        engine.query(sql, principal="analyst")


def test_profiles_are_denied_by_default_and_audited(lake: Lake, tmp_path: Path) -> None:
    engine = SqlEngine(lake.settings, catalog=lake.catalog, audit=AuditLog(tmp_path / "audit.jsonl"))
    with pytest.raises(AccessDeniedError, match="'intruder' is unknown"):
        engine.query("SELECT 1", principal="intruder")
    with pytest.raises(AccessDeniedError, match="may not read the curated zone"):
        engine.query("SELECT * FROM curated.products", principal="planner")
    with pytest.raises(AccessDeniedError, match="DROP"):
        engine.query("DROP VIEW curated.products", principal="analyst")
    engine.query("SELECT * FROM curated.products", principal="data_scientist")
    records = [json.loads(line) for line in engine.audit.path.read_text().splitlines()]
    assert [(r["principal"], r["allowed"], r["event"]) for r in records] == [
        ("intruder", False, "sql.query"),
        ("planner", False, "sql.query"),
        ("analyst", False, "sql.refused"),
        ("data_scientist", True, "sql.query"),
    ]
    assert records[1]["sql"] == "SELECT * FROM curated.products"
    assert {d["resource"] for d in records[3]["decisions"]} == {"sql", "curated.products"}
    assert "DROP" in records[2]["decisions"][0]["reason"]
    engine.close()


def test_new_commits_are_visible_to_the_next_query(lake: Lake, engine: SqlEngine) -> None:
    views = engine.views()
    assert set(views) >= {"curated.sellout_hourly", "curated.products"}
    assert views["curated.products"] == lake.catalog.load_table("curated.products").metadata_location


def test_module_query_audits_under_home(lake: Lake) -> None:
    result = query(
        "SELECT brand FROM curated.products ORDER BY brand", principal="analyst", settings=lake.settings
    )
    assert result.column("brand").to_pylist() == ["Agua", "Cola"]
    assert audit_log_path(lake.settings).is_file()
    assert audit_log_path(lake.settings).is_relative_to(lake.settings.home_dir)


def test_audit_log_appends(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "a" / "audit.jsonl")
    log.append("sql.query", [authorize("analyst", "read", "curated.x")], sql="SELECT 1")
    log.append("sql.query", [authorize("analyst", "read", "raw.x")], sql="SELECT 2")
    lines = [json.loads(x) for x in log.path.read_text().splitlines()]
    assert [x["allowed"] for x in lines] == [True, False]
