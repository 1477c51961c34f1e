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

from abasto.catalog import open_catalog
from abasto.lake import TableSpec, curate_table
from abasto.lake.raw_writer import write_cdc
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
