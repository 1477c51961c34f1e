"""The merge against a plain-Python model of "apply change records in commit order"."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from abasto.errors import InvalidInputError
from abasto.lake.merge import after_last_truncate, apply_latest, latest_per_key, replace_all
from abasto.lake.raw_files import FILE_INDEX

SCHEMA = pa.schema(
    [
        pa.field("k1", pa.string(), nullable=False),
        pa.field("k2", pa.int32(), nullable=False),
        ("v", pa.int64()),
    ]
)
KEYS = ("k1", "k2")

change = st.tuples(st.sampled_from("IUD"), st.sampled_from(["a", "b"]), st.integers(0, 2), st.integers(0, 99))
# files of changes; each file's records carry increasing LSNs, several records may share one LSN
files = st.lists(st.lists(st.tuples(change, st.booleans()), min_size=1, max_size=8), min_size=1, max_size=4)
initial = st.dictionaries(
    st.tuples(st.sampled_from(["a", "b"]), st.integers(0, 2)), st.integers(0, 99), max_size=6
)


def _changes(
    batch: list[list[tuple[tuple[str, str, int, int], bool]]],
) -> tuple[pa.Table, list[tuple[str, str, int, int]]]:
    rows: dict[str, list[object]] = {c: [] for c in ("Op", "_lsn", "_seq", FILE_INDEX, "k1", "k2", "v")}
    ordered = []
    lsn = 10
    for f, records in enumerate(batch):
        for seq, ((op, k1, k2, v), same_txn) in enumerate(records):
            lsn += 0 if same_txn and seq else 1
            for col, val in zip(rows, (op, lsn, seq, f, k1, k2, None if op == "D" else v), strict=True):
                rows[col].append(val)
            ordered.append((op, k1, k2, v))
    types = {
        "Op": pa.string(),
        "_lsn": pa.int64(),
        "_seq": pa.int64(),
        FILE_INDEX: pa.int32(),
        "k1": pa.string(),
        "k2": pa.int32(),
        "v": pa.int64(),
    }
    table = pa.table({c: pa.array(v, types[c]) for c, v in rows.items()})
    # shuffle physically: the merge must order by (_lsn, file, _seq), not by position
    return table.take(pa.array(list(range(table.num_rows))[::-1])), ordered


@settings(max_examples=80, deadline=None)
@given(initial, files)
def test_merge_equals_sequential_model(
    start: dict[tuple[str, int], int], batch: list[list[tuple[tuple[str, str, int, int], bool]]]
) -> None:
    changes, ordered = _changes(batch)
    model = dict(start)
    for op, k1, k2, v in ordered:
        if op == "D":
            model.pop((k1, k2), None)
        else:
            model[(k1, k2)] = v
    current = pa.table(
        {
            "k1": [k[0] for k in start],
            "k2": pa.array([k[1] for k in start], pa.int32()),
            "v": list(start.values()),
        },
        schema=SCHEMA,
    )
    latest = latest_per_key(changes, KEYS)
    assert latest.num_rows == len({(k1, k2) for _, k1, k2, _ in ordered})
    outcome = apply_latest(current, latest, KEYS, SCHEMA)
    got = {(r["k1"], r["k2"]): r["v"] for r in outcome.table.to_pylist()}
    assert got == model
    assert outcome.table.num_rows == len(got)  # no duplicate keys
    assert outcome.deleted == len(set(start) - set(model))
    assert outcome.table.column("k1").to_pylist() == sorted(outcome.table.column("k1").to_pylist())


def test_null_or_missing_key_is_rejected() -> None:
    changes = pa.table(
        {
            "Op": ["I"],
            "_lsn": [1],
            "_seq": [0],
            FILE_INDEX: pa.array([0], pa.int32()),
            "k1": [None],
            "k2": pa.array([1], pa.int32()),
        }
    )
    with pytest.raises(InvalidInputError, match="null key column 'k1'"):
        latest_per_key(changes, KEYS)
    with pytest.raises(InvalidInputError, match="k3"):
        latest_per_key(changes, ("k3",))


change_or_truncate = st.tuples(
    st.sampled_from("IUDT"), st.sampled_from(["a", "b"]), st.integers(0, 2), st.integers(0, 99)
)
files_with_truncates = st.lists(
    st.lists(st.tuples(change_or_truncate, st.booleans()), min_size=1, max_size=8), min_size=1, max_size=4
)


@settings(max_examples=80, deadline=None)
@given(initial, files_with_truncates)
def test_truncate_then_merge_equals_sequential_model(
    start: dict[tuple[str, int], int], batch: list[list[tuple[tuple[str, str, int, int], bool]]]
) -> None:
    changes, ordered = _changes(batch)
    is_t = pc.equal(changes["Op"], "T")
    # a T's image is all nulls, keys included
    changes = changes.set_column(4, "k1", pc.if_else(is_t, pa.scalar(None, pa.string()), changes["k1"]))
    changes = changes.set_column(5, "k2", pc.if_else(is_t, pa.scalar(None, pa.int32()), changes["k2"]))
    model = dict(start)
    for op, k1, k2, v in ordered:
        if op == "T":
            model.clear()
        elif op == "D":
            model.pop((k1, k2), None)
        else:
            model[(k1, k2)] = v
    current = pa.table(
        {
            "k1": [k[0] for k in start],
            "k2": pa.array([k[1] for k in start], pa.int32()),
            "v": list(start.values()),
        },
        schema=SCHEMA,
    )
    after, truncated = after_last_truncate(changes)
    assert truncated == any(op == "T" for op, *_ in ordered)
    assert "T" not in after.column("Op").to_pylist()
    latest = latest_per_key(after, KEYS)
    outcome = (replace_all if truncated else apply_latest)(current, latest, KEYS, SCHEMA)
    assert {(r["k1"], r["k2"]): r["v"] for r in outcome.table.to_pylist()} == model
    assert outcome.deleted == len(set(start) - set(model))
