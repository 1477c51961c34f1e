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


def _new_grid(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    k = np.arange(1, n + 1, dtype=np.float64)
    grid = (k, k - 1.0, np.log(k))
    for a in grid:
        a.setflags(write=False)
    return grid


#: (k = 1 … n, k − 1, log k) for the largest support asked so far (read-only; grown by doubling,
#: up to _GRID_MAX elements: 24 MB)
_full: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = [_new_grid(256)]
_GRID_MAX = 1 << 20


def _grid(upto: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(k, k − 1.0, log k) for k = 1 … upto: the arrays ``_pmf`` derives from k, computed once.

    The first ``upto`` elements of the arrays of the largest support asked so far: the same floats
    as arrays made for ``upto`` alone (``k`` and ``k − 1`` are exact integers, and ``log`` is
    elementwise: an element's result depends on its value only, not on the array's length or the
    element's place in it — numpy's vector loops treat the remainder with masked lanes of the
    same code, checked for every length in the tests).
    """
    full = _full[0]
    if upto > len(full[0]):
        if upto > _GRID_MAX:
            return _new_grid(upto)
        full = _full[0] = _new_grid(min(max(upto, 2 * len(full[0])), _GRID_MAX))
    return full[0][:upto], full[1][:upto], full[2][:upto]


def _pmf(mean: float, var: float, upto: int) -> np.ndarray:
    """P(Y = k) for k = 0 … upto.

    The same floats as computing each array afresh: ``k``, ``k − 1`` and ``log k`` are exact or
    elementwise functions of ``upto`` alone (cached by ``_grid``); the log-pmf is built in one
    buffer with the same operations in the same order (cumulative sum, then + log0, which commutes
    exactly) before the one ``exp`` over a fresh array of the same length.
    """
    k, k_minus_1, log_k = _grid(upto)
    if var <= mean * (1.0 + 1e-12):
        log0 = -mean
        steps = math.log(mean) - log_k
    else:
        size = mean * mean / (var - mean)
        p = size / (size + mean)
        log0 = size * math.log(p)
        ratio = k_minus_1 + size
        np.divide(ratio, k, out=ratio)  # (k − 1 + size) / k, in place: the same quotients
        steps = np.log(ratio)
        steps += math.log1p(-p)
    logpmf = np.empty(upto + 1, dtype=np.float64)
    logpmf[0] = log0
    tail = logpmf[1:]
    steps.cumsum(out=tail)
    tail += log0
    return np.exp(logpmf)


def _support(mean: float, var: float) -> int:
    return math.ceil(mean + _SD_SPAN * math.sqrt(max(var, mean)) + 50.0)


#: recent tails: (mean, var, k) → P(Y >= k) (a pure function of its arguments); at most _TAIL_MEMO
_tails: dict[tuple[float, float, int], float] = {}
_TAIL_MEMO = 4096


def prob_at_least(mean: float, var: float, k: int) -> float:
    """P(Y >= k) for count ``k``."""
    if k <= 0:
        return 1.0
    if mean <= 0.0:
        return 0.0
    key = (mean, var, k)
    known = _tails.get(key)
    if known is not None:
        return known
    upto = _support(mean, var)
    if k > upto:
        return 0.0
    pmf = _pmf(mean, var, upto)
    from_end = pmf[::-1].cumsum()  # sequential sums from the far tail: monotone in k
    tail = min(float(from_end[upto - k]) / float(from_end[-1]), 1.0)
    if len(_tails) >= _TAIL_MEMO:
        _tails.clear()
    _tails[key] = tail
    return tail


#: what ``upper_bound`` multiplies Cantelli's bound by: the renormalisation of the truncated support
#: (at most 1 / (1 − 1/1601) = 1.000625, see there) and room for the floating-point error of the
#: computed tail (relative, far below 1e-6)
_BOUND_MARGIN = 1.001
#: a negative binomial whose variance exceeds its mean by less than this (relative) has a success
#: probability too close to 1 for its parameters to keep their precision: no bound is claimed
_NB_MIN_EXCESS = 1e-3


def upper_bound(mean: float, var: float, k: int) -> float | None:
    """An upper bound of ``prob_at_least(mean, var, k)`` without computing the distribution, or
    None where none is claimed (``k`` not above the mean).

    Cantelli's one-sided inequality: for ``Y`` with mean ``μ`` and variance ``σ²``,
    ``P(Y ≥ k) ≤ σ² / (σ² + (k − μ)²)`` for ``k > μ``. ``prob_at_least`` sums the mass function
    truncated at its support's end ``upto`` ≥ ``μ + 40σ + 50``, renormalised: the mass cut off is at
    most ``1/1601`` by the same inequality, so its tail is at most the bound × 1.000625; the
    float sums and logs add relative errors far below 1e-6. Claimed only where the computed
    distribution has the stated variance: the Poisson case (``σ² = μ``) and negative binomials
    with ``var ≥ μ(1 + 1e-3)``.
    """
    if k <= 0 or k <= mean:
        return None
    if mean <= 0.0:
        return 0.0
    if var <= mean * (1.0 + 1e-12):
        v = mean  # the Poisson branch of _pmf
    elif var >= mean * (1.0 + _NB_MIN_EXCESS):
        v = var
    else:
        return None
    d = k - mean
    return min(1.0, v / (v + d * d) * _BOUND_MARGIN)


def quantile(mean: float, var: float, q: float) -> int:
    """Smallest ``k`` with P(Y <= k) >= q."""
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile level must be in [0, 1], got {q}")
    if mean <= 0.0:
        return 0
    upto = _support(mean, var)
    cdf = np.cumsum(_pmf(mean, var, upto))
    return int(min(np.searchsorted(cdf, q * cdf[-1]), upto))
