"""Truncates (``Op = 'T'``), split CDC files (``CDC-…_<k>``) and reloads (a newer ``LOAD-<lsn>`` set)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal

import pyarrow as pa
import pytest
from lake_builders import ORDER_LINES_SCHEMA, SELLOUT_SCHEMA, T0, at, truncate_image
from pyiceberg.catalog.sql import SqlCatalog
from test_lake_curate import EXPECTED_LINES, as_lines, current_state, deletes, lines, write_order_history

from abasto.cdc.change_files import ChangeFileWriter, TableShape, Transaction
from abasto.cdc.pgtypes import FLOAT8, TEXT, column_type
from abasto.cdc.raw_zone import RawZone
from abasto.lake import SALES_TABLES, CurateResult, TableSpec
from abasto.lake.ledger import applied_files
from abasto.lake.raw_writer import write_cdc, write_full_load
from abasto.settings import Settings

Curate = Callable[..., CurateResult]
LINES = SALES_TABLES["order_lines"]
SELLOUT = SALES_TABLES["sellout_hourly"]
NEXT_DAY = 60 * 24 + 30


def state_of(catalog: SqlCatalog) -> dict[tuple[object, ...], tuple[object, ...]]:
    return as_lines(current_state(catalog, LINES.identifier))


def sellout(day: int, stores: int = 2, hours: int = 3, units: int = 1) -> pa.Table:
    rows = [
        (f"S{s}", "COLA-600", T0.replace(hour=0) + timedelta(days=day, hours=h), units, 50, False)
        for s in range(stores)
        for h in range(hours)
    ]
    return pa.Table.from_arrays(
        [pa.array(c, f.type) for c, f in zip(zip(*rows, strict=True), SELLOUT_SCHEMA, strict=True)],
        schema=SELLOUT_SCHEMA,
    )


def partitions(catalog: SqlCatalog, identifier: str) -> set[object]:
    tasks = catalog.load_table(identifier).scan().plan_files()
    return {task.file.partition[0] for task in tasks}


# --- truncate ---------------------------------------------------------------------------------


def write_truncate_mid_stream(settings: Settings) -> None:
    """After the order history: a transaction updates O1/1, truncates, re-inserts O1/1 and inserts
    O9/1; then O9/1 is updated."""
    write_cdc(
        settings.raw_uri,
        LINES.source,
        pa.concat_tables(
            [
                lines(("O1", 1, "COLA-600", 99, 99, "12.50")),
                truncate_image(ORDER_LINES_SCHEMA),
                lines(("O1", 1, "COLA-600", 1, 1, "13.00")),
                lines(("O9", 1, "AGUA-1L", 2, 2, "9.00")),
                lines(("O9", 1, "AGUA-1L", 3, 3, "9.00")),
            ]
        ),
        ops=["U", "T", "I", "I", "U"],
        lsns=[300, 300, 300, 300, 310],
        seqs=[0, 1, 2, 3, 0],
        commit_ts=at(NEXT_DAY),
    )


AFTER_TRUNCATE = {
    ("O1", 1): ("COLA-600", 1, 1, Decimal("13.00")),
    ("O9", 1): ("AGUA-1L", 3, 3, Decimal("9.00")),
}


def test_truncate_mid_stream_keeps_only_the_later_rows(
    settings: Settings, catalog: SqlCatalog, curate: Curate
) -> None:
    write_order_history(settings)
    curate(LINES)
    write_truncate_mid_stream(settings)
    result = curate(LINES)
    assert state_of(catalog) == AFTER_TRUNCATE
    # O1/1 survives (re-inserted after the T); O1/2 and O3/1 existed and are gone
    assert (result.files, result.rows_in, result.rows_upserted, result.rows_deleted) == (1, 5, 2, 2)
    props = catalog.load_table(LINES.identifier).properties
    assert (props["abasto.ledger.last-lsn"], props["abasto.ledger.last-seq"]) == ("310", "0")


@pytest.mark.parametrize("max_files", [None, 1])
def test_truncate_in_the_first_run_with_the_full_load(
    settings: Settings, catalog: SqlCatalog, curate: Curate, max_files: int | None
) -> None:
    write_order_history(settings)
    write_truncate_mid_stream(settings)
    result = curate(LINES, max_files=max_files)
    assert result.files == 4
    assert state_of(catalog) == AFTER_TRUNCATE


def test_replaying_a_truncate_changes_nothing(
    settings: Settings, catalog: SqlCatalog, curate: Curate
) -> None:
    write_order_history(settings)
    write_truncate_mid_stream(settings)
    first = curate(LINES)
    metadata = catalog.load_table(LINES.identifier).metadata_location
    again = curate(LINES)
    assert (again.files, again.rows_in, again.snapshot_id) == (0, 0, first.snapshot_id)
    assert catalog.load_table(LINES.identifier).metadata_location == metadata
    # a restarted writer rewrites the truncating transaction (without O9/1) and one new change:
    # the T is already applied, so it must not wipe O9/1 again
    write_cdc(
        settings.raw_uri,
        LINES.source,
        pa.concat_tables(
            [
                truncate_image(ORDER_LINES_SCHEMA),
                lines(("O1", 1, "COLA-600", 1, 1, "13.00")),
                lines(("O7", 1, "LIMA-2L", 1, 1, "30.00")),
            ]
        ),
        ops=["T", "I", "I"],
        lsns=[300, 300, 320],
        seqs=[1, 2, 0],
        commit_ts=at(NEXT_DAY),
    )
    replay = curate(LINES)
    assert (replay.files, replay.rows_upserted, replay.rows_deleted) == (1, 1, 0)
    assert state_of(catalog) == {**AFTER_TRUNCATE, ("O7", 1): ("LIMA-2L", 1, 1, Decimal("30.00"))}


def test_truncate_to_empty_then_inserts_later(
    settings: Settings, catalog: SqlCatalog, curate: Curate
) -> None:
    write_order_history(settings)
    curate(LINES)
    write_cdc(
        settings.raw_uri,
        LINES.source,
        truncate_image(ORDER_LINES_SCHEMA),
        ops=["T"],
        lsns=[300],
        commit_ts=at(NEXT_DAY),
    )
    result = curate(LINES)
    assert (result.rows_upserted, result.rows_deleted) == (0, 3)
    assert catalog.load_table(LINES.identifier).scan().to_arrow().num_rows == 0
    write_cdc(
        settings.raw_uri,
        LINES.source,
        lines(("O8", 1, "COLA-600", 1, 1, "12.50")),
        ops=["I"],
        lsns=[310],
        commit_ts=at(NEXT_DAY + 1),
    )
    curate(LINES)
    assert state_of(catalog) == {("O8", 1): ("COLA-600", 1, 1, Decimal("12.50"))}


def test_truncate_overwrites_every_partition(settings: Settings, catalog: SqlCatalog, curate: Curate) -> None:
    write_full_load(
        settings.raw_uri,
        SELLOUT.source,
        pa.concat_tables([sellout(0), sellout(1), sellout(2)]),
        lsn=10,
        commit_ts=T0,
    )
    curate(SELLOUT)
    assert len(partitions(catalog, SELLOUT.identifier)) == 3
    # after the T only day 1 is written to: days 0 and 2 must still be emptied
    write_cdc(
        settings.raw_uri,
        SELLOUT.source,
        pa.concat_tables(
            [sellout(2, 1, 1, units=7), truncate_image(SELLOUT_SCHEMA), sellout(1, 1, 2, units=5)]
        ),
        ops=["U", "T", "I", "I"],
        lsns=[20, 21, 22, 22],
        commit_ts=at(60 * 30),
    )
    result = curate(SELLOUT)
    rows = catalog.load_table(SELLOUT.identifier).scan().to_arrow().to_pylist()
    assert sorted((r["store_id"], r["hour_start"], r["units_sold"]) for r in rows) == [
        ("S0", T0.replace(hour=0) + timedelta(days=1, hours=h), 5) for h in range(2)
    ]
    assert len(partitions(catalog, SELLOUT.identifier)) == 1
    assert result.rows_deleted == 3 * 2 * 3 - 2


# --- split files (one transaction, a schema change in the middle) --------------------------------


def write_split_transaction(settings: Settings) -> None:
    """Transaction 300 inserts O5/1 and updates O1/1 (old shape: CDC-300-300), adds a column
    ``discount_pct`` and updates both (new shape: CDC-300-300_1), adds ``promo`` and deletes O1/1
    (CDC-300-300_2); transaction 310 changes O5/1 in the newest shape (CDC-310-310)."""
    raw, src = settings.raw_uri, LINES.source
    write_cdc(
        raw,
        src,
        lines(("O5", 1, "COLA-600", 1, 1, "12.50"), ("O1", 1, "COLA-600", 20, 20, "12.50")),
        ops=["I", "U"],
        lsns=[300, 300],
        seqs=[0, 1],
        commit_ts=at(NEXT_DAY),
    )
    write_split_rest(settings)


def write_split_rest(settings: Settings) -> None:
    raw, src = settings.raw_uri, LINES.source
    discounted = lines(("O5", 1, "COLA-600", 2, 2, "12.50"), ("O1", 1, "COLA-600", 21, 21, "12.50"))
    write_cdc(
        raw,
        src,
        discounted.append_column("discount_pct", pa.array([5.0, 6.0])),
        ops=["U", "U"],
        lsns=[300, 300],
        seqs=[2, 3],
        commit_ts=at(NEXT_DAY),
        split=1,
    )
    gone = deletes(("O1", 1)).append_column("discount_pct", pa.nulls(1, pa.float64()))
    write_cdc(
        raw,
        src,
        gone.append_column("promo", pa.nulls(1, pa.string())),
        ops=["D"],
        lsns=[300],
        seqs=[4],
        commit_ts=at(NEXT_DAY),
        split=2,
    )


def write_after_split(settings: Settings) -> None:
    later = lines(("O5", 1, "COLA-600", 3, 3, "12.50")).append_column("discount_pct", pa.array([5.0]))
    write_cdc(
        settings.raw_uri,
        LINES.source,
        later.append_column("promo", pa.array(["2x1"])),
        ops=["U"],
        lsns=[310],
        commit_ts=at(NEXT_DAY + 1),
    )


def assert_split_applied(catalog: SqlCatalog) -> None:
    state = current_state(catalog, LINES.identifier)
    expected = dict(EXPECTED_LINES)
    del expected[("O1", 1)]
    assert as_lines({k: v for k, v in state.items() if k != ("O5", 1)}) == expected
    o5 = state[("O5", 1)]
    assert (o5["qty_ordered"], o5["discount_pct"], o5["promo"]) == (3, 5.0, "2x1")
    assert all(state[k]["discount_pct"] is None and state[k]["promo"] is None for k in expected)


@pytest.mark.parametrize("max_files", [None, 1, 2])
def test_split_files_in_one_run(
    settings: Settings, catalog: SqlCatalog, curate: Curate, max_files: int | None
) -> None:
    write_order_history(settings)
    curate(LINES)
    write_split_transaction(settings)
    write_after_split(settings)
    result = curate(LINES, max_files=max_files)
    assert result.files == 4
    assert_split_applied(catalog)
    lineage = applied_files(catalog.load_table(LINES.identifier))
    assert [f.relpath.rsplit("/", 1)[1] for f in lineage[-4:]] == [
        "CDC-000000000000012C-000000000000012C.parquet",
        "CDC-000000000000012C-000000000000012C_1.parquet",
        "CDC-000000000000012C-000000000000012C_2.parquet",
        "CDC-0000000000000136-0000000000000136.parquet",
    ]


def test_split_files_across_runs(settings: Settings, catalog: SqlCatalog, curate: Curate) -> None:
    """The curate job lists the raw zone between the renames of one transaction's files."""
    write_order_history(settings)
    write_cdc(
        settings.raw_uri,
        LINES.source,
        lines(("O5", 1, "COLA-600", 1, 1, "12.50"), ("O1", 1, "COLA-600", 20, 20, "12.50")),
        ops=["I", "U"],
        lsns=[300, 300],
        seqs=[0, 1],
        commit_ts=at(NEXT_DAY),
    )
    first = curate(LINES)
    assert first.files == 4
    assert state_of(catalog)[("O1", 1)] == ("COLA-600", 20, 20, Decimal("12.50"))
    props = catalog.load_table(LINES.identifier).properties
    assert (props["abasto.ledger.last-lsn"], props["abasto.ledger.last-seq"]) == ("300", "1")
    write_split_rest(settings)  # same LSN range as the file already applied, later _seq
    second = curate(LINES)
    assert (second.files, second.rows_in, second.rows_upserted, second.rows_deleted) == (2, 3, 1, 1)
    write_after_split(settings)
    curate(LINES)
    assert_split_applied(catalog)


def test_unsuffixed_files_sharing_an_lsn_across_runs(
    settings: Settings, catalog: SqlCatalog, curate: Curate
) -> None:
    """Transaction 300 split by a schema change when an earlier one (290) is in the first file:
    CDC-290-300 and CDC-300-300 share LSN 300 without a suffix."""
    write_order_history(settings)
    write_cdc(
        settings.raw_uri,
        LINES.source,
        lines(("O1", 1, "COLA-600", 30, 30, "12.50"), ("O5", 1, "COLA-600", 1, 1, "12.50")),
        ops=["U", "I"],
        lsns=[290, 300],
        seqs=[0, 0],
        commit_ts=at(NEXT_DAY),
    )
    curate(LINES)
    write_cdc(
        settings.raw_uri,
        LINES.source,
        lines(("O5", 1, "COLA-600", 2, 2, "12.50")).append_column("discount_pct", pa.array([5.0])),
        ops=["U"],
        lsns=[300],
        seqs=[1],
        commit_ts=at(NEXT_DAY),
    )
    assert curate(LINES).files == 1
    o5 = current_state(catalog, LINES.identifier)[("O5", 1)]
    assert (o5["qty_ordered"], o5["discount_pct"]) == (2, 5.0)


# --- reload (a newer full-load set) -------------------------------------------------------------


def write_reload(settings: Settings) -> None:
    """A change captured before the reload but never curated, then LOAD-300 in two parts (O1/1
    changed, O1/2 kept, O3/1 and O2/1 absent, O6/1 new), then a change after it."""
    raw, src = settings.raw_uri, LINES.source
    write_cdc(
        raw, src, lines(("O3", 1, "AGUA-1L", 7, 7, "9.50")), ops=["U"], lsns=[260], commit_ts=at(NEXT_DAY)
    )
    reload_ts = at(NEXT_DAY + 5)
    write_full_load(raw, src, lines(("O1", 1, "COLA-600", 50, 50, "14.00")), lsn=300, commit_ts=reload_ts)
    write_full_load(
        raw,
        src,
        lines(("O1", 2, "LIMA-2L", 6, 6, "31.00"), ("O6", 1, "COLA-600", 1, 1, "14.00")),
        lsn=300,
        commit_ts=reload_ts,
        part=2,
    )
    write_cdc(
        raw,
        src,
        lines(("O6", 1, "COLA-600", 2, 2, "14.00")),
        ops=["U"],
        lsns=[310],
        commit_ts=at(NEXT_DAY + 6),
    )


AFTER_RELOAD = {
    ("O1", 1): ("COLA-600", 50, 50, Decimal("14.00")),
    ("O1", 2): ("LIMA-2L", 6, 6, Decimal("31.00")),
    ("O6", 1): ("COLA-600", 2, 2, Decimal("14.00")),
}


def test_reload_replaces_the_table(settings: Settings, catalog: SqlCatalog, curate: Curate) -> None:
    write_order_history(settings)
    curate(LINES)
    assert state_of(catalog) == EXPECTED_LINES
    write_reload(settings)
    result = curate(LINES)
    assert state_of(catalog) == AFTER_RELOAD
    assert (result.files, result.rows_deleted) == (4, 1)  # O3/1 existed and is absent from the reload
    props = catalog.load_table(LINES.identifier).properties
    assert props["abasto.ledger.load-lsn"] == "300" and props["abasto.ledger.last-lsn"] == "310"
    again = curate(LINES)
    assert (again.files, again.snapshot_id) == (0, result.snapshot_id)


@pytest.mark.parametrize("max_files", [None, 1, 2])
def test_reload_from_scratch_ignores_the_older_load(
    settings: Settings, catalog: SqlCatalog, curate: Curate, max_files: int | None
) -> None:
    write_order_history(settings)
    write_reload(settings)
    curate(LINES, max_files=max_files)
    assert state_of(catalog) == AFTER_RELOAD


def test_parts_of_one_load_seen_in_separate_runs_add_up(
    settings: Settings, catalog: SqlCatalog, curate: Curate
) -> None:
    """The job lists the raw zone while the capture renames a full load's parts into place."""
    raw, src = settings.raw_uri, LINES.source
    write_full_load(raw, src, lines(("O1", 1, "COLA-600", 1, 1, "1.00")), lsn=100, commit_ts=T0)
    curate(LINES)
    write_full_load(raw, src, lines(("O2", 1, "COLA-600", 2, 2, "1.00")), lsn=100, commit_ts=T0, part=2)
    result = curate(LINES)
    assert (result.files, result.rows_deleted) == (1, 0)
    assert set(state_of(catalog)) == {("O1", 1), ("O2", 1)}
    # the reload's first part alone replaces the table; its second part is added to it
    write_full_load(raw, src, lines(("O3", 1, "COLA-600", 3, 3, "1.00")), lsn=200, commit_ts=at(5))
    assert curate(LINES).rows_deleted == 2
    write_full_load(raw, src, lines(("O4", 1, "COLA-600", 4, 4, "1.00")), lsn=200, commit_ts=at(5), part=2)
    curate(LINES)
    assert set(state_of(catalog)) == {("O3", 1), ("O4", 1)}


def test_empty_reload_empties_every_partition(
    settings: Settings, catalog: SqlCatalog, curate: Curate
) -> None:
    write_full_load(
        settings.raw_uri, SELLOUT.source, pa.concat_tables([sellout(0), sellout(1)]), lsn=10, commit_ts=T0
    )
    curate(SELLOUT)
    # the capture writes a full load for an empty table too: one file without rows
    write_full_load(settings.raw_uri, SELLOUT.source, SELLOUT_SCHEMA.empty_table(), lsn=20, commit_ts=at(5))
    write_cdc(settings.raw_uri, SELLOUT.source, sellout(3, 1, 1), ops=["I"], lsns=[30], commit_ts=at(6))
    result = curate(SELLOUT)
    assert result.rows_deleted == 2 * 2 * 3
    rows = catalog.load_table(SELLOUT.identifier).scan().to_arrow().to_pylist()
    assert [(r["store_id"], r["hour_start"]) for r in rows] == [
        ("S0", T0.replace(hour=0) + timedelta(days=3))
    ]
    assert len(partitions(catalog, SELLOUT.identifier)) == 1


# --- files as the change capture writes them ------------------------------------------------------


def test_capture_files_with_a_split_transaction_and_a_truncate(
    settings: Settings, catalog: SqlCatalog, curate: Curate
) -> None:
    spec = TableSpec(name="skus", source="sales_db/skus", keys=("sku",))
    text, real = column_type(TEXT, -1), column_type(FLOAT8, -1)
    v1 = TableShape("sales", "skus", ("sku", "price"), (text, real), signature=(1,))
    v2 = TableShape("sales", "skus", ("sku", "price", "brand"), (text, real, text), signature=(2,))
    raw = RawZone(settings.raw_uri)
    day = T0.date().isoformat()
    ts = int(T0.timestamp() * 1_000_000)

    writer = ChangeFileWriter(raw)  # one transaction: two inserts, ALTER TABLE … ADD brand, two changes
    txn = Transaction(lsn=0x500, commit_ts_us=ts, day=day)
    for seq, (shape, op, image) in enumerate(
        [
            (v1, "I", [b"A", b"1"]),  # values as pgoutput sends them: text bytes
            (v1, "I", [b"B", b"2"]),
            (v2, "U", [b"A", b"1.5", b"cola"]),
            (v2, "I", [b"C", b"3", b"agua"]),
        ]
    ):
        writer.add(shape, op, txn, seq, image)
    published = writer.publish()
    assert [n.rsplit("/", 1)[1] for n in published.names] == [
        "CDC-0000000000000500-0000000000000500.parquet",
        "CDC-0000000000000500-0000000000000500_1.parquet",
    ]
    curate(spec)
    rows = {
        r["sku"]: (r["price"], r["brand"])
        for r in catalog.load_table(spec.identifier).scan().to_arrow().to_pylist()
    }
    assert rows == {"A": (1.5, "cola"), "B": (2.0, None), "C": (3.0, "agua")}

    writer = ChangeFileWriter(raw)  # TRUNCATE skus; INSERT D
    txn = Transaction(lsn=0x510, commit_ts_us=ts + 1, day=day)
    writer.add(v2, "T", txn, 0, [None, None, None])
    writer.add(v2, "I", txn, 1, [b"D", b"4", b"lima"])
    writer.publish()
    result = curate(spec)
    rows = {
        r["sku"]: (r["price"], r["brand"])
        for r in catalog.load_table(spec.identifier).scan().to_arrow().to_pylist()
    }
    assert rows == {"D": (4.0, "lima")}
    assert (result.files, result.rows_deleted) == (1, 3)
