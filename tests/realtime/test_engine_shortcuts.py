"""The engine's shortcuts give the very floats of the plain computations they replace."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from realtime_doubles import TZ_NAME, local

from abasto.ml import negbin
from abasto.realtime.demand import ExpectedDemand


class _NightAndDayPattern:
    """An irregular rate per UTC hour, zero at night (exercises partial hours and empty hours)."""

    version = "t"

    def rate(self, store_id: str, sku: str, at: object) -> float:
        h = int(at.timestamp() // 3600)  # type: ignore[attr-defined]
        return 0.0 if h % 24 < 6 else ((h * 7919) % 1000) / 317.0 + len(sku) / 3.0

    def expected_units(self, store_id: str, sku: str, start: object, end: object) -> float:
        raise NotImplementedError


_HOUR = 3600.0


@given(
    st.lists(
        st.tuples(
            st.floats(-3 * 24 * _HOUR, 25 * 24 * _HOUR),
            st.floats(-2 * _HOUR, 30 * _HOUR),
            st.floats(-2 * _HOUR, 3 * 24 * _HOUR),
        ),
        min_size=1,
        max_size=10,
    )
)
def test_two_windows_at_once_equal_two_calls_with_the_same_series_origins(
    asks: list[tuple[float, float, float]],
) -> None:
    """``units_two_ts`` = ``units_ts`` twice: same floats, same rebuilds (origins), in any state."""
    t0 = local(14, 12).timestamp()
    one, two = ExpectedDemand(_NightAndDayPattern(), TZ_NAME), ExpectedDemand(_NightAndDayPattern(), TZ_NAME)
    for start, so_far, ahead in asks:
        since, now = t0 + start, t0 + start + so_far
        horizon = now + ahead
        plain = (one.units_ts("S1", "A", since, now), one.units_ts("S1", "A", now, horizon))
        assert two.units_two_ts("S1", "A", since, now, now, horizon) == plain
        assert two.origins() == one.origins()


def _reference_tail(mean: float, var: float, k: int) -> float:
    """``negbin.prob_at_least`` as it was written before its arrays were cached."""
    if k <= 0:
        return 1.0
    if mean <= 0.0:
        return 0.0
    upto = math.ceil(mean + 40.0 * math.sqrt(max(var, mean)) + 50.0)
    if k > upto:
        return 0.0
    ks = np.arange(1, upto + 1, dtype=np.float64)
    if var <= mean * (1.0 + 1e-12):
        log0 = -mean
        steps = math.log(mean) - np.log(ks)
    else:
        size = mean * mean / (var - mean)
        p = size / (size + mean)
        log0 = size * math.log(p)
        steps = np.log((ks - 1.0 + size) / ks) + math.log1p(-p)
    pmf = np.exp(np.concatenate(([log0], log0 + np.cumsum(steps))))
    from_end = np.cumsum(pmf[::-1])
    return min(float(from_end[upto - k]) / float(from_end[-1]), 1.0)


def _outcome(tail: Callable[[float, float, int], float], mean: float, var: float, k: int) -> object:
    """The tail, or the error it raises (degenerate inputs must fail the same way)."""
    try:
        return tail(mean, var, k)
    except ValueError as exc:
        return type(exc), str(exc)


@settings(max_examples=300)
@given(
    mean=st.floats(0.0, 300.0),
    spread=st.sampled_from([0.5, 1.0, 1.0 + 1e-13, 1.7, 6.0, 40.0]),
    k=st.integers(-1, 400),
)
def test_negbin_tail_is_bit_identical_to_the_plain_computation(mean: float, spread: float, k: int) -> None:
    var = mean * spread
    expected = _outcome(_reference_tail, mean, var, k)
    assert _outcome(negbin.prob_at_least, mean, var, k) == expected
    assert _outcome(negbin.prob_at_least, mean, var, k) == expected  # asked again (remembered)
    # the cached grids of one support serve another tail of the same support
    assert _outcome(negbin.prob_at_least, mean, var, k + 1) == _outcome(_reference_tail, mean, var, k + 1)
