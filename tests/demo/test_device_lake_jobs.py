"""The demo's device-table step on a small raw zone (no services): jobs recorded, figures read
back over SQL, failing events counted in the quarantine."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from abasto.analytics import SqlEngine
from abasto.catalog import load_table, open_catalog
from abasto.delivery.layout import part_name, partition_of, pos_events_uri
from abasto.delivery.rows import POS_EVENTS_SCHEMA
from abasto.demo.device_lake import read_device_figures, run_device_jobs, run_figures
from abasto.errors import TerminalError
from abasto.lake.jobs import JobRunStore, RunStatus
from abasto.lake.quality import QUARANTINE_TABLE
from abasto.lake.storage import join_uri, write_parquet_atomic
from abasto.settings import Settings

SettingsFactory = Callable[..., Settings]

DAY = datetime(2026, 10, 1, 6, tzinfo=UTC)
RECEIVED = DAY + timedelta(days=1)


def _event(
    seq: int, minutes: int, kind: str, qty: int | None = None, on_hand: int | None = None
) -> dict[str, object]:
    return {
        "stream_seq": seq,
        "subject": "pos.S0001.pos-0001",
        "device_id": "pos-0001",
        "store_id": "S0001",
        "seq": seq,
        "event_time": DAY + timedelta(minutes=minutes),
        "type": kind,
        "sku": "COLA-600-NR",
        "qty": qty,
        "price": 16.0 if kind == "sale" else None,
        "on_hand": on_hand,
        "schema": "abasto.pos/v1",
        "received_at": RECEIVED,
    }


def _write(raw_uri: str, events: list[dict[str, object]]) -> None:
    """One delivery batch, one file per hour partition (the delivery's layout)."""
    by_part: dict[str, list[dict[str, object]]] = {}
    for e in events:
        by_part.setdefault(partition_of(e["event_time"]), []).append(e)  # type: ignore[arg-type]
    for part, evs in by_part.items():
        table = pa.Table.from_pylist(evs, schema=POS_EVENTS_SCHEMA)
        write_parquet_atomic(table, join_uri(pos_events_uri(raw_uri), f"{part}/{part_name(1, len(events))}"))


def test_device_step_runs_recorded_jobs_and_counts_the_quarantine(settings_factory: SettingsFactory) -> None:
    settings = settings_factory()
    _write(
        settings.raw_uri,
        [
            _event(1, 5, "sale", qty=2),
            _event(2, 10, "sale", qty=3),
            _event(3, 70, "sale", qty=4),  # next hour
            _event(4, 75, "sale", qty=-1),  # negative: quarantined, not counted
            _event(5, 80, "stock", on_hand=12),
            _event(6, 90, "stock", on_hand=None),  # no reading: quarantined
            _event(7, 24 * 60 + 5, "sale", qty=50),  # the next day: outside the window
        ],
    )
    catalog = open_catalog(settings)

    runs = run_device_jobs(settings, catalog, lambda _msg: None)
    with SqlEngine(settings, catalog=catalog) as sql:
        figures = read_device_figures(sql, catalog, DAY, DAY + timedelta(days=1))

    assert figures.units_sold == 2 + 3 + 4
    assert figures.sales_by_hour_rows == 3  # two hours of the day + one of the next
    assert figures.stock_readings_rows == 1
    quarantine = load_table(catalog, QUARANTINE_TABLE)
    assert quarantine is not None
    held = quarantine.scan().to_arrow()
    assert figures.quarantine_rows == held.num_rows == 2
    assert sorted(held["rule"].to_pylist()) == ["non_negative:qty,price", "not_null:sku,on_hand"]

    recorded = {r.run_id: r for r in JobRunStore.for_settings(settings).runs()}
    shown = run_figures(runs)
    assert set(shown) == {"sales_by_hour", "stock_readings"}
    for name, fig in shown.items():
        run = recorded[fig["run_id"]]
        assert run.status is RunStatus.OK and run.table == f"curated.{name}"
        assert fig["files"] == len(run.inputs) == 3  # hours 06 and 07, and 06 the next day
    assert shown["sales_by_hour"]["rows_quarantined"] == 1
    assert shown["stock_readings"]["rows_quarantined"] == 1


def test_no_quarantine_table_counts_zero(settings_factory: SettingsFactory) -> None:
    settings = settings_factory()
    _write(settings.raw_uri, [_event(1, 5, "sale", qty=2), _event(2, 6, "stock", on_hand=3)])
    catalog = open_catalog(settings)
    run_device_jobs(settings, catalog, lambda _msg: None)
    assert load_table(catalog, QUARANTINE_TABLE) is None
    with SqlEngine(settings, catalog=catalog) as sql:
        figures = read_device_figures(sql, catalog, DAY, DAY + timedelta(hours=1))
    assert (figures.units_sold, figures.quarantine_rows) == (2, 0)


def test_a_failed_job_stops_the_demo(settings_factory: SettingsFactory) -> None:
    settings = settings_factory()
    root = pos_events_uri(settings.raw_uri).removeprefix("file://")
    bad = f"{root}/date=2026-10-01/hour=06/part-x.parquet"  # not the delivery's naming
    Path(bad).parent.mkdir(parents=True)
    Path(bad).write_bytes(b"PAR1")
    with pytest.raises(TerminalError, match=r"device job curate\.sales_by_hour failed") as caught:
        run_device_jobs(settings, open_catalog(settings), lambda _msg: None)
    assert caught.value.hint is not None and "abasto jobs status" in caught.value.hint
    # the two jobs run together from one read: both runs are recorded, both failed
    runs = {run.table: run for run in JobRunStore.for_settings(settings).runs()}
    assert sorted(runs) == ["curated.sales_by_hour", "curated.stock_readings"]
    assert all(run.status is RunStatus.FAILED for run in runs.values())
    assert runs["curated.sales_by_hour"].run_id in caught.value.hint
