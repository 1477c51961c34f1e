"""Estimation of the hour-of-week pattern (numpy only; see :mod:`abasto.ml.pattern` for the model).

Model, per series ``s`` (store×SKU), local hour of week ``h`` (168 buckets) and hour ``t``::

    E[units_t] = rate[s, h(t)] · Π_f mult_f^flag_f(day(t))

Writing ``Y[s, h]`` for the units sold and ``E[s, h]`` for the hours (weighted by the day
multipliers and by recency: an hour ``half_life_days`` older than the last day counts half),
over **in-stock hours only** (stocked-out hours are censored demand), estimation goes:

1. **Level × pooled shape** (a Poisson GLM fitted by alternating updates): ``level_s`` is the
   exposure-adjusted mean rate ``Σ_h Y / Σ_h shape_g[h]·E`` (so a series stocked out mostly in
   its busy hours is not biased down), shrunk toward its SKU's level over all stores with
   ``level_prior_hours`` pseudo-hours. ``shape_g`` is the pooled hour-of-week shape of the
   series' group (channel, or all series), mean 1 over the week, itself shrunk toward the
   shape of all series with ``group_prior_hours`` pseudo-hours at the group's mean level.
2. **Series shape by its evidence** (gamma–Poisson posterior mean):
   ``rate[s, h] = (Y + c·level_s·shape_g[h]) / (E + c)`` — a bucket with many observed hours
   follows its own mean, a sparse one the pooled shape. The prior strength ``c`` (pseudo-hours)
   is chosen by two-fold cross-validation over alternate weeks (squared error on held-out
   in-stock hours).
3. **Day multipliers** (optional flags such as ``is_holiday`` / ``is_payday``): one factor per
   flag pooled over all series, ``Σ y / Σ expected`` on flagged days with a tenth of a
   pseudo-day (of all series' volume) of prior at 1; steps 1–3 alternate a few times.
4. **Censored hours (EM)**: masking alone still biases rates down, because the hour in which a
   product runs out is dropped *because* its demand was high, and stockouts cluster on busy
   days. So each stocked-out hour is filled with its expected demand given the in-stock hours
   of the same series-day (gamma posterior of the day factor, variance ``α_day``), and at least
   what it sold; steps 1–2 are refitted on the filled hours a few times.

Buckets in which a store has no row at all (closed, or not reporting) get rate 0.

Dispersion for probabilities: ``Var(Y_window) = μ + α_hour·Σ_t μ_t² + α_day·Σ_days μ_d²``, per
group, by the method of moments on hourly and daily sums of in-stock hours against the
*out-of-fold* predictions of step 2, so the forecast's own error is part of the spread.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from abasto.ml._frame import HOURS_PER_WEEK, Prepared

H = HOURS_PER_WEEK
_DEFAULT_GRID = (0.0, *np.geomspace(0.5, 4096.0, 27).tolist(), float("inf"))


@dataclass(frozen=True)
class FitConfig:
    """Prior strengths (in pseudo-hours) and iteration limits. Defaults suit hourly retail data."""

    level_prior_hours: float = 24.0
    group_prior_hours: float = 48.0
    #: fixed shape prior strength; None = choose from ``shape_prior_grid`` by cross-validation
    shape_prior_hours: float | None = None
    shape_prior_grid: tuple[float, ...] = _DEFAULT_GRID
    max_iter: int = 100
    outer_iter: int = 10
    #: EM passes filling censored hours with their expected demand (0 = plain masking)
    em_iter: int = 5
    #: recency weighting: an hour this many days older than the last one counts half (None = equal)
    half_life_days: float | None = 28.0
    tol: float = 1e-7


@dataclass(frozen=True)
class Estimate:
    level: np.ndarray  # (S,)
    rates: np.ndarray  # (S, 168) units/hour on a day without flags
    group_codes: np.ndarray  # (S,) int
    groups: tuple[str, ...]
    group_shapes: np.ndarray  # (G, 168), mean 1
    day_multipliers: dict[str, float]
    alpha_hour: np.ndarray  # (G,)
    alpha_day: np.ndarray  # (G,)
    shape_prior_hours: float
    cv_loss: dict[float, float] = field(default_factory=dict)


def _bucket_sum(idx: np.ndarray, how: np.ndarray, values: np.ndarray, n_series: int) -> np.ndarray:
    flat = np.bincount(idx * H + how, weights=values, minlength=n_series * H)
    return flat.reshape(n_series, H)


def _div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    out = np.zeros(np.broadcast(num, den).shape)
    np.divide(num, den, out=out, where=den > 0)
    return out


def _normalise(shape: np.ndarray) -> np.ndarray:
    mean = shape.mean(axis=-1, keepdims=True)
    return _div(shape, mean)


def _group_sum(x: np.ndarray, codes: np.ndarray, n_groups: int) -> np.ndarray:
    """Sum the rows of ``x`` (series × 168) per group code."""
    flat = (codes[:, None] * H + np.arange(H)).ravel()
    return np.bincount(flat, weights=x.ravel(), minlength=n_groups * H).reshape(n_groups, H)


@dataclass(frozen=True)
class _Pools:
    """Per series: its pooling group and its SKU (for the level prior)."""

    group: np.ndarray
    n_groups: int
    sku: np.ndarray
    n_sku: int


def levels_and_shapes(
    y: np.ndarray, e: np.ndarray, pools: _Pools, cfg: FitConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Step 1: series levels and pooled group shapes from bucket sums ``y`` and exposures ``e``."""
    group, n_groups, sku, n_sku = pools.group, pools.n_groups, pools.sku, pools.n_sku
    ys = y.sum(axis=1)
    shapes = np.ones((n_groups, H))
    level = np.zeros(len(y))
    k = cfg.level_prior_hours
    for _ in range(cfg.max_iter):
        x = (shapes[group] * e).sum(axis=1)
        lam_all = float(ys.sum() / x.sum()) if x.sum() > 0 else 0.0
        lam_sku = (np.bincount(sku, ys, n_sku) + k * lam_all) / (np.bincount(sku, x, n_sku) + k)
        new = (ys + k * lam_sku[sku]) / (x + k)
        le = new[:, None] * e
        overall = _normalise(_div(y.sum(axis=0), le.sum(axis=0)))
        counts = np.bincount(group, minlength=n_groups)
        prior = cfg.group_prior_hours * _div(np.bincount(group, new, n_groups), counts)[:, None]
        num, den = _group_sum(y, group, n_groups), _group_sum(le, group, n_groups)
        shapes = _normalise(np.where(den + prior > 0, _div(num + prior * overall, den + prior), overall))
        done = np.allclose(new, level, rtol=cfg.tol, atol=cfg.tol * max(lam_all, 1e-12))
        level = new
        if done:
            break
    return level, shapes


def series_rates(y: np.ndarray, e: np.ndarray, level: np.ndarray, pooled: np.ndarray, c: float) -> np.ndarray:
    """Step 2: posterior mean rate per bucket with ``c`` pseudo-hours at the pooled rate."""
    prior: np.ndarray = level[:, None] * pooled
    if np.isinf(c):
        return prior
    out: np.ndarray = np.where(e + c > 0, _div(y + c * prior, e + c), prior)
    return out


@dataclass(frozen=True)
class _Rows:
    """Observed rows of the history, as flat arrays."""

    idx: np.ndarray
    how: np.ndarray
    y: np.ndarray
    mult: np.ndarray  # current day multiplier of each row
    day: np.ndarray  # int64 local day number
    w: np.ndarray  # recency weight of each row

    def subset(self, sel: np.ndarray) -> _Rows:
        return _Rows(self.idx[sel], self.how[sel], self.y[sel], self.mult[sel], self.day[sel], self.w[sel])

    def with_mult(self, mult: np.ndarray) -> _Rows:
        return _Rows(self.idx, self.how, self.y, mult, self.day, self.w)

    def sums(self, values: np.ndarray, n_series: int) -> np.ndarray:
        """Recency-weighted sums of ``values`` per series × hour of week."""
        return _bucket_sum(self.idx, self.how, values * self.w, n_series)


def _cross_validate(
    rows: _Rows, n: int, pools: _Pools, cfg: FitConfig
) -> tuple[float, dict[float, float], np.ndarray | None]:
    """Two-fold cross-validation over alternate local weeks.

    Returns the shape prior ``c`` with the least held-out squared error (the configured one if set),
    the loss per candidate and, per row, the out-of-fold expected units at that ``c`` (None when
    the history spans a single week). The out-of-fold predictions feed the dispersion estimate,
    so that it includes the error of the fitted rates, as a forecast's does.
    """
    # weeks start on Monday: 1970-01-01 was a Thursday, so shift by 3 days
    fold = ((rows.day + 3) // 7) % 2
    c_fixed = cfg.shape_prior_hours
    group = pools.group
    grid = (c_fixed,) if c_fixed is not None else cfg.shape_prior_grid
    losses = dict.fromkeys(grid, 0.0)
    fits = []
    for f in (0, 1):
        tr, te = fold != f, fold == f
        if not tr.any() or not te.any():
            return (c_fixed if c_fixed is not None else 24.0), {}, None
        a, b = rows.subset(tr), rows.subset(te)
        y_tr, e_tr = a.sums(a.y, n), a.sums(a.mult, n)
        ym, mm = b.sums(b.y * b.mult, n), b.sums(b.mult**2, n)
        level, shapes = levels_and_shapes(y_tr, e_tr, pools, cfg)
        fits.append((te, y_tr, e_tr, level, shapes))
        for c in grid:
            r = series_rates(y_tr, e_tr, level, shapes[group], c)
            losses[c] += float((r * r * mm - 2.0 * r * ym).sum())
    best = min(losses, key=lambda c: losses[c])
    oof = np.zeros(len(rows.y))
    for te, y_tr, e_tr, level, shapes in fits:
        r = series_rates(y_tr, e_tr, level, shapes[group], best)
        oof[te] = r[rows.idx[te], rows.how[te]] * rows.mult[te]
    return best, (losses if c_fixed is None else {}), oof


def _day_multipliers(
    rows: _Rows, flags: np.ndarray, names: tuple[str, ...], rates: np.ndarray, current: dict[str, float]
) -> dict[str, float]:
    """Step 3: one factor per flag (pooled), with a tenth of a pseudo-day of prior at 1."""
    base = rates[rows.idx, rows.how]
    n_days = max(len(np.unique(rows.day)), 1)
    prior = 0.1 * float((rows.y * rows.w).sum()) / n_days
    out = dict(current)
    for j, name in enumerate(names):
        on = flags[:, j]
        if not on.any():
            out[name] = 1.0
            continue
        others = rows.mult[on] / out[name]
        num = float((rows.y[on] * rows.w[on]).sum())
        den = float((base[on] * others * rows.w[on]).sum())
        out[name] = (num + prior) / (den + prior) if den + prior > 0 else 1.0
    return out


def _row_multipliers(flags: np.ndarray, names: tuple[str, ...], mult: dict[str, float]) -> np.ndarray:
    m = np.ones(len(flags))
    for j, name in enumerate(names):
        m = np.where(flags[:, j], m * mult[name], m)
    return m


def _dispersion(
    rows: _Rows, mu: np.ndarray, group_of_row: np.ndarray, n_groups: int, *, min_days: int = 50
) -> tuple[np.ndarray, np.ndarray]:
    """Method-of-moments α_hour, α_day per group (global fallback for small groups)."""
    y = rows.y
    # daily sums over observed hours, per series-day
    inv = _series_days(rows)
    yd = np.bincount(inv, y)
    md = np.bincount(inv, mu)
    qd = np.bincount(inv, mu * mu)
    gd = np.zeros(len(yd), dtype=np.int64)
    gd[inv] = group_of_row

    def moments(sel_h: np.ndarray, sel_d: np.ndarray) -> tuple[float, float]:
        den_h = float((mu[sel_h] ** 2).sum())
        if den_h <= 0:
            return 0.0, 0.0
        a = max(float(((y[sel_h] - mu[sel_h]) ** 2 - mu[sel_h]).sum()) / den_h, 0.0)
        den_d = float((md[sel_d] ** 2 - qd[sel_d]).sum())
        if den_d <= 0:
            return a, 0.0
        raw = float(((yd[sel_d] - md[sel_d]) ** 2 - md[sel_d]).sum()) - a * float(qd[sel_d].sum())
        a_day = min(max(raw / den_d, 0.0), a)
        return a - a_day, a_day

    glob = moments(np.ones(len(y), dtype=bool), np.ones(len(yd), dtype=bool))
    a_hour = np.full(n_groups, glob[0])
    a_day = np.full(n_groups, glob[1])
    for g in range(n_groups):
        sel_d = gd == g
        if sel_d.sum() >= min_days:
            a_hour[g], a_day[g] = moments(group_of_row == g, sel_d)
    return a_hour, a_day


def _series_days(rows: _Rows) -> np.ndarray:
    """Per row, the index of its series-day."""
    _, inv = np.unique(rows.idx * 1_000_000 + (rows.day - rows.day.min()), return_inverse=True)
    out: np.ndarray = inv
    return out


def _day_factors(
    rows: _Rows, inv: np.ndarray, mu: np.ndarray, observed: np.ndarray, a: np.ndarray
) -> np.ndarray:
    """Posterior mean of each row's series-day demand factor given the day's in-stock hours.

    ``inv``: series-day of each row; ``a``: per row, the day variance α_day of its series' group
    (gamma prior with mean 1 and that variance; factor 1 where α = 0).
    """
    y_day = np.bincount(inv, np.where(observed, rows.y, 0.0))
    mu_day = np.bincount(inv, np.where(observed, mu, 0.0))
    shape = _div(np.ones_like(a), a)
    factor = _div(shape + y_day[inv], shape + mu_day[inv])
    out: np.ndarray = np.where(a > 0, factor, 1.0)
    return out


def estimate(prep: Prepared, cfg: FitConfig) -> Estimate:
    """Fit levels, shapes, rates, day multipliers and dispersion (see the module docstring)."""
    n = prep.n_series
    groups_u, group = np.unique(prep.series["group"].to_numpy(dtype=str), return_inverse=True)
    skus_u, sku = np.unique(prep.series["sku"].to_numpy(dtype=str), return_inverse=True)
    n_groups = len(groups_u)
    pools = _Pools(group, n_groups, sku, len(skus_u))
    known = ~np.isnan(prep.units)
    observed = prep.observed[known]  # per known row: in stock
    flags_all = prep.flags[known]
    names = prep.flag_names
    mult = dict.fromkeys(names, 1.0)
    day = prep.local_date[known].astype(np.int64)
    w = np.ones(len(day)) if cfg.half_life_days is None else 0.5 ** ((day.max() - day) / cfg.half_life_days)
    every = _Rows(prep.series_idx[known], prep.how[known], prep.units[known], np.ones(len(day)), day, w)
    rows = every.subset(observed)
    flags = flags_all[observed]

    # 1-3: masked fit (censored hours left out)
    c = cfg.shape_prior_hours if cfg.shape_prior_hours is not None else 24.0
    y = rows.sums(rows.y, n)
    level = np.zeros(n)
    rates = np.zeros((n, H))
    shapes = np.ones((n_groups, H))
    for it in range(cfg.outer_iter if names else 1):
        e = rows.sums(rows.mult, n)
        level, shapes = levels_and_shapes(y, e, pools, cfg)
        rates = series_rates(y, e, level, shapes[group], c)
        if names and it < cfg.outer_iter - 1:
            mult = _day_multipliers(rows, flags, names, rates, mult)
            rows = rows.with_mult(_row_multipliers(flags, names, mult))
    c, cv, oof = _cross_validate(rows, n, pools, cfg)
    rates = series_rates(y, rows.sums(rows.mult, n), level, shapes[group], c)
    mu = rates[rows.idx, rows.how] * rows.mult if oof is None else oof
    a_hour, a_day = _dispersion(rows, mu, group[rows.idx], n_groups)

    # 4: censored hours: expected demand given the rest of their day (EM), at least what sold
    if not observed.all() and cfg.em_iter > 0:
        every = every.with_mult(_row_multipliers(flags_all, names, mult))
        e = every.sums(every.mult, n)
        inv, a_row = _series_days(every), a_day[group[every.idx]]
        for _ in range(cfg.em_iter):
            mu_all = rates[every.idx, every.how] * every.mult
            factor = _day_factors(every, inv, mu_all, observed, a_row)
            filled = np.where(observed, every.y, np.maximum(every.y, mu_all * factor))
            y = every.sums(filled, n)
            level, shapes = levels_and_shapes(y, e, pools, cfg)
            rates = series_rates(y, e, level, shapes[group], c)

    # closed / not reporting: buckets where the store has no row at all
    store_codes = prep.series["store_id"].to_numpy(dtype=str)
    _, store = np.unique(store_codes, return_inverse=True)
    seen = np.bincount(store[prep.series_idx] * H + prep.how, minlength=(int(store.max()) + 1) * H) > 0
    rates = np.where(seen.reshape(-1, H)[store], rates, 0.0)

    return Estimate(
        level=level,
        rates=rates,
        group_codes=group.astype(np.int64),
        groups=tuple(str(g) for g in groups_u),
        group_shapes=shapes,
        day_multipliers=mult,
        alpha_hour=a_hour,
        alpha_day=a_day,
        shape_prior_hours=float(c),
        cv_loss=cv,
    )
