"""The engine's outputs on recorded replays are bit-identical to a golden run.

The golden digests were computed from the engine as it stood before its per-event cost was cut
(caches, skipped re-checks, integer arithmetic): every alert's bytes, every dead letter, the
metrics and the engine snapshot (which decides every later output) must stay the same, for a
generated live day sent one event at a time (with re-sent and late events), the same day in
batched records, and several consecutive days (midnights, deliveries, episodes).
"""

from __future__ import annotations

import functools
import hashlib
from datetime import timedelta

import pytest
from checkpoint_world import LiveDay, live_day

from abasto.contracts.alerts import Alert, encode_alert
from abasto.contracts.events import DeviceEvent, encode_event
from abasto.devices.batching import batch_events, batch_messages
from abasto.devices.simulator import expand_day
from abasto.realtime.engine import Engine, Output
from abasto.realtime.snapshot import MetricsSnapshot, encode_snapshot
from abasto.stream.topology import pos_subject

STORES = 30


@functools.cache
def _day() -> LiveDay:
    return live_day(STORES)


def _with_replays(events: list[DeviceEvent]) -> list[DeviceEvent]:
    """Re-sent events (duplicates) and events held back behind their store's watermark (late)."""
    out: list[DeviceEvent] = []
    held: list[tuple[int, DeviceEvent]] = []
    for i, e in enumerate(events):
        if i % 89 == 40:
            held.append((i + 300, e))
            continue
        out.append(e)
        if i % 47 == 5:
            out.append(e)
        while held and held[0][0] <= i:
            out.append(held.pop(0)[1])
    return out + [e for _, e in held]


def _single(events: list[DeviceEvent]) -> list[tuple[str, bytes]]:
    return [(pos_subject(e.store_id, e.device_id), encode_event(e)) for e in events]


def _batched(events: list[DeviceEvent]) -> list[tuple[str, bytes]]:
    msgs = batch_messages(batch_events(events, window=timedelta(minutes=20), max_events=200))
    return [(m.subject, m.data) for m in msgs]


def _several_days(days: int) -> list[DeviceEvent]:
    world = _day().world
    return expand_day(
        hourly=world.hourly,
        stores=world.stores,
        skus=world.skus,
        day_start=world.live_start - timedelta(days=days - 1),
        day_end=world.live_end,
        seed=5,
    )


def _output_bytes(o: Output) -> bytes:
    if isinstance(o, Alert):
        return b"A" + encode_alert(o)
    return b"D" + repr((o.subject, o.data, o.reason, o.detail, o.index)).encode()


def digest(engine: Engine, msgs: list[tuple[str, bytes]]) -> str:
    """sha256 of every output in order, then the metrics and the snapshot, halfway and at the end."""
    h = hashlib.sha256()
    half = len(msgs) // 2
    for k, (subject, data) in enumerate(msgs):
        for o in engine.process(subject, data):
            h.update(_output_bytes(o))
        if k == half:
            h.update(encode_snapshot(engine.snapshot()))
    h.update(repr(MetricsSnapshot.of(engine.metrics)).encode())
    h.update(repr(engine.metrics.evaluations).encode())
    h.update(encode_snapshot(engine.snapshot()))
    return h.hexdigest()


def scenarios() -> dict[str, list[tuple[str, bytes]]]:
    live = _with_replays(list(_day().events))
    return {
        "live_day_single": _single(live),
        "live_day_batched": _batched(list(_day().events)),
        "three_days_single": _single(_several_days(3)),
    }


GOLDEN = {
    "live_day_single": "f59d0c2eb2079d0b9ecaa394372969da48f484239663dab007e22209e72d4309",
    "live_day_batched": "ac29152049192e29e3e7ef4a08f0af8924141409ba67b9bc429c3760bdb2c8f4",
    "three_days_single": "84a4be4cb4b8643b8070ea7afa36f10caf1af7e6d4d1c3117883703d98ad7700",
}


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_replay_outputs_are_bit_identical_to_the_golden_run(name: str) -> None:
    msgs = scenarios()[name]
    assert len(msgs) > 1_000, "the replay must be a real day's traffic"
    assert digest(_day().engine(), msgs) == GOLDEN[name]
