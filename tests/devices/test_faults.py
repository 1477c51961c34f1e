"""Fault injection for the simulator: rates, determinism, and the realtime engine agreeing with the
manifest on every injected fault (duplicates once, malformed → dead letters with the reason,
spoofed store → store_mismatch, far future → future_timestamp), without ever raising."""

from __future__ import annotations

import math
import sys
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from abasto.contracts.events import (
    MAX_FUTURE_SKEW,
    CoolerTelemetry,
    DeviceEvent,
    Heartbeat,
    SaleScan,
    StockReading,
    decode_event,
    encode_event,
)
from abasto.devices.faults import MALFORMED, FaultInjection, FaultRates, inject_faults
from abasto.errors import InvalidEventError
from abasto.realtime.engine import DeadLetter, Engine
from abasto.realtime.tuning import DetectorTuning

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "realtime"))
from realtime_doubles import OTHER, SKU, FlatPattern, local, reference

STORES = ("S1", "S2", "S3")
RATES = FaultRates(duplicate=0.05, late=0.04, malformed=0.05, skew=0.05, far_future=0.03, spoof=0.03)


def fleet_day(step_s: int = 90, day: int = 14) -> list[DeviceEvent]:
    """One device per store, an event every ``step_s`` from 08:00 to 22:00 local, in time order."""
    events: list[DeviceEvent] = []
    seqs: Counter[str] = Counter()
    t, end = local(day, 8), local(day, 22)
    i = 0
    while t < end:
        for k, store in enumerate(STORES):
            device = f"dev-{store}-1"
            seqs[device] += 1
            at = t + timedelta(seconds=7 * k)
            sku = SKU if i % 2 else OTHER
            kind = i % 10
            payload: SaleScan | StockReading | CoolerTelemetry | Heartbeat
            if kind == 0:
                payload = StockReading(sku=sku, on_hand=60)
            elif kind == 5:
                payload = CoolerTelemetry(door_openings=4, temperature_c=4.0)
            elif kind == 9:
                payload = Heartbeat(battery_mv=3700)
            else:
                payload = SaleScan(sku=sku, qty=1, price=16.0)
            events.append(DeviceEvent(device, store, seqs[device], at, payload))
        t += timedelta(seconds=step_s)
        i += 1
    return events


def engine(clocked: bool, now: list[datetime]) -> Engine:
    pattern = FlatPattern({(s, p): 2.0 for s in STORES for p in (SKU, OTHER)})
    return Engine(pattern, reference(), DetectorTuning(), clock=(lambda: now[0]) if clocked else None)


def replay(inj: FaultInjection, clocked: bool) -> Engine:
    """Feed every message to an engine (its clock = when the message was sent), checking each one."""
    now = [inj.messages[0].sent_at]
    eng = engine(clocked, now)
    m = eng.metrics
    for msg, exp in zip(inj.messages, inj.manifest, strict=True):
        now[0] = msg.sent_at
        before = (m.accepted, m.duplicates, m.late, m.rejected_total)
        out = eng.process(msg.subject, msg.data)  # never raises
        delta = (m.accepted - before[0], m.duplicates - before[1], m.late - before[2])
        rejected = m.rejected_total - before[3]
        dead = [o for o in out if isinstance(o, DeadLetter)]
        where = f"{exp} of {msg.subject}"
        if exp.outcome == "rejected":
            assert (delta, rejected) == ((0, 0, 0), 1), where
            assert [d.reason for d in dead] == [exp.reason], where
            assert dead[0].data == msg.data and dead[0].subject == msg.subject
        else:
            assert not dead and rejected == 0, where
            expected = (1, 0, int(exp.late)) if exp.outcome == "accepted" else (0, 1, 0)
            assert delta == expected, where
    return eng


# --- the injector itself -----------------------------------------------------------------------------


def test_no_faults_sends_the_events_as_they_are() -> None:
    events = fleet_day()
    inj = inject_faults(events, FaultRates(), seed=1)
    assert [m.data for m in inj.messages] == [encode_event(e) for e in events]
    assert [m.subject for m in inj.messages] == [f"pos.{e.store_id}.{e.device_id}" for e in events]
    assert [m.topic for m in inj.messages] == [f"pos/{e.store_id}/{e.device_id}" for e in events]
    assert {e.outcome for e in inj.manifest} == {"accepted"}
    assert not any(e.late for e in inj.manifest)
    assert inj.counts().accepted == len(events)


def test_same_seed_same_faults_other_seed_other_faults() -> None:
    events = fleet_day()
    a, b = inject_faults(events, RATES, seed=7), inject_faults(events, RATES, seed=7)
    c = inject_faults(events, RATES, seed=8)
    assert a.messages == b.messages and a.manifest == b.manifest
    assert a.messages != c.messages
    assert a.faults() != c.faults() or a.manifest != c.manifest


def test_rates_are_honoured() -> None:
    events = fleet_day(step_s=20)  # 3 stores × 14 h every 20 s ≈ 7,500 events
    n = len(events)
    inj = inject_faults(events, RATES, seed=3)
    seen = inj.faults()
    for kind in ("duplicate", "late", "malformed", "skew", "far_future", "spoof"):
        rate = getattr(RATES, kind)
        drawn = inj.drawn[kind]
        # binomial: within 4 standard deviations of the expected count
        assert abs(drawn - rate * n) <= 4 * math.sqrt(n * rate * (1 - rate)), (kind, drawn, rate * n)
    # every drawn fault is in the output, except late events with nothing later in their store's day
    assert seen["late"] + inj.unplaced_late == inj.drawn["late"]
    assert inj.unplaced_late <= 0.05 * inj.drawn["late"]
    for kind in ("duplicate", "malformed", "skew", "far_future", "spoof"):
        assert seen[kind] == inj.drawn[kind], kind
    # duplicates add messages; the other faults replace the event
    assert len(inj.messages) == n + inj.drawn["duplicate"]
    variants = Counter(e.fault for e in inj.manifest if e.fault.startswith("malformed:"))
    assert {v.split(":", 1)[1] for v in variants} == set(MALFORMED)


def test_each_fault_has_the_shape_it_claims() -> None:
    events = fleet_day()
    by_id = {e.msg_id: e for e in events}
    inj = inject_faults(events, RATES, seed=11)
    first_seen: dict[bytes, int] = {}
    for i, (msg, exp) in enumerate(zip(inj.messages, inj.manifest, strict=True)):
        src = by_id[exp.msg_id]
        assert (msg.store_id, msg.device_id) == (src.store_id, src.device_id)  # own topic, own credentials
        assert msg.sent_at >= src.event_time
        if exp.fault.startswith("malformed:"):
            with pytest.raises(InvalidEventError) as err:
                decode_event(msg.data, now=msg.sent_at)
            assert err.value.reason == exp.reason
            continue
        ev = decode_event(msg.data)
        assert (ev.device_id, ev.seq) == (src.device_id, src.seq)
        if exp.fault == "spoof":
            assert ev.store_id != msg.store_id
        elif exp.fault == "far_future":
            assert ev.event_time - msg.sent_at > MAX_FUTURE_SKEW
        elif exp.fault == "skew":
            assert ev.event_time != src.event_time
            assert ev.event_time - msg.sent_at <= MAX_FUTURE_SKEW
        elif exp.fault == "duplicate":
            assert first_seen[msg.data] < i  # the very same bytes went out before
        elif exp.fault == "late":
            assert ev.event_time == src.event_time and exp.late
            assert msg.sent_at - src.event_time > timedelta(minutes=5)
        else:
            assert ev == src
        first_seen.setdefault(msg.data, i)
    assert any(e.fault == "late" for e in inj.manifest)


# --- against the realtime engine -------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_engine_counts_every_fault_as_the_manifest_says(seed: int) -> None:
    inj = inject_faults(fleet_day(), RATES, seed=seed)
    eng = replay(inj, clocked=True)
    want, m = inj.counts(), eng.metrics
    assert m.received == len(inj.messages)
    assert (m.accepted, m.duplicates, m.late) == (want.accepted, want.duplicates, want.late)
    assert m.rejected == want.rejected
    assert {"future_timestamp", "store_mismatch", "malformed_json", "invalid_field"} <= set(m.rejected)
    assert "processing_error" not in m.rejected
    # duplicates counted once: each accepted event is a distinct (device, seq)
    accepted_ids = [e.msg_id for e in inj.manifest if e.outcome == "accepted"]
    assert len(accepted_ids) == len(set(accepted_ids))
    assert want.late >= sum(e.fault == "late" for e in inj.manifest) > 0


def test_without_a_clock_far_future_events_are_accepted() -> None:
    inj = inject_faults(fleet_day(), RATES, seed=5, clocked=False)
    assert any(e.fault == "far_future" and e.outcome == "accepted" for e in inj.manifest)
    eng = replay(inj, clocked=False)
    want = inj.counts()
    assert (eng.metrics.accepted, eng.metrics.late, eng.metrics.rejected) == (
        want.accepted,
        want.late,
        want.rejected,
    )
    assert "future_timestamp" not in eng.metrics.rejected


def test_lateness_follows_the_processors_setting() -> None:
    """With a longer allowed lateness, the injector holds events back further; still all late."""
    events = fleet_day()
    tuning = DetectorTuning(allowed_lateness_s=1800)
    inj = inject_faults(events, FaultRates(late=0.1), seed=4, allowed_lateness=timedelta(seconds=1800))
    now = [inj.messages[0].sent_at]
    pattern = FlatPattern({(s, p): 2.0 for s in STORES for p in (SKU, OTHER)})
    eng = Engine(pattern, reference(), tuning, clock=lambda: now[0])
    for msg in inj.messages:
        now[0] = msg.sent_at
        eng.process(msg.subject, msg.data)
    held = sum(e.fault == "late" for e in inj.manifest)
    assert held > 0 and eng.metrics.late == inj.counts().late >= held
    assert eng.metrics.accepted == len(events)


@pytest.mark.slow
def test_engine_agrees_with_the_manifest_over_many_seeds_and_heavy_faults() -> None:
    heavy = FaultRates(duplicate=0.15, late=0.1, malformed=0.15, skew=0.15, far_future=0.1, spoof=0.1)
    for seed in range(20):
        inj = inject_faults(fleet_day(step_s=30), heavy, seed=seed)
        eng = replay(inj, clocked=True)
        want = inj.counts()
        assert (eng.metrics.accepted, eng.metrics.duplicates, eng.metrics.late) == (
            want.accepted,
            want.duplicates,
            want.late,
        )
        assert eng.metrics.rejected == want.rejected
