"""PatternModel's window integration (moments, hourly rates) against the datetime walk it replaced.

The reference below is the former implementation: step through the window with ``astimezone`` per
local hour. The new one walks exact microseconds with cached local-hour labels and must give the
same floats, bit for bit, in any zone (DST, half-hour offsets, 30-minute DST shifts) and window.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from abasto.errors import InvalidInputError
from abasto.ml._hours import LocalHours
from abasto.ml.pattern import PatternModel

_HOUR = timedelta(hours=1)
ZONES = [
    "UTC",
    "America/Mexico_City",
    "America/New_York",
    "Europe/London",
    "Asia/Kolkata",  # +05:30
    "Australia/Lord_Howe",  # +10:30 / +11:00: a 30-minute DST shift
    "America/St_Johns",  # -03:30 / -02:30
    "America/Santiago",  # falls back from 00:00 to 23:00: the local date goes back a day
]
#: instants near DST transitions of the zones above (2024), where windows are most likely to break
ANCHORS = [
    datetime(2024, 3, 10, 6, 30, tzinfo=UTC),
    datetime(2024, 11, 3, 5, 0, tzinfo=UTC),
    datetime(2024, 3, 31, 0, 45, tzinfo=UTC),
    datetime(2024, 10, 27, 0, 59, 59, 999_999, tzinfo=UTC),
    datetime(2024, 4, 6, 14, 50, tzinfo=UTC),
    datetime(2024, 10, 5, 15, 10, tzinfo=UTC),
    datetime(2024, 3, 10, 5, 30, tzinfo=UTC),
    datetime(2024, 6, 12, 12, 0, tzinfo=UTC),
    datetime(2024, 4, 7, 2, 40, tzinfo=UTC),
    datetime(2024, 9, 8, 4, 0, tzinfo=UTC),
]


def _reference_moments(
    model: PatternModel, store_id: str, sku: str, start: datetime, end: datetime
) -> tuple[float, float]:
    """The former PatternModel._segments + _moments, verbatim in substance."""
    tz = ZoneInfo(model.timezone)
    t = start.astimezone(UTC)
    stop = end.astimezone(UTC)
    segments: list[tuple[int, date, float]] = []
    while t < stop:
        local = t.astimezone(tz)
        hour_start = t - timedelta(minutes=local.minute, seconds=local.second, microseconds=local.microsecond)
        nxt = min(hour_start + _HOUR, stop)
        segments.append((local.weekday() * 24 + local.hour, local.date(), (nxt - t) / _HOUR))
        t = nxt
    i = model._index.get((store_id, sku))
    if i is None or not segments:
        return 0.0, 0.0
    a_hour, a_day = model._alphas[i]
    row = model._rates[i]
    mu = sq = 0.0
    per_day: dict[date, float] = {}
    for how, day, frac in segments:
        m = float(row[how]) * model._day_factor(day) * frac
        mu += m
        sq += m * m
        per_day[day] = per_day.get(day, 0.0) + m
    return mu, mu + a_hour * sq + a_day * sum(v * v for v in per_day.values())


def _model(tz: str, seed: int) -> PatternModel:
    rng = np.random.default_rng(seed)
    rates = rng.gamma(0.8, 2.0, size=(2, 168))
    rates[:, rng.integers(0, 168, size=30)] = 0.0  # closed hours
    series = pd.DataFrame(
        {"store_id": ["S1", "S2"], "sku": ["K1", "K1"], "group": ["a", "b"], "level": rates.mean(axis=1)}
    )
    # most days flagged, so that day factors other than 1 enter most windows
    first = date(2023, 12, 1)
    calendar = {
        first + timedelta(days=n): [
            f for f, on in (("is_holiday", n % 3 == 0), ("is_payday", n % 2 == 0)) if on
        ]
        for n in range(450)
    }
    return PatternModel(
        timezone=tz,
        series=series,
        rates=rates,
        groups=["a", "b"],
        dispersion={"a": (float(rng.uniform(0, 0.3)), float(rng.uniform(0, 0.2))), "b": (0.05, 0.0)},
        day_multipliers={"is_holiday": 1.7, "is_payday": 1.2},
        calendar=calendar,
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    zone=st.sampled_from(ZONES),
    seed=st.integers(0, 3),
    anchor=st.sampled_from(ANCHORS),
    offset_us=st.integers(-3 * 24 * 3_600_000_000, 3 * 24 * 3_600_000_000),
    length_us=st.one_of(
        st.integers(0, 3_600_000_000), st.integers(0, 9 * 24 * 3_600_000_000), st.just(-5_000_000)
    ),
    view_zone=st.sampled_from(["UTC", "America/New_York", "Asia/Tokyo"]),
)
def test_moments_match_the_datetime_walk_bit_for_bit(
    zone: str, seed: int, anchor: datetime, offset_us: int, length_us: int, view_zone: str
) -> None:
    model = _model(zone, seed)
    # instants given in an arbitrary zone: only the instant matters
    start = (anchor + timedelta(microseconds=offset_us)).astimezone(ZoneInfo(view_zone))
    end = start + timedelta(microseconds=length_us)
    for store in ("S1", "S2", "S-unknown"):
        expected = _reference_moments(model, store, "K1", start, end)
        assert model._moments(store, "K1", start, end) == expected
        assert model.expected_units(store, "K1", start, end) == expected[0]
        assert model.variance(store, "K1", start, end) == expected[1]


@settings(max_examples=60, deadline=None)
@given(
    zone=st.sampled_from(ZONES),
    anchor=st.sampled_from(ANCHORS),
    start_s=st.one_of(
        st.floats(-2 * 86_400, 2 * 86_400, allow_nan=False),
        st.integers(-2 * 86_400, 2 * 86_400).map(float),  # whole seconds: the exact-step path
    ),
    first=st.integers(0, 500),
    n=st.integers(0, 80),
)
def test_hourly_rates_are_the_rates_at_each_hour(
    zone: str, anchor: datetime, start_s: float, first: int, n: int
) -> None:
    model = _model(zone, 1)
    origin = float(int(anchor.timestamp())) + start_s
    for store in ("S1", "S-unknown"):
        at = [datetime.fromtimestamp(origin + k * 3600.0, UTC) for k in range(first, first + n)]
        expected = [model.rate(store, "K1", t) for t in at]
        assert model.hourly_rates(store, "K1", origin, first, first + n) == expected


def test_results_do_not_depend_on_the_label_cache() -> None:
    start = ANCHORS[1] - timedelta(hours=30, minutes=17)
    end = start + timedelta(days=4, minutes=3)
    warm = _model("America/New_York", 2)
    first = warm._moments("S1", "K1", start, end)
    assert warm._moments("S1", "K1", start, end) == first  # served from the cache
    tiny = _model("America/New_York", 2)
    tiny._hours = LocalHours(tiny._tz, tiny._day_factor, max_cached=3)  # cleared every few hours
    assert tiny._moments("S1", "K1", start, end) == first == _reference_moments(tiny, "S1", "K1", start, end)
    assert len(tiny._hours._cache) <= 3


def test_each_day_factor_scales_only_its_own_hours() -> None:
    model = _model("America/Mexico_City", 0)
    tz = ZoneInfo("America/Mexico_City")
    # 1.5 hours of a payday (May 31: ×1.2), then 2.25 hours of a holiday (June 1: ×1.7)
    start = datetime(2024, 5, 31, 22, 30, tzinfo=tz)
    end = datetime(2024, 6, 1, 2, 15, tzinfo=tz)
    rates = model.hour_of_week_rates("S1", "K1")
    fri, sat = start.weekday() * 24, (start.weekday() + 1) % 7 * 24
    want = 1.2 * (0.5 * rates[fri + 22] + rates[fri + 23]) + 1.7 * (
        rates[sat] + rates[sat + 1] + 0.25 * rates[sat + 2]
    )
    assert want > 0
    assert model.expected_units("S1", "K1", start, end) == pytest.approx(want, rel=1e-12)


def test_naive_instants_are_rejected_even_for_unknown_pairs() -> None:
    model = _model("UTC", 0)
    with pytest.raises(InvalidInputError, match="start must be a tz-aware datetime"):
        model.expected_units("S-unknown", "K1", datetime(2024, 1, 1), datetime(2024, 1, 2, tzinfo=UTC))
    with pytest.raises(InvalidInputError, match="end must be a tz-aware datetime"):
        model.variance("S1", "K1", datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 2))
