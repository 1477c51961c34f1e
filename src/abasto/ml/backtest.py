"""Holdout backtest of the pattern model against naive baselines.

The last ``holdout_days`` local days are held out (``folds`` > 1 repeats this at earlier origins,
each fold ``holdout_days`` before the previous, and pools the errors). The pattern model is
fitted on the days before the origin and compared, **on in-stock hours only** (demand is
censored in stocked-out ones), with two baselines computed from the same training days:

``same_hour_last_week``
    seasonal naive: the most recent in-stock value of the same local hour of week;
``hour_of_week_mean``
    the mean of the in-stock values of the same local hour of week.

Metrics: ``wape`` = Σ|ŷ − y| / Σy over hours; ``wape_daily`` the same over series-days (sums of
their in-stock held-out hours: closer to the windows the processor asks about); ``bias`` =
Σ(ŷ − y) / Σy; a pooled ``mase`` = MAE / the in-sample MAE of the one-week seasonal naive over
the training days (both hours in stock).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final

import numpy as np
import pandas as pd
import pyarrow as pa

from abasto.errors import InvalidInputError
from abasto.ml._estimate import FitConfig
from abasto.ml._frame import HOURS_PER_WEEK, Prepared, prepare, to_pandas, zone
from abasto.ml.pattern import calendar_from_history, fit_pattern

__all__ = ["BASELINES", "BacktestResult", "Score", "backtest"]

PATTERN: Final = "pattern"
BASELINES: Final = ("same_hour_last_week", "hour_of_week_mean")


@dataclass(frozen=True)
class Score:
    wape: float  # hourly
    wape_daily: float  # per series-day, summed over its in-stock held-out hours
    mase: float
    bias: float


@dataclass(frozen=True)
class BacktestResult:
    """Scores per method (``pattern`` and each of :data:`BASELINES`) over the held-out hours."""

    origin: datetime  # first held-out instant of the latest fold (UTC)
    holdout_days: int
    folds: int
    series: int
    hours: int  # in-stock hours scored
    actual_units: float
    scores: dict[str, Score] = field(default_factory=dict)

    @property
    def pattern(self) -> Score:
        return self.scores[PATTERN]

    @property
    def best_baseline(self) -> str:
        return min(BASELINES, key=lambda b: self.scores[b].wape)

    @property
    def wape_improvement(self) -> float:
        """1 − WAPE(pattern) / WAPE(best baseline): > 0 when the pattern model wins."""
        base = self.scores[self.best_baseline].wape
        return 1.0 - self.pattern.wape / base if base > 0 else 0.0

    def to_metrics(self) -> dict[str, float]:
        """Flat metrics for MLflow: ``wape_pattern``, ``mase_same_hour_last_week`` …"""
        out: dict[str, float] = {}
        for name, s in self.scores.items():
            out[f"wape_{name}"] = s.wape
            out[f"wape_daily_{name}"] = s.wape_daily
            out[f"mase_{name}"] = s.mase
            out[f"bias_{name}"] = s.bias
        out["wape_improvement"] = self.wape_improvement
        out["backtest_hours"] = float(self.hours)
        out["backtest_holdout_days"] = float(self.holdout_days)
        return out


def _key(prep: Prepared, sel: np.ndarray) -> np.ndarray:
    key: np.ndarray = prep.series_idx[sel] * HOURS_PER_WEEK + prep.how[sel]
    return key


def _baselines(prep: Prepared, train: np.ndarray, test: np.ndarray) -> dict[str, np.ndarray]:
    obs = pd.DataFrame({"k": _key(prep, train), "t": prep.hour_start[train], "y": prep.units[train]})
    obs = obs.sort_values("t", kind="stable")
    by = obs.groupby("k")["y"]
    keys = pd.Index(_key(prep, test))
    return {
        "same_hour_last_week": by.last().reindex(keys).fillna(0.0).to_numpy(dtype=np.float64),
        "hour_of_week_mean": by.mean().reindex(keys).fillna(0.0).to_numpy(dtype=np.float64),
    }


def _naive_scale(prep: Prepared, train: np.ndarray) -> float:
    """In-sample MAE of the one-week seasonal naive (pairs of in-stock hours a week apart)."""
    obs = pd.DataFrame({"s": prep.series_idx[train], "t": prep.hour_start[train], "y": prep.units[train]})
    prev = obs.assign(t=obs["t"] + np.timedelta64(7, "D"))
    pairs = obs.merge(prev, on=["s", "t"], suffixes=("", "_prev"))
    return float(np.abs(pairs["y"] - pairs["y_prev"]).mean()) if len(pairs) else float("nan")


def backtest(
    history: pa.Table | pd.DataFrame,
    *,
    timezone: str,
    holdout_days: int = 14,
    folds: int = 1,
    group_by: str | None = None,
    day_flags: Sequence[str] | None = None,
    unknown_stock_is_in_stock: bool = True,
    config: FitConfig | None = None,
) -> BacktestResult:
    """Score the pattern model and the baselines on the last ``holdout_days`` local days.

    The fit options are those of :func:`abasto.ml.pattern.fit_pattern`. Day flags of the held-out
    days are given to the model as a calendar (holidays and paydays are known in advance).
    """
    if holdout_days < 1 or folds < 1:
        raise InvalidInputError("holdout_days and folds must be >= 1")
    df = to_pandas(history)
    prep = prepare(
        df,
        timezone=timezone,
        group_by=group_by,
        day_flags=day_flags,
        unknown_stock_is_in_stock=unknown_stock_is_in_stock,
    )
    if prep.n_series == 0:
        raise InvalidInputError("history is empty: nothing to backtest")
    calendar = calendar_from_history(prep.local_date, prep.flags, prep.flag_names)
    last_day = prep.local_date.max()
    abs_err = dict.fromkeys((PATTERN, *BASELINES), 0.0)
    abs_err_daily = dict.fromkeys((PATTERN, *BASELINES), 0.0)
    signed = dict.fromkeys((PATTERN, *BASELINES), 0.0)
    mase_parts: dict[str, list[float]] = {m: [] for m in (PATTERN, *BASELINES)}
    hours, actual = 0, 0.0
    for k in range(folds):
        origin_day = last_day + 1 - holdout_days * (k + 1)
        end_day = origin_day + holdout_days
        train = prep.local_date < origin_day
        test = (prep.local_date >= origin_day) & (prep.local_date < end_day) & prep.observed
        if not (train & prep.observed).any():
            raise InvalidInputError(
                f"no in-stock training hour before {origin_day}: history too short for "
                f"{folds} fold(s) of {holdout_days} day(s)"
            )
        model = fit_pattern(
            df.iloc[np.flatnonzero(train)],
            timezone=timezone,
            group_by=group_by,
            day_flags=day_flags,
            calendar=calendar,
            unknown_stock_is_in_stock=unknown_stock_is_in_stock,
            config=config,
        )
        y = prep.units[test]
        preds = {PATTERN: model.predict(df.iloc[np.flatnonzero(test)])}
        preds.update(_baselines(prep, train & prep.observed, test))
        scale = _naive_scale(prep, train & prep.observed)
        series_day = prep.series_idx[test] * 100_000 + (prep.local_date[test] - origin_day).astype(np.int64)
        _, day_of_row = np.unique(series_day, return_inverse=True)
        for name, p in preds.items():
            abs_err[name] += float(np.abs(p - y).sum())
            abs_err_daily[name] += float(np.abs(np.bincount(day_of_row, p - y)).sum())
            signed[name] += float((p - y).sum())
            if len(y) and scale > 0:
                mase_parts[name].append(float(np.abs(p - y).mean()) / scale)
        hours += len(y)
        actual += float(y.sum())
    if actual <= 0:
        raise InvalidInputError("no units sold in the held-out in-stock hours: WAPE is undefined")
    scores = {
        name: Score(
            wape=abs_err[name] / actual,
            wape_daily=abs_err_daily[name] / actual,
            mase=float(np.mean(mase_parts[name])) if mase_parts[name] else float("nan"),
            bias=signed[name] / actual,
        )
        for name in abs_err
    }
    latest = pd.Timestamp(last_day + 1 - holdout_days).date()
    return BacktestResult(
        origin=datetime.combine(latest, datetime.min.time(), zone(timezone)).astimezone(UTC),
        holdout_days=holdout_days,
        folds=folds,
        series=prep.n_series,
        hours=hours,
        actual_units=actual,
        scores=scores,
    )
