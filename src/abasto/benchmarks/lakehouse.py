"""Lakehouse (issue 4): change capture into curated Iceberg, raw → curated jobs, governed SQL.

Each figure beside its limit, measured in the same run, on an embedded PostgreSQL this suite starts
itself (temp home, free port) and a lake under the same temp home:

* ``cdc_changes_per_s`` — a pgbench-like mixed workload (:class:`_Workload`: several writer
  connections, each commit multi-row inserts of orders and their lines, status and quantity
  updates, deletes of orders with their lines) runs while a capture process runs
  ``CdcPipeline.run`` (what ``abasto cdc run`` runs) and the main thread loops ``curate_table``
  over ``curated.orders`` and ``curated.order_lines``; change records merged per second, from the
  workload's start to the merge of its last change. Limit ``source_write_changes_per_s``: the
  workload's own committed changes/s in the same window.
* ``cdc_lag_p95_s`` — marker orders inserted by the workload every 0.25 s: commit → first seen by
  ``SqlEngine.query`` on ``curated.orders``. Limit ``cdc_cycle_p95_s``: p95 duration of one
  curate + query cycle of the main loop (with the capture beside it, the polling floor of the lag).
  Source, PostgreSQL's decoding, the capture and the merge share the machine's cores.
* ``curate_rows_per_s`` — raw device events (``devices/pos_events/date=…/hour=…`` files as the
  delivery writes them, with re-sent duplicates) → ``curated.sales_by_hour`` and
  ``curated.stock_readings`` in one ``curate_device_tables`` call (each file read once for both;
  per table: dedup, quality checks with the known-store/SKU rules, one commit with its ledger),
  into fresh tables; raw rows (counted once) per second of the whole call. Limit
  ``duckdb_copy_rows_per_s``: ``COPY (SELECT * FROM read_parquet(<same files>)) TO <parquet>`` in
  plain DuckDB.
* ``sql_dashboard_query_ms`` — a dashboard aggregate over a curated table of N rows (10M in the
  full run) through ``SqlEngine.query``; limit ``plain_iceberg_scan_query_ms``: the same SQL over
  ``iceberg_scan(<same metadata>)`` in plain DuckDB. ``sql_overhead_fraction`` = abasto/plain − 1
  beside the issue's target of 0.10.
"""

from __future__ import annotations

import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
from pyiceberg.catalog import Catalog

from abasto.analytics.duckdb_env import connect as duckdb_connect
from abasto.analytics.sql import SqlEngine
from abasto.benchmarks._services import bench_home, embedded, percentile
from abasto.benchmarks.harness import Figure
from abasto.catalog import TableMetadata, ensure_table, open_catalog
from abasto.cdc import CdcPipeline
from abasto.lake import curate_table
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
    sql_repeats=21,
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
    """A pgbench-like writer of ``sales.orders`` and ``sales.order_lines``: ``writers`` connections,
    each committing transactions of multi-row statements (``unnest`` arrays): ``batch`` new orders
    with ``lines`` lines each, ``batch`` status updates, ``batch`` line quantity updates, and deletes
    of ``batch // 2`` of its own earlier orders with their lines. Every writer updates only its own
    share of the orders, so writers never wait on each other's row locks. ``changes`` counts the
    rows the committed statements changed (each one change record)."""

    dsn: str
    stores: list[str]
    existing: list[str]
    writers: int = 3
    batch: int = 100
    lines: int = 2
    marker_every_s: float = 0.25
    changes: int = 0
    seconds: float = 0.0
    markers: dict[str, float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self, duration_s: float, tag: str) -> None:
        threads = [
            threading.Thread(target=self._write, args=(w, duration_s, tag), daemon=True)
            for w in range(self.writers)
        ]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self.seconds += time.perf_counter() - started

    def _write(self, writer: int, duration_s: float, tag: str) -> None:
        # values are drawn by the server (random()), so the writers barely hold the GIL the
        # capture loop of the same process needs
        rng = random.Random(f"{tag}-{writer}")
        statuses = ["taken", "confirmed", "picked", "delivered", "cancelled"]
        shared = self.existing[writer :: self.writers]
        own: list[str] = []
        next_id = 0
        with psycopg.connect(self.dsn) as conn:
            skus = [r[0] for r in conn.execute("SELECT sku FROM sales.products ORDER BY sku").fetchall()]
            conn.commit()
            started = time.perf_counter()
            next_marker = started
            while time.perf_counter() - started < duration_s:
                new = [f"B{tag}-{writer}-{next_id + i}" for i in range(self.batch)]
                next_id += self.batch
                marker = None
                if writer == 0 and time.perf_counter() >= next_marker:
                    marker, next_marker = f"MARK{tag}-{next_id}", next_marker + self.marker_every_s
                    new.append(marker)
                doomed, own = own[: self.batch // 2], own[self.batch // 2 :]
                updated = rng.sample(shared + own, min(self.batch, len(shared) + len(own)))
                touched = rng.sample(own, min(self.batch // self.lines, len(own)))
                with conn.cursor() as cur:
                    changed = 0
                    cur.execute(
                        "INSERT INTO sales.orders (order_id, store_id, order_date, status, ordered_at) "
                        "SELECT o, (%s::text[])[1 + floor(random() * %s)::int], %s, 'taken', now() "
                        "FROM unnest(%s::text[]) AS o",
                        (self.stores, len(self.stores), date(2026, 10, 1), new),
                    )
                    changed += cur.rowcount
                    cur.execute(
                        "INSERT INTO sales.order_lines (order_id, line_no, sku, qty_ordered, unit_price) "
                        "SELECT o, n, (%s::text[])[1 + floor(random() * %s)::int], 1 + floor(random() * 24), "
                        "round((5 + random() * 35)::numeric, 2) "
                        "FROM unnest(%s::text[]) AS o, generate_series(1, %s) AS n",
                        (skus, len(skus), new, self.lines),
                    )
                    changed += cur.rowcount
                    cur.execute(
                        "UPDATE sales.orders SET status = (%s::text[])[1 + floor(random() * 5)::int] "
                        "WHERE order_id = ANY(%s)",
                        (statuses, updated),
                    )
                    changed += cur.rowcount
                    cur.execute(
                        "UPDATE sales.order_lines SET qty_delivered = qty_ordered - floor(random() * 3) "
                        "WHERE order_id = ANY(%s)",
                        (touched,),
                    )
                    changed += cur.rowcount
                    cur.execute("DELETE FROM sales.order_lines WHERE order_id = ANY(%s)", (doomed,))
                    changed += cur.rowcount
                    cur.execute("DELETE FROM sales.orders WHERE order_id = ANY(%s)", (doomed,))
                    changed += cur.rowcount
                conn.commit()
                committed = time.time()
                own += [o for o in new if o != marker]
                with self._lock:
                    self.changes += changed
                    if marker is not None:
                        self.markers[marker] = committed


def _cdc_figures(settings: Settings, plan: _Plan) -> list[Figure]:
    dsn = settings.postgres.dsn()
    world = generate(WorldSettings(seed=7, stores=30, skus=10, history_days=14))
    load_world(dsn, world.tables, until=world.history_end)
    with psycopg.connect(dsn) as conn:
        stores = [r[0] for r in conn.execute("SELECT store_id FROM sales.customers").fetchall()]
        existing = [r[0] for r in conn.execute("SELECT order_id FROM sales.orders").fetchall()]
    spec, lines_spec = SALES_TABLES["orders"], SALES_TABLES["order_lines"]
    tables = ("sales.orders", "sales.order_lines")
    catalog = open_catalog(settings)
    rates: list[float] = []
    source_rates: list[float] = []
    lags: list[float] = []
    cycles: list[float] = []
    with (
        CdcPipeline(dsn, settings.raw_uri, tables=tables) as pipeline,
        SqlEngine(settings, catalog=catalog) as sql,
    ):
        pipeline.full_load()
        for table_spec in (spec, lines_spec):
            curate_table(table_spec, catalog=catalog, raw_uri=settings.raw_uri)
        workload = _Workload(dsn, stores, existing)
        pipeline.close()  # releases the capture lock for the capture process
        capture = _CaptureLoop(dsn, settings.raw_uri, tables)
        capture.start()
        try:
            for window in range(plan.cdc_windows):
                before_changes, before_seconds = workload.changes, workload.seconds
                writer = threading.Thread(
                    target=workload.run, args=(plan.cdc_window_s, str(window)), daemon=True
                )
                merged = 0
                started = time.perf_counter()
                writer.start()
                deadline = started + plan.cdc_window_s * 6 + 60
                finished = started
                while time.perf_counter() < deadline:
                    cycle_start = time.perf_counter()
                    writing = writer.is_alive()
                    capture.check()
                    applied = sum(
                        curate_table(table_spec, catalog=catalog, raw_uri=settings.raw_uri).rows_in
                        for table_spec in (spec, lines_spec)
                    )
                    merged += applied
                    if applied:
                        finished = time.perf_counter()
                    lags += _seen_markers(sql, spec.identifier, workload.markers)
                    cycles.append(time.perf_counter() - cycle_start)
                    if not writing and merged >= workload.changes - before_changes and not workload.markers:
                        break
                    if not applied:
                        time.sleep(0.05)
                writer.join()
                written = workload.changes - before_changes
                if merged < written:
                    raise RuntimeError(f"CDC merged {merged} of {written} changes before the deadline")
                rates.append(merged / (finished - started))
                source_rates.append(written / (workload.seconds - before_seconds))
        finally:
            capture.stop()
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
            "cdc_cycle_p95_s (one curate + query cycle, capture beside it)",
            percentile(cycles, 0.95),
        ),
    ]


#: changes per capture batch: a batch's files appear when it ends, so smaller batches cut the lag
CAPTURE_BATCH = 25_000
#: seconds the capture waits after a step that found nothing (``abasto cdc run --poll-interval``)
CAPTURE_POLL_S = 0.05


class _CaptureLoop:
    """The change capture as production runs it: ``CdcPipeline.run`` (what ``abasto cdc run``
    runs, stopped by SIGTERM like it) in a process of its own beside the merge jobs (the DMS task
    beside the Glue jobs), so the capture and the merge share the cores but not one interpreter."""

    def __init__(self, dsn: str, raw_uri: str, tables: tuple[str, ...]) -> None:
        self._spec = json.dumps({"dsn": dsn, "raw_uri": raw_uri, "tables": list(tables)})
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 (closed by stop())
        self._process: subprocess.Popen[bytes] | None = None
        self._stopping = False

    def start(self) -> None:
        code = "import sys; from abasto.benchmarks.lakehouse import _capture_main; _capture_main(sys.argv[1])"
        self._process = subprocess.Popen(
            [sys.executable, "-c", code, self._spec], stdout=subprocess.DEVNULL, stderr=self._log
        )

    def check(self) -> None:
        """Raise if the capture process has exited (it only does when told to stop)."""
        if self._process is None:
            return
        code = self._process.poll()
        if code is not None and (code != 0 or not self._stopping):
            self._log.seek(0)
            tail = self._log.read().decode(errors="replace")[-2000:]
            raise RuntimeError(f"the capture process exited with code {code}:\n{tail}")

    def stop(self) -> None:
        if self._process is None:
            return
        self._stopping = True
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        try:
            self.check()
        finally:
            self._log.close()


def _capture_main(spec: str) -> None:
    """The capture process of :class:`_CaptureLoop`: ``spec`` is JSON (dsn, raw_uri, tables)."""
    args = json.loads(spec)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    parent = os.getppid()

    def orphaned() -> None:  # the benchmark died without stopping us: stop too
        while not stop.wait(1.0):
            if os.getppid() != parent:
                stop.set()

    threading.Thread(target=orphaned, daemon=True).start()
    with CdcPipeline(args["dsn"], args["raw_uri"], tables=tuple(args["tables"])) as pipeline:
        pipeline.run(stop, CAPTURE_POLL_S, max_changes=CAPTURE_BATCH)


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


def _pos_event_files(raw_uri: str, n: int, *, batch: int = 100_000, resent: float = 0.005) -> list[str]:
    """``n`` raw device events written as the delivery writes them: batches of ``batch`` stream
    messages, each cut into one ``date=/hour=`` file per hour it spans, POS_EVENTS_SCHEMA columns.

    2,000 stores with one device each and 40 SKUs over 24 h; 60 % sales, 25 % stock readings, the
    rest cooler telemetry and heartbeats; ``resent`` of each batch's events come again in the next
    batch (a device retry), so the curate deduplicates across files. Returns the file paths.
    """
    from abasto.delivery.layout import part_name, pos_events_uri  # noqa: PLC0415
    from abasto.delivery.rows import POS_EVENTS_SCHEMA  # noqa: PLC0415
    from abasto.lake.storage import join_uri, write_parquet_atomic  # noqa: PLC0415

    rng = np.random.default_rng(11)
    idx = np.arange(n)
    store = idx % 2_000
    stores = np.char.add("S", np.char.zfill(store.astype(str), 5))
    kinds = np.array(["sale", "stock", "cooler", "heartbeat"])[rng.choice(4, n, p=[0.6, 0.25, 0.1, 0.05])]
    sale, stock = kinds == "sale", kinds == "stock"
    micros = idx * (24 * 3_600_000_000 // n) + rng.integers(0, 1_000_000, n)
    times = pa.array(
        np.datetime64(T0.replace(tzinfo=None), "us") + micros.astype("timedelta64[us]"),
        pa.timestamp("us", tz="UTC"),
    )
    skus = np.array([f"SKU-{i:03d}" for i in range(40)])[rng.integers(0, 40, n)]
    columns = {
        "stream_seq": pa.array(idx + 1, pa.int64()),
        "subject": pa.array(np.char.add("pos.", stores), pa.string()),
        "device_id": pa.array(np.char.add("pos-", stores), pa.string()),
        "store_id": pa.array(stores, pa.string()),
        "seq": pa.array(idx // 2_000 + 1, pa.int64()),
        "event_time": times,
        "type": pa.array(kinds, pa.string()),
        "sku": pa.array(skus, pa.string(), mask=~(sale | stock)),
        "qty": pa.array(rng.integers(1, 7, n), pa.int32(), mask=~sale),
        "price": pa.array(rng.uniform(5, 40, n).round(2), pa.float64(), mask=~sale),
        "on_hand": pa.array(rng.integers(0, 200, n), pa.int32(), mask=~stock),
        "schema": pa.array(np.full(n, "abasto.pos/v1"), pa.string()),
        "received_at": times,
    }
    events = pa.table({f.name: columns.get(f.name, pa.nulls(n, f.type)) for f in POS_EVENTS_SCHEMA})
    events = events.cast(POS_EVENTS_SCHEMA)
    hours = np.asarray(events["event_time"].cast(pa.int64())) // 3_600_000_000
    files: list[str] = []
    previous: pa.Table | None = None
    for start in range(0, n, batch):
        rows, part_hours = events.slice(start, batch), hours[start : start + batch]
        if previous is not None and resent:  # re-sent events keep their time, so their hour
            again = rng.random(previous.num_rows) < resent
            rows = pa.concat_tables([rows, previous.filter(pa.array(again))])
            part_hours = np.concatenate([part_hours, hours[start - batch : start][again]])
        previous = events.slice(start, batch)
        name = part_name(start + 1, start + rows.num_rows)
        for hour in np.unique(part_hours):
            at = datetime.fromtimestamp(int(hour) * 3600, UTC)
            uri = join_uri(pos_events_uri(raw_uri), f"date={at:%Y-%m-%d}/hour={at:%H}/{name}")
            write_parquet_atomic(rows.filter(pa.array(part_hours == hour)), uri)
            files.append(_local(uri))
    return files


def _curate_figure(settings: Settings, catalog: Catalog, plan: _Plan) -> Figure:
    """The device-events curate (``curated.sales_by_hour`` and ``curated.stock_readings`` from one
    read of the files, dedup, quality checks, one Iceberg commit per table) over raw device files in
    the delivery's layout: raw rows per second of both tables together, each repeat into fresh
    tables."""
    from abasto.lake.device_tables import DEVICE_TABLES, curate_device_tables  # noqa: PLC0415

    files = _pos_event_files(settings.raw_uri, plan.curate_rows)
    domains = {  # what curated.customers / curated.products would hold: the known-value rules run
        "stores": frozenset(f"S{i:05d}" for i in range(2_000)),
        "skus": frozenset(f"SKU-{i:03d}" for i in range(40)),
    }
    raw_rows = sum(pq.read_metadata(f).num_rows for f in files)
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
            copy.append(raw_rows / (time.perf_counter() - t0))
        finally:
            con.close()
        for spec in DEVICE_TABLES.values():  # fresh tables: every repeat curates every file
            if catalog.table_exists(spec.identifier):
                catalog.drop_table(spec.identifier)
        t0 = time.perf_counter()
        results = list(
            curate_device_tables(
                DEVICE_TABLES, catalog=catalog, raw_uri=settings.raw_uri, domains=domains
            ).values()
        )
        seconds = time.perf_counter() - t0
        quarantined = [r.quality.rows_quarantined if r.quality else 0 for r in results]
        if any(r.rows_in != raw_rows or r.files != len(files) for r in results) or any(quarantined):
            raise RuntimeError(
                f"curated {[(r.files, r.rows_in) for r in results]} of {len(files)} files, {raw_rows} rows; "
                f"quarantined {quarantined}"
            )
        curate.append(raw_rows / seconds)
    return Figure(
        "curate_rows_per_s",
        f"raw rows/s (device events → curated sales_by_hour + stock_readings, {raw_rows:,} rows in "
        f"{len(files)} files, dedup + quality)",
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
