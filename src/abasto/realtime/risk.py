"""Risk arithmetic: velocity ratio, probability of running out, exhaustion time, order size."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

_HOUR = timedelta(hours=1)

#: P(demand in [start, end) >= units), as PatternModel.prob_demand_at_least
ProbAtLeast = Callable[[str, str, datetime, datetime, float], float]
#: the same, or an upper bound of it when that is already under the last argument, as
#: PatternModel.prob_demand_at_least_or_bound
ProbAtLeastOrBound = Callable[[str, str, datetime, datetime, float, float], float]


def poisson_at_least(mean: float, units: float) -> float:
    """P(X >= units) for X ~ Poisson(mean); 1.0 when units <= 0."""
    k = math.ceil(units - 1e-9)
    if k <= 0:
        return 1.0
    if mean <= 0.0:
        return 0.0
    if k - 1 < mean:  # the lower part has fewer, larger terms: 1 − P(X ≤ k−1)
        p = math.exp(-mean)
        lower = p
        for j in range(1, k):
            p *= mean / j
            lower += p
        return min(1.0, max(0.0, 1.0 - lower))
    p = math.exp(-mean + k * math.log(mean) - math.lgamma(k + 1))
    upper, j = 0.0, k
    while p > 1e-18 * max(upper, 1e-300):
        upper += p
        j += 1
        p *= mean / j
    return min(1.0, upper)


def velocity_ratio(observed: float, expected: float, prior_units: float, lo: float, hi: float) -> float:
    """Observed/expected sales so far, shrunk toward 1 by ``prior_units`` pseudo-units, clamped."""
    ratio = (
        (observed + prior_units) / (expected + prior_units)
        if prior_units > 0
        else (observed / expected if expected > 0 else 1.0)
    )
    return min(max(ratio, lo), hi)


def markov_bound(mean: float, units: float) -> float:
    """Upper bound of P(X >= units) for any non-negative X with this mean (Markov)."""
    if units <= 0:
        return 1.0
    return min(1.0, mean / units)


def prob_running_out(
    expected: float,
    on_hand: float,
    ratio: float,
    model_prob: Callable[[float], float] | None,
) -> float:
    """P(demand until the next delivery >= on_hand) (pass on_hand >= 1: with nothing left, 1 unit).

    ``expected`` is the velocity-adjusted mean (ratio × the pattern's). With the model's own
    distribution ``model_prob(units)`` = P(D >= units) for unadjusted demand D, the adjusted demand
    ratio × D runs out when D >= on_hand / ratio; without it, Poisson(expected).
    """
    if on_hand <= 0:
        return 1.0
    if model_prob is not None and ratio > 0:
        return min(1.0, max(0.0, float(model_prob(on_hand / ratio))))
    return poisson_at_least(expected, on_hand)


def exhaustion_time(
    units_between: Callable[[datetime, datetime], float],
    start: datetime,
    on_hand: float,
    ratio: float,
    limit: datetime,
    *,
    steps: Callable[[Iterator[float]], Iterator[float]] | None = None,
) -> datetime | None:
    """When cumulative expected demand (× ratio) reaches ``on_hand``; None if not before ``limit``.

    Walks ``start``'s clock hours. ``steps``: the same function on epoch seconds for consecutive
    windows (``steps(iter([p0, p1, …]))`` yields ``units_between`` of [p0, p1), [p1, p2), …, each
    computed only when the walk asks for it), used when ``start`` is in UTC: the hour boundaries
    are then whole multiples of 3600 s from ``start``'s hour (the same instants, the same order
    against ``limit``: microsecond instants keep their order as epoch-second floats), and the
    returned instant is computed from the same datetimes.
    """
    if on_hand <= 0:
        return start
    if steps is not None and start.tzinfo is UTC:
        return _exhaustion_utc(steps, start, on_hand, ratio, limit)
    cum = 0.0
    t = start
    while t < limit:
        nxt = min(t.replace(minute=0, second=0, microsecond=0) + _HOUR, limit)
        step = ratio * units_between(t, nxt)
        if cum + step >= on_hand and step > 0:
            return t + (nxt - t) * ((on_hand - cum) / step)
        cum += step
        t = nxt
    return None


def _exhaustion_utc(
    steps: Callable[[Iterator[float]], Iterator[float]],
    start: datetime,
    on_hand: float,
    ratio: float,
    limit: datetime,
) -> datetime | None:
    """``exhaustion_time``'s walk on epoch seconds for a UTC ``start`` (see there)."""
    hour = start.replace(minute=0, second=0, microsecond=0)
    hour_ts = hour.timestamp()  # a whole number of seconds
    limit_ts = limit.timestamp()
    start_ts = start.timestamp()
    if not start_ts < limit_ts:
        return None

    def points() -> Iterator[float]:
        yield start_ts
        k = 1
        while True:
            b = hour_ts + k * 3600.0
            if b >= limit_ts:
                yield limit_ts
                return
            yield b
            k += 1

    cum = 0.0
    for k, units in enumerate(steps(points())):
        step = ratio * units
        if cum + step >= on_hand and step > 0:
            t = start if k == 0 else hour + k * _HOUR
            nxt = min(hour + (k + 1) * _HOUR, limit)
            return t + (nxt - t) * ((on_hand - cum) / step)
        cum += step
    return None


def round_up_to_case(units: float, case: int) -> int:
    """Whole cases covering ``units`` (0 if nothing is needed)."""
    if units <= 0:
        return 0
    case = max(1, case)
    return math.ceil(units / case - 1e-9) * case
