"""Both device tables from one read (``curate_device_tables``), and the exact numpy fast paths of
the deduplication and the ``sales_by_hour`` aggregation against their SQL references."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from device_builders import RECEIVED, T0, Ev, count_reads, heartbeat, rows, sale, stock, write_batch
from pyiceberg.catalog.sql import SqlCatalog

from abasto.catalog import open_catalog
from abasto.delivery.layout import part_name, partition_of, pos_events_uri
from abasto.errors import TransientError
from abasto.lake import device_tables as dt
from abasto.lake.device_files import DeviceLedger
from abasto.lake.quality import QUARANTINE_TABLE
from abasto.lake.storage import join_uri, write_parquet_atomic
from abasto.settings import Settings, load_settings

NAMES = ("sales_by_hour", "stock_readings")
DOMAINS = {
    "stores": frozenset(f"S{i:04d}" for i in range(7)),  # S0007.. unknown
    "skus": frozenset({"COLA-600", "COLA-2L"}),  # AGUA-1L unknown
}


@pytest.fixture
def other(tmp_path: Path) -> SqlCatalog:
    """A second, empty catalog: the per-table reference runs go there."""
    return open_catalog(load_settings(home=tmp_path / "other"))


def events(rng: random.Random, n: int, *, devices: int = 9, hours: int = 30) -> list[Ev]:
    """Sales, stock readings and heartbeats over ``hours`` hours (two days), some failing rules:
    unknown stores (devices 7, 8) and SKUs, negative quantities, missing SKUs, prices of
    fractional cents."""
    seqs: Counter[str] = Counter()
    out: list[Ev] = []
    for _ in range(n):
        dev = f"pos-{rng.randrange(devices):04d}"
        seqs[dev] += 1
        minutes = rng.uniform(0, hours * 60 - 0.01)
        sku = rng.choice(["COLA-600", "COLA-2L", "COLA-600", "AGUA-1L"])
        kind = rng.random()
        if kind < 0.6:
            qty = rng.choice([1, 2, 3, 6, -1]) if rng.random() < 0.05 else rng.randint(1, 6)
            price = rng.choice([12.5, 15.0, 31.99, 0.125, 7.005, 19.994])
            out.append(Ev(dev, seqs[dev], minutes, "sale", None if rng.random() < 0.02 else sku, qty, price))
        elif kind < 0.9:
            out.append(stock(dev, seqs[dev], minutes, sku, rng.choice([0, 4, 40, -2])))
        else:
            out.append(heartbeat(dev, seqs[dev], minutes))
    return out


def write_resent(raw_uri: str, evs: list[Ev], first_seq: int, rng: random.Random) -> list[str]:
    """``write_batch`` with a random ``batch_index`` (null for some: single-event messages) and
    stream sequences that repeat (several events of one batched message)."""
    by_part: dict[str, list[Ev]] = {}
    for e in evs:
        by_part.setdefault(partition_of(e.event_time), []).append(e)
    written = []
    last = first_seq + len(evs)
    for part, group in sorted(by_part.items()):
        table = rows(group, first_seq)
        message = [first_seq + i // 3 for i in range(len(group))]  # three events per message
        index = [None if rng.random() < 0.2 else i % 3 for i in range(len(group))]
        table = table.set_column(0, "stream_seq", pa.array(message, pa.int64()))
        table = table.set_column(
            table.schema.get_field_index("batch_index"), "batch_index", pa.array(index, pa.int32())
        )
        rel = f"{part}/{part_name(first_seq, last)}"
        write_parquet_atomic(table, join_uri(pos_events_uri(raw_uri), rel))
        written.append(rel)
    return written


def state(catalog: SqlCatalog) -> dict[str, Any]:
    """Each device table's rows (sorted by keys) and the quarantine (run ids and times aside)."""
    out: dict[str, Any] = {}
    for name in NAMES:
        spec = dt.get_device_spec(name)
        if catalog.table_exists(spec.identifier):
            table = catalog.load_table(spec.identifier).scan().to_arrow()
            out[name] = table.sort_by([(k, "ascending") for k in spec.keys]).to_pylist()
    if catalog.table_exists(QUARANTINE_TABLE):
        q = catalog.load_table(QUARANTINE_TABLE).scan().to_arrow().drop_columns(["run_id", "quarantined_at"])
        out["quarantine"] = sorted(q.to_pylist(), key=lambda r: tuple(str(v) for v in r.values()))
    return out


def outcome(result: Any) -> tuple[Any, ...]:
    return (result.files, result.rows_in, result.rows_upserted, result.rows_deleted, result.quality.as_dict())


def both(settings: Settings, catalog: SqlCatalog, **kw: Any) -> dict[str, Any]:
    return dt.curate_device_tables(
        NAMES, catalog=catalog, raw_uri=settings.raw_uri, now=RECEIVED, domains=DOMAINS, **kw
    )


def each(settings: Settings, catalog: SqlCatalog, **kw: Any) -> dict[str, Any]:
    return {
        n: dt.curate_device_table(
            n, catalog=catalog, raw_uri=settings.raw_uri, now=RECEIVED, domains=DOMAINS, **kw
        )
        for n in NAMES
    }


def snapshots(catalog: SqlCatalog) -> dict[str, list[int]]:
    return {n: [s.snapshot_id for s in catalog.load_table(f"curated.{n}").snapshots()] for n in NAMES}


def test_one_read_for_both_tables_gives_what_each_table_alone_gives(
    settings: Settings, catalog: SqlCatalog, other: SqlCatalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(7)
    evs = events(rng, 1_500)
    write_resent(settings.raw_uri, evs[:700], 1, rng)
    write_resent(settings.raw_uri, evs[700:] + rng.sample(evs[:700], 60), 5_000, rng)  # re-sent copies
    reads = count_reads(monkeypatch)
    together = both(settings, catalog)
    assert reads and set(reads.values()) == {1}  # every file read once, for both tables
    alone = each(settings, other)
    assert {n: outcome(r) for n, r in together.items()} == {n: outcome(r) for n, r in alone.items()}
    assert state(catalog) == state(other)
    quality = together["sales_by_hour"].quality
    assert quality is not None and {"known:store_id", "known:sku", "non_negative:qty,price"} <= set(
        quality.failures
    )
    assert together["stock_readings"].quality.failures["non_negative:on_hand"] > 0  # type: ignore[union-attr]

    late = [sale("pos-0001", 10_000, 90, qty=4), stock("pos-0002", 10_000, 95, on_hand=3)]  # hour 07
    write_batch(settings.raw_uri, [*late, evs[3]], first_seq=9_000)
    reads.clear()
    again, again_alone = both(settings, catalog), each(settings, other)
    assert {n: outcome(r) for n, r in again.items()} == {n: outcome(r) for n, r in again_alone.items()}
    assert again["sales_by_hour"].rows_deleted > 0  # its hours were rebuilt
    assert state(catalog) == state(other)
    before = snapshots(catalog)
    rerun = both(settings, catalog)
    assert all(r.files == 0 and r.rows_in == 0 for r in rerun.values())
    assert snapshots(catalog) == before


def test_tables_at_different_points_read_what_each_needs(
    settings: Settings, catalog: SqlCatalog, other: SqlCatalog
) -> None:
    rng = random.Random(11)
    evs = events(rng, 400)
    write_batch(settings.raw_uri, evs[:200], first_seq=1)
    for cat in (catalog, other):
        dt.curate_device_table("sales_by_hour", catalog=cat, raw_uri=settings.raw_uri, now=RECEIVED)
    write_batch(settings.raw_uri, evs[200:], first_seq=1_000)  # sales: these; stock: everything

    together = dt.curate_device_tables(catalog=catalog, raw_uri=settings.raw_uri, now=RECEIVED)
    alone = {
        n: dt.curate_device_table(n, catalog=other, raw_uri=settings.raw_uri, now=RECEIVED) for n in NAMES
    }
    assert {n: outcome(r) for n, r in together.items()} == {n: outcome(r) for n, r in alone.items()}
    assert together["stock_readings"].files > together["sales_by_hour"].files
    assert state(catalog) == state(other)


def test_max_files_commits_step_by_step_for_both(
    settings: Settings, catalog: SqlCatalog, other: SqlCatalog
) -> None:
    evs = [sale("pos-0001", i + 1, 60 * i + 1) for i in range(5)] + [
        stock("pos-0002", i + 1, 60 * i + 2) for i in range(5)
    ]
    write_batch(settings.raw_uri, evs, first_seq=1)
    together = both(settings, catalog, max_files=2)
    alone = each(settings, other, max_files=2)
    assert {n: outcome(r) for n, r in together.items()} == {n: outcome(r) for n, r in alone.items()}
    assert state(catalog) == state(other)
    assert len(snapshots(catalog)["sales_by_hour"]) == 3  # five hours, two files per commit


def test_a_failed_commit_leaves_the_other_tables_commit_standing(
    settings: Settings, catalog: SqlCatalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_batch(
        settings.raw_uri, [sale("pos-0001", 1, 5), stock("pos-0001", 2, 6), sale("pos-0002", 1, 7)], 1
    )
    commit = dt._commit

    def failing(table: Any, spec: Any, *args: Any) -> tuple[int, int]:
        if spec.name == "stock_readings":
            raise TransientError("stock_readings: another writer committed meanwhile")
        return commit(table, spec, *args)

    monkeypatch.setattr(dt, "_commit", failing)
    with pytest.raises(TransientError, match="another writer"):
        both(settings, catalog)
    sales = catalog.load_table("curated.sales_by_hour")
    assert DeviceLedger.from_properties(sales.properties).files == 1
    stock_table = catalog.load_table("curated.stock_readings")  # created, nothing committed
    assert stock_table.current_snapshot() is None
    monkeypatch.setattr(dt, "_commit", commit)
    rerun = both(settings, catalog)
    assert (rerun["sales_by_hour"].files, rerun["stock_readings"].files) == (0, 1)
    assert rerun["stock_readings"].rows_upserted == 1


def test_the_numpy_paths_equal_their_sql_references(
    settings: Settings, catalog: SqlCatalog, other: SqlCatalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(5)
    evs = events(rng, 2_000, devices=12, hours=40)
    write_resent(settings.raw_uri, evs[:1_000], 1, rng)
    write_resent(settings.raw_uri, evs[1_000:] + rng.sample(evs, 150), 3_000, rng)
    write_resent(settings.raw_uri, rng.sample(evs, 100), 6_000, rng)  # a re-sent batch
    fast = both(settings, catalog)
    calls: Counter[str] = Counter()

    def sql_only(name: str) -> Any:
        def none(*args: Any) -> None:
            calls[name] += 1

        return none

    monkeypatch.setattr(dt, "_duplicates", sql_only("dedup"))
    monkeypatch.setattr(dt, "_sales_rows", sql_only("sales"))
    reference = both(settings, other)
    assert calls == {"dedup": 2, "sales": 1}
    assert {n: outcome(r) for n, r in fast.items()} == {n: outcome(r) for n, r in reference.items()}
    assert state(catalog) == state(other)


def relation(table: pa.Table) -> pa.Table:
    """``table`` (raw columns) as :func:`dt._prepare` hands it to the fast paths."""
    read = dt._one_dictionary(table.cast(dt._as_read(table.schema)))
    n = read.num_rows
    return (
        read.append_column(dt._FILE, pa.array(np.zeros(n, dtype=np.int32)))
        .append_column(dt._DEV, dt._indices(read["device_id"]))
        .append_column(dt._ROW, pa.array(np.arange(n, dtype=np.int64)))
    )


def raw(**columns: list[Any]) -> pa.Table:
    n = len(columns["seq"])
    base: dict[str, Any] = {
        "stream_seq": list(range(1, n + 1)),
        "batch_index": [None] * n,
        "device_id": ["pos-0001"] * n,
        "store_id": ["S0001"] * n,
        "event_time": [T0 + timedelta(minutes=i) for i in range(n)],
        "sku": ["COLA-600"] * n,
        "qty": [1] * n,
        "price": [15.0] * n,
        "received_at": [RECEIVED] * n,
    }
    base.update(columns)
    schema = dt._READ_SCHEMAS["sales_by_hour"]
    return pa.table({f.name: pa.array(base[f.name], f.type) for f in schema if f.name != dt._FILE})


def test_the_fast_paths_step_aside_where_they_could_not_be_exact() -> None:
    keep = np.ones(3, dtype=bool)
    dense = relation(raw(seq=[1, 2, 1]))
    assert dt._duplicates(dense) is not None and dt._duplicates(dense).to_pylist() == [2]  # type: ignore[union-attr]
    assert dt._duplicates(relation(raw(seq=[1, 2, 10**15]))) is None  # sparse: SQL
    assert dt._duplicates(relation(raw(seq=[1, None, 2]))) is None
    assert dt._sales_rows(dense, keep) is not None
    assert dt._sales_rows(relation(raw(seq=[1, 2, 3], event_time=[T0, None, T0])), keep) is None
    before_1970 = datetime(1969, 12, 31, 23, 30, tzinfo=UTC)
    assert dt._sales_rows(relation(raw(seq=[1, 2, 3], event_time=[before_1970] * 3)), keep) is None
    assert dt._sales_rows(relation(raw(seq=[1, 2, 3], price=[15.0, float("inf"), 1.0])), keep) is None
    assert dt._sales_rows(relation(raw(seq=[1, 2, 3], qty=[1, None, 2])), keep) is None


def test_sales_rows_group_and_round_as_sql_does() -> None:
    times = [T0 + timedelta(minutes=m) for m in (1, 2, 61, 3)]
    rel = relation(
        raw(
            seq=[1, 2, 3, 4],
            store_id=["S0001", "S0002", "S0001", "S0001"],
            qty=[2, 1, 3, 1],
            price=[0.125, 7.005, 1.0, 0.005],  # 25.0, 700.5 -> 701, 300, 0.5 -> 1 (half away from 0)
            event_time=times,
        )
    )
    fast = dt._sales_rows(rel, np.array([True, True, True, True]))
    assert fast is not None
    got, refused = fast
    assert refused.null_count == len(refused)
    assert got.to_pylist() == [
        {
            "store_id": "S0001",
            "sku": "COLA-600",
            "hour_start": T0,
            "units": 3,
            "revenue": 0.26,
            "tickets": 2,
            "first_event_time": times[0],
            "last_event_time": times[3],
            "last_received_at": RECEIVED,
        },
        {
            "store_id": "S0002",
            "sku": "COLA-600",
            "hour_start": T0,
            "units": 1,
            "revenue": 7.01,
            "tickets": 1,
            "first_event_time": times[1],
            "last_event_time": times[1],
            "last_received_at": RECEIVED,
        },
        {
            "store_id": "S0001",
            "sku": "COLA-600",
            "hour_start": T0 + timedelta(hours=1),
            "units": 3,
            "revenue": 3.0,
            "tickets": 1,
            "first_event_time": times[2],
            "last_event_time": times[2],
            "last_received_at": RECEIVED,
        },
    ]


def test_dictionaries_holding_a_value_twice_are_re_encoded() -> None:
    doubled = pa.DictionaryArray.from_arrays(pa.array([0, 1, 2], pa.int32()), pa.array(["a", "b", "a"]))
    table = dt._one_dictionary(pa.table({"device_id": pa.chunked_array([doubled])}))
    column = table["device_id"]
    assert column.chunk(0).dictionary.to_pylist() == ["a", "b"]
    assert dt._indices(column).to_pylist() == [0, 1, 0]
    assert column.to_pylist() == ["a", "b", "a"]
