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


#: supports asked recently: upto → (k = 1 … upto, k − 1, log k), read-only; at most _GRID_MEMO
_grids: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
_GRID_MEMO = 512


def _grid(upto: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(k, k − 1.0, log k) for k = 1 … upto: the arrays ``_pmf`` derives from k, computed once."""
    grid = _grids.get(upto)
    if grid is None:
        k = np.arange(1, upto + 1, dtype=np.float64)
        grid = (k, k - 1.0, np.log(k))
        for a in grid:
            a.setflags(write=False)
        if len(_grids) >= _GRID_MEMO:
            _grids.clear()
        _grids[upto] = grid
    return grid


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
        steps = np.log((k_minus_1 + size) / k) + math.log1p(-p)
    logpmf = np.empty(upto + 1, dtype=np.float64)
    logpmf[0] = log0
    tail = logpmf[1:]
    np.cumsum(steps, out=tail)
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
    from_end = np.cumsum(pmf[::-1])  # sequential sums from the far tail: monotone in k
    tail = min(float(from_end[upto - k]) / float(from_end[-1]), 1.0)
    if len(_tails) >= _TAIL_MEMO:
        _tails.clear()
    _tails[key] = tail
    return tail


def quantile(mean: float, var: float, q: float) -> int:
    """Smallest ``k`` with P(Y <= k) >= q."""
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile level must be in [0, 1], got {q}")
    if mean <= 0.0:
        return 0
    upto = _support(mean, var)
    cdf = np.cumsum(_pmf(mean, var, upto))
    return int(min(np.searchsorted(cdf, q * cdf[-1]), upto))
