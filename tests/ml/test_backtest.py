"""Backtests: the pattern model against the naive baselines, on synthetic and on real hours.

The real hours are FreshRetailNet-50K (Dingdong-Inc, CC BY 4.0, arXiv:2505.16319; see ml_frn.py).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from ml_frn import FRN_TZ
from ml_synthetic import TZ, make_world

from abasto.errors import InvalidInputError
from abasto.ml.backtest import BASELINES, backtest


def _figures(result: object) -> str:
    scores = result.scores  # type: ignore[attr-defined]
    return "; ".join(
        f"{n}: wape {s.wape:.4f} daily {s.wape_daily:.4f} mase {s.mase:.3f} bias {s.bias:+.3f}"
        for n, s in scores.items()
    )


@pytest.fixture(scope="module")
def synthetic_history() -> pd.DataFrame:
    """8 weeks, 72 series, stock for 1.2–2.5 days of demand each morning (~3% of hours out)."""
    return make_world(capacity_days=(1.2, 2.5)).history


def test_pattern_beats_baselines_on_synthetic_history(synthetic_history: pd.DataFrame) -> None:
    result = backtest(synthetic_history, timezone=TZ, holdout_days=14)
    # measured: pattern 0.762 / daily 0.353, hour-of-week mean 0.786 / 0.358, last week 0.944 / 0.470
    for baseline in BASELINES:
        assert result.pattern.wape < result.scores[baseline].wape - 0.015, _figures(result)
        assert result.pattern.wape_daily < result.scores[baseline].wape_daily, _figures(result)
    assert result.pattern.mase < 0.85
    assert result.scores["same_hour_last_week"].mase == pytest.approx(1.0, abs=0.05)  # it *is* the scale
    # only in-stock held-out hours are scored
    local = synthetic_history["hour_start"].dt.tz_convert(TZ)
    held_out = local >= local.max().normalize() - pd.Timedelta(days=13)
    in_stock = held_out & ~synthetic_history["out_of_stock"]
    assert result.hours == int(in_stock.sum())
    assert result.actual_units == pytest.approx(synthetic_history.loc[in_stock, "units_sold"].sum())
    assert result.origin == local[held_out].min().tz_convert("UTC").to_pydatetime()
    metrics = result.to_metrics()
    assert metrics["wape_pattern"] == result.pattern.wape
    assert {"mase_hour_of_week_mean", "wape_daily_same_hour_last_week", "wape_improvement"} <= set(metrics)
    assert all(np.isfinite(v) for v in metrics.values())


def test_rolling_origins_pool_more_hours(synthetic_history: pd.DataFrame) -> None:
    one = backtest(synthetic_history, timezone=TZ, holdout_days=7)
    three = backtest(synthetic_history, timezone=TZ, holdout_days=7, folds=3)
    assert 2.5 * one.hours < three.hours < 3.5 * one.hours
    assert three.origin == one.origin
    with pytest.raises(InvalidInputError, match="too short"):
        backtest(synthetic_history, timezone=TZ, holdout_days=30, folds=2)


def test_pattern_beats_baselines_on_freshretailnet(frn_history: pd.DataFrame) -> None:
    """Real hourly sales of 4 stores (189 products), last 14 days held out.

    Measured (hourly WAPE / daily WAPE / MASE): pattern 0.9372 / 0.3616 / 0.878, hour-of-week
    mean 0.9443 / 0.3901 / 0.885, same hour last week 1.0699 / 0.4075 / 1.002. Hourly sales are
    78% zeros, so any mean forecast has an hourly WAPE near 1; the daily figure is the one that
    matters for windows of several hours.
    """
    result = backtest(frn_history, timezone=FRN_TZ, holdout_days=14)
    best = min(result.scores[b].wape for b in BASELINES)
    best_daily = min(result.scores[b].wape_daily for b in BASELINES)
    assert result.pattern.wape < best * (1 - 0.004), _figures(result)
    assert result.pattern.wape_daily < best_daily * (1 - 0.05), _figures(result)
    assert result.pattern.mase < result.scores["hour_of_week_mean"].mase < 1.0
    assert result.wape_improvement > 0.004
