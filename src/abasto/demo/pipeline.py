"""The demo: gaseosas SA's stockout early-warning loop end to end on the embedded services.

Every step is a call into its layer's package; this module only wires them in order and keeps
the figures for the report. Order: services → world → sales DB → change capture → curated lake →
SQL → model → live day over MQTT → processor → rules/notifications → score.
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse
from zoneinfo import ZoneInfo

import pandas as pd
import pyarrow as pa
from rich.console import Console

from abasto import services
from abasto.analytics import SqlEngine
from abasto.bootstrap import Platform
from abasto.contracts.alerts import Alert, decode_alert
from abasto.delivery import DeliveryMetrics, pos_events_uri
from abasto.demo.device_lake import (
    BackgroundDelivery,
    LakehouseSummary,
    cdc_quality,
    read_device_figures,
    run_device_jobs,
    run_figures,
    units_sent,
)
from abasto.demo.live_ops import record_live_day
from abasto.demo.receiver import WebhookReceiver
from abasto.demo.result import DemoResult
from abasto.demo.score import Episode, Score, score_alerts
from abasto.demo.steps import StepLog
from abasto.devices.simulator import expand_live_day, publish_mqtt, registry_credentials
from abasto.lake import run_curate_jobs
from abasto.lake.device_tables import DEVICE_TABLES
from abasto.lake.jobs import job_runs_path
from abasto.lake.quality import QUARANTINE_TABLE
from abasto.ml import registry
from abasto.ml.backtest import backtest
from abasto.ml.pattern import PatternModel, fit_pattern
from abasto.notify.messages import StaticDirectory
from abasto.realtime import Engine, Processor, ProcessorMetrics, ReferenceData
from abasto.realtime.tuning import DetectorTuning
from abasto.settings import Settings
from abasto.sources.behavior import load_visit_analyses
from abasto.sources.sales_db.load import load_world
from abasto.stream import abasto_streams
from abasto.stream.topology import ALERTS_STREAM, POS_STREAM
from abasto.world import World, generate
from abasto.world.views import history_tables

TRAINER = "data_scientist"
APPROVER = "planner"
STEPS = 12
_TRAINING_SQL = """
SELECT s.store_id, s.sku, s.hour_start, s.units_sold, s.out_of_stock, c.channel
FROM curated.sellout_hourly AS s JOIN curated.customers AS c USING (store_id)
"""
_PREVIEW_SQL = """
SELECT p.brand, p.pack, count(*) AS store_hours, round(avg(s.units_sold), 2) AS units_per_hour,
       round(100.0 * avg(CASE WHEN s.out_of_stock THEN 1 ELSE 0 END), 1) AS pct_hours_out_of_stock
FROM curated.sellout_hourly AS s JOIN curated.products AS p USING (sku)
GROUP BY p.brand, p.pack ORDER BY pct_hours_out_of_stock DESC LIMIT 8
"""


@dataclass(frozen=True)
class DemoOptions:
    scale: float = 1.0
    #: None = publish as fast as the broker acknowledges; N = N× real time
    speed: float | None = None


def run_demo(settings: Settings, options: DemoOptions, console: Console | None) -> DemoResult:
    """Run every step; returns the result (the caller renders it)."""
    platform = Platform(settings)
    log = StepLog(console, STEPS)
    tz_name = "America/Mexico_City"

    with log.step("embedded services") as note:
        report = services.up(settings, progress=note.progress)
        note(
            ", ".join(
                f"{o.status.name} {o.status.addresses[0] if o.status.addresses else ''}".strip()
                for o in report.outcomes
            )
        )

    with log.step("generate gaseosas SA's world") as note:
        cfg = settings.world.model_copy(
            update={"stores": max(1, round(settings.world.stores * options.scale))}
        )
        world = generate(cfg, progress=note.progress)
        world.save(settings.world_dir)
        tz_name = world.timezone
        stores = world.stores.column("store_id").to_pylist()
        platform.credentials.register_stores(stores)
        services.reload_nats(settings)
        note(
            f"{len(stores)} stores, {world.skus.num_rows} SKUs, {world.hourly.num_rows:,} store-SKU-hours, "
            f"live day {world.live_day}; per-store MQTT users registered"
        )

    reset_demo_state(platform)
    dsn = platform.sales_dsn
    with log.step("load the sales database and reps' analyses (history)") as note:
        tables = history_tables(world)
        loaded = load_world(dsn, tables, until=world.history_end)
        docs = platform.document_store()
        try:
            n_docs = load_visit_analyses(docs, tables["visit_analyses"])
        finally:
            docs.close()
        note(
            f"{sum(loaded.rows.values()):,} rows in sales.* "
            f"({loaded.rows.get('sellout_hourly', 0):,} sell-out hours), {n_docs} visit analyses"
        )

    cdc = platform.cdc()
    try:
        with log.step("change capture: full load at the slot's snapshot") as note:
            full = cdc.full_load()
            note(f"{full.rows:,} rows of {len(full.tables)} tables at LSN {full.lsn:X} into raw Parquet")
        with log.step("live-day transactions captured by CDC (pgoutput)") as note:
            docs = platform.document_store()
            try:
                ops = record_live_day(dsn, world, docs)
            finally:
                docs.close()
            captured = 0
            while True:
                got = cdc.capture_once()
                if not got.files:
                    break
                captured += got.changes
            note(
                f"{ops.transactions} transactions ({ops.deliveries} deliveries, {ops.orders} orders, "
                f"{ops.documents} visit analyses) → {captured:,} change records in raw"
            )
    finally:
        cdc.close()

    with log.step("curate raw → Iceberg (merge, latest image per key)") as note:
        curated = run_curate_jobs(settings, catalog=platform.catalog)
        quality = cdc_quality(curated)
        note(
            f"{len(curated)} tables, {sum(r.rows_upserted for r in curated):,} rows upserted, "
            f"{sum(r.rows_deleted for r in curated)} deleted; quality: {quality['rows_checked']:,} "
            f"rows checked, {quality['rows_quarantined']} quarantined, "
            f"{quality['unreadable_files']} unreadable files"
        )

    with log.step("SQL over the curated lake (DuckDB + Iceberg)") as note:
        with platform.sql() as sql:
            preview = sql.query(_PREVIEW_SQL, principal="analyst")
            history = sql.query(_TRAINING_SQL, principal=TRAINER)
            reference = _reference_from_lake(sql, tz_name)
        snapshot = next((r.snapshot_id for r in curated if r.table.endswith("sellout_hourly")), None)
        note(f"{history.num_rows:,} training rows read as {TRAINER}; preview by analyst")

    with log.step("fit, backtest, register and approve the demand pattern") as note:
        frame = _with_calendar(history, world, tz_name)
        model = fit_pattern(frame, timezone=tz_name, calendar=_future_calendar(world))
        bt = backtest(frame, timezone=tz_name, holdout_days=7)
        info = registry.register(
            model,
            bt.to_metrics(),
            {"timezone": tz_name, "holdout_days": 7},
            {"table": "curated.sellout_hourly", "snapshot_id": str(snapshot)},
            TRAINER,
            settings=settings,
        )
        registry.approve(info.version, APPROVER, settings=settings)
        champion = platform.approved_model()
        note(
            f"version {info.version} trained by {TRAINER}, approved by {APPROVER}; "
            f"WAPE {bt.pattern.wape_daily:.3f} daily vs {bt.scores[bt.best_baseline].wape_daily:.3f} "
            f"({bt.best_baseline})"
        )

    with log.step("live day: devices → MQTT → JetStream → processor, delivery → raw") as note:
        events = expand_live_day(world, seed=settings.world.seed)
        stream_out = asyncio.run(
            _stream_live_day(platform, events, champion, reference, note.progress, options.speed)
        )
        note(
            f"{len(events):,} events over MQTT at {stream_out.mqtt_rate:,.0f}/s; processor "
            f"{stream_out.processor_rate:,.0f} events/s; {len(stream_out.alerts)} alerts; "
            f"{stream_out.delivered.rows_written:,} events delivered to {stream_out.delivered.files_written} "
            "raw Parquet files"
        )

    with log.step("curate device tables (jobs): sales_by_hour, stock_readings; quality") as note:
        delivered = stream_out.delivered
        lake_catalog = platform.catalog
        runs = run_device_jobs(settings, lake_catalog, note.progress)
        with SqlEngine(settings, catalog=lake_catalog) as sql:
            figures = read_device_figures(sql, lake_catalog, world.live_start, world.live_end)
        lakehouse = LakehouseSummary(
            delivery={
                "messages": delivered.messages,
                "rows_written": delivered.rows_written,
                "files_written": delivered.files_written,
                "invalid": delivered.invalid_total,
                "duplicates": delivered.duplicates,
            },
            tables=figures,
            units_sent=units_sent(events, world.live_start, world.live_end),
            cdc_quality=quality,
            device_runs=run_figures(runs),
        )
        note(
            f"{figures.sales_by_hour_rows:,} sales_by_hour rows, {figures.stock_readings_rows:,} "
            f"stock_readings; units sold {figures.units_sold:,} (sales_by_hour) vs {lakehouse.units_sent:,} "
            f"(devices): {'match' if lakehouse.units_match else 'MISMATCH'}; "
            f"{figures.quarantine_rows} rows in quarantine"
        )

    secret = secrets.token_hex(16)
    with (
        log.step("rules → topics → subscribers (file, signed webhook)") as note,
        WebhookReceiver(secret) as rx,
    ):
        notify = settings.notify.model_copy(update={"webhook_urls": [rx.url], "webhook_secret": secret})
        subscriber = Platform(settings.model_copy(update={"notify": notify}))
        directory = StaticDirectory(
            store_names=dict(
                zip(
                    world.stores.column("store_id").to_pylist(),
                    world.stores.column("name").to_pylist(),
                    strict=True,
                )
            ),
            case_sizes=dict(
                zip(
                    world.skus.column("sku").to_pylist(),
                    world.skus.column("units_per_case").to_pylist(),
                    strict=True,
                )
            ),
        )
        router = subscriber.alert_router(tz=tz_name, directory=directory, webhook_topics=["stockout-alerts"])
        try:
            deliveries = [r for a in stream_out.alerts for r in router.route_alert(a)]
        finally:
            router.notifier.close()
        ok = sum(1 for d in deliveries if d.ok)
        notifications = {
            "deliveries": len(deliveries),
            "delivered": ok,
            "webhook_verified": rx.received.verified,
            "webhook_rejected": rx.received.rejected,
        }
        note(
            f"{ok}/{len(deliveries)} deliveries; webhook received {rx.received.verified} signed notifications"
        )

    with log.step("score alerts against the ground truth") as note:
        score = score_alerts(
            stream_out.alerts,
            _episodes(world),
            live_start=world.live_start,
            live_end=world.live_end,
            truth_end=world.horizon_end,
        )
        note(
            f"precision {score.precision if score.precision is not None else float('nan'):.2f}, "
            f"recall {score.recall if score.recall is not None else float('nan'):.2f}"
        )

    metrics = stream_out.metrics
    result = DemoResult(
        seed=settings.world.seed,
        scale=options.scale,
        stores=world.stores.num_rows,
        skus=world.skus.num_rows,
        history_days=settings.world.history_days,
        live_day=str(world.live_day),
        timezone=tz_name,
        score=score,
        events_published=len(events),
        events_accepted=metrics.accepted,
        events_rejected=metrics.rejected_total,
        events_duplicate=metrics.duplicates,
        events_per_second=stream_out.processor_rate,
        mqtt_publish_per_second=stream_out.mqtt_rate,
        steps=log.steps,
        backtest={k: v for k, v in bt.to_metrics().items() if k.startswith("wape_daily")},
        model_version=info.version,
        notifications=notifications,
        sql_preview={
            "sql": " ".join(_PREVIEW_SQL.split()),
            "columns": preview.column_names,
            "rows": [list(r.values()) for r in preview.to_pylist()],
        },
    )
    result.lakehouse = lakehouse.as_dict()
    _fill_rows(result, score, ZoneInfo(tz_name), world.live_start)
    result.artefacts = _artefacts(settings, curated, info.version)
    return result


# --- helpers --------------------------------------------------------------------------------------


def reset_demo_state(platform: Platform) -> None:
    """Forget a previous demo run's lake, slot and streams (the services and MLflow stay)."""
    settings = platform.settings
    cdc = platform.cdc()
    try:
        cdc.drop(publication=True)
    finally:
        cdc.close()
    for uri in (settings.raw_uri, settings.warehouse_uri):
        path = Path(urlparse(uri).path)
        if urlparse(uri).scheme in ("", "file") and path.exists():
            shutil.rmtree(path)
    catalog = Path(settings.catalog_uri.removeprefix("sqlite:///"))
    if settings.catalog_uri.startswith("sqlite:///") and catalog.exists():
        catalog.unlink()
    if settings.alerts_dir.exists():
        shutil.rmtree(settings.alerts_dir)

    async def drop_streams() -> None:
        async with platform.event_stream() as stream:
            for spec in abasto_streams(settings.nats):
                await stream.delete_stream(spec.name)

    asyncio.run(drop_streams())


def _reference_from_lake(sql: SqlEngine, tz_name: str) -> ReferenceData:
    """Stores, routes, case sizes and past deliveries, read from the curated lake."""
    return ReferenceData.from_tables(
        timezone=tz_name,
        stores=sql.query("SELECT * FROM curated.customers", principal=TRAINER),
        routes=sql.query("SELECT * FROM curated.routes", principal=TRAINER),
        skus=sql.query("SELECT sku, units_per_case FROM curated.products", principal=TRAINER),
        deliveries=sql.query("SELECT store_id, delivered_at FROM curated.deliveries", principal=TRAINER),
    )


def _calendar_frame(world: World) -> pd.DataFrame:
    """The public calendar's day flags by local date."""
    cal = world.calendar.to_pandas()
    return pd.DataFrame(
        {
            "date": pd.to_datetime(cal["date"]).dt.date,
            "is_holiday": cal["is_holiday"].astype(bool),
            "is_payday": cal["is_payday"].astype(bool),
        }
    )


def _with_calendar(history: pa.Table, world: World, tz_name: str) -> pd.DataFrame:
    """Training rows with the public calendar's day flags (paydays, holidays) by local date."""
    frame = history.to_pandas()
    local = pd.to_datetime(frame["hour_start"], utc=True).dt.tz_convert(tz_name).dt.date
    flags = _calendar_frame(world).set_index("date")
    frame["is_holiday"] = local.map(flags["is_holiday"]).fillna(False).astype(bool)
    frame["is_payday"] = local.map(flags["is_payday"]).fillna(False).astype(bool)
    return frame


def _future_calendar(world: World) -> dict[Any, list[str]]:
    """Day flags of every date of the world, for days the model has not seen (live day, horizon)."""
    return {
        row.date: [name for name in ("is_holiday", "is_payday") if getattr(row, name)]
        for row in _calendar_frame(world).itertuples()
    }


def _episodes(world: World) -> list[Episode]:
    return [
        Episode(str(r["store_id"]), str(r["sku"]), r["start_at"], r["end_at"])
        for r in world.stockout_episodes.to_pylist()
    ]


@dataclass
class _StreamOutcome:
    alerts: list[Alert]
    mqtt_rate: float
    processor_rate: float
    metrics: ProcessorMetrics
    delivered: DeliveryMetrics


async def _stream_live_day(
    platform: Platform,
    events: list[Any],
    model: PatternModel,
    reference: ReferenceData,
    progress: Any,
    speed: float | None,
) -> _StreamOutcome:
    """Devices publish the day over MQTT; then the processor works through the stream."""
    settings = platform.settings
    async with platform.event_stream() as stream:
        await stream.ensure_streams(abasto_streams(settings.nats))
        async with BackgroundDelivery(stream, settings.raw_uri) as delivery:
            progress(f"publishing {len(events):,} events over MQTT (delivery to raw runs alongside)")
            published = await asyncio.to_thread(
                publish_mqtt,
                events,
                host=settings.nats.host,
                port=settings.nats.mqtt_port,
                credentials=registry_credentials(settings),
                speed=speed,
            )
            # a PUBACK does not prove storage: wait until the stream holds every event
            for _ in range(600):
                if (await stream.stream_state(POS_STREAM)).messages >= len(events):
                    break
                await asyncio.sleep(0.05)
            progress("delivering the rest to raw Parquet")
            delivered = await delivery.drain()
        # the processor runs alone, so its events/s is not shared with the delivery
        progress("processing the stream")
        tuning = DetectorTuning.from_settings(settings.realtime)
        processor = Processor(stream, Engine(model, reference, tuning))
        metrics = await processor.run_until_idle()
        alerts = await _read_alerts(stream)
        rate = processor.last_run.rate if processor.last_run else 0.0
        return _StreamOutcome(alerts, published.rate, rate, metrics, delivered)


async def _read_alerts(stream: Any) -> list[Alert]:
    consumer = await stream.consumer(ALERTS_STREAM, f"demo-report-{secrets.token_hex(4)}")
    alerts: list[Alert] = []
    while True:
        msgs = await consumer.fetch(1000, timeout_s=0.5)
        if not msgs:
            break
        for m in msgs:
            alerts.append(decode_alert(m.data))
            await m.ack()
    return alerts


def _local(ts: datetime | None, tz: ZoneInfo) -> str:
    return "—" if ts is None else ts.astimezone(tz).strftime("%a %d %H:%M")


def _fill_rows(result: DemoResult, score: Score, tz: ZoneInfo, live_start: datetime) -> None:
    for out in score.outcomes:
        a = out.alert
        lead = out.lead_minutes
        if out.episode is None:
            outcome, css = "false positive", "fp"
        elif lead is not None and lead >= 0:
            outcome, css = f"ran out {_local(out.episode.start_at, tz)} ({lead / 60:.1f} h later)", "ok"
        elif out.episode.start_at < live_start:
            outcome, css = f"already out since {_local(out.episode.start_at, tz)}", "late"
        else:
            outcome, css = f"late: ran out {_local(out.episode.start_at, tz)}", "late"
        result.alert_rows.append(
            {
                "raised": _local(a.raised_at, tz),
                "store": a.store_id,
                "sku": a.sku,
                "on_hand": f"{a.on_hand_estimate:.0f}",
                "velocity": f"{a.expected_units_per_hour:.1f} / {a.observed_units_per_hour:.1f}",
                "runs_out": _local(a.projected_stockout_at, tz),
                "next_delivery": _local(a.next_delivery_at, tz),
                "suggested": a.suggested_qty,
                "outcome": outcome,
                "outcome_class": css,
                "kind": a.kind,
            }
        )
    result.missed_rows = [
        {"store": e.store_id, "sku": e.sku, "start": _local(e.start_at, tz)} for e in score.missed_episodes
    ]


def _artefacts(settings: Settings, curated: list[Any], version: str) -> dict[str, str]:
    return {
        "embedded services": f"nats {settings.nats.client_url()} (MQTT :{settings.nats.mqtt_port}), "
        f"postgres {settings.postgres.dsn()}",
        "world + ground truth": str(settings.world_dir),
        "raw zone (CDC Parquet)": settings.raw_uri,
        "curated Iceberg tables": ", ".join(r.table for r in curated) + f" in {settings.warehouse_uri}",
        "raw device events (delivery)": pos_events_uri(settings.raw_uri),
        "curated device tables": f"{', '.join(f'curated.{t}' for t in DEVICE_TABLES)}; "
        f"failing rows in {QUARANTINE_TABLE}",
        "job runs": str(job_runs_path(settings)),
        "catalog": settings.catalog_uri,
        "model": f"{settings.ml.model_name} v{version} (alias champion) in {settings.mlflow_tracking_uri}",
        "alert streams": f"JetStream {ALERTS_STREAM} (alerts.<store>), DLQ (dlq.pos)",
        "notifications": str(settings.alerts_dir / "notifications.jsonl"),
        "SQL audit log": str(settings.home_dir / "audit" / "sql.jsonl"),
    }
