"""Lakehouse (issue 4): change capture into curated Iceberg, raw → curated jobs, governed SQL.

Each figure beside its limit, measured in the same run, on an embedded PostgreSQL this suite starts
itself (temp home, free port) and a lake under the same temp home:

* ``cdc_changes_per_s`` — a pgbench-like mixed workload (each commit: inserts, status updates and
  deletes of ``sales.orders``) runs in a thread while the main thread loops
  ``CdcPipeline.capture_once`` + ``curate_table``; change records merged into ``curated.orders``
  per second, from the workload's start to the merge of its last change. Limit
  ``source_write_changes_per_s``: the workload's own committed changes/s in the same window.
* ``cdc_lag_p95_s`` — marker orders inserted by the workload every 0.25 s: commit → first seen by
  ``SqlEngine.query`` on ``curated.orders``. Limit ``cdc_cycle_p95_s``: p95 duration of one
  capture + curate + query cycle of the same loop (the polling floor of the lag).
* ``curate_rows_per_s`` — device-event-like rows in raw full-load Parquet files → ``curate_table``
  (dedup by key, partitioned by day) into a new Iceberg table. Limit ``duckdb_copy_rows_per_s``:
  ``COPY (SELECT * FROM read_parquet(<same files>)) TO <parquet>`` in plain DuckDB.
* ``sql_dashboard_query_ms`` — a dashboard aggregate over a curated table of N rows (10M in the
  full run) through ``SqlEngine.query``; limit ``plain_iceberg_scan_query_ms``: the same SQL over
  ``iceberg_scan(<same metadata>)`` in plain DuckDB. ``sql_overhead_fraction`` = abasto/plain − 1
  beside the issue's target of 0.10.
"""

from __future__ import annotations

import random
import statistics
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import numpy as np
import psycopg
import pyarrow as pa
from pyiceberg.catalog import Catalog

from abasto.analytics.duckdb_env import connect as duckdb_connect
from abasto.analytics.sql import SqlEngine
from abasto.benchmarks._services import bench_home, embedded, percentile
from abasto.benchmarks.harness import Figure
from abasto.catalog import TableMetadata, ensure_table, open_catalog
from abasto.cdc import CdcPipeline
from abasto.lake import TableSpec, curate_table
from abasto.lake.raw_writer import write_full_load
from abasto.lake.tables import SALES_TABLES
from abasto.services.isolated import isolated_settings
from abasto.settings import Settings, WorldSettings
from abasto.sources.sales_db import load_world
from abasto.world import generate

PRINCIPAL = "analyst"
T0 = datetime(2026, 10, 1, tzinfo=UTC)
DASHBOARD_SQL = (
    "SELECT store_id, sku, sum(qty) AS units, count(*) AS events, avg(price) AS avg_price "
    "FROM {table} WHERE event_time >= TIMESTAMPTZ '2026-10-02 00:00:00+00' "
    "GROUP BY store_id, sku ORDER BY units DESC LIMIT 50"
)


@dataclass(frozen=True)
class _Plan:
    cdc_windows: int
    cdc_window_s: float
    curate_rows: int
    curate_repeats: int
    sql_rows: int
    sql_repeats: int


QUICK = _Plan(
    cdc_windows=1, cdc_window_s=8.0, curate_rows=400_000, curate_repeats=3, sql_rows=1_000_000, sql_repeats=5
)
FULL = _Plan(
    cdc_windows=3,
    cdc_window_s=20.0,
    curate_rows=3_000_000,
    curate_repeats=3,
    sql_rows=10_000_000,
    sql_repeats=7,
)


def run(*, quick: bool = False) -> list[Figure]:
    plan = QUICK if quick else FULL
    with embedded("lakehouse", only=("postgres",)) as settings:
        figures = _cdc_figures(settings, plan)
    with bench_home("lake") as home:
        settings = isolated_settings(home)
        catalog = open_catalog(settings)
        figures.append(_curate_figure(settings, catalog, plan))
        figures += _sql_figures(settings, catalog, plan)
    return figures


# --- CDC under a mixed workload ------------------------------------------------------------------


@dataclass
class _Workload:
    """A pgbench-like writer of ``sales.orders``: per commit ``batch`` inserts, updates and deletes."""

    dsn: str
    stores: list[str]
    existing: list[str]
    batch: int = 40
    marker_every_s: float = 0.25
    changes: int = 0
    seconds: float = 0.0
    markers: dict[str, float] = field(default_factory=dict)
    _next: int = 0
    _own: list[str] = field(default_factory=list)

    def run(self, duration_s: float, tag: str) -> None:
        rng = random.Random(7)
        statuses = ("taken", "confirmed", "picked", "delivered", "cancelled")
        with psycopg.connect(self.dsn) as conn:
            started = time.perf_counter()
            next_marker = started
            while time.perf_counter() - started < duration_s:
                new = [f"B{tag}-{self._next + i}" for i in range(self.batch)]
                self._next += self.batch
                marker = None
                if time.perf_counter() >= next_marker:
                    marker, next_marker = f"MARK{tag}-{self._next}", next_marker + self.marker_every_s
                    new.append(marker)
                today = date(2026, 10, 1)
                with conn.cursor() as cur:
                    cur.executemany(
                        "INSERT INTO sales.orders (order_id, store_id, order_date, status, ordered_at) "
                        "VALUES (%s, %s, %s, 'taken', now())",
                        [(o, rng.choice(self.stores), today) for o in new],
                    )
                    pool = self.existing + self._own
                    cur.executemany(
                        "UPDATE sales.orders SET status = %s WHERE order_id = %s",
                        [(rng.choice(statuses), rng.choice(pool)) for _ in range(self.batch)],
                    )
                    doomed, self._own = self._own[: self.batch // 2], self._own[self.batch // 2 :]
                    cur.executemany("DELETE FROM sales.orders WHERE order_id = %s", [(o,) for o in doomed])
                conn.commit()
                committed = time.time()
                self._own += [o for o in new if o != marker]
                self.changes += len(new) + self.batch + len(doomed)
                if marker is not None:
                    self.markers[marker] = committed
            self.seconds += time.perf_counter() - started


def _cdc_figures(settings: Settings, plan: _Plan) -> list[Figure]:
    dsn = settings.postgres.dsn()
    world = generate(WorldSettings(seed=7, stores=30, skus=10, history_days=14))
    load_world(dsn, world.tables, until=world.history_end)
    with psycopg.connect(dsn) as conn:
        stores = [r[0] for r in conn.execute("SELECT store_id FROM sales.customers").fetchall()]
        existing = [r[0] for r in conn.execute("SELECT order_id FROM sales.orders").fetchall()]
    spec = SALES_TABLES["orders"]
    catalog = open_catalog(settings)
    rates: list[float] = []
    source_rates: list[float] = []
    lags: list[float] = []
    cycles: list[float] = []
    with (
        CdcPipeline(dsn, settings.raw_uri, tables=("sales.orders",)) as pipeline,
        SqlEngine(settings, catalog=catalog) as sql,
    ):
        pipeline.full_load()
        curate_table(spec, catalog=catalog, raw_uri=settings.raw_uri)
        workload = _Workload(dsn, stores, existing)
        for window in range(plan.cdc_windows):
            before_changes, before_seconds = workload.changes, workload.seconds
            writer = threading.Thread(target=workload.run, args=(plan.cdc_window_s, str(window)), daemon=True)
            merged = 0
            started = time.perf_counter()
            writer.start()
            deadline = started + plan.cdc_window_s * 6 + 60
            finished = started
            while time.perf_counter() < deadline:
                cycle_start = time.perf_counter()
                writing = writer.is_alive()
                pipeline.capture_once(max_changes=100_000)
                result = curate_table(spec, catalog=catalog, raw_uri=settings.raw_uri)
                merged += result.rows_in
                if result.rows_in:
                    finished = time.perf_counter()
                lags += _seen_markers(sql, spec.identifier, workload.markers)
                cycles.append(time.perf_counter() - cycle_start)
                if not writing and merged >= workload.changes - before_changes and not workload.markers:
                    break
            writer.join()
            written = workload.changes - before_changes
            if merged < written:
                raise RuntimeError(f"CDC merged {merged} of {written} changes before the deadline")
            rates.append(merged / (finished - started))
            source_rates.append(written / (workload.seconds - before_seconds))
    return [
        Figure(
            "cdc_changes_per_s",
            "changes/s (PostgreSQL commit → curated Iceberg, mixed I/U/D)",
            statistics.median(rates),
            "source_write_changes_per_s (the workload's own commits)",
            statistics.median(source_rates),
        ),
        Figure(
            "cdc_lag_p95_s",
            f"s (commit → visible to SqlEngine in curated, {len(lags)} markers)",
            percentile(lags, 0.95),
            "cdc_cycle_p95_s (one capture + curate + query cycle)",
            percentile(cycles, 0.95),
        ),
    ]


def _seen_markers(sql: SqlEngine, table: str, markers: dict[str, float]) -> list[float]:
    """Lags (s) of the pending markers now visible in ``table``; seen ones leave ``markers``."""
    pending = list(markers)
    if not pending:
        return []
    ids = ", ".join(f"'{m}'" for m in pending)
    found = sql.query(f"SELECT order_id FROM {table} WHERE order_id IN ({ids})", principal=PRINCIPAL)
    now = time.time()
    out = []
    for marker in found.column("order_id").to_pylist():
        out.append(now - markers.pop(marker))
    return out


# --- raw → curated device events ------------------------------------------------------------------


def _device_rows(n: int, seed: int = 0, offset: int = 0) -> pa.Table:
    """``n`` device-event-like rows: 2,000 devices, seq per device, ~3 days of event times."""
    rng = np.random.default_rng(seed)
    idx = np.arange(offset, offset + n)
    store = idx % 2_000
    stores = np.char.add("S", np.char.zfill(store.astype(str), 5))
    skus = np.array([f"SKU-{i:03d}" for i in range(40)])
    types = np.array(["sale", "stock", "cooler", "heartbeat"])
    micros = (idx // 2_000) * 2_000_000 + rng.integers(0, 1_000_000, n)
    return pa.table(
        {
            "device_id": pa.array(np.char.add("dev-", stores), pa.string()),
            "store_id": pa.array(stores, pa.string()),
            "seq": pa.array(idx // 2_000 + 1, pa.int64()),
            "event_time": pa.array(
                np.datetime64(T0.replace(tzinfo=None), "us") + micros.astype("timedelta64[us]"),
                pa.timestamp("us", tz="UTC"),
            ),
            "type": pa.array(types[rng.integers(0, 4, n)], pa.string()),
            "sku": pa.array(skus[rng.integers(0, 40, n)], pa.string()),
            "qty": pa.array(rng.integers(1, 7, n), pa.int32()),
            "on_hand": pa.array(rng.integers(0, 200, n), pa.int32()),
            "price": pa.array(rng.uniform(5, 40, n).round(2), pa.float64()),
        }
    )


def _curate_figure(settings: Settings, catalog: Catalog, plan: _Plan) -> Figure:
    source = "devices/events"
    per_file = 200_000
    files: list[str] = []
    for part, start in enumerate(range(0, plan.curate_rows, per_file), start=1):
        rows = _device_rows(min(per_file, plan.curate_rows - start), seed=part, offset=start)
        raw = write_full_load(settings.raw_uri, source, rows, lsn=1, commit_ts=T0, part=part)
        files.append(_local(raw.uri))
    out_dir = Path(settings.home_dir) / "copy"
    out_dir.mkdir(parents=True, exist_ok=True)
    curate: list[float] = []
    copy: list[float] = []
    file_list = "[" + ", ".join(f"'{f}'" for f in files) + "]"
    for i in range(plan.curate_repeats):
        con = duckdb.connect()
        try:
            target = out_dir / f"copy{i}.parquet"
            t0 = time.perf_counter()
            con.execute(f"COPY (SELECT * FROM read_parquet({file_list})) TO '{target}' (FORMAT parquet)")
            copy.append(plan.curate_rows / (time.perf_counter() - t0))
        finally:
            con.close()
        spec = TableSpec(
            name=f"device_events_bench_{i}",
            source=source,
            keys=("device_id", "seq"),
            partition_by="day(event_time)",
            description="benchmark: device events",
        )
        t0 = time.perf_counter()
        result = curate_table(spec, catalog=catalog, raw_uri=settings.raw_uri)
        seconds = time.perf_counter() - t0
        if result.rows_upserted != plan.curate_rows:
            raise RuntimeError(f"curated {result.rows_upserted} of {plan.curate_rows} rows")
        curate.append(plan.curate_rows / seconds)
    return Figure(
        "curate_rows_per_s",
        f"rows/s (raw full-load Parquet → curated Iceberg, {plan.curate_rows:,} device events)",
        statistics.median(curate),
        "duckdb_copy_rows_per_s (COPY read_parquet → Parquet, same files)",
        statistics.median(copy),
    )


# --- SQL over curated ------------------------------------------------------------------------------


def _sql_figures(settings: Settings, catalog: Catalog, plan: _Plan) -> list[Figure]:
    identifier = "curated.device_events_sql_bench"
    schema = _device_rows(1).schema
    table = ensure_table(
        catalog,
        identifier,
        schema,
        keys=("device_id", "seq"),
        partition_by="day(event_time)",
        metadata=TableMetadata(owner="bench", description="benchmark: dashboard query table"),
    )
    chunk = 1_000_000
    for start in range(0, plan.sql_rows, chunk):
        rows = _device_rows(min(chunk, plan.sql_rows - start), seed=start, offset=start)
        table.append(rows.cast(table.schema().as_arrow()))
    table = catalog.load_table(identifier)
    metadata = table.metadata_location
    abasto_ms: list[float] = []
    plain_ms: list[float] = []
    with SqlEngine(settings, catalog=catalog) as engine:
        plain = duckdb_connect()
        try:
            abasto_sql = DASHBOARD_SQL.format(table=identifier)
            plain_sql = DASHBOARD_SQL.format(table=f"iceberg_scan('{metadata}')")
            engine.query(abasto_sql, principal=PRINCIPAL)  # warm both (views, file cache)
            plain.execute(plain_sql).to_arrow_table()
            for _ in range(plan.sql_repeats):
                t0 = time.perf_counter()
                got = engine.query(abasto_sql, principal=PRINCIPAL)
                abasto_ms.append((time.perf_counter() - t0) * 1000)
                t0 = time.perf_counter()
                ref = plain.execute(plain_sql).to_arrow_table()
                plain_ms.append((time.perf_counter() - t0) * 1000)
                if got.num_rows != ref.num_rows:
                    raise RuntimeError("abasto and plain DuckDB disagree on the dashboard query")
        finally:
            plain.close()
    a, p = statistics.median(abasto_ms), statistics.median(plain_ms)
    return [
        Figure(
            "sql_dashboard_query_ms",
            f"ms (SqlEngine.query, governed, {plan.sql_rows:,} curated rows)",
            a,
            "plain_iceberg_scan_query_ms (plain DuckDB, same metadata)",
            p,
        ),
        Figure(
            "sql_overhead_fraction",
            "fraction (abasto / plain − 1)",
            a / p - 1,
            "issue_4_target_fraction",
            0.10,
        ),
    ]


def _local(uri: str) -> str:
    return uri.removeprefix("file://")
