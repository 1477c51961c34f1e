"""Raw device events → curated ``sales_by_hour`` / ``stock_readings`` (issue 4)."""

from __future__ import annotations

import json
import random
from collections import defaultdict
from datetime import datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from device_builders import RECEIVED, T0, Ev, heartbeat, rows, sale, stock, write_batch
from pyiceberg.catalog.sql import SqlCatalog

from abasto.catalog import ensure_table
from abasto.delivery.layout import pos_events_uri
from abasto.errors import InvalidInputError, NotFoundError
from abasto.lake.device_files import DeviceFile, DeviceLedger, discover_device_files
from abasto.lake.device_tables import (
    SALES_BY_HOUR,
    curate_device_table,
    get_device_spec,
    reference_domains,
)
from abasto.lake.ledger import applied_files
from abasto.lake.quality import QUARANTINE_TABLE
from abasto.lake.storage import join_uri, write_parquet_atomic
from abasto.lake.tables import get_spec
from abasto.settings import Settings

NOW = RECEIVED  # the freshness check's instant


def curate(settings: Settings, catalog: SqlCatalog, name: str, **kw: object):  # type: ignore[no-untyped-def]
    kw.setdefault("now", NOW)
    return curate_device_table(name, catalog=catalog, raw_uri=settings.raw_uri, **kw)  # type: ignore[arg-type]


def sales_of(catalog: SqlCatalog) -> dict[tuple[str, str, datetime], tuple[int, float, int]]:
    t = catalog.load_table("curated.sales_by_hour").scan().to_arrow().to_pylist()
    return {(r["store_id"], r["sku"], r["hour_start"]): (r["units"], r["revenue"], r["tickets"]) for r in t}


def expected_sales(events: list[Ev]) -> dict[tuple[str, str, datetime], tuple[int, float, int]]:
    """Pure-Python recomputation: first copy of each (device_id, seq), sale events only."""
    seen: set[tuple[str, int]] = set()
    acc: dict[tuple[str, str, datetime], list[float]] = defaultdict(lambda: [0, 0.0, 0])
    for e in events:
        if (e.device_id, e.seq) in seen:
            continue
        seen.add((e.device_id, e.seq))
        if e.type != "sale":
            continue
        assert e.sku is not None and e.qty is not None and e.price is not None
        hour = e.event_time.replace(minute=0, second=0, microsecond=0)
        a = acc[(e.store_id, e.sku, hour)]
        a[0] += e.qty
        a[1] += e.qty * e.price
        a[2] += 1
    return {k: (int(v[0]), round(v[1], 2), int(v[2])) for k, v in acc.items()}


def snapshots(catalog: SqlCatalog, identifier: str) -> list[int]:
    return [s.snapshot_id for s in catalog.load_table(identifier).snapshots()]


def random_events(rng: random.Random, n: int, devices: int = 6, hours: int = 5) -> list[Ev]:
    seqs: dict[str, int] = defaultdict(int)
    out = []
    for _ in range(n):
        dev = f"pos-{rng.randrange(devices):04d}"
        seqs[dev] += 1
        kind = rng.random()
        minutes = rng.uniform(0, hours * 60 - 0.01)
        sku = rng.choice(["COLA-600", "COLA-2L", "AGUA-1L"])
        if kind < 0.7:
            out.append(sale(dev, seqs[dev], minutes, sku, rng.randint(1, 6), rng.choice([12.5, 15.0, 31.99])))
        elif kind < 0.9:
            out.append(stock(dev, seqs[dev], minutes, sku, rng.randint(0, 40)))
        else:
            out.append(heartbeat(dev, seqs[dev], minutes))
    return out


def test_sales_by_hour_matches_a_pure_python_recomputation(settings: Settings, catalog: SqlCatalog) -> None:
    rng = random.Random(4)
    events = random_events(rng, 600)
    resent = rng.sample(events, 40)  # re-sent copies, in later batches (other files)
    write_batch(settings.raw_uri, events[:300], first_seq=1)
    write_batch(settings.raw_uri, events[300:] + resent[:20], first_seq=1_000)
    write_batch(settings.raw_uri, resent[20:], first_seq=2_000)

    result = curate(settings, catalog, "sales_by_hour")

    got, want = sales_of(catalog), expected_sales(events)
    assert got.keys() == want.keys()
    for key, (units, revenue, tickets) in want.items():
        assert got[key][0] == units and got[key][2] == tickets
        assert got[key][1] == pytest.approx(revenue, abs=1e-6)
    assert result.files == len(discover_device_files(settings.raw_uri))
    assert result.rows_in == len(events) + len(resent)
    assert result.rows_upserted == len(expected_sales(events))
    assert result.quality is not None and result.quality.rows_quarantined == 0
    table = catalog.load_table("curated.sales_by_hour")
    assert [f.name for f in table.spec().fields] == ["hour_start_day"]
    assert {p for p in table.schema().identifier_field_names()} == {"store_id", "sku", "hour_start"}


def test_stock_readings_one_row_per_stock_event_duplicates_once(
    settings: Settings, catalog: SqlCatalog
) -> None:
    first = [
        stock("pos-0001", 1, 5, on_hand=12),
        stock("pos-0001", 2, 65, on_hand=9),
        sale("pos-0001", 3, 66),
    ]
    write_batch(settings.raw_uri, first, first_seq=1)
    write_batch(settings.raw_uri, [first[1], stock("pos-0002", 1, 70, on_hand=0)], first_seq=10)  # re-sent

    result = curate(settings, catalog, "stock_readings")

    got = (
        catalog.load_table("curated.stock_readings")
        .scan()
        .to_arrow()
        .sort_by([("device_id", "ascending"), ("seq", "ascending")])
    )
    assert got.select(["device_id", "seq", "on_hand", "store_id"]).to_pylist() == [
        {"device_id": "pos-0001", "seq": 1, "on_hand": 12, "store_id": "S0001"},
        {"device_id": "pos-0001", "seq": 2, "on_hand": 9, "store_id": "S0001"},
        {"device_id": "pos-0002", "seq": 1, "on_hand": 0, "store_id": "S0002"},
    ]
    assert got["event_time"].type == pa.timestamp("us", tz="UTC")
    assert got["received_at"].to_pylist() == [RECEIVED] * 3
    assert result.files == 3 and result.rows_upserted == 3

    write_batch(settings.raw_uri, [stock("pos-0003", 1, 30, on_hand=4)], first_seq=20)  # late, hour 06
    late = curate(settings, catalog, "stock_readings")
    assert (late.files, late.rows_deleted, late.rows_upserted) == (1, 1, 2)  # hour 06 rebuilt
    table = catalog.load_table("curated.stock_readings").scan().to_arrow()
    assert sorted(zip(table["device_id"].to_pylist(), table["seq"].to_pylist(), strict=True)) == [
        ("pos-0001", 1),
        ("pos-0001", 2),
        ("pos-0002", 1),
        ("pos-0003", 1),
    ]


def test_a_late_event_updates_its_hour_and_only_its_hour(settings: Settings, catalog: SqlCatalog) -> None:
    write_batch(
        settings.raw_uri, [sale("pos-0001", 1, 10, qty=2), sale("pos-0001", 2, 70, qty=3)], first_seq=1
    )
    curate(settings, catalog, "sales_by_hour")
    before = sales_of(catalog)
    write_batch(
        settings.raw_uri,
        [sale("pos-0001", 3, 90, qty=4), sale("pos-0001", 4, 20, qty=5, price=10.0)],
        first_seq=5,
    )
    later = [Ev("pos-0001", 5, 25, qty=1, price=2.5)]
    write_batch(settings.raw_uri, later, first_seq=9)

    result = curate(settings, catalog, "sales_by_hour")

    after = sales_of(catalog)
    h6, h7 = T0, T0 + timedelta(hours=1)
    assert before[("S0001", "COLA-600", h6)] == (2, 30.0, 1)
    assert after[("S0001", "COLA-600", h6)] == (8, 82.5, 3)
    assert after[("S0001", "COLA-600", h7)] == (7, 105.0, 2)
    assert result.files == 3 and result.rows_deleted == 2 and result.rows_upserted == 2


def test_rerun_and_replay_change_no_snapshot(settings: Settings, catalog: SqlCatalog) -> None:
    events = [sale("pos-0001", 1, 10), stock("pos-0001", 2, 11), sale("pos-0002", 1, 75, qty=2)]
    files = write_batch(settings.raw_uri, events, first_seq=1)
    for name in ("sales_by_hour", "stock_readings"):
        curate(settings, catalog, name)
    ids = {n: snapshots(catalog, f"curated.{n}") for n in ("sales_by_hour", "stock_readings")}
    write_batch(settings.raw_uri, events, first_seq=1)  # replay: the same files written again
    write_batch(settings.raw_uri, events[:2], first_seq=50)  # a re-sent batch: new file, no new event

    for name in ("sales_by_hour", "stock_readings"):
        again = curate(settings, catalog, name)
        assert again.rows_upserted == 0 and again.rows_deleted == 0
        assert snapshots(catalog, f"curated.{name}") == ids[name]
        rerun = curate(settings, catalog, name)
        assert rerun.files == 0 and rerun.rows_in == 0
    table = catalog.load_table("curated.sales_by_hour")
    ledger = DeviceLedger.from_properties(table.properties)
    assert ledger.files == len(files) + 1
    assert {a.relpath for a in applied_files(table)} == {f"devices/pos_events/{f}" for f in files}


def test_failing_rows_go_to_quarantine_with_their_rule(settings: Settings, catalog: SqlCatalog) -> None:
    customers = pa.schema([pa.field("store_id", pa.string(), nullable=False)])
    ensure_table(
        catalog, "curated.customers", customers, keys=("store_id",), metadata=get_spec("customers").metadata()
    ).append(pa.table({"store_id": ["S0001", "S0002"]}, schema=customers))
    assert reference_domains(catalog) == {"stores": frozenset({"S0001", "S0002"})}  # no products: skipped
    events = [
        sale("pos-0001", 1, 10, qty=2),
        sale("pos-0001", 2, 11, qty=-1),  # negative
        sale("pos-0009", 1, 12),  # unknown store
        Ev("pos-0002", 1, 13, sku=None),  # no SKU
        sale("pos-0002", 2, 14, sku="NEW-SKU"),  # passes: no products table, so SKUs are not checked
    ]
    write_batch(settings.raw_uri, events, first_seq=1)

    result = curate(settings, catalog, "sales_by_hour", run_id="run-1")

    assert result.quality is not None
    assert result.quality.failures == {
        "non_negative:qty,price": 1,
        "known:store_id": 1,
        "not_null:sku,qty,price": 1,
    }
    assert (result.quality.rows_checked, result.quality.rows_passed) == (5, 2)
    assert sales_of(catalog) == {
        ("S0001", "COLA-600", T0): (2, 30.0, 1),
        ("S0002", "NEW-SKU", T0): (1, 15.0, 1),
    }
    quarantined = catalog.load_table(QUARANTINE_TABLE).scan().to_arrow().to_pylist()
    assert sorted(r["rule"] for r in quarantined) == sorted(result.quality.failures)
    bad = next(r for r in quarantined if r["rule"] == "known:store_id")
    assert json.loads(bad["row_json"])["store_id"] == "S0009"
    assert bad["table_name"] == "curated.sales_by_hour" and bad["run_id"] == "run-1"
    assert bad["source_file"].startswith("devices/pos_events/date=2026-10-01/hour=06/part-")

    write_batch(settings.raw_uri, [sale("pos-0001", 3, 15)], first_seq=100)  # same hour: recomputed
    again = curate(settings, catalog, "sales_by_hour")
    assert again.quality is not None and again.quality.failures == {}  # old failures not re-counted
    assert len(catalog.load_table(QUARANTINE_TABLE).scan().to_arrow()) == 3  # nor re-quarantined
    assert sales_of(catalog)[("S0001", "COLA-600", T0)] == (3, 45.0, 2)


def test_freshness_is_a_finding_not_a_refusal(settings: Settings, catalog: SqlCatalog) -> None:
    write_batch(settings.raw_uri, [stock("pos-0001", 1, 5)], first_seq=1)
    result = curate(settings, catalog, "stock_readings", now=T0 + timedelta(days=3))
    assert result.quality is not None and set(result.quality.findings) == {"fresh:event_time"}
    assert result.rows_upserted == 1


def test_select_and_max_files_bound_what_a_run_applies(settings: Settings, catalog: SqlCatalog) -> None:
    events = [sale("pos-0001", i + 1, 60 * i + 1) for i in range(4)]  # four hours
    files = write_batch(settings.raw_uri, events, first_seq=1)
    first = curate(settings, catalog, "sales_by_hour", select=lambda f: f.hour <= 7)
    assert first.files == 2 and len(sales_of(catalog)) == 2
    rest = curate(settings, catalog, "sales_by_hour", max_files=1)
    assert rest.files == 2 and len(sales_of(catalog)) == 4
    assert len(files) == 4


def test_layout_errors_are_clear(settings: Settings, catalog: SqlCatalog) -> None:
    with pytest.raises(NotFoundError, match="no curated device table"):
        get_device_spec("orders")
    assert get_device_spec("curated.sales_by_hour") is SALES_BY_HOUR
    with pytest.raises(InvalidInputError, match="not a device-events file path"):
        DeviceFile.parse("date=2026-10-01/part-00000000000000000001-00000000000000000001.parquet")
    with pytest.raises(InvalidInputError, match="bad hour"):
        DeviceFile.parse("date=2026-10-01/hour=24/part-00000000000000000001-00000000000000000001.parquet")
    with pytest.raises(InvalidInputError, match="not a device-files ledger"):
        DeviceLedger.from_properties({"abasto.devices.applied": "not base64 zlib!"})
    stray = Path(settings.raw_uri.removeprefix("file://")) / "devices/pos_events/stray.parquet"
    stray.parent.mkdir(parents=True)
    stray.write_bytes(b"x")
    with pytest.raises(InvalidInputError, match="not a device-events file path"):
        curate(settings, catalog, "sales_by_hour")


def test_an_unreadable_file_is_quarantined_and_the_rest_applies(
    settings: Settings, catalog: SqlCatalog
) -> None:
    write_batch(settings.raw_uri, [sale("pos-0001", 1, 5, qty=2)], first_seq=1)
    bad = "date=2026-10-01/hour=06/part-00000000000000000005-00000000000000000005.parquet"
    root = Path(settings.raw_uri.removeprefix("file://")) / "devices/pos_events"
    (root / bad).write_bytes(b"not parquet")
    (wrong,) = write_batch(settings.raw_uri, [sale("pos-0002", 1, 6)], first_seq=9)
    pq.write_table(pa.table({"device_id": ["pos-0002"], "type": ["sale"]}), root / wrong)  # not device events

    result = curate(settings, catalog, "sales_by_hour", run_id="r1")

    assert result.files == 3 and sales_of(catalog) == {("S0001", "COLA-600", T0): (2, 30.0, 1)}
    assert result.quality is not None
    assert set(result.quality.unreadable_files) == {
        f"devices/pos_events/{bad}",
        f"devices/pos_events/{wrong}",
    }
    assert "lacks device-event columns" in result.quality.unreadable_files[f"devices/pos_events/{wrong}"]
    quarantined = catalog.load_table(QUARANTINE_TABLE).scan().to_arrow()
    assert quarantined["rule"].to_pylist() == ["unreadable_file"] * 2
    write_batch(settings.raw_uri, [sale("pos-0001", 2, 7)], first_seq=20)  # the hour is recomputed
    assert curate(settings, catalog, "sales_by_hour").quality.unreadable_files == {}  # type: ignore[union-attr]
    assert len(catalog.load_table(QUARANTINE_TABLE).scan().to_arrow()) == 2  # not quarantined twice


def test_an_event_outside_its_files_hour_is_quarantined(settings: Settings, catalog: SqlCatalog) -> None:
    misplaced = rows([sale("pos-0001", 1, 10), sale("pos-0001", 2, 70)], first_seq=1)  # 06:10 and 07:10
    rel = "date=2026-10-01/hour=07/part-00000000000000000001-00000000000000000002.parquet"
    write_parquet_atomic(misplaced, join_uri(pos_events_uri(settings.raw_uri), rel))

    result = curate(settings, catalog, "sales_by_hour")

    assert result.quality is not None and result.quality.failures == {"in_partition:event_time": 1}
    assert sales_of(catalog) == {("S0001", "COLA-600", T0 + timedelta(hours=1)): (1, 15.0, 1)}
