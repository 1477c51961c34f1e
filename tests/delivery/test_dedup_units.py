"""Cross-batch dedup state (pure): runs, horizon, order independence, persistence, row selection."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from delivery_helpers import events
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from abasto.contracts.events import encode_event
from abasto.delivery import DeliveryConfig, DeliveryMetrics, Ledger, decode_batch, part_name
from abasto.delivery.dedup import DedupStore, WrittenKeys, drop_written, keep_recorded, keys_of
from abasto.delivery.layout import LEDGER_DIR, manifest_name
from abasto.delivery.rows import RawMessage
from abasto.errors import InvalidInputError, TerminalError
from abasto.observability import DeliveryCollector, registry_of

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def test_written_keys_merge_runs_and_answer_membership() -> None:
    keys = WrittenKeys(window=1_000)
    keys.add({"d1": [(5, 7), (1, 2)], "d2": [(10, 10)]})
    keys.add({"d1": [(3, 4), (9, 9)]})
    assert keys.runs() == {"d1": [(1, 7), (9, 9)], "d2": [(10, 10)]}
    assert [s for s in range(0, 11) if keys.contains("d1", s)] == [1, 2, 3, 4, 5, 6, 7, 9]
    assert not keys.contains("d3", 1)
    assert len(keys) == 9
    assert keys.horizon("d1") == 9 - 1_000 and keys.horizon("d3") is None


def test_seqs_at_or_below_the_horizon_are_forgotten() -> None:
    keys = WrittenKeys(window=10)
    keys.add({"d": [(0, 5)]})
    keys.add({"d": [(20, 20)]})  # hwm 20: horizon 10, seqs ≤ 10 forgotten
    assert keys.runs() == {"d": [(20, 20)]}
    assert keys.beyond_horizon("d", 10) and not keys.beyond_horizon("d", 11)
    keys.add({"d": [(8, 14)]})  # a late run straddling the horizon keeps only its part above it
    assert keys.runs() == {"d": [(11, 14), (20, 20)]}
    assert not keys.beyond_horizon("other", 0)
    with pytest.raises(InvalidInputError):
        WrittenKeys(window=0)
    with pytest.raises(InvalidInputError, match="dedup_window"):
        DeliveryConfig(dedup_window=0)


def test_state_is_the_same_whatever_order_batches_are_added_in() -> None:
    rng = random.Random(7)
    batches = [
        {f"d{rng.randrange(3)}": [(s, s + rng.randrange(4))] for s in rng.sample(range(0, 400), 5)}
        for _ in range(40)
    ]
    window = 60
    union: dict[str, set[int]] = {}
    for b in batches:
        for device, runs in b.items():
            for start, end in runs:
                union.setdefault(device, set()).update(range(start, end + 1))
    expected = {d: {s for s in seqs if s > max(seqs) - window} for d, seqs in union.items()}
    states = []
    for _ in range(10):
        keys = WrittenKeys(window=window)
        for b in rng.sample(batches, len(batches)):
            keys.add(b)
        states.append(keys.to_state())
        held = {d: {s for s in range(0, 500) if keys.contains(d, s)} for d in union}
        assert held == expected
    assert all(s == states[0] for s in states)


def test_state_round_trips_through_its_file_and_a_corrupt_file_is_refused(tmp_path: Path) -> None:
    store = DedupStore((tmp_path / "written.json").as_uri())
    assert store.load() is None
    keys = WrittenKeys(window=50)
    keys.add({"d1": [(1, 40), (45, 49)], "d2": [(3, 3)]})
    store.save(keys.to_state())
    loaded = store.load()
    assert loaded is not None and loaded == keys.to_state()
    again = WrittenKeys(window=50)
    again.add_state(loaded)
    assert again.runs() == keys.runs()
    (tmp_path / "written.json").write_bytes(b"{not json")
    with pytest.raises(TerminalError, match="unreadable delivery dedup state"):
        store.load()


def _raw(seq: int, data: bytes) -> RawMessage:
    return RawMessage(seq, "pos.S0001.dev-S0001-1", data)


def test_rows_written_before_are_dropped_and_a_recorded_batch_keeps_only_its_keys() -> None:
    evs = events(8, step=timedelta(minutes=20))
    batch = decode_batch([_raw(i + 1, encode_event(e)) for i, e in enumerate(evs)], received_at=NOW)
    assert keys_of(batch) == {
        "dev-S0001-1": [(0, 0), (2, 2), (4, 4), (6, 6)],
        "dev-S0002-1": [(1, 1), (3, 3), (5, 5), (7, 7)],
    }

    written = WrittenKeys(window=3)
    # horizons: d1 at 1 (seq 0 is beyond it), d2 at 4 (seqs 1 and 3)
    written.add({"dev-S0001-1": [(2, 4)], "dev-S0002-1": [(7, 7)]})
    selection = drop_written(batch, written)
    assert selection.dropped == 3 and selection.beyond_horizon == 3
    assert keys_of(selection.batch) == {
        "dev-S0001-1": [(0, 0), (6, 6)],
        "dev-S0002-1": [(1, 1), (3, 3), (5, 5)],
    }
    assert selection.batch.rows == 5
    assert all(t.num_rows for t in selection.batch.partitions.values())  # emptied partitions vanish

    replayed = keep_recorded(batch, keys_of(selection.batch))
    assert replayed.dropped == 3
    assert {p: t.to_pylist() for p, t in replayed.batch.partitions.items()} == {
        p: t.to_pylist() for p, t in selection.batch.partitions.items()
    }


def test_cross_batch_counters_are_exposed_to_prometheus() -> None:
    metrics = DeliveryMetrics(duplicates=2, duplicates_across_batches=7, beyond_horizon=3)
    text = generate_latest(registry_of(DeliveryCollector(lambda: metrics))).decode()
    samples = {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples}
    assert samples["abasto_delivery_duplicates_across_batches_total"] == 7
    assert samples["abasto_delivery_beyond_horizon_total"] == 3
    assert metrics.duplicates_total == 9


def test_a_manifest_written_before_cross_batch_dedup_still_loads(tmp_path: Path) -> None:
    legacy = {
        "first_seq": 1,
        "last_seq": 3,
        "runs": [[1, 3]],
        "messages": 3,
        "files": {"date=2026-03-01/hour=22/" + part_name(1, 3): 3},
        "received_at": "2026-03-02T12:00:00Z",
        "first_digest": "0123456789abcdef",
    }
    ledger_dir = tmp_path / LEDGER_DIR
    ledger_dir.mkdir(parents=True)
    (ledger_dir / manifest_name(1, 3)).write_text(json.dumps(legacy))
    ledger = Ledger(tmp_path.as_uri())
    assert ledger.load() == 1
    (manifest,) = ledger.manifests()
    assert manifest.written is None and ledger.find(2) is manifest
