"""The engine's timers and faster walks give the very floats and outputs of the plain computations.

Each shortcut (the quiet memo of sales_stopped, the store's re-check timer, the stepped exhaustion
walk, the model's hour runs and support grids) is checked against the computation it replaces:
the same floats, the same expected-demand series origins (they decide later floats), and on a
generated day the same alerts, counters and snapshot as an engine without the memos.
"""

from __future__ import annotations

import itertools
import math
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest
from checkpoint_world import live_day
from hypothesis import given, settings
from hypothesis import strategies as st
from realtime_doubles import TZ_NAME, local

from abasto.contracts.events import encode_event
from abasto.devices.batching import batch_events, batch_messages
from abasto.ml import negbin
from abasto.ml._hours import HOUR_US, LocalHours, micros
from abasto.ml.pattern import PatternModel
from abasto.realtime.demand import ExpectedDemand
from abasto.realtime.engine import Engine
from abasto.realtime.risk import exhaustion_time
from abasto.realtime.snapshot import encode_snapshot
from abasto.stream.topology import pos_subject

_HOUR = 3600.0


class _NightAndDayPattern:
    """An irregular rate per UTC hour, zero at night; ``sign`` -1 makes some hours negative."""

    version = "t"

    def __init__(self, sign: float = 1.0) -> None:
        self.sign = sign

    def rate(self, store_id: str, sku: str, at: datetime) -> float:
        h = int(at.timestamp() // 3600)
        if h % 24 < 6:
            return 0.0
        r = ((h * 7919) % 1000) / 317.0 + len(sku) / 3.0
        return -r if self.sign < 0 and h % 7 == 3 else r

    def expected_units(self, store_id: str, sku: str, start: datetime, end: datetime) -> float:
        raise NotImplementedError


_T0 = local(14, 12).timestamp()


@settings(max_examples=200)
@given(
    start=st.floats(-2 * 24 * _HOUR, 20 * 24 * _HOUR),
    silent=st.floats(0.0, 30 * _HOUR),
    limit=st.floats(0.5, 60.0),
    ahead=st.floats(0.0, 4 * 24 * _HOUR),
    probes=st.lists(st.floats(0.0, 1.0), min_size=1, max_size=8),
    sign=st.sampled_from([1.0, -1.0]),
)
def test_below_until_is_a_true_bound_and_asks_nothing(
    start: float, silent: float, limit: float, ahead: float, probes: list[float], sign: float
) -> None:
    """Below the limit at every instant up to the bound, found without extending or rebuilding."""
    demand = ExpectedDemand(_NightAndDayPattern(sign), TZ_NAME)
    a = _T0 + start
    b = a + silent
    demand.units_ts("S1", "A", a, b + ahead + _HOUR)  # a series further ahead, as the detector leaves it
    if demand.units_ts("S1", "A", a, b) >= limit:
        return
    series = demand.series("S1", "A")
    length = len(series)  # type: ignore[arg-type]
    until = demand.below_until("S1", "A", a, b, limit)
    assert demand.series("S1", "A") is series and len(series) == length  # type: ignore[arg-type]
    if until == -math.inf:
        return
    assert until >= b
    origins = demand.origins()
    for p in [*probes, 1.0]:
        t = b + p * (until - b)
        assert demand.units_ts("S1", "A", a, t) < limit
    assert demand.origins() == origins  # asking inside the bound rebuilt nothing


@settings(max_examples=200)
@given(
    first=st.floats(-3 * 24 * _HOUR, 25 * 24 * _HOUR),
    gaps=st.lists(st.floats(-2 * _HOUR, 30 * 24 * _HOUR), min_size=0, max_size=12),
    warm=st.booleans(),
)
def test_steps_are_the_plain_calls_in_turn(first: float, gaps: list[float], warm: bool) -> None:
    """``steps_ts`` = ``units_ts`` of consecutive windows: the same floats and the same origins."""
    one, two = ExpectedDemand(_NightAndDayPattern(), TZ_NAME), ExpectedDemand(_NightAndDayPattern(), TZ_NAME)
    if warm:
        for d in (one, two):
            d.units_ts("S1", "A", _T0, _T0 + 5 * _HOUR)
    points = [_T0 + first]
    for g in gaps:
        points.append(points[-1] + g)
    plain = [one.units_ts("S1", "A", x, y) for x, y in itertools.pairwise(points)]
    assert list(two.steps_ts("S1", "A", iter(points))) == plain
    assert two.origins() == one.origins()


@settings(max_examples=150)
@given(
    start=st.floats(0.0, 10 * 24 * _HOUR),
    on_hand=st.floats(0.0, 400.0),
    ratio=st.floats(0.25, 4.0),
    span=st.floats(0.0, 30 * 24 * _HOUR),
)
def test_stepped_exhaustion_walk_is_the_plain_walk(
    start: float, on_hand: float, ratio: float, span: float
) -> None:
    """The same instant (or None) and the same series origins, the walk stopping where it did."""
    one, two = ExpectedDemand(_NightAndDayPattern(), TZ_NAME), ExpectedDemand(_NightAndDayPattern(), TZ_NAME)
    t0 = datetime.fromtimestamp(round(_T0 + start, 6), UTC)
    limit = t0 + timedelta(seconds=span)
    for d in (one, two):
        d.units_ts("S1", "A", t0.timestamp(), t0.timestamp() + _HOUR)
    plain = exhaustion_time(lambda a, b: one.units("S1", "A", a, b), t0, on_hand, ratio, limit)
    stepped = exhaustion_time(
        lambda a, b: two.units("S1", "A", a, b),
        t0,
        on_hand,
        ratio,
        limit,
        steps=lambda points: two.steps_ts("S1", "A", points),
    )
    assert stepped == plain
    assert two.origins() == one.origins()


# --- the pattern model's walks -----------------------------------------------------------------

_ZONES = ["America/New_York", "Australia/Lord_Howe", "America/Mexico_City"]


def _model(zone: str) -> PatternModel:
    rng = np.random.default_rng(7)
    series = pd.DataFrame({"store_id": ["S1"], "sku": ["A"], "group": ["g"], "level": [1.0]})
    rates = rng.uniform(0.0, 5.0, size=(1, 168)) * (rng.uniform(size=(1, 168)) > 0.2)
    return PatternModel(
        timezone=zone,
        series=series,
        rates=rates,
        groups=["g"],
        dispersion={"g": (0.3, 0.05)},
        day_multipliers={"is_holiday": 1.7},
        calendar={date(2026, 11, 1): ["is_holiday"], date(2026, 3, 8): ["is_holiday"]},
    )


@pytest.mark.parametrize("zone", _ZONES)
@settings(max_examples=120, deadline=None)
@given(
    start=st.integers(0, 60 * 24 * 3600 * 1_000_000),
    length=st.integers(0, 9 * 24 * 3600 * 1_000_000),
)
def test_moments_by_hour_runs_equal_the_hour_walk(zone: str, start: int, length: int) -> None:
    """Across daylight-saving changes (whole and half hours) and holidays: the same floats."""
    model = _model(zone)
    t = micros(datetime(2026, 2, 20, tzinfo=UTC)) + start
    a = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=t)
    b = a + timedelta(microseconds=length)
    fast = model._moments("S1", "A", a, b)
    if length == 0:
        assert fast == (0.0, 0.0)
        return
    i = model._index[("S1", "A")]
    a_hour, a_day = model._alphas[i]
    walk = model._moments_walk(model._rates[i].tolist(), a_hour, a_day, micros(a), micros(b))
    assert fast == walk


@pytest.mark.parametrize("zone", _ZONES)
def test_hourly_rates_by_runs_equal_rate(zone: str) -> None:
    model = _model(zone)
    origin = datetime(2026, 3, 1, tzinfo=ZoneInfo(zone)).timestamp()
    origin = float(int(origin) // 3600 * 3600)
    got = model.hourly_rates("S1", "A", origin, 3, 24 * 70)
    want = [model.rate("S1", "A", datetime.fromtimestamp(origin + k * _HOUR, UTC)) for k in range(3, 24 * 70)]
    assert got == want


def test_hour_runs_are_the_labels_of_local_hour_starts() -> None:
    hours = LocalHours(ZoneInfo("Australia/Lord_Howe"), lambda d: 1.0 + (d.day % 3) / 10)
    start = micros(datetime(2026, 3, 28, tzinfo=UTC))
    # Lord Howe moves its clock by half an hour (5 April 2026): a run across it is refused
    assert hours.run(start, 24 * 14) is None
    plain = LocalHours(ZoneInfo("America/New_York"), lambda d: 1.0)
    run = plain.run(start, 24 * 60)  # across the change of 1 November
    assert run is not None
    labels = [plain.label(start + k * HOUR_US) for k in range(24 * 60)]
    assert run == ([x[0] for x in labels], [x[1] for x in labels], [x[2] for x in labels])
    assert all(x[3] == 0 for x in labels)


def test_negbin_support_grids_are_the_arrays_of_each_length() -> None:
    """Slices of the largest grid = arrays made for one length: k, k − 1 and log k bit for bit."""
    negbin._grid(5000)
    for upto in range(1, 5001):
        k, k_minus_1, log_k = negbin._grid(upto)
        fresh = np.arange(1, upto + 1, dtype=np.float64)
        assert np.array_equal(k, fresh)
        assert np.array_equal(k_minus_1, fresh - 1.0)
        assert np.array_equal(log_k.view(np.int64), np.log(fresh).view(np.int64))


# --- the engine, memos on and off ------------------------------------------------------------------


def _without_timers(engine: Engine) -> Engine:
    engine._detector._timers = False  # no quiet memo, no store timer
    return engine


@pytest.mark.parametrize("batched", [False, True])
def test_timers_change_no_output(batched: bool) -> None:
    """The quiet memo and the store timers are exact: the same alerts, counters and state (and,
    with the calm memo off too, the same as an engine evaluating everything in full)."""
    day = live_day(30)
    if batched:
        msgs = [
            (m.subject, m.data)
            for m in batch_messages(
                batch_events(list(day.events), window=timedelta(minutes=30), max_events=300)
            )
        ]
    else:
        msgs = [(pos_subject(e.store_id, e.device_id), encode_event(e)) for e in day.events]
    fast, plain, full = day.engine(), _without_timers(day.engine()), _without_timers(day.engine())
    full._detector._monotone = False
    outputs = [[o for s, d in msgs for o in e.process(s, d)] for e in (fast, plain, full)]
    assert outputs[0] == outputs[1] == outputs[2]
    assert fast.metrics.as_dict() == plain.metrics.as_dict() == full.metrics.as_dict()
    snaps = {encode_snapshot(e.snapshot()) for e in (fast, plain, full)}
    assert len(snaps) == 1
    assert any(st.quiet is not None for st in fast.pairs())
    assert any(st.hold is not None for st in fast.pairs())
    assert fast._detector.store_holds, "some store re-check must have been held"
    assert not plain._detector.store_holds
    # re-checks asked out of order (the engine's public evaluate_store): no timer applies backwards
    stores = sorted({st.store_id for st in fast.pairs()})
    end = max(st.last_event_at for st in fast.pairs() if st.last_event_at is not None)
    for hours_back in (30, 3, 12, 1):
        hour = end.replace(minute=0, second=0, microsecond=0) - timedelta(hours=hours_back)
        for store in stores:
            assert fast.evaluate_store(store, hour) == plain.evaluate_store(store, hour)
    assert fast._detector.evaluations == plain._detector.evaluations
    assert encode_snapshot(fast.snapshot()) == encode_snapshot(plain.snapshot())
