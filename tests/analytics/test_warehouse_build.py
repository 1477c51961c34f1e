"""Building the marts: star schema, episodes, incremental rule, alerts, governance."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import pyarrow as pa
import pytest
from warehouse_world import (
    EPISODES,
    HOURS,
    IN_STOCK_UNITS,
    SKUS,
    STORES,
    T0,
    build_lake,
    sellout_row,
    update_sellout,
)

from abasto.analytics.sql import audit_log_path
from abasto.analytics.warehouse import MARTS, BuildReport, alerts_table, build_marts, query_marts
from abasto.contracts.alerts import Alert, alert_id
from abasto.errors import ConfigError, NotFoundError
from abasto.settings import Settings, load_settings

DAYS = (date(2026, 9, 1), date(2026, 9, 2), date(2026, 9, 3))


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    settings, _ = build_lake(tmp_path_factory.mktemp("warehouse") / "home")
    return settings


@pytest.fixture(scope="module")
def first(lake: Settings) -> BuildReport:
    return build_marts(lake)


def q(settings: Settings, sql: str) -> list[dict[str, object]]:
    return query_marts(sql, settings=settings).to_pylist()


def test_first_build_fills_every_mart(lake: Settings, first: BuildReport) -> None:
    assert not first.skipped
    assert set(first.rebuilt) == {m.name for m in MARTS}
    assert first.days_reprocessed == DAYS
    facts = len(STORES) * len(SKUS) * HOURS
    assert first.rows["fact_sales_hourly"] == facts
    assert first.rows["fact_stock_hourly"] == facts
    assert first.rows["dim_store"] == len(STORES)
    assert first.rows["dim_product"] == len(SKUS)
    assert first.rows["dim_route"] == 2
    assert first.rows["dim_rep"] == 2
    assert first.rows["dim_hour"] == HOURS
    # local dates (UTC-6): 2026-09-01 00:00Z is still 2026-08-31 in Mexico City
    assert first.rows["dim_date"] == 4
    assert first.rows["fact_alerts"] == 0
    assert first.path.is_file()


def test_keys_are_unique(lake: Settings, first: BuildReport) -> None:
    for mart in MARTS:
        keys = ", ".join(mart.keys)
        dup = q(
            lake,
            f"SELECT count(*) AS n FROM (SELECT {keys} FROM marts.{mart.name} "
            f"GROUP BY {keys} HAVING count(*) > 1)",
        )
        assert dup == [{"n": 0}], mart.name


def test_every_fact_row_joins_its_dimensions(lake: Settings, first: BuildReport) -> None:
    for fact in ("fact_sales_hourly", "fact_stock_hourly"):
        rows = q(
            lake,
            f"""SELECT count(*) AS n, count(s.store_id) AS stores, count(p.sku) AS products,
                       count(h.hour_key) AS hours, count(d.date_key) AS dates, count(r.route_id) AS routes,
                       count(e.rep_id) AS reps
                FROM marts.{fact} AS f
                LEFT JOIN marts.dim_store AS s ON s.store_id = f.store_id
                LEFT JOIN marts.dim_product AS p ON p.sku = f.sku
                LEFT JOIN marts.dim_hour AS h ON h.hour_key = f.hour_key AND h.date_key = f.date_key
                LEFT JOIN marts.dim_date AS d ON d.date_key = f.date_key
                LEFT JOIN marts.dim_route AS r ON r.route_id = s.route_id
                LEFT JOIN marts.dim_rep AS e ON e.rep_id = s.rep_id""",
        )
        n = len(STORES) * len(SKUS) * HOURS
        assert rows == [{"n": n, "stores": n, "products": n, "hours": n, "dates": n, "routes": n, "reps": n}]


def test_dimensions_carry_attributes_and_no_pii(lake: Settings, first: BuildReport) -> None:
    store = q(lake, "SELECT * FROM dim_store WHERE store_id = 'S3'")[0]
    assert store["region_name"] == "Sur" and store["rep_id"] == "REP2" and store["channel"] == "supermarket"
    assert "owner_name" not in store and "phone" not in store
    assert "phone" not in q(lake, "SELECT * FROM dim_rep LIMIT 1")[0]
    # 2026-09-01 00:00Z = 2026-08-31 19:00 in Mexico City, a Monday
    hour = q(lake, "SELECT * FROM dim_hour ORDER BY hour_key LIMIT 1")[0]
    assert hour["date_key"] == date(2026, 8, 31)
    assert (hour["local_hour"], hour["iso_weekday"], hour["hour_of_week"]) == (18, 1, 18)
    weekend = q(lake, "SELECT date_key FROM dim_date WHERE is_weekend ORDER BY date_key")
    assert weekend == []  # 2026-08-31 (Mon) .. 2026-09-03 (Thu)


def test_stockout_episodes_from_consecutive_hours(lake: Settings, first: BuildReport) -> None:
    rows = q(lake, "SELECT * FROM fact_stockout_episodes ORDER BY store_id, sku, start_at")
    expected = [
        {
            "store_id": "S1",
            "sku": "COLA",
            "start_at": T0 + timedelta(hours=start),
            "end_at": T0 + timedelta(hours=start + hours),
            "hours": hours,
            "lost_units_estimate": float(hours * IN_STOCK_UNITS),
            "is_open": is_open,
        }
        for start, hours, is_open in EPISODES
    ]
    got = [{k: r[k] for k in expected[0]} for r in rows]
    assert got == expected


def test_second_build_without_change_is_skipped(lake: Settings, first: BuildReport) -> None:
    again = build_marts(lake)
    assert again.skipped and again.rebuilt == () and again.days_reprocessed == ()
    assert again.rows == first.rows


def test_build_reads_curated_as_data_engineer(lake: Settings, first: BuildReport) -> None:
    records = [json.loads(line) for line in audit_log_path(lake).read_text().splitlines()]
    reads = [r for r in records if r["event"] == "sql.query"]
    assert reads and {r["principal"] for r in reads} == {"data_engineer"}
    assert any("curated.sellout_hourly" in r["sql"] for r in reads)


def test_missing_curated_table_is_reported(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="does not exist"):
        build_marts(load_settings(home=tmp_path / "empty"))


def test_marts_file_named_like_a_schema_is_refused(lake: Settings) -> None:
    with pytest.raises(ConfigError):
        build_marts(lake, path=lake.home_dir / "curated.duckdb")


def sorted_mart(path: Path, name: str) -> pa.Table:
    table = query_marts(f"SELECT * FROM marts.{name}", path=path)
    keys = [(k, "ascending") for k in next(m.keys for m in MARTS if m.name == name)]
    return table.sort_by(keys)


def test_change_on_one_day_reprocesses_only_that_day(tmp_path: Path) -> None:
    settings, catalog = build_lake(tmp_path / "home")
    build_marts(settings)
    # (S2, AGUA) at hour 30 (day 2) sells 9; (S1, COLA) at hour 47 runs out, joining no other run
    changed = [
        sellout_row("S2", "AGUA", 30, units=9),
        {**sellout_row("S1", "COLA", 47), "out_of_stock": True},
    ]
    update_sellout(settings, catalog, changed, lsn=100)
    report = build_marts(settings)
    assert not report.skipped
    assert report.days_reprocessed == (date(2026, 9, 2),)
    assert set(report.rebuilt) == {
        "fact_sales_hourly",
        "fact_stock_hourly",
        "fact_stockout_episodes",
        "dim_hour",
        "dim_date",
    }
    assert q(
        settings,
        "SELECT units_sold FROM fact_sales_hourly WHERE store_id = 'S2' AND sku = 'AGUA' "
        f"AND hour_key = TIMESTAMPTZ '{(T0 + timedelta(hours=30)).isoformat()}'",
    ) == [{"units_sold": 9}]
    assert report.rows["fact_stockout_episodes"] == len(EPISODES) + 1
    full = build_marts(settings, full=True, path=tmp_path / "full" / "warehouse.duckdb")
    assert full.full and full.rows == report.rows
    for mart in MARTS:
        assert sorted_mart(report.path, mart.name).equals(sorted_mart(full.path, mart.name)), mart.name
    assert build_marts(settings).skipped


def test_new_snapshot_with_same_rows_rebuilds_nothing(tmp_path: Path) -> None:
    settings, catalog = build_lake(tmp_path / "home")
    build_marts(settings)
    update_sellout(settings, catalog, [sellout_row("S3", "COLA", 10)], lsn=100)  # same image again
    report = build_marts(settings)
    assert report.skipped and report.days_reprocessed == ()
    assert build_marts(settings).skipped


def alert(store: str, sku: str, hour: int, state: str = "open") -> Alert:
    raised = T0 + timedelta(hours=hour, minutes=17)
    return Alert(
        alert_id=alert_id(store, sku, f"ep{hour}"),
        kind="projected_stockout",
        store_id=store,
        sku=sku,
        raised_at=raised,
        episode=f"ep{hour}",
        risk=0.9,
        on_hand_estimate=3.0,
        expected_units_per_hour=2.0,
        observed_units_per_hour=2.5,
        projected_stockout_at=raised + timedelta(hours=2),
        next_delivery_at=None,
        suggested_qty=24,
        model_version="3",
        state=state,  # type: ignore[arg-type]
    )


def test_alerts_become_a_fact_joined_to_hours(tmp_path: Path) -> None:
    settings, _ = build_lake(tmp_path / "home")
    build_marts(settings)
    alerts = alerts_table(
        [alert("S1", "COLA", 3), alert("S1", "COLA", 3, "acknowledged"), alert("S2", "AGUA", 80)]
    )
    report = build_marts(settings, alerts=alerts)
    assert set(report.rebuilt) == {"fact_alerts", "fact_stockout_episodes", "dim_hour", "dim_date"}
    assert report.rows["fact_alerts"] == 2
    assert report.rows["dim_hour"] == HOURS + 1  # hour 80 exists only through the alert
    rows = q(
        settings,
        "SELECT a.state, h.local_hour FROM fact_alerts AS a JOIN dim_hour AS h USING (hour_key) "
        "JOIN dim_store USING (store_id) JOIN dim_product USING (sku) ORDER BY a.raised_at",
    )
    assert rows == [{"state": "acknowledged", "local_hour": 21}, {"state": "open", "local_hour": 2}]
    assert build_marts(settings, alerts=alerts).skipped
    assert build_marts(settings).rows["fact_alerts"] == 2  # kept when no new table is given
