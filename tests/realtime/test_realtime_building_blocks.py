"""Calendar, velocity, deduplication and risk arithmetic of the processor."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st
from realtime_doubles import TZ_NAME, local

from abasto.realtime.calendar import ReplenishmentCalendar, StoreSchedule
from abasto.realtime.dedup import SeqDeduper
from abasto.realtime.demand import ExpectedDemand
from abasto.realtime.reference import ReferenceData, StoreInfo
from abasto.realtime.risk import (
    exhaustion_time,
    markov_bound,
    poisson_at_least,
    round_up_to_case,
    velocity_ratio,
)
from abasto.realtime.velocity import EwmaRate

# --- replenishment calendar ------------------------------------------------------------------------


def test_next_delivery_is_the_morning_after_the_next_visit() -> None:
    cal = ReplenishmentCalendar({"S1": StoreSchedule(frozenset({0}), 1, 9)}, TZ_NAME)  # visited on Mondays
    # Wednesday 14 Oct → visit Monday 19 → truck Tuesday 20 at 09:00
    assert cal.next_delivery("S1", local(14, 12)) == local(20, 9)
    # Tuesday 20 before 09:00: the truck of the Monday visit is still coming
    assert cal.next_delivery("S1", local(20, 8)) == local(20, 9)
    assert cal.next_delivery("S1", local(20, 9)) == local(27, 9)
    assert cal.deliveries_after("S1", local(14, 12), 2) == [local(20, 9), local(27, 9)]
    assert cal.next_delivery("UNKNOWN", local(14, 12)) is None


def test_lag_and_several_visit_days() -> None:
    cal = ReplenishmentCalendar({"S1": StoreSchedule(frozenset({1, 4}), 2, 10)}, TZ_NAME)  # Tue/Fri, D+2
    # Wed 14 → (visit Tue 13 → Thu 15 10:00)
    assert cal.deliveries_after("S1", local(14, 12), 3) == [local(15, 10), local(18, 10), local(22, 10)]


def test_calendar_from_world_tables() -> None:
    routes = pa.table(
        {
            "route_id": ["R01", "R02"],
            "visit_weekdays": [[0, 2, 4], [1]],
            "delivery_lag_days": pa.array([1, 1], pa.int8()),
        }
    )
    stores = pa.table(
        {"store_id": ["S1", "S2", "S3"], "route_id": ["R01", "R02", "R02"], "opens_hour": [7, 10, 7]}
    )
    deliveries = pa.table(
        {
            "store_id": ["S1", "S1", "S1", "S2"],
            "delivered_at": pa.array(
                [local(6, 11), local(8, 11), local(10, 8), local(7, 8)], pa.timestamp("us", "UTC")
            ),
        }
    )
    cal = ReplenishmentCalendar.from_tables(routes, stores, TZ_NAME, deliveries=deliveries)
    assert cal.schedule("S1") == StoreSchedule(frozenset({0, 2, 4}), 1, 11)  # most frequent observed hour
    assert cal.schedule("S2") == StoreSchedule(frozenset({1}), 1, 10)  # 08:00 but the store opens at 10
    assert cal.schedule("S3") == StoreSchedule(frozenset({1}), 1, 9)  # no history: the default
    assert cal.next_delivery("S1", local(14, 12)) == local(15, 11)  # Wed visit → Thu


# --- velocity ------------------------------------------------------------------------------------


def test_ewma_velocity_converges_to_a_steady_rate() -> None:
    v = EwmaRate(half_life_h=1.0)
    t0 = datetime(2026, 10, 14, 12, tzinfo=UTC)
    for k in range(600):  # 6 units/hour for 100 hours... of 10 minutes each: 60 h
        v.add(t0 + timedelta(minutes=10 * k), 1)
    now = t0 + timedelta(minutes=10 * 599)
    assert v.rate(now) == pytest.approx(6.0, rel=0.1)
    assert v.rate(now + timedelta(hours=1)) == pytest.approx(v.rate(now) / 2, rel=1e-6)


def test_ewma_late_units_weigh_less() -> None:
    t0 = datetime(2026, 10, 14, 12, tzinfo=UTC)
    fresh, late = EwmaRate(1.0), EwmaRate(1.0)
    fresh.add(t0, 1)
    fresh.add(t0, 1)
    late.add(t0, 1)
    late.add(t0 - timedelta(hours=1), 1)
    assert late.rate(t0) == pytest.approx(fresh.rate(t0) * 0.75)


# --- dedup ---------------------------------------------------------------------------------------


def test_dedup_by_device_and_seq() -> None:
    d = SeqDeduper(window=100)
    assert d.first_time("a", 1) and d.first_time("a", 3) and d.first_time("b", 1)
    assert not d.first_time("a", 1) and not d.first_time("b", 1)
    assert d.first_time("a", 2)  # out of order, first time
    for s in range(4, 400):
        assert d.first_time("a", s)
    assert not d.first_time("a", 250)
    assert not d.first_time("a", 10)  # older than the window: treated as a duplicate


# --- risk arithmetic ------------------------------------------------------------------------------


def _poisson_tail(mean: float, k: int) -> float:
    return 1.0 - sum(math.exp(-mean) * mean**j / math.factorial(j) for j in range(k))


@given(st.floats(0.01, 80), st.integers(0, 150))
def test_poisson_tail_matches_the_definition(mean: float, k: int) -> None:
    assert poisson_at_least(mean, k) == pytest.approx(_poisson_tail(mean, k), abs=1e-9)


def test_poisson_tail_extremes() -> None:
    assert poisson_at_least(5.0, 0) == 1.0
    assert poisson_at_least(0.0, 1) == 0.0
    assert 0.0 <= poisson_at_least(1000.0, 1300) < 1e-15
    assert poisson_at_least(1000.0, 700) == pytest.approx(1.0)


@given(st.floats(0.01, 500), st.floats(0.5, 500))
def test_markov_bound_bounds_the_poisson_tail(mean: float, units: float) -> None:
    assert poisson_at_least(mean, units) <= markov_bound(mean, math.ceil(units - 1e-9)) + 1e-12


def test_velocity_ratio_shrinks_toward_one_and_clamps() -> None:
    assert velocity_ratio(0, 0, 6, 0.25, 4) == 1.0
    assert velocity_ratio(12, 6, 6, 0.25, 4) == pytest.approx(18 / 12)
    assert velocity_ratio(1000, 1, 6, 0.25, 4) == 4
    assert velocity_ratio(0, 1000, 6, 0.25, 4) == 0.25


def test_exhaustion_time_and_cases() -> None:
    start = datetime(2026, 10, 14, 12, 30, tzinfo=UTC)
    flat = lambda a, b: 2.0 * (b - a).total_seconds() / 3600  # noqa: E731
    assert exhaustion_time(flat, start, 5, 1.0, start + timedelta(days=1)) == start + timedelta(hours=2.5)
    assert exhaustion_time(flat, start, 5, 2.0, start + timedelta(days=1)) == start + timedelta(hours=1.25)
    assert exhaustion_time(flat, start, 500, 1.0, start + timedelta(days=1)) is None
    assert exhaustion_time(flat, start, 0, 1.0, start + timedelta(days=1)) == start
    assert [round_up_to_case(u, 12) for u in (-3, 0, 0.5, 12, 12.01, 25)] == [0, 0, 12, 12, 24, 36]


def test_reference_data_from_world_shaped_tables() -> None:
    routes = pa.table(
        {"route_id": ["R01"], "visit_weekdays": [[0, 3]], "delivery_lag_days": pa.array([1], pa.int8())}
    )
    stores = pa.table(
        {
            "store_id": ["S1", "S2"],
            "route_id": ["R01", "R01"],
            "region_id": ["CDMX", "GDL"],
            "channel": ["tienda", "supermarket"],
            "big_customer": [False, True],
            "opens_hour": pa.array([7, 8], pa.int8()),
            "delivery_hour": pa.array([8, 10], pa.int8()),
        }
    )
    skus = pa.table({"sku": ["COLA", "AGUA"], "units_per_case": pa.array([24, 12], pa.int32())})
    ref = ReferenceData.from_tables(timezone=TZ_NAME, stores=stores, routes=routes, skus=skus)
    assert ref.store("S2") == StoreInfo(
        "S2", region_id="GDL", route_id="R01", channel="supermarket", big_customer=True
    )
    assert ref.store("S9") == StoreInfo("S9")
    assert (ref.case_size("COLA"), ref.case_size("AGUA"), ref.case_size("NEW")) == (24, 12, 1)
    assert ref.calendar.next_delivery("S2", local(14, 12)) == local(16, 10)  # Thu visit → Fri 10:00
    as_pandas = ReferenceData.from_tables(
        timezone=TZ_NAME, stores=stores.to_pandas(), routes=routes.to_pandas(), skus=skus.to_pandas()
    )
    assert as_pandas.stores == ref.stores and as_pandas.units_per_case == ref.units_per_case
    assert as_pandas.calendar.next_delivery("S1", local(14, 12)) == local(16, 8)


# --- expected demand series ------------------------------------------------------------------------


class _HourlyPattern:
    """A pattern with an irregular rate per UTC hour (0 at night), to exercise the float sums."""

    version = "t"

    def rate(self, store_id: str, sku: str, at: datetime) -> float:
        h = int(at.timestamp() // 3600)
        return 0.0 if h % 24 < 6 else ((h * 7919) % 1000) / 317.0 + len(sku) / 3.0

    def expected_units(self, store_id: str, sku: str, start: datetime, end: datetime) -> float:
        raise NotImplementedError


def _reference_units(pattern: _HourlyPattern, origin: float, a: float, b: float) -> float:
    """The former list-based series: rates and running sums from ``origin``, two lookups."""
    need = int((b - origin) // 3600) + 1
    rates = [pattern.rate("S1", "A", datetime.fromtimestamp(origin + k * 3600.0, UTC)) for k in range(need)]
    cum = [0.0]
    for r in rates:
        cum.append(cum[-1] + r)

    def at(t: float) -> float:
        x = (t - origin) / 3600.0
        i = int(x)
        return cum[i] + rates[i] * (x - i) if i < len(rates) else cum[i]

    return max(0.0, at(b) - at(a))


@given(
    st.lists(st.tuples(st.floats(0, 20 * 24 * 3600), st.floats(0, 3 * 24 * 3600)), min_size=1, max_size=12)
)
def test_expected_demand_series_is_bit_identical_to_plain_running_sums(
    windows: list[tuple[float, float]],
) -> None:
    pattern = _HourlyPattern()
    demand = ExpectedDemand(pattern, TZ_NAME)
    t0 = local(14, 12).timestamp()
    demand.units_ts("S1", "A", t0, t0 + 1.0)  # the series starts a day before this
    (_, _, origin) = demand.origins()[0]
    for offset, length in windows:
        a = t0 + offset
        b = min(a + length, origin + 21 * 24 * 3600 - 1)
        assert demand.units_ts("S1", "A", a, b) == _reference_units(pattern, origin, a, b)
        assert demand.origins() == [("S1", "A", origin)]  # grown in place, never rebuilt
    # restored from its origin, the series gives the same floats
    again = ExpectedDemand(pattern, TZ_NAME)
    again.restore_origins(demand.origins())
    for offset, length in reversed(windows):
        a = t0 + offset
        b = min(a + length, origin + 21 * 24 * 3600 - 1)
        assert again.units_ts("S1", "A", a, b) == demand.units_ts("S1", "A", a, b)
