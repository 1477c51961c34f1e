"""Unreadable raw files and the quarantine's idempotence: the job records, skips and goes on;
re-runs and replays record nothing twice and change no table."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from lake_builders import ORDER_LINES_SCHEMA, T0, at
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.exceptions import CommitFailedException

import abasto.lake.curate as curate_module
from abasto.errors import TransientError
from abasto.lake import SALES_TABLES, CurateResult, quality
from abasto.lake.ledger import Ledger
from abasto.lake.quality import QUARANTINE_TABLE, bad_file_row, quarantine_new_rows
from abasto.lake.raw_files import RawFile
from abasto.lake.raw_writer import cdc_relpath, write_cdc, write_full_load
from abasto.lake.storage import join_uri
from abasto.settings import Settings

Curate = Callable[..., CurateResult]
LINES = SALES_TABLES["order_lines"]
NOW = T0 + timedelta(hours=1)


def lines(*rows: tuple[str, int, int]) -> pa.Table:
    """(order, line, quantity) lines of SKU ``A`` at 1.00."""
    return pa.Table.from_pylist(
        [
            {
                "order_id": o,
                "line_no": n,
                "sku": "A",
                "qty_ordered": q,
                "qty_delivered": q,
                "unit_price": Decimal("1.00"),
            }
            for o, n, q in rows
        ],
        schema=ORDER_LINES_SCHEMA,
    )


def cdc(settings: Settings, lsn: int, *rows: tuple[str, int, int]) -> RawFile:
    n = len(rows)
    return write_cdc(
        settings.raw_uri, LINES.source, lines(*rows), ops=["I"] * n, lsns=[lsn] * n, commit_ts=at(lsn)
    )


def local(raw: RawFile) -> Path:
    return Path(raw.uri.removeprefix("file://"))


def truncate_in_half(raw: RawFile) -> None:
    path = local(raw)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def garbage_file(settings: Settings, lsn: int) -> RawFile:
    rel = cdc_relpath(lsn, lsn, "2026-09-01")
    path = Path(join_uri(settings.raw_uri, LINES.source, rel).removeprefix("file://"))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"PAR1 this is not parquet at all " * 40)
    return RawFile.parse(rel, path.as_uri())


def quarantined(catalog: SqlCatalog) -> list[tuple[object, ...]]:
    if not catalog.table_exists(QUARANTINE_TABLE):
        return []
    rows = catalog.load_table(QUARANTINE_TABLE).scan().to_arrow().to_pylist()
    return sorted((r["rule"], r["source_file"], r["row_json"]) for r in rows)


def keys(catalog: SqlCatalog) -> list[tuple[str, int]]:
    rows = catalog.load_table(LINES.identifier).scan(selected_fields=("order_id", "line_no")).to_arrow()
    return sorted(zip(rows["order_id"].to_pylist(), rows["line_no"].to_pylist(), strict=True))


def snapshot(catalog: SqlCatalog) -> tuple[int | None, int]:
    table = catalog.load_table(LINES.identifier)
    snap = table.current_snapshot()
    quarantine = (
        catalog.load_table(QUARANTINE_TABLE).current_snapshot()
        if catalog.table_exists(QUARANTINE_TABLE)
        else None
    )
    return (snap.snapshot_id if snap else None, quarantine.snapshot_id if quarantine else 0)


def test_corrupt_and_truncated_files_are_quarantined_and_the_next_files_apply(
    settings: Settings, catalog: SqlCatalog, curate: Curate
) -> None:
    cdc(settings, 10, ("O1", 1, 5))
    curate(LINES, now=NOW)
    garbage = garbage_file(settings, 20)
    cut = cdc(settings, 30, ("O2", 1, 5))
    truncate_in_half(cut)
    cdc(settings, 40, ("O3", 1, 5), ("O3", 2, -1))

    result = curate(LINES, now=NOW, run_id="r1")

    assert result.files == 3 and keys(catalog) == [("O1", 1), ("O3", 1)]  # nothing curated was lost
    assert result.quality is not None
    assert set(result.quality.unreadable_files) == {garbage.relpath, cut.relpath}
    assert "not readable Parquet" in result.quality.unreadable_files[cut.relpath]
    assert result.quality.failures == {"non_negative:qty_ordered,qty_delivered,unit_price": 1}
    rows = quarantined(catalog)
    assert [(r[0], r[1], r[2]) for r in rows if r[0] == "unreadable_file"] == [
        ("unreadable_file", garbage.relpath, "{}"),
        ("unreadable_file", cut.relpath, "{}"),
    ]
    assert len(rows) == 3
    ledger = Ledger.from_properties(catalog.load_table(LINES.identifier).properties)
    assert ledger.files == 4 and ledger.pending([garbage, cut]) == []  # handled: never blocks the table

    before = snapshot(catalog)
    again = curate(LINES, now=NOW)
    assert again.files == 0 and snapshot(catalog) == before and quarantined(catalog) == rows


def test_files_without_change_columns_or_with_uncastable_types_are_quarantined(
    settings: Settings, catalog: SqlCatalog, curate: Curate
) -> None:
    cdc(settings, 10, ("O1", 1, 5))
    curate(LINES, now=NOW)
    no_op = cdc(settings, 20, ("O2", 1, 5))
    pq.write_table(pq.read_table(local(no_op)).drop_columns(["Op", "_seq"]), local(no_op))
    words = cdc(settings, 30, ("O3", 1, 5))
    table = pq.read_table(local(words))
    column = table.column_names.index("qty_ordered")
    pq.write_table(table.set_column(column, "qty_ordered", pa.array(["five"])), local(words))
    digits = cdc(settings, 40, ("O4", 1, 5))
    table = pq.read_table(local(digits))
    pq.write_table(table.set_column(column, "qty_ordered", pa.array(["7"])), local(digits))
    wider = cdc(settings, 50, ("O5", 1, 5))
    table = pq.read_table(local(wider))
    extra = table.append_column("promo_code", pa.array(["SUMMER"]))
    pq.write_table(extra.set_column(column, "qty_ordered", pa.array([2**40], pa.int64())), local(wider))

    result = curate(LINES, now=NOW)

    assert result.quality is not None
    reasons = result.quality.unreadable_files
    assert set(reasons) == {no_op.relpath, words.relpath}
    assert "lacks change-record columns ['Op', '_seq']" in reasons[no_op.relpath]
    assert "column 'qty_ordered' is string, which cannot be cast to int32" in reasons[words.relpath]
    assert keys(catalog) == [("O1", 1), ("O4", 1), ("O5", 1)]
    table = catalog.load_table(LINES.identifier)
    rows = {r["order_id"]: r for r in table.scan().to_arrow().to_pylist()}
    assert rows["O4"]["qty_ordered"] == 7  # a castable value is cast
    assert rows["O5"]["qty_ordered"] == 2**40 and rows["O5"]["promo_code"] == "SUMMER"  # evolution as before
    assert rows["O1"]["promo_code"] is None


def test_an_unreadable_reload_replaces_nothing(
    settings: Settings, catalog: SqlCatalog, curate: Curate
) -> None:
    write_full_load(settings.raw_uri, LINES.source, lines(("O1", 1, 5), ("O2", 1, 5)), lsn=10, commit_ts=T0)
    curate(LINES, now=NOW)
    reload = write_full_load(settings.raw_uri, LINES.source, lines(("O9", 1, 5)), lsn=20, commit_ts=at(5))
    truncate_in_half(reload)
    cdc(settings, 30, ("O3", 1, 5))

    result = curate(LINES, now=NOW)

    assert result.quality is not None and list(result.quality.unreadable_files) == [reload.relpath]
    assert keys(catalog) == [("O1", 1), ("O2", 1), ("O3", 1)]
    assert Ledger.from_properties(catalog.load_table(LINES.identifier).properties).load_lsn == 10


def test_a_reload_missing_a_part_is_merged_not_replacing(
    settings: Settings, catalog: SqlCatalog, curate: Curate
) -> None:
    write_full_load(settings.raw_uri, LINES.source, lines(("O1", 1, 5), ("O2", 1, 5)), lsn=10, commit_ts=T0)
    curate(LINES, now=NOW)
    write_full_load(settings.raw_uri, LINES.source, lines(("O1", 1, 6)), lsn=20, commit_ts=at(5), part=1)
    lost = write_full_load(
        settings.raw_uri, LINES.source, lines(("O2", 1, 6)), lsn=20, commit_ts=at(5), part=2
    )
    truncate_in_half(lost)

    result = curate(LINES, now=NOW)

    assert result.quality is not None and list(result.quality.unreadable_files) == [lost.relpath]
    table = catalog.load_table(LINES.identifier)
    qty = {r["order_id"]: r["qty_ordered"] for r in table.scan().to_arrow().to_pylist()}
    assert qty == {"O1": 6, "O2": 5}  # O2 kept its last good image instead of being deleted


def test_a_first_batch_of_only_unreadable_files_is_recorded_once(
    settings: Settings, catalog: SqlCatalog, curate: Curate
) -> None:
    garbage = garbage_file(settings, 5)
    first = curate(LINES, now=NOW)
    assert first.quality is not None and list(first.quality.unreadable_files) == [garbage.relpath]
    assert not catalog.table_exists(
        LINES.identifier
    )  # no schema to create it from: nothing to hold the ledger
    again = curate(LINES, now=NOW)  # the file is met again, but recorded only once
    assert again.quality is not None and list(again.quality.unreadable_files) == [garbage.relpath]
    assert len(quarantined(catalog)) == 1

    cdc(settings, 10, ("O1", 1, 5))
    applied = curate(LINES, now=NOW)
    assert applied.files == 2 and keys(catalog) == [("O1", 1)]
    assert curate(LINES, now=NOW).files == 0 and len(quarantined(catalog)) == 1


def test_garbage_after_the_table_exists_advances_the_ledger_alone(
    settings: Settings, catalog: SqlCatalog, curate: Curate
) -> None:
    cdc(settings, 10, ("O1", 1, 5))
    curate(LINES, now=NOW)
    data_snapshot = catalog.load_table(LINES.identifier).current_snapshot()
    garbage = garbage_file(settings, 20)
    result = curate(LINES, now=NOW)
    table = catalog.load_table(LINES.identifier)
    assert result.files == 1 and Ledger.from_properties(table.properties).pending([garbage]) == []
    assert table.current_snapshot() == data_snapshot  # no data commit, only the ledger
    assert curate(LINES, now=NOW).files == 0 and len(quarantined(catalog)) == 1


def test_a_commit_failing_after_the_quarantine_records_nothing_twice(
    settings: Settings, catalog: SqlCatalog, curate: Curate, monkeypatch: pytest.MonkeyPatch
) -> None:
    cdc(settings, 10, ("O1", 1, 5), ("O1", 2, -5))
    garbage_file(settings, 20)
    real = curate_module._commit_batch

    def fail(*args: object, **kwargs: object) -> tuple[int, int]:
        raise TransientError("simulated: another writer committed meanwhile")

    monkeypatch.setattr(curate_module, "_commit_batch", fail)
    with pytest.raises(TransientError):
        curate(LINES, now=NOW)
    recorded = quarantined(catalog)
    assert [r[0] for r in recorded] == [
        "non_negative:qty_ordered,qty_delivered,unit_price",
        "unreadable_file",
    ]

    monkeypatch.setattr(curate_module, "_commit_batch", real)
    result = curate(LINES, now=NOW)  # the retry sees the same rows and files
    assert result.quality is not None and result.quality.rows_quarantined == 1
    assert quarantined(catalog) == recorded and keys(catalog) == [("O1", 1)]


def test_replays_quarantine_nothing_twice(settings: Settings, catalog: SqlCatalog, curate: Curate) -> None:
    first = cdc(settings, 10, ("O1", 1, 5), ("O1", 2, -5))
    cdc(settings, 20, ("O2", 1, 5))
    curate(LINES, now=NOW)
    before, recorded = snapshot(catalog), quarantined(catalog)
    assert len(recorded) == 1

    local(first).write_bytes(local(first).read_bytes())  # a file delivered again
    same = curate(LINES, now=NOW)
    assert same.files == 0 and snapshot(catalog) == before and quarantined(catalog) == recorded

    # a writer restart rewrites the range 10..30 into one file: only the change at 30 is new
    rows = lines(("O1", 1, 5), ("O1", 2, -5), ("O2", 1, 5), ("O4", 1, 5))
    write_cdc(
        settings.raw_uri,
        LINES.source,
        rows,
        ops=["I"] * 4,
        lsns=[10, 10, 20, 30],
        seqs=[0, 1, 0, 0],
        commit_ts=at(30),
    )
    replay = curate(LINES, now=NOW)

    assert replay.files == 1 and replay.rows_upserted == 1
    assert replay.quality is not None and replay.quality.rows_checked == 1 and replay.quality.failures == {}
    assert quarantined(catalog) == recorded
    assert keys(catalog) == [("O1", 1), ("O2", 1), ("O4", 1)]


def test_a_lost_race_on_the_quarantine_table_is_retried(
    settings: Settings, catalog: SqlCatalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = bad_file_row(LINES.identifier, "cdc/x.parquet", "garbage", run_id=None, now=NOW)
    assert quarantine_new_rows(catalog, rows) == 1
    other = bad_file_row(LINES.identifier, "cdc/y.parquet", "garbage", run_id=None, now=NOW)
    real, calls = quality.quarantine_rows, []

    def racing(catalog_: SqlCatalog, failed: pa.Table) -> int:
        calls.append(failed.num_rows)
        if len(calls) == 1:  # another job commits in between; this commit loses
            real(catalog_, failed)
            raise CommitFailedException("metadata location changed")
        return real(catalog_, failed)

    monkeypatch.setattr(quality, "quarantine_rows", racing)
    assert quarantine_new_rows(catalog, pa.concat_tables([rows, other])) == 0  # the winner wrote y
    assert calls == [1, 0] and len(quarantined(catalog)) == 2

    def always_losing(catalog_: SqlCatalog, failed: pa.Table) -> int:
        raise CommitFailedException("busy")

    monkeypatch.setattr(quality, "quarantine_rows", always_losing)
    fresh = bad_file_row(LINES.identifier, "cdc/z.parquet", "garbage", run_id=None, now=NOW)
    with pytest.raises(TransientError, match="concurrent commits"):
        quarantine_new_rows(catalog, fresh)
