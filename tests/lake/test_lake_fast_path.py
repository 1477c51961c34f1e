"""The curate job's fast path (sort-based dedup, no merge onto empty partitions, split-free
append) gives exactly what the general path (DuckDB ranking, merge, ``Transaction.append``) gives."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import NotInstalledError
from pyiceberg.table import Transaction
from pyiceberg.transforms import DayTransform

import abasto.lake.append as append_module
import abasto.lake.curate as curate_module
from abasto.catalog import open_catalog
from abasto.errors import ConfigError
from abasto.lake import CurateResult, TableSpec, curate_table
from abasto.lake.ledger import Ledger, applied_files
from abasto.lake.merge import apply_latest, latest_per_key, latest_sorted
from abasto.lake.raw_files import FILE_INDEX
from abasto.lake.raw_writer import write_cdc, write_full_load
from abasto.settings import load_settings

T0 = datetime(2026, 10, 1, tzinfo=UTC)
KEYS = ("device_id", "seq")
SPEC = TableSpec(
    name="device_events_fast",
    source="devices/events",
    keys=KEYS,
    partition_by="day(event_time)",
    description="fast path test: device events",
)
SCHEMA = pa.schema(
    [
        ("device_id", pa.string()),
        ("seq", pa.int64()),
        ("event_time", pa.timestamp("us", tz="UTC")),
        ("type", pa.string()),
        ("qty", pa.int32()),
        ("price", pa.float64()),
    ]
)


def events(rows: list[tuple[str, int, datetime, str, int, float]]) -> pa.Table:
    columns = list(zip(*rows, strict=True))
    return pa.Table.from_arrays(
        [pa.array(c, f.type) for c, f in zip(columns, SCHEMA, strict=True)], schema=SCHEMA
    )


def day(d: int, minutes: int = 0) -> datetime:
    return T0 + timedelta(days=d, minutes=minutes)


def load_part(part: int, devices: int = 7, per_device: int = 5) -> pa.Table:
    """A full-load file's rows: devices 0..6, seq ``part``*100 + i, all on day 0."""
    return events(
        [
            (f"dev-{d}", part * 100 + i, day(0, d * 10 + i), "sale", d + i, 1.5 * (d + 1))
            for d in range(devices)
            for i in range(per_device)
        ]
    )


#: the writers of each step (full load, then CDC…): one curate run follows each
def write_history(raw_uri: str) -> list[Callable[[], object]]:
    def load() -> None:
        for part in (1, 2):  # two files of one load; later rows shuffled so the input is unsorted
            rows = load_part(part)
            rows = rows.take(pa.array(list(range(rows.num_rows))[::-1]))
            write_full_load(raw_uri, SPEC.source, rows, lsn=100, commit_ts=T0, part=part)

    def cdc_new_day() -> None:  # inserts into an empty partition (day 1), one key inserted twice
        write_cdc(
            raw_uri,
            SPEC.source,
            events(
                [
                    ("dev-9", 1, day(1, 5), "sale", 1, 2.0),
                    ("dev-9", 2, day(1, 6), "sale", 2, 2.0),
                    ("dev-9", 1, day(1, 7), "stock", 3, 2.5),
                ]
            ),
            ops=["I", "I", "U"],
            lsns=[200, 200, 201],
            seqs=[0, 1, 0],
            commit_ts=day(1),
        )

    def cdc_mixed() -> None:  # updates, a delete, a row moving between days, a new day again
        write_cdc(
            raw_uri,
            SPEC.source,
            events(
                [
                    ("dev-0", 100, day(0, 1), "sale", 99, 9.0),
                    ("dev-1", 101, day(0, 2), "sale", 0, 0.0),
                    ("dev-2", 102, day(2, 1), "moved", 5, 5.0),
                    ("dev-0", 100, day(0, 1), "sale", 100, 9.5),
                    ("dev-8", 1, day(3, 1), "sale", 1, 1.0),
                ]
            ),
            ops=["U", "D", "U", "U", "I"],
            lsns=[300, 300, 301, 302, 302],
            seqs=[0, 1, 0, 0, 1],
            commit_ts=day(3),
        )

    def replayed() -> None:  # a rewrite of an applied range: nothing changes
        write_cdc(
            raw_uri,
            SPEC.source,
            events([("dev-0", 100, day(0, 1), "sale", 100, 9.5)]),
            ops=["U"],
            lsns=[302],
            seqs=[0],
            commit_ts=day(3),
            split=1,
        )

    def truncate_and_insert() -> None:
        write_cdc(
            raw_uri,
            SPEC.source,
            pa.concat_tables(
                [
                    events([("dev-3", 103, day(0, 3), "sale", 7, 7.0)]),
                    pa.Table.from_arrays([pa.nulls(1, f.type) for f in SCHEMA], schema=SCHEMA),
                    events(
                        [("dev-5", 7, day(4, 0), "sale", 5, 5.0), ("dev-5", 8, day(4, 1), "sale", 6, 5.0)]
                    ),
                ]
            ),
            ops=["U", "T", "I", "I"],
            lsns=[400, 400, 400, 401],
            seqs=[0, 1, 2, 0],
            commit_ts=day(4),
        )

    def reload() -> None:  # a newer full load replaces the table; a change after it applies on top
        write_full_load(
            raw_uri, SPEC.source, load_part(3, devices=3, per_device=4), lsn=500, commit_ts=day(5)
        )
        write_cdc(
            raw_uri,
            SPEC.source,
            events([("dev-0", 300, day(0), "sale", 1, 1.0), ("dev-1", 301, day(0), "gone", 0, 0.0)]),
            ops=["U", "D"],
            lsns=[501, 502],
            commit_ts=day(5),
        )

    return [load, cdc_new_day, cdc_mixed, replayed, truncate_and_insert, reload]


def general_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """The job as it merged before the fast path: ranking in DuckDB, merge, Transaction.append."""

    def insert(latest: pa.Table, keys: tuple[str, ...], schema: pa.Schema) -> Any:
        return apply_latest(schema.empty_table(), latest, keys, schema)

    def append(tx: Transaction, io: object, rows: pa.Table, props: dict[str, str]) -> None:
        tx.append(rows, snapshot_properties=props)

    monkeypatch.setattr(curate_module, "latest_sorted", latest_per_key)
    monkeypatch.setattr(curate_module, "insert_latest", insert)
    monkeypatch.setattr(curate_module, "append_rows", append)


def observe(catalog: Catalog, result: CurateResult) -> dict[str, object]:
    table = catalog.load_table(SPEC.identifier)
    snap = table.current_snapshot()
    summary = dict(snap.summary.additional_properties) if snap and snap.summary else {}
    return {
        "result": (result.files, result.rows_in, result.rows_upserted, result.rows_deleted),
        "rows": table.scan().to_arrow(),
        "ledger": Ledger.from_properties(table.properties),
        "properties": dict(table.properties),
        "lineage": [(a.relpath, a.first_lsn, a.last_lsn) for a in applied_files(table)],
        "raw-files": summary.get("abasto.raw-files"),
        "snapshots": len(table.snapshots()),
        "schema": table.schema().as_arrow(),
        "partitions": sorted(str(t.file.partition) for t in table.scan().plan_files()),
    }


def run_history(home: Path) -> list[dict[str, object]]:
    settings = load_settings(home=home)
    catalog = open_catalog(settings)
    states = []
    for write in write_history(settings.raw_uri):
        write()
        result = curate_table(SPEC, catalog=catalog, raw_uri=settings.raw_uri)
        states.append(observe(catalog, result))
    return states


def test_fast_path_equals_general_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(append_module, "MIN_ROWS", 0)  # the split-free writer on small batches too
    calls = {"split_free": 0}
    single = append_module._single_partition

    def counted(metadata: Any, rows: pa.Table) -> Any:
        key = single(metadata, rows)
        calls["split_free"] += key is not None
        return key

    monkeypatch.setattr(append_module, "_single_partition", counted)
    fast = run_history(tmp_path / "fast")
    assert calls["split_free"] == 2  # the load (day 0) and the inserts into day 1
    with monkeypatch.context() as m:
        general_path(m)
        general = run_history(tmp_path / "general")
    assert len(fast) == len(general)
    for step, (f, g) in enumerate(zip(fast, general, strict=True)):
        for name in f:
            if name == "rows":
                assert f[name].equals(g[name]), f"step {step}: curated rows differ"  # type: ignore[attr-defined]
            else:
                assert f[name] == g[name], f"step {step}: {name} differs"
    first = fast[0]["rows"]
    assert isinstance(first, pa.Table)
    assert first.num_rows == 70
    assert first.select(list(KEYS)).equals(first.select(list(KEYS)).sort_by([(k, "ascending") for k in KEYS]))


def test_latest_sorted_equals_latest_per_key() -> None:
    rows = events(
        [
            ("b", 1, day(0), "x", 1, 1.0),
            ("a", 2, day(0), "x", 2, 1.0),
            ("b", 1, day(0), "y", 3, 1.0),
            ("a", 1, day(0), "x", 4, 1.0),
            ("b", 1, day(1), "z", 5, 1.0),
            ("a", 2, day(0), "w", 6, 1.0),
        ]
    )
    cdc = pa.table(
        {
            "Op": ["I", "I", "U", "I", "U", "D"],
            "_lsn": pa.array([1, 1, 2, 2, 2, 2], pa.int64()),
            "_seq": pa.array([0, 1, 0, 1, 0, 5], pa.int64()),
            FILE_INDEX: pa.array([0, 0, 0, 0, 1, 0], pa.int32()),
        }
    )
    changes = pa.Table.from_arrays(
        [*cdc.columns, *rows.columns], names=[*cdc.column_names, *rows.column_names]
    )
    order = [(k, "ascending") for k in KEYS]
    assert latest_sorted(changes, KEYS).equals(latest_per_key(changes, KEYS).sort_by(order))
    unique = changes.slice(0, 2)
    assert latest_sorted(unique, KEYS).equals(unique.sort_by(order))
    assert latest_sorted(changes.slice(0, 0), KEYS).num_rows == 0


def test_split_free_append_reports_missing_pyiceberg_core(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = load_settings(home=tmp_path / "home")
    catalog = open_catalog(settings)
    monkeypatch.setattr(append_module, "MIN_ROWS", 0)

    def no_core(*args: object, **kwargs: object) -> None:
        raise NotInstalledError("pyiceberg_core needs to be installed")

    monkeypatch.setattr(DayTransform, "pyarrow_transform", no_core)
    write_full_load(settings.raw_uri, SPEC.source, load_part(1), lsn=100, commit_ts=T0)
    with pytest.raises(ConfigError, match="pyiceberg_core"):
        curate_table(SPEC, catalog=catalog, raw_uri=settings.raw_uri)
