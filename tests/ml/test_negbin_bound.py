"""``negbin.upper_bound`` (Cantelli) bounds the tail ``prob_at_least`` computes, and the pattern
model returns it only when it is already under the caller's level."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from abasto.ml import negbin
from abasto.ml.pattern import PatternModel

_means = st.one_of(st.floats(1e-6, 1.0), st.floats(1.0, 60.0), st.floats(60.0, 5_000.0))
#: variance / mean: Poisson, the near-Poisson band where no bound is claimed, over-dispersed
_excess = st.one_of(
    st.just(1.0),
    st.floats(1.0, 1.0 + 1e-12),
    st.floats(1.0 + 1e-9, 1.0 + 1e-3),
    st.floats(1.0 + 1e-3, 1.01),
    st.floats(1.01, 50.0),
)


@settings(max_examples=400, deadline=None)
@given(mean=_means, excess=_excess, beyond=st.floats(0.0, 40.0))
def test_the_bound_is_never_below_the_computed_tail(mean: float, excess: float, beyond: float) -> None:
    var = mean * excess
    k = max(1, int(mean + beyond * var**0.5) + 1)
    bound = negbin.upper_bound(mean, var, k)
    if bound is None:
        return
    assert 0.0 <= negbin.prob_at_least(mean, var, k) <= bound <= 1.0


@pytest.mark.parametrize(("mean", "var"), [(2.0, 2.0), (3.0, 4.5), (12.0, 30.0), (150.0, 900.0)])
def test_the_bound_is_tight_enough_to_matter_and_never_wrong_on_a_grid(mean: float, var: float) -> None:
    useful = 0
    for k in range(int(mean) + 1, int(mean + 12 * var**0.5) + 2):
        bound = negbin.upper_bound(mean, var, k)
        assert bound is not None
        exact = negbin.prob_at_least(mean, var, k)
        assert exact <= bound
        useful += bound < 0.6
    assert useful > 0


def test_no_bound_where_none_is_claimed() -> None:
    assert negbin.upper_bound(5.0, 8.0, 5) is None  # k not above the mean
    assert negbin.upper_bound(5.0, 8.0, 0) is None
    assert negbin.upper_bound(5.0, 5.0 * (1 + 1e-6), 20) is None  # parameters without precision
    assert negbin.upper_bound(0.0, 0.0, 3) == 0.0  # no demand: the tail is 0


def _model() -> PatternModel:
    rng = np.random.default_rng(3)
    rates = rng.gamma(0.8, 2.0, size=(2, 168))
    series = pd.DataFrame(
        {"store_id": ["S1", "S2"], "sku": ["K1", "K1"], "group": ["a", "b"], "level": rates.mean(axis=1)}
    )
    return PatternModel(
        timezone="America/Mexico_City",
        series=series,
        rates=rates,
        groups=["a", "b"],
        dispersion={"a": (0.2, 0.1), "b": (0.0, 0.0)},  # over-dispersed, and Poisson
    )


@pytest.mark.parametrize("store", ["S1", "S2"])
def test_the_model_returns_the_bound_only_under_the_level(store: str) -> None:
    model = _model()
    start = datetime(2024, 6, 3, 10, 17, tzinfo=UTC)
    end = start + timedelta(hours=30)
    bounded = 0
    for units in range(0, 400, 3):
        p = model.prob_demand_at_least(store, "K1", start, end, units)
        for level in (0.05, 0.3, 0.6, 0.95):
            got = model.prob_demand_at_least_or_bound(store, "K1", start, end, units, level)
            if got != p:
                # a bound: under the level, and not under the probability it bounds
                assert p <= got < level
                bounded += 1
            elif p < level:
                # the exact value was computed: no bound under the level was known
                mu, var = model._moments(store, "K1", start, end)
                bound = negbin.upper_bound(mu, var, units)
                assert bound is None or bound >= level
    assert bounded > 0
