"""Negative-binomial / Poisson tails and quantiles against scipy (a test-only reference)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from abasto.ml import negbin

scipy_stats = pytest.importorskip("scipy.stats")


@pytest.mark.parametrize(("mean", "var"), [(0.3, 0.3), (4.0, 4.0), (120.0, 120.0), (2.5, 6.0), (40.0, 400.0)])
def test_tail_and_quantile_match_scipy(mean: float, var: float) -> None:
    if var > mean:
        size = mean * mean / (var - mean)
        dist = scipy_stats.nbinom(size, size / (size + mean))
    else:
        dist = scipy_stats.poisson(mean)
    for k in range(int(mean + 6 * var**0.5) + 2):
        assert negbin.prob_at_least(mean, var, k) == pytest.approx(dist.sf(k - 1), abs=1e-9)
    for q in (0.01, 0.25, 0.5, 0.9, 0.999):
        assert negbin.quantile(mean, var, q) == int(dist.ppf(q))


@given(mean=st.floats(0.01, 500.0), extra=st.floats(0.0, 5.0), k=st.integers(0, 2000))
def test_tail_is_a_non_increasing_probability(mean: float, extra: float, k: int) -> None:
    var = mean * (1.0 + extra)
    p, p_next = negbin.prob_at_least(mean, var, k), negbin.prob_at_least(mean, var, k + 1)
    assert 0.0 <= p_next <= p <= 1.0


def test_degenerate_inputs() -> None:
    assert negbin.prob_at_least(0.0, 0.0, 1) == 0.0
    assert negbin.prob_at_least(3.0, 3.0, 0) == 1.0
    assert negbin.quantile(0.0, 0.0, 0.9) == 0
    with pytest.raises(ValueError, match="quantile level"):
        negbin.quantile(1.0, 1.0, 1.5)
