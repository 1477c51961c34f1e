"""Negative-binomial (or Poisson) tail probabilities and quantiles from a mean and a variance.

Counts ``Y`` with mean ``μ`` and variance ``v``: Poisson when ``v <= μ``, otherwise the negative
binomial with size ``n = μ² / (v − μ)``. Computed with numpy only (log-space recurrence of the
probability mass function), the tail is summed from the far end, so it is
non-increasing in ``k``.
"""

from __future__ import annotations

import math

import numpy as np

#: the support is truncated where the mass left is negligible (≫ 40 standard deviations)
_SD_SPAN = 40.0


def _pmf(mean: float, var: float, upto: int) -> np.ndarray:
    """P(Y = k) for k = 0 … upto."""
    k = np.arange(1, upto + 1, dtype=np.float64)
    if var <= mean * (1.0 + 1e-12):
        log0 = -mean
        steps = math.log(mean) - np.log(k)
    else:
        size = mean * mean / (var - mean)
        p = size / (size + mean)
        log0 = size * math.log(p)
        steps = np.log((k - 1.0 + size) / k) + math.log1p(-p)
    logpmf = np.concatenate(([log0], log0 + np.cumsum(steps)))
    return np.exp(logpmf)


def _support(mean: float, var: float) -> int:
    return math.ceil(mean + _SD_SPAN * math.sqrt(max(var, mean)) + 50.0)


def prob_at_least(mean: float, var: float, k: int) -> float:
    """P(Y >= k) for count ``k``."""
    if k <= 0:
        return 1.0
    if mean <= 0.0:
        return 0.0
    upto = _support(mean, var)
    if k > upto:
        return 0.0
    pmf = _pmf(mean, var, upto)
    from_end = np.cumsum(pmf[::-1])  # sequential sums from the far tail: monotone in k
    return min(float(from_end[upto - k]) / float(from_end[-1]), 1.0)


def quantile(mean: float, var: float, q: float) -> int:
    """Smallest ``k`` with P(Y <= k) >= q."""
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile level must be in [0, 1], got {q}")
    if mean <= 0.0:
        return 0
    upto = _support(mean, var)
    cdf = np.cumsum(_pmf(mean, var, upto))
    return int(min(np.searchsorted(cdf, q * cdf[-1]), upto))
