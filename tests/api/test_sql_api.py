"""The SQL HTTP API served by uvicorn over a small curated lake: results, limits, time travel,
governance, errors, metrics."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pyarrow as pa
import pytest
from api_world import Api, bearer, serve
from prometheus_client.parser import text_string_to_metric_families

from abasto.analytics import AuditLog, SqlEngine
from abasto.api import create_app

UNITS = "SELECT sum(units_sold)::BIGINT AS units FROM curated.sellout_hourly"
ARROW = "application/vnd.apache.arrow.stream"


def post(api: Api, doc: object, headers: dict[str, str] | None = None) -> httpx.Response:
    return api.client.post("/v1/query", json=doc, headers=headers if headers is not None else api.analyst)


def test_query_answers_columns_rows_and_metadata(api: Api) -> None:
    sql = (
        "SELECT sku, count(*)::INTEGER AS n, sum(units_sold)::BIGINT AS units, min(hour_start) AS first "
        "FROM curated.sellout_hourly GROUP BY sku ORDER BY sku"
    )
    r = post(api, {"sql": sql})
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["columns"] == [
        {"name": "sku", "type": "string"},
        {"name": "n", "type": "int32"},
        {"name": "units", "type": "int64"},
        {"name": "first", "type": "timestamp[us, tz=UTC]"},
    ]
    # one row of S0/S1 × COLA-600 (index 3 of the first store's rows) was updated from 1 to 7
    assert doc["rows"] == [
        ["AGUA-1L", 96, 96, "2026-09-01T00:00:00+00:00"],
        ["COLA-600", 96, 96 + 6, "2026-09-01T00:00:00+00:00"],
    ]
    assert doc["row_count"] == 2 and doc["truncated"] is False
    assert len(doc["query_id"]) == 32 and r.headers["x-abasto-query-id"] == doc["query_id"]
    assert doc["elapsed_ms"] > 0


def test_values_json_cannot_carry_are_converted(api: Api) -> None:
    sql = (
        "SELECT 'nan'::DOUBLE AS x, 'inf'::DOUBLE AS y, 1.5::DECIMAL(4, 2) AS d, DATE '2026-01-02' AS day, "
        "[1.0, 'nan'::DOUBLE] AS xs, 'ab'::BLOB AS b"
    )
    r = post(api, {"sql": sql})
    assert r.status_code == 200, r.text
    assert r.json()["rows"] == [[None, None, "1.50", "2026-01-02", [1.0, None], "YWI="]]


def test_row_limit_cuts_and_says_so(api: Api) -> None:
    default = post(api, {"sql": "SELECT * FROM curated.sellout_hourly ORDER BY hour_start, store_id, sku"})
    assert default.status_code == 200
    assert (default.json()["row_count"], default.json()["truncated"]) == (100, True)  # server default
    small = post(api, {"sql": "SELECT * FROM range(10)", "limit": 3}).json()
    assert small["rows"] == [[0], [1], [2]] and small["truncated"] is True
    exact = post(api, {"sql": "SELECT * FROM range(10)", "limit": 10}).json()
    assert exact["row_count"] == 10 and exact["truncated"] is False
    too_many = post(api, {"sql": "SELECT 1", "limit": 1001})
    assert too_many.status_code == 400 and "'limit'" in too_many.json()["detail"]


def test_time_travel_by_id_or_by_table(api: Api) -> None:
    first = api.lake.first_snapshot
    assert post(api, {"sql": UNITS}).json()["rows"] == [[198]]
    assert post(api, {"sql": UNITS, "snapshot": first}).json()["rows"] == [[192]]
    by_table = post(api, {"sql": UNITS, "snapshot": {"curated.sellout_hourly": first}})
    assert by_table.json()["rows"] == [[192]]
    assert post(api, {"sql": UNITS}).json()["rows"] == [[198]]  # the view is back on the current snapshot
    wrong = post(api, {"sql": UNITS, "snapshot": {"curated.products": first}})
    assert wrong.status_code == 400 and "does not read" in wrong.json()["detail"]
    unknown = post(api, {"sql": UNITS, "snapshot": 42})
    assert unknown.status_code == 404
    assert unknown.json()["error"] == "not_found" and "no snapshot 42" in unknown.json()["detail"]


def test_arrow_stream_carries_the_same_result(api: Api) -> None:
    sql = "SELECT * FROM curated.sellout_hourly ORDER BY store_id, sku, hour_start"
    r = api.client.post(
        "/v1/query", json={"sql": sql, "limit": 1000}, headers={**api.analyst, "Accept": ARROW}
    )
    assert r.status_code == 200 and r.headers["content-type"] == ARROW
    table = pa.ipc.open_stream(r.content).read_all()
    assert table.num_rows == 192 and r.headers["x-abasto-row-count"] == "192"
    assert r.headers["x-abasto-truncated"] == "false"
    assert table.schema.field("hour_start").type == pa.timestamp("us", tz="UTC")
    as_json = post(api, {"sql": sql, "limit": 1000}).json()
    assert [list(row.values()) for row in table.to_pylist()][5][:2] == as_json["rows"][5][:2]
    assert sum(table.column("units_sold").to_pylist()) == 198


@pytest.mark.parametrize(
    ("sql", "status", "error", "says"),
    [
        ("DELETE FROM curated.products", 403, "access_denied", "DELETE statements are not allowed"),
        ("CREATE TABLE t AS SELECT 1", 403, "access_denied", "read-only"),
        ("SELECT * FROM read_parquet('/etc/passwd')", 403, "access_denied", "read_parquet"),
        ("SELECT 1; SELECT 2", 400, "invalid_request", "exactly one statement"),
        ("SELEKT 1", 400, "invalid_request", "cannot parse"),
        ("SELECT * FROM curated.nope", 400, "invalid_request", "nope"),
    ],
)
def test_refusals_are_json_errors(api: Api, sql: str, status: int, error: str, says: str) -> None:
    r = post(api, {"sql": sql})
    assert r.status_code == status
    doc = r.json()
    assert set(doc) == {"error", "detail", "hint"}
    assert doc["error"] == error and says in doc["detail"]


def test_profile_of_the_token_is_what_governance_checks(api: Api) -> None:
    denied = post(api, {"sql": "SELECT * FROM curated.products"}, api.planner)
    assert denied.status_code == 403
    assert "profile 'planner' may not read the curated zone" in denied.json()["detail"]
    records = [json.loads(line) for line in api.audit_path.read_text().splitlines()]
    mine = [r for r in records if r.get("sql") == "SELECT * FROM curated.products"]
    assert [(r["event"], r["principal"], r["allowed"]) for r in mine][-1] == ("sql.query", "planner", False)
    allowed = post(api, {"sql": "SELECT count(*) AS n FROM curated.products"})
    assert allowed.json()["rows"] == [[2]]
    records = [json.loads(line) for line in api.audit_path.read_text().splitlines()]
    assert any(
        r["principal"] == "analyst" and r["allowed"] and "curated.products" in r["sql"] for r in records
    )


def test_bearer_token_is_required_and_revocation_applies_at_once(api: Api) -> None:
    missing = api.client.post("/v1/query", json={"sql": "SELECT 1"})
    assert missing.status_code == 401 and missing.headers["www-authenticate"].startswith("Bearer")
    assert missing.json()["error"] == "missing_token" and "abasto api token add" in missing.json()["hint"]
    forged = api.client.get("/v1/tables", headers=bearer("abt_00000000_" + "x" * 43))
    assert forged.status_code == 401 and forged.json()["error"] == "invalid_token"
    _, token = api.tokens.add("short-lived", "analyst")
    assert api.client.get("/v1/tables", headers=bearer(token)).status_code == 200
    api.tokens.revoke("short-lived")
    assert api.client.get("/v1/tables", headers=bearer(token)).status_code == 401


def test_tables_list_what_the_profile_may_read(api: Api) -> None:
    doc = api.client.get("/v1/tables", headers=api.analyst).json()
    assert doc["profile"] == "analyst"
    by_name = {t["name"]: t for t in doc["tables"]}
    assert set(by_name) == {"curated.products", "curated.sellout_hourly"}
    assert by_name["curated.sellout_hourly"]["snapshot_id"] == api.lake.second_snapshot
    assert by_name["curated.sellout_hourly"]["rows"] == 192
    assert api.client.get("/v1/tables", headers=api.planner).json()["tables"] == []


def test_table_description_has_schema_and_snapshots(api: Api) -> None:
    r = api.client.get("/v1/tables/curated.sellout_hourly", headers=api.analyst)
    assert r.status_code == 200
    doc = r.json()
    assert [c["name"] for c in doc["columns"]][:3] == ["store_id", "sku", "hour_start"]
    snapshots = [s["snapshot_id"] for s in doc["snapshots"]]
    assert api.lake.first_snapshot in snapshots and doc["current_snapshot_id"] == api.lake.second_snapshot
    assert all(s["committed_at"].endswith("+00:00") for s in doc["snapshots"])
    # each listed snapshot is a working time-travel target
    for snap in (api.lake.first_snapshot, api.lake.second_snapshot):
        assert post(api, {"sql": UNITS, "snapshot": snap}).status_code == 200
    denied = api.client.get("/v1/tables/curated.sellout_hourly", headers=api.planner)
    assert denied.status_code == 403
    missing = api.client.get("/v1/tables/curated.nope", headers=api.analyst)
    assert missing.status_code == 404 and "curated.nope" in missing.json()["detail"]


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"not json", "not JSON"),
        (b"[1]", "JSON object"),
        (b'{"sql": ""}', "'sql'"),
        (b'{"sql": "SELECT 1", "rows": 3}', "unknown fields: rows"),
        (b'{"sql": "SELECT 1", "snapshot": "yesterday"}', "'snapshot'"),
        (b'{"sql": "SELECT 1", "timeout_s": 0}', "'timeout_s'"),
    ],
)
def test_malformed_requests_are_400(api: Api, body: bytes, says: str) -> None:
    r = api.client.post(
        "/v1/query", content=body, headers={**api.analyst, "Content-Type": "application/json"}
    )
    assert r.status_code == 400 and says in r.json()["detail"]


def test_large_body_is_413(api: Api) -> None:
    r = post(api, {"sql": "SELECT 1 -- " + "x" * 5000})
    assert r.status_code == 413 and r.json()["error"] == "body_too_large"


def test_slow_query_is_interrupted_and_the_engine_stays_usable(api: Api) -> None:
    started = time.monotonic()
    r = post(api, {"sql": "SELECT sum(a) FROM range(100000000000) t(a)", "timeout_s": 0.5})
    took = time.monotonic() - started
    assert r.status_code == 503 and r.json()["error"] == "timeout"
    assert r.headers["retry-after"] == "1"
    assert took < 10, f"the statement was not stopped ({took:.1f} s)"
    assert post(api, {"sql": "SELECT 41 + 1 AS x"}).json()["rows"] == [[42]]


def test_metrics_count_requests_and_queries(api: Api) -> None:
    before = api.metrics.queries["ok"]
    post(api, {"sql": "SELECT * FROM range(5)"})
    post(api, {"sql": "DELETE FROM curated.products"})
    families = {f.name: f for f in text_string_to_metric_families(api.client.get("/metrics").text)}
    queries = {s.labels["outcome"]: s.value for s in families["abasto_api_queries"].samples}
    assert queries["ok"] == before + 1 == api.metrics.queries["ok"]
    assert queries["access_denied"] == api.metrics.queries["access_denied"] >= 1
    requests = {
        (s.labels["route"], s.labels["code"]): s.value for s in families["abasto_api_requests"].samples
    }
    assert requests[("/v1/query", "403")] == api.metrics.requests[("/v1/query", 403)] >= 1
    assert api.client.get("/health").json() == {"ok": True}


class _BrokenEngine(SqlEngine):
    def query(self, sql: str, *, principal: str, snapshot_id: int | None = None) -> pa.Table:
        raise RuntimeError("secret internals")


def test_an_unexpected_failure_is_a_generic_500(api: Api, tmp_path: Path) -> None:
    settings = api.lake.settings
    app = create_app(
        settings,
        tokens=api.tokens,
        engine_factory=lambda: _BrokenEngine(
            settings, catalog=api.lake.catalog, audit=AuditLog(tmp_path / "a")
        ),
    )
    with serve(app) as base:
        r = httpx.post(f"{base}/v1/query", json={"sql": "SELECT 1"}, headers=api.analyst, timeout=30)
    assert r.status_code == 500 and r.json()["error"] == "internal"
    assert "secret" not in r.text
