"""raw → curated merge: convergence, idempotence, schema evolution, partition-aligned overwrite."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

import pyarrow as pa
import pytest
from lake_builders import ORDER_LINES_SCHEMA, SELLOUT_SCHEMA, T0, at
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.exceptions import NotInstalledError
from pyiceberg.table import Transaction
from pyiceberg.types import DecimalType, IntegerType, LongType, StringType, TimestamptzType

from abasto.errors import ConfigError, InvalidInputError
from abasto.lake import SALES_TABLES, CurateResult, TableSpec
from abasto.lake.ledger import applied_files
from abasto.lake.raw_files import discover_raw_files
from abasto.lake.raw_writer import write_cdc, write_full_load
from abasto.lake.storage import filesystem_for
from abasto.settings import Settings

Curate = Callable[..., CurateResult]
LINES = SALES_TABLES["order_lines"]
SELLOUT = SALES_TABLES["sellout_hourly"]


def lines(*rows: tuple[str, int, str, int, int | None, str]) -> pa.Table:
    cols = list(zip(*rows, strict=True)) if rows else [[]] * 6
    data = [list(c) for c in cols]
    data[5] = [Decimal(p) for p in data[5]]
    return pa.Table.from_arrays(
        [pa.array(c, f.type) for c, f in zip(data, ORDER_LINES_SCHEMA, strict=True)],
        schema=ORDER_LINES_SCHEMA,
    )


def deletes(*keys: tuple[str, int]) -> pa.Table:
    """Delete images: keys only, nulls elsewhere (replica identity)."""
    n = len(keys)
    return pa.table(
        {
            "order_id": [k[0] for k in keys],
            "line_no": pa.array([k[1] for k in keys], pa.int16()),
            "sku": pa.nulls(n, pa.string()),
            "qty_ordered": pa.nulls(n, pa.int32()),
            "qty_delivered": pa.nulls(n, pa.int32()),
            "unit_price": pa.nulls(n, pa.decimal128(10, 2)),
        }
    )


def current_state(catalog: SqlCatalog, identifier: str) -> dict[tuple[object, ...], dict[str, object]]:
    table = catalog.load_table(identifier)
    keys = table.properties["abasto.keys"].split(",")
    rows = table.scan().to_arrow().to_pylist()
    state = {tuple(r[k] for k in keys): r for r in rows}
    assert len(state) == len(rows), "duplicate keys in the curated table"
    return state


def write_order_history(settings: Settings) -> None:
    raw, src = settings.raw_uri, LINES.source
    write_full_load(
        raw,
        src,
        lines(
            ("O1", 1, "COLA-600", 10, 10, "12.50"),
            ("O1", 2, "LIMA-2L", 5, 5, "30.00"),
            ("O2", 1, "COLA-600", 3, 3, "12.50"),
        ),
        lsn=100,
        commit_ts=T0,
    )
    # file 1: insert O3/1, update O3/1 three times in one file (two in one transaction), delete O2/1
    write_cdc(
        raw,
        src,
        pa.concat_tables(
            [
                lines(("O3", 1, "AGUA-1L", 1, None, "9.00")),
                lines(("O3", 1, "AGUA-1L", 2, None, "9.00")),
                lines(("O3", 1, "AGUA-1L", 3, None, "9.00")),
                lines(("O3", 1, "AGUA-1L", 4, None, "9.00")),
                deletes(("O2", 1)),
            ]
        ),
        ops=["I", "U", "U", "U", "D"],
        lsns=[110, 120, 130, 130, 140],
        commit_ts=at(10),
    )
    # file 2 (next day): O3/1 updated again, O1/2 deleted then re-inserted, O1/1 updated,
    # O4/1 inserted then deleted
    write_cdc(
        raw,
        src,
        pa.concat_tables(
            [
                lines(("O3", 1, "AGUA-1L", 4, 4, "9.50")),
                deletes(("O1", 2)),
                lines(("O1", 2, "LIMA-2L", 6, 6, "31.00")),
                lines(("O1", 1, "COLA-600", 12, 12, "12.50")),
                lines(("O4", 1, "COLA-600", 1, 1, "12.50")),
                deletes(("O4", 1)),
            ]
        ),
        ops=["U", "D", "I", "U", "I", "D"],
        lsns=[200, 210, 220, 230, 240, 250],
        commit_ts=at(60 * 24 + 5),
    )


EXPECTED_LINES = {
    ("O1", 1): ("COLA-600", 12, 12, Decimal("12.50")),
    ("O1", 2): ("LIMA-2L", 6, 6, Decimal("31.00")),
    ("O3", 1): ("AGUA-1L", 4, 4, Decimal("9.50")),
}


def as_lines(
    state: dict[tuple[object, ...], dict[str, object]],
) -> dict[tuple[object, ...], tuple[object, ...]]:
    return {k: (r["sku"], r["qty_ordered"], r["qty_delivered"], r["unit_price"]) for k, r in state.items()}


def test_curated_equals_source_after_inserts_updates_deletes(
    settings: Settings, catalog: SqlCatalog, curate: Curate
) -> None:
    write_order_history(settings)
    result = curate(LINES)
    assert as_lines(current_state(catalog, LINES.identifier)) == EXPECTED_LINES
    assert (result.table, result.files, result.rows_in) == ("curated.order_lines", 3, 14)
    assert result.rows_upserted == 3  # one batch: the latest image of each surviving key
    assert result.rows_deleted == 0  # O2/1 was inserted and deleted within this batch: nothing existed before
    table = catalog.load_table(LINES.identifier)
    assert result.snapshot_id == table.current_snapshot().snapshot_id
    schema = table.schema()
    assert [schema.find_field(k).required for k in LINES.keys] == [True, True]
    assert set(schema.identifier_field_names()) == {"order_id", "line_no"}
    assert isinstance(
        schema.find_field("line_no").field_type, IntegerType
    )  # int16 widened, never unsigned/short
    assert isinstance(schema.find_field("unit_price").field_type, DecimalType)
    assert table.properties["owner"] == "data-platform" and table.properties["abasto.source"] == LINES.source


def test_file_by_file_equals_all_at_once(settings: Settings, catalog: SqlCatalog, curate: Curate) -> None:
    write_order_history(settings)
    results = [curate(LINES, max_files=1)]
    assert results[0].files == 3
    assert as_lines(current_state(catalog, LINES.identifier)) == EXPECTED_LINES
    # O2/1 existed when file 1 deleted it; O1/2's delete is superseded by its re-insert in file 2
    assert (results[0].rows_deleted, results[0].rows_upserted) == (1, 3 + 1 + 3)


def test_rerun_and_replay_change_nothing(settings: Settings, catalog: SqlCatalog, curate: Curate) -> None:
    write_order_history(settings)
    first = curate(LINES)
    metadata = catalog.load_table(LINES.identifier).metadata_location
    again = curate(LINES)
    assert (again.files, again.rows_in, again.snapshot_id) == (0, 0, first.snapshot_id)
    assert catalog.load_table(LINES.identifier).metadata_location == metadata  # not even a metadata commit
    # the CDC writer restarts and writes a range inside the applied ones again under another name:
    # it sorts before the last applied file, so it is not even pending
    write_cdc(
        settings.raw_uri,
        LINES.source,
        pa.concat_tables([deletes(("O1", 2)), lines(("O1", 2, "LIMA-2L", 6, 6, "31.00"))]),
        ops=["D", "I"],
        lsns=[210, 220],
        commit_ts=at(60 * 24 + 5),
    )
    replay = curate(LINES)
    assert (replay.files, replay.snapshot_id) == (0, first.snapshot_id)
    # a rewritten range reaching past the applied ones is pending; its applied records (a stale
    # image of O3/1 at 130) are dropped, the new one (an update to the same image) changes nothing
    write_cdc(
        settings.raw_uri,
        LINES.source,
        pa.concat_tables(
            [
                lines(("O3", 1, "AGUA-1L", 4, None, "9.00")),
                deletes(("O2", 1)),
                lines(("O1", 1, "COLA-600", 12, 12, "12.50")),
            ]
        ),
        ops=["U", "D", "U"],
        lsns=[130, 140, 260],
        seqs=[1, 0, 0],
        commit_ts=at(60 * 24 + 6),
    )
    replay = curate(LINES)
    assert (replay.files, replay.rows_in, replay.snapshot_id) == (1, 3, first.snapshot_id)
    assert as_lines(current_state(catalog, LINES.identifier)) == EXPECTED_LINES
    # an already-applied file delivered again under its own name is not pending
    load = next(f for f in discover_raw_files(settings.raw_uri, LINES.source) if f.kind == "full_load")
    fs, path = filesystem_for(load.uri)
    fs.copy_file(path, path + ".again")
    fs.move(path + ".again", path)
    assert curate(LINES).files == 0


def test_ledger_is_in_the_table(settings: Settings, catalog: SqlCatalog, curate: Curate) -> None:
    write_order_history(settings)
    curate(LINES)
    props = catalog.load_table(LINES.identifier).properties
    assert props["abasto.ledger.last-lsn"] == "250" and props["abasto.ledger.files"] == "3"
    assert props["abasto.ledger.last-file"].startswith("cdc/2026-09-02/CDC-00000000000000C8-")
    lineage = applied_files(catalog.load_table(LINES.identifier))
    assert [(f.first_lsn, f.last_lsn) for f in lineage] == [(100, 100), (110, 140), (200, 250)]


def test_new_column_is_added_without_losing_rows(
    settings: Settings, catalog: SqlCatalog, curate: Curate
) -> None:
    write_order_history(settings)
    curate(LINES)
    with_discount = lines(("O5", 1, "COLA-600", 2, 2, "12.50")).append_column("discount_pct", pa.array([7.5]))
    write_cdc(settings.raw_uri, LINES.source, with_discount, ops=["I"], lsns=[300], commit_ts=at(60 * 48))
    result = curate(LINES)
    assert result.rows_upserted == 1
    state = current_state(catalog, LINES.identifier)
    assert set(state) == {*EXPECTED_LINES, ("O5", 1)}
    assert state[("O5", 1)]["discount_pct"] == 7.5
    assert all(state[k]["discount_pct"] is None for k in EXPECTED_LINES)
    # a later file without the column keeps it (null for the new image), widening int32 → int64 works
    wider = lines(("O6", 1, "COLA-600", 2, 2, "12.50")).set_column(
        3, "qty_ordered", pa.array([2**40], pa.int64())
    )
    write_cdc(settings.raw_uri, LINES.source, wider, ops=["I"], lsns=[310], commit_ts=at(60 * 49))
    curate(LINES)
    table = catalog.load_table(LINES.identifier)
    assert isinstance(table.schema().find_field("qty_ordered").field_type, LongType)
    state = current_state(catalog, LINES.identifier)
    assert state[("O6", 1)]["qty_ordered"] == 2**40 and state[("O6", 1)]["discount_pct"] is None
    assert len(state) == 5


def sellout(day: int, stores: int = 3, hours: int = 24, units: int = 1) -> pa.Table:
    rows = [
        (f"S{s}", "COLA-600", T0.replace(hour=0) + timedelta(days=day, hours=h), units, 50, False)
        for s in range(stores)
        for h in range(hours)
    ]
    return pa.Table.from_arrays(
        [pa.array(c, f.type) for c, f in zip(zip(*rows, strict=True), SELLOUT_SCHEMA, strict=True)],
        schema=SELLOUT_SCHEMA,
    )


def data_files(catalog: SqlCatalog, identifier: str) -> set[str]:
    return {task.file.file_path for task in catalog.load_table(identifier).scan().plan_files()}


def test_only_touched_partitions_are_rewritten(
    settings: Settings, catalog: SqlCatalog, curate: Curate
) -> None:
    write_full_load(
        settings.raw_uri,
        SELLOUT.source,
        pa.concat_tables([sellout(0), sellout(1), sellout(2)]),
        lsn=10,
        commit_ts=T0,
    )
    curate(SELLOUT)
    table = catalog.load_table(SELLOUT.identifier)
    assert [f.name for f in table.spec().fields] == ["hour_start_day"]
    assert isinstance(table.schema().find_field("hour_start").field_type, TimestamptzType)
    before = data_files(catalog, SELLOUT.identifier)
    assert len(before) == 3  # one file per day
    day1 = sellout(1).slice(5, 2)
    write_cdc(
        settings.raw_uri,
        SELLOUT.source,
        day1.set_column(3, "units_sold", pa.array([9, 9], pa.int32())),
        ops=["U", "U"],
        lsns=[20, 21],
        commit_ts=at(60 * 30),
    )
    result = curate(SELLOUT)
    after = data_files(catalog, SELLOUT.identifier)
    assert len(before & after) == 2 and len(after - before) == 1  # days 0 and 2 untouched
    summary = catalog.load_table(SELLOUT.identifier).current_snapshot().summary.additional_properties
    assert summary["added-data-files"] == "1" and summary["added-records"] == str(3 * 24)
    assert summary["total-records"] == str(3 * 3 * 24)
    assert result.rows_upserted == 2
    state = current_state(catalog, SELLOUT.identifier)
    assert sum(r["units_sold"] for r in state.values()) == 3 * 3 * 24 + 2 * 8
    # deleting every row of day 2 removes its partition and nothing else
    day2 = sellout(2)
    write_cdc(
        settings.raw_uri,
        SELLOUT.source,
        day2,
        ops=["D"] * day2.num_rows,
        lsns=[30] * day2.num_rows,
        commit_ts=at(60 * 31),
    )
    result = curate(SELLOUT)
    assert result.rows_deleted == 3 * 24
    remaining = data_files(catalog, SELLOUT.identifier)
    assert len(remaining) == 2 and remaining < after
    assert len(current_state(catalog, SELLOUT.identifier)) == 2 * 3 * 24


def test_update_moving_a_row_between_partitions(
    settings: Settings, catalog: SqlCatalog, curate: Curate
) -> None:
    spec = TableSpec(
        name="orders", source="sales_db/orders", keys=("order_id",), partition_by="month(order_date)"
    )
    schema = pa.schema([("order_id", pa.string()), ("order_date", pa.date32()), ("status", pa.string())])
    start = pa.table(
        {
            "order_id": ["A", "B", "C"],
            "order_date": [T0.date(), T0.date(), (T0 + timedelta(days=40)).date()],
            "status": ["open"] * 3,
        },
        schema=schema,
    )
    write_full_load(settings.raw_uri, spec.source, start, lsn=1, commit_ts=T0)
    curate(spec)
    moved = pa.table(
        {"order_id": ["A"], "order_date": [(T0 + timedelta(days=35)).date()], "status": ["moved"]},
        schema=schema,
    )
    gone = pa.table(
        {"order_id": ["C"], "order_date": pa.nulls(1, pa.date32()), "status": pa.nulls(1, pa.string())}
    )
    write_cdc(
        settings.raw_uri,
        spec.source,
        pa.concat_tables([moved, gone.cast(schema)]),
        ops=["U", "D"],
        lsns=[5, 6],
        commit_ts=at(1),
    )
    result = curate(spec)
    state = current_state(catalog, spec.identifier)
    assert {k[0]: r["status"] for k, r in state.items()} == {"A": "moved", "B": "open"}
    assert state[("A",)]["order_date"] == moved["order_date"][0].as_py()
    assert result.rows_deleted == 1


def test_contract_violations_are_reported(settings: Settings, curate: Curate) -> None:
    bad = lines(("O1", 1, "COLA-600", 1, 1, "1.00")).set_column(0, "order_id", pa.array([None], pa.string()))
    write_full_load(settings.raw_uri, LINES.source, bad, lsn=1, commit_ts=T0)
    result = curate(LINES)  # a record without its key cannot be merged: quarantined, the job goes on
    assert result.quality is not None and result.quality.failures == {"not_null:order_id,line_no": 1}
    assert result.rows_upserted == 0
    other = replace(LINES, name="lines_without_keys", keys=("nope",))
    with pytest.raises(InvalidInputError, match="nope"):
        curate(other)


def test_types_are_athena_safe(settings: Settings, catalog: SqlCatalog, curate: Curate) -> None:
    spec = TableSpec(name="skus", source="sales_db/skus", keys=("sku",))
    rows = pa.table(
        {
            "sku": pa.array(["A"], pa.large_string()),
            "size_ml": pa.array([600], pa.uint16()),
            "units_per_case": pa.array([24], pa.int8()),
            "updated_at": pa.array([T0], pa.timestamp("ns", tz="America/Mexico_City")),
            "brand": pa.array(["cola"]).dictionary_encode(),
            "empty": pa.nulls(1),
        }
    )
    write_full_load(settings.raw_uri, spec.source, rows, lsn=1, commit_ts=T0)
    curate(spec)
    schema = catalog.load_table(spec.identifier).schema()
    types = {f.name: type(f.field_type) for f in schema.fields}
    assert types == {
        "sku": StringType,
        "size_ml": IntegerType,
        "units_per_case": IntegerType,
        "updated_at": TimestamptzType,
        "brand": StringType,
    }
    row = catalog.load_table(spec.identifier).scan().to_arrow().to_pylist()[0]
    assert row["updated_at"] == T0 and row["size_ml"] == 600


def test_table_without_raw_files_is_left_alone(catalog: SqlCatalog, curate: Curate) -> None:
    result = curate(SALES_TABLES["regions"])
    assert (result.files, result.snapshot_id) == (0, None)
    assert not catalog.table_exists("curated.regions")


def test_missing_pyiceberg_core_is_a_config_error(
    settings: Settings, curate: Curate, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_core(*args: object, **kwargs: object) -> None:
        raise NotInstalledError("pyiceberg_core needs to be installed")

    monkeypatch.setattr(Transaction, "append", no_core)
    write_full_load(settings.raw_uri, SELLOUT.source, sellout(0), lsn=10, commit_ts=T0)
    with pytest.raises(ConfigError, match="pyiceberg_core") as caught:
        curate(SELLOUT)
    assert caught.value.hint == "pip install pyiceberg-core==0.10.1"


def test_the_merge_transaction_sees_its_own_updates(
    settings: Settings, catalog: SqlCatalog, curate: Curate
) -> None:
    """The merge's transaction computes its metadata once per state: the same object while nothing
    changes, a new one with every pending update or table refresh, equal to pyiceberg's own."""
    from abasto.lake.curate import _Transaction  # noqa: PLC0415

    write_order_history(settings)
    curate(LINES)
    table = catalog.load_table(LINES.identifier)
    tx = _Transaction(table)
    first = tx.table_metadata
    assert tx.table_metadata is first
    tx.set_properties({"abasto.test": "1"})
    updated = tx.table_metadata
    assert updated is not first and updated.properties["abasto.test"] == "1"
    fresh = Transaction.table_metadata.fget(tx)  # type: ignore[attr-defined]
    skip = {"last_updated_ms"}  # the time of each computation
    assert updated.model_dump(exclude=skip) == fresh.model_dump(exclude=skip)
    with tx.update_schema() as update:
        update.add_column("note", StringType())
    assert "note" in tx.table_metadata.schema().column_names
    tx.commit_transaction()
    table.refresh()
    assert table.properties["abasto.test"] == "1" and "note" in table.schema().column_names
