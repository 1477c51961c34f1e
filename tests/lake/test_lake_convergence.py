"""CDC converges: after any insert/update/delete workload, the curated table equals the source."""

from __future__ import annotations

import tempfile
from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lake_builders import T0
from pyiceberg.catalog.sql import SqlCatalog

from abasto.catalog import open_catalog
from abasto.lake import TableSpec, curate_table
from abasto.lake.raw_writer import write_cdc, write_full_load
from abasto.settings import load_settings

SPEC = TableSpec(
    name="readings",
    source="sales_db/readings",
    keys=("store_id", "hour_start"),
    partition_by="day(hour_start)",
)
SCHEMA = pa.schema(
    [("store_id", pa.string()), ("hour_start", pa.timestamp("us", tz="UTC")), ("units", pa.int64())]
)

key = st.tuples(
    st.sampled_from(["S1", "S2"]), st.integers(0, 3)
)  # hour offsets 0..3 days * 20h: 4 partitions
record = st.tuples(st.sampled_from("IUD"), key, st.integers(0, 1000))
workload = st.lists(st.lists(record, min_size=1, max_size=6), min_size=1, max_size=5)


@pytest.mark.slow
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(workload, st.sampled_from([None, 1, 2]), st.integers(1, 3))
def test_curated_converges_to_source(
    files: list[list[tuple[str, tuple[str, int], int]]], max_files: int | None, runs: int
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        s = load_settings(home=Path(tmp) / "home")
        catalog = open_catalog(s)
        source: dict[tuple[str, int], int] = {}
        lsn = 1
        for written, records in enumerate(files, start=1):
            rows = {"store_id": [], "hour_start": [], "units": []}
            for op, (store, slot), units in records:
                rows["store_id"].append(store)
                rows["hour_start"].append(T0 + timedelta(hours=20 * slot))
                rows["units"].append(None if op == "D" else units)
                if op == "D":
                    source.pop((store, slot), None)
                else:
                    source[(store, slot)] = units
            lsns = list(range(lsn, lsn + len(records)))
            lsn += len(records)
            write_cdc(
                s.raw_uri,
                SPEC.source,
                pa.table(rows, schema=SCHEMA),
                ops=[r[0] for r in records],
                lsns=lsns,
                commit_ts=T0,
            )
            if written % runs == 0:  # curate every `runs` files: interleaves writer and job
                curate_table(SPEC, catalog=catalog, raw_uri=s.raw_uri, max_files=max_files)
        curate_table(SPEC, catalog=catalog, raw_uri=s.raw_uri, max_files=max_files)
        if not catalog.table_exists(SPEC.identifier):
            assert not source
            return
        got = catalog.load_table(SPEC.identifier).scan().to_arrow().to_pylist()
        assert {
            (r["store_id"], int((r["hour_start"] - T0) / timedelta(hours=20))): r["units"] for r in got
        } == source
        assert len(got) == len(source)


# a step of the source: a CDC batch (records, each starting a new transaction or not, and where a
# schema change splits the batch's file), or a reload (`abasto cdc full-load --reload`)
cdc_record = st.tuples(st.sampled_from("IIUUDDT"), key, st.integers(0, 1000), st.booleans())
cdc_step = st.tuples(st.just("cdc"), st.lists(cdc_record, min_size=1, max_size=5), st.integers(0, 4))
reload_step = st.tuples(st.just("reload"), st.just([]), st.just(0))
steps = st.lists(st.tuples(st.one_of(cdc_step, reload_step), st.booleans()), min_size=1, max_size=6)


def _rows(images: list[tuple[str | None, int | None, int | None]]) -> pa.Table:
    return pa.table(
        {
            "store_id": [store for store, _, _ in images],
            "hour_start": [
                None if slot is None else T0 + timedelta(hours=20 * slot) for _, slot, _ in images
            ],
            "units": [units for _, _, units in images],
        },
        schema=SCHEMA,
    )


def _curated(catalog: SqlCatalog) -> dict[tuple[str, int], int]:
    if not catalog.table_exists(SPEC.identifier):
        return {}
    got = catalog.load_table(SPEC.identifier).scan().to_arrow().to_pylist()
    state = {(r["store_id"], int((r["hour_start"] - T0) / timedelta(hours=20))): r["units"] for r in got}
    assert len(state) == len(got)
    return state


@pytest.mark.slow
@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps, st.sampled_from([None, 1, 2]))
def test_curated_converges_through_truncates_splits_and_reloads(
    plan: list[tuple[tuple[str, list[tuple[str, tuple[str, int], int, bool]], int], bool]],
    max_files: int | None,
) -> None:
    """Whenever the job runs it sees every file written so far: the curated table equals the source."""
    with tempfile.TemporaryDirectory() as tmp:
        s = load_settings(home=Path(tmp) / "home")
        catalog = open_catalog(s)
        source: dict[tuple[str, int], int] = {}
        lsn = 0
        for (kind, records, split_at), run in plan:
            lsn += 1
            if kind == "reload":
                images = [(store, slot, units) for (store, slot), units in sorted(source.items())]
                write_full_load(s.raw_uri, SPEC.source, _rows(images), lsn=lsn, commit_ts=T0)
            else:
                ops, lsns, seqs, images = [], [], [], []
                seq = 0
                for i, (op, (store, slot), units, new_txn) in enumerate(records):
                    if i and new_txn:
                        lsn, seq = lsn + 1, 0
                    ops.append(op)
                    lsns.append(lsn)
                    seqs.append(seq)
                    seq += 1
                    if op == "T":
                        source.clear()
                        images.append((None, None, None))
                    elif op == "D":
                        source.pop((store, slot), None)
                        images.append((store, slot, None))
                    else:
                        source[(store, slot)] = units
                        images.append((store, slot, units))
                cut = split_at if 0 < split_at < len(records) else len(records)
                parts = [(0, cut), (cut, len(records))] if cut < len(records) else [(0, cut)]
                names: set[tuple[int, int]] = set()
                for a, b in parts:  # as the capture names them: a second file of one range gets _1
                    split = 1 if (lsns[a], lsns[b - 1]) in names else 0
                    names.add((lsns[a], lsns[b - 1]))
                    write_cdc(
                        s.raw_uri,
                        SPEC.source,
                        _rows(images[a:b]),
                        ops=ops[a:b],
                        lsns=lsns[a:b],
                        seqs=seqs[a:b],
                        commit_ts=T0,
                        split=split,
                    )
            if run:
                curate_table(SPEC, catalog=catalog, raw_uri=s.raw_uri, max_files=max_files)
                assert _curated(catalog) == source
        last = curate_table(SPEC, catalog=catalog, raw_uri=s.raw_uri, max_files=max_files)
        assert _curated(catalog) == source
        again = curate_table(SPEC, catalog=catalog, raw_uri=s.raw_uri, max_files=max_files)
        assert (again.files, again.snapshot_id) == (0, last.snapshot_id)
