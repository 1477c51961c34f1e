from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from lake_builders import T0, at

from abasto.errors import InvalidInputError
from abasto.lake.raw_files import FILE_INDEX, RawFile, discover_raw_files, read_changes
from abasto.lake.raw_writer import write_cdc, write_full_load
from abasto.lake.storage import join_uri
from abasto.settings import Settings

SRC = "sales_db/skus"


def test_parse_names_and_processing_order() -> None:
    load2 = RawFile.parse("full_load/LOAD-0000000000000100-00002.parquet")
    load1 = RawFile.parse("full_load/LOAD-0000000000000100-00001.parquet")
    late = RawFile.parse("cdc/2026-09-02/CDC-0000000000000200-0000000000000300.parquet")
    early = RawFile.parse("cdc/2026-09-01/CDC-0000000000000101-00000000000001FF.parquet")
    assert (load1.kind, load1.first_lsn, load1.last_lsn, load1.part) == ("full_load", 0x100, 0x100, 1)
    assert (late.kind, late.first_lsn, late.last_lsn) == ("cdc", 0x200, 0x300)
    ordered = sorted([late, load2, early, load1], key=lambda f: f.order_key)
    assert ordered == [load1, load2, early, late]
    for bad in ("cdc/CDC-01-02.parquet", "full_load/x.parquet", "other/LOAD-0000000000000100-00001.parquet"):
        with pytest.raises(InvalidInputError, match="unexpected file"):
            RawFile.parse(bad)
    with pytest.raises(InvalidInputError, match="last LSN before first"):
        RawFile.parse("cdc/2026-09-01/CDC-0000000000000200-0000000000000100.parquet")


def test_split_files_sort_after_the_unsuffixed_one_by_k() -> None:
    name = "cdc/2026-09-01/CDC-0000000000000200-0000000000000200{}.parquet"
    plain, one, two, ten = (RawFile.parse(name.format(s)) for s in ("", "_1", "_2", "_10"))
    assert (plain.split, one.split, ten.split) == (0, 1, 10)
    assert (ten.kind, ten.first_lsn, ten.last_lsn) == ("cdc", 0x200, 0x200)
    before = RawFile.parse("cdc/2026-09-01/CDC-0000000000000100-0000000000000200.parquet")
    after = RawFile.parse("cdc/2026-09-01/CDC-0000000000000200-0000000000000300.parquet")
    ordered = sorted([ten, after, two, plain, one, before], key=lambda f: f.order_key)
    assert ordered == [before, plain, one, two, ten, after]  # _10 after _2: by number, not by name
    for bad in ("_0", "_", "_x", "_01"):
        with pytest.raises(InvalidInputError, match="unexpected file"):
            RawFile.parse(name.format(bad))


def test_a_reload_sorts_after_the_changes_it_replaces() -> None:
    first_load = RawFile.parse("full_load/LOAD-0000000000000100-00001.parquet")
    old = RawFile.parse("cdc/2026-09-01/CDC-0000000000000101-00000000000001FF.parquet")
    at_reload = RawFile.parse("cdc/2026-09-01/CDC-0000000000000250-0000000000000300.parquet")
    reload1 = RawFile.parse("full_load/LOAD-0000000000000300-00001.parquet")
    reload2 = RawFile.parse("full_load/LOAD-0000000000000300-00002.parquet")
    new = RawFile.parse("cdc/2026-09-02/CDC-0000000000000301-0000000000000400.parquet")
    shuffled = [new, reload2, at_reload, first_load, reload1, old]
    assert sorted(shuffled, key=lambda f: f.order_key) == [first_load, old, at_reload, reload1, reload2, new]


def test_discover_orders_by_lsn_and_rejects_strangers(settings: Settings) -> None:
    rows = pa.table({"sku": ["A"], "price": [1.0]})
    write_cdc(settings.raw_uri, SRC, rows, ops=["U"], lsns=[300], commit_ts=at(60 * 30))
    write_cdc(settings.raw_uri, SRC, rows, ops=["U"], lsns=[200], commit_ts=at(5))
    write_full_load(settings.raw_uri, SRC, rows, lsn=100, commit_ts=T0)
    found = discover_raw_files(settings.raw_uri, SRC)
    assert [(f.kind, f.first_lsn) for f in found] == [("full_load", 100), ("cdc", 200), ("cdc", 300)]
    pq.write_table(rows, join_uri(settings.raw_uri, SRC, "cdc", "stray.parquet").removeprefix("file://"))
    with pytest.raises(InvalidInputError, match="stray"):
        discover_raw_files(settings.raw_uri, SRC)


def test_read_changes_unites_columns_by_name(settings: Settings) -> None:
    a = write_full_load(
        settings.raw_uri,
        SRC,
        pa.table({"sku": ["A"], "price": pa.array([1], pa.int8())}),
        lsn=1,
        commit_ts=T0,
    )
    b = write_cdc(
        settings.raw_uri,
        SRC,
        pa.table({"sku": ["B"], "price": pa.array([2], pa.int64()), "brand": ["cola"]}),
        ops=["I"],
        lsns=[2],
        commit_ts=at(1),
    )
    changes = read_changes([a, b])
    assert changes.column_names[:4] == ["Op", "_lsn", "_commit_ts", "_seq"]
    assert changes.schema.field("price").type == pa.int64()
    assert changes.column("brand").to_pylist() == [None, "cola"]
    assert changes.column(FILE_INDEX).to_pylist() == [0, 1]


def test_read_changes_accepts_truncates_and_split_files(settings: Settings) -> None:
    rows = pa.table({"sku": ["A"], "price": [1.0]})
    truncate = pa.table({"sku": pa.nulls(1, pa.string()), "price": pa.nulls(1, pa.float64())})
    first = write_cdc(
        settings.raw_uri,
        SRC,
        pa.concat_tables([rows, truncate]),
        ops=["U", "T"],
        lsns=[7, 7],
        commit_ts=at(1),
    )
    second = write_cdc(
        settings.raw_uri,
        SRC,
        rows.append_column("brand", pa.array(["cola"])),
        ops=["I"],
        lsns=[7],
        seqs=[2],
        commit_ts=at(1),
        split=1,
    )
    assert second.relpath == "cdc/2026-09-01/CDC-0000000000000007-0000000000000007_1.parquet"
    assert discover_raw_files(settings.raw_uri, SRC) == [first, second]
    changes = read_changes([first, second])
    assert changes.column("Op").to_pylist() == ["U", "T", "I"]
    assert changes.column("_seq").to_pylist() == [0, 1, 2]
    assert changes.column("sku").to_pylist() == ["A", None, "A"]


def test_read_changes_rejects_broken_files(settings: Settings) -> None:
    bad_op = write_full_load(settings.raw_uri, SRC, pa.table({"sku": ["A"]}), lsn=1, commit_ts=T0)
    table = pq.read_table(bad_op.uri.removeprefix("file://"))
    pq.write_table(table.set_column(0, "Op", pa.array(["X"])), bad_op.uri.removeprefix("file://"))
    with pytest.raises(InvalidInputError, match=r"unknown Op 'X' \(expected I, U, D or T\)"):
        read_changes([bad_op])
    pq.write_table(table.drop_columns(["_seq"]), bad_op.uri.removeprefix("file://"))
    with pytest.raises(InvalidInputError, match="_seq"):
        read_changes([bad_op])
