"""The pattern model on synthetic worlds whose true rates, shape and dispersion are known."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ml_synthetic import CHANNEL_SHAPES, START, TZ, World, make_world, to_arrow

from abasto.contracts.patterns import DemandPattern
from abasto.errors import InvalidInputError
from abasto.ml import negbin
from abasto.ml.pattern import FitConfig, PatternModel, fit_pattern

LOCAL = ZoneInfo(TZ)


def _level_ratios(model: PatternModel, world: World) -> np.ndarray:
    """Fitted / true weekly volume, per series."""
    return np.array([model.hour_of_week_rates(*k).sum() / r.sum() for k, r in world.true_rates.items()])


def _shape_error(model: PatternModel, world: World) -> float:
    """Mean over series of Σ_h |fitted − true| / Σ_h true (a WAPE over the 168 buckets)."""
    return float(
        np.mean(
            [np.abs(model.hour_of_week_rates(*k) - r).sum() / r.sum() for k, r in world.true_rates.items()]
        )
    )


@pytest.fixture(scope="module")
def clean_world() -> World:
    """No stockouts: 12 stores × 6 SKUs, 8 weeks."""
    return make_world(capacity_days=None)


@pytest.fixture(scope="module")
def stockout_world() -> World:
    """Stock for 0.8–1.6 days of mean demand each morning: ~10% of hours stocked out."""
    return make_world(capacity_days=(0.8, 1.6))


def test_recovers_levels_and_shapes(clean_world: World) -> None:
    model = fit_pattern(clean_world.history, timezone=TZ)
    assert isinstance(model, DemandPattern)
    assert len(model) == 72
    ratios = _level_ratios(model, clean_world)
    assert np.median(ratios) == pytest.approx(1.0, abs=0.03)
    assert np.quantile(ratios, [0.1, 0.9]).tolist() == pytest.approx([1.0, 1.0], abs=0.15)
    # per-bucket error well below that of the raw per-bucket means (8 observations each)
    raw = fit_pattern(
        clean_world.history, timezone=TZ, config=FitConfig(shape_prior_hours=0.0, half_life_days=None)
    )
    assert _shape_error(model, clean_world) < 0.18
    assert _shape_error(model, clean_world) < 0.8 * _shape_error(raw, clean_world)
    # the pooled shape shows through: a tienda peaks at 13h and 19h and is closed at 03h
    tienda = [k for k in clean_world.true_rates if k[0] == "S001"]
    mean_day = np.mean([model.hour_of_week_rates(*k)[:120].reshape(5, 24) for k in tienda], axis=(0, 1))
    assert set(np.argsort(mean_day)[-2:]) == {13, 19}
    assert mean_day[3] == 0.0  # no row of the store was ever sold at 03h: closed
    assert np.corrcoef(mean_day, CHANNEL_SHAPES["tienda"][:24])[0, 1] > 0.98


def test_stockout_hours_do_not_bias_rates_down(stockout_world: World) -> None:
    history = stockout_world.history
    assert 0.05 < history["out_of_stock"].mean() < 0.2
    masked = _level_ratios(fit_pattern(history, timezone=TZ), stockout_world)
    only_mask = _level_ratios(fit_pattern(history, timezone=TZ, config=FitConfig(em_iter=0)), stockout_world)
    naive = _level_ratios(fit_pattern(history.assign(out_of_stock=False), timezone=TZ), stockout_world)
    # measured: 0.958 (masked + EM), 0.881 (masking only), 0.842 (stockouts read as zero sales)
    assert np.median(masked) == pytest.approx(1.0, abs=0.06)
    assert np.median(masked) > np.median(only_mask) + 0.04 > np.median(naive) + 0.06
    # hardest hit: series that run out most often
    worst = history.groupby(["store_id", "sku"])["out_of_stock"].mean().nlargest(10).index
    keys = list(stockout_world.true_rates)
    idx = [keys.index(k) for k in worst]
    assert np.median(masked[idx]) > np.median(naive[idx]) + 0.15


def test_unknown_stock_status_counts_as_in_stock_unless_told(stockout_world: World) -> None:
    history = stockout_world.history.assign(
        out_of_stock=stockout_world.history["out_of_stock"]
        .astype("boolean")
        .where(~stockout_world.history["out_of_stock"], pd.NA)
    )  # stockouts unknown, the rest in stock
    as_in_stock = fit_pattern(history, timezone=TZ)
    as_censored = fit_pattern(history, timezone=TZ, unknown_stock_is_in_stock=False)
    known = fit_pattern(stockout_world.history, timezone=TZ)
    key = next(iter(stockout_world.true_rates))
    assert as_censored.hour_of_week_rates(*key) == pytest.approx(known.hour_of_week_rates(*key))
    assert as_in_stock.fit_info["censored_hours"] == 0 < as_censored.fit_info["censored_hours"]


def _model(rates: np.ndarray, tz: str = TZ, **kwargs: object) -> PatternModel:
    series = pd.DataFrame({"store_id": ["S1"], "sku": ["A"], "group": ["all"], "level": [rates.mean()]})
    return PatternModel(
        timezone=tz,
        series=series,
        rates=rates.reshape(1, 168),
        groups=["all"],
        dispersion={"all": (0.0, 0.0)},
        **kwargs,
    )  # type: ignore[arg-type]


def test_rate_uses_the_local_hour_of_week() -> None:
    model = _model(np.arange(168, dtype=float))
    monday_13h_local = datetime(2026, 6, 1, 13, 20, tzinfo=LOCAL)  # Mexico City is UTC-6
    assert model.rate("S1", "A", monday_13h_local) == 13.0
    assert model.rate("S1", "A", monday_13h_local.astimezone(UTC)) == 13.0
    assert model.rate("S1", "A", datetime(2026, 6, 7, 23, 59, tzinfo=LOCAL)) == 167.0  # Sunday 23h
    assert model.rate("S1", "nope", monday_13h_local) == 0.0
    with pytest.raises(InvalidInputError, match="tz-aware"):
        model.rate("S1", "A", datetime(2026, 6, 1, 13))


def test_expected_units_integrates_partial_hours() -> None:
    model = _model(np.arange(168, dtype=float))
    start = datetime(2026, 6, 1, 13, 30, tzinfo=LOCAL)
    assert model.expected_units("S1", "A", start, start + timedelta(minutes=105)) == pytest.approx(
        0.5 * 13 + 14 + 0.25 * 15
    )
    assert model.expected_units("S1", "A", start, start + timedelta(minutes=10)) == pytest.approx(13 / 6)
    assert model.expected_units("S1", "A", start, start) == 0.0
    week = model.expected_units("S1", "A", start, start + timedelta(days=7))
    assert week == pytest.approx(np.arange(168).sum())
    assert model.expected_units("S9", "A", start, start + timedelta(days=1)) == 0.0


def test_expected_units_across_a_dst_change() -> None:
    madrid = ZoneInfo("Europe/Madrid")
    model = _model(np.arange(168, dtype=float), tz="Europe/Madrid")
    # Sunday 2026-03-29: clocks jump 02:00 → 03:00, so local hour 2 never happens
    start, end = datetime(2026, 3, 29, 0, tzinfo=madrid), datetime(2026, 3, 29, 5, tzinfo=madrid)
    span = (end.astimezone(UTC) - start.astimezone(UTC)) / timedelta(hours=1)
    assert span == 4.0
    sunday = 6 * 24
    assert model.expected_units("S1", "A", start, end) == pytest.approx(sum(sunday + h for h in (0, 1, 3, 4)))


def test_day_multipliers_are_learned_and_applied(clean_world: World) -> None:
    holidays = ("2026-06-09", "2026-06-18", "2026-07-03", "2026-07-15")
    world = make_world(capacity_days=None, holiday_uplift=1.6, holidays=holidays)
    model = fit_pattern(world.history, timezone=TZ)
    assert model.day_multipliers["is_holiday"] == pytest.approx(1.6, abs=0.12)  # measured 1.57
    assert np.median(_level_ratios(model, world)) == pytest.approx(1.0, abs=0.04)
    key = next(iter(world.true_rates))
    holiday = datetime(2026, 7, 15, 13, tzinfo=LOCAL)
    normal = datetime(2026, 7, 22, 13, tzinfo=LOCAL)  # same weekday and hour, no holiday
    uplift = model.day_multipliers["is_holiday"]
    assert model.rate(*key, holiday) == pytest.approx(model.rate(*key, normal) * uplift)
    # a future holiday only counts once the calendar knows it
    future = datetime(2026, 9, 16, 13, tzinfo=LOCAL)
    assert model.rate(*key, future) == pytest.approx(model.rate(*key, normal))
    aware = model.with_calendar({date(2026, 9, 16): ["is_holiday"]})
    assert aware.rate(*key, future) > 1.4 * model.rate(*key, future)
    # without the flag column, no multiplier is learned
    assert fit_pattern(world.history.drop(columns="is_holiday"), timezone=TZ).day_multipliers == {}


def test_sparse_and_always_stocked_out_series_fall_back_to_the_pools(clean_world: World) -> None:
    history = clean_world.history
    recent = history["hour_start"] >= history["hour_start"].max() - pd.Timedelta(days=3)
    new_sku = history[(history["store_id"] == "S000") & (history["sku"] == "SKU00") & recent]
    never_in_stock = history[(history["store_id"] == "S004") & (history["sku"] == "SKU01")]
    augmented = pd.concat(
        [
            history[~((history["store_id"] == "S004") & (history["sku"] == "SKU01"))],
            new_sku.assign(store_id="S999"),  # three days of data in a new store
            never_in_stock.assign(out_of_stock=True, units_sold=0.0),
        ],
        ignore_index=True,
    )
    model = fit_pattern(augmented, timezone=TZ)
    sparse = model.hour_of_week_rates("S999", "SKU00")
    assert np.isfinite(sparse).all() and sparse.sum() > 0
    # never observed in stock: the SKU's level over the other stores, not zero
    blind = model.level("S004", "SKU01")
    others = [model.level(f"S{s:03d}", "SKU01") for s in range(12) if s != 4]
    assert min(others) < blind < max(others)


def test_input_validation(clean_world: World) -> None:
    history = clean_world.history.head(500)
    with pytest.raises(InvalidInputError, match="units_sold"):
        fit_pattern(history.drop(columns="units_sold"), timezone=TZ)
    with pytest.raises(InvalidInputError, match="tz-aware"):
        fit_pattern(history.assign(hour_start=history["hour_start"].dt.tz_localize(None)), timezone=TZ)
    with pytest.raises(InvalidInputError, match="duplicate"):
        fit_pattern(pd.concat([history, history.head(3)]), timezone=TZ)
    with pytest.raises(InvalidInputError, match="time zone"):
        fit_pattern(history, timezone="Mars/Olympus")
    with pytest.raises(InvalidInputError, match="negative"):
        fit_pattern(history.assign(units_sold=-1.0), timezone=TZ)
    with pytest.raises(InvalidInputError, match="empty"):
        fit_pattern(history.head(0), timezone=TZ)


def test_arrow_input_and_table_round_trip(clean_world: World) -> None:
    history = clean_world.history[clean_world.history["store_id"].isin(["S000", "S001"])]
    from_pandas = fit_pattern(history, timezone=TZ)
    from_arrow = fit_pattern(to_arrow(history), timezone=TZ)
    table = from_arrow.to_table()
    assert table.num_rows == 12 * 168
    assert set(table.column_names) == {"store_id", "sku", "group", "level", "hour_of_week", "rate"}
    back = PatternModel.from_table(table)
    start = datetime(2026, 8, 3, 9, 45, tzinfo=LOCAL)
    end = start + timedelta(hours=30)
    for key in from_pandas.series_keys():
        assert back.hour_of_week_rates(*key) == pytest.approx(from_pandas.hour_of_week_rates(*key))
        expected = from_pandas.expected_units(*key, start, end)
        assert back.expected_units(*key, start, end) == pytest.approx(expected)
        assert back.prob_demand_at_least(*key, start, end, 10) == pytest.approx(
            from_pandas.prob_demand_at_least(*key, start, end, 10)
        )
    assert back.dispersion == from_pandas.dispersion
    assert back.timezone == TZ and back.version == "unregistered"
    with pytest.raises(InvalidInputError, match="not a pattern table"):
        PatternModel.from_table(pa.table({"x": [1]}))


@pytest.fixture(scope="module")
def fitted_clean(clean_world: World) -> PatternModel:
    return fit_pattern(clean_world.history, timezone=TZ)


@settings(max_examples=40, deadline=None)
@given(hours=st.floats(0.5, 72.0), units=st.lists(st.floats(-2.0, 80.0), min_size=2, max_size=6))
def test_prob_demand_at_least_is_monotone_in_units(
    fitted_clean: PatternModel, hours: float, units: list[float]
) -> None:
    start = datetime(2026, 8, 3, 8, tzinfo=LOCAL)
    end = start + timedelta(hours=hours)
    probs = [fitted_clean.prob_demand_at_least("S001", "SKU02", start, end, u) for u in sorted(units)]
    assert all(0.0 <= p <= 1.0 for p in probs)
    assert all(a >= b for a, b in itertools.pairwise(probs))
    assert fitted_clean.prob_demand_at_least("S001", "SKU02", start, end, 0) == 1.0
    assert fitted_clean.prob_demand_at_least("S404", "SKU02", start, end, 1) == 0.0


def test_quantile_matches_the_tail(fitted_clean: PatternModel) -> None:
    start = datetime(2026, 8, 4, 10, tzinfo=LOCAL)
    end = start + timedelta(hours=8)
    for q in (0.1, 0.5, 0.9, 0.99):
        k = fitted_clean.quantile("S002", "SKU03", start, end, q)
        # P(D <= k) >= q  and  P(D <= k - 1) < q
        assert 1.0 - fitted_clean.prob_demand_at_least("S002", "SKU03", start, end, k + 1) >= q - 1e-9
        assert 1.0 - fitted_clean.prob_demand_at_least("S002", "SKU03", start, end, k) < q


def _calibration_error(pred: np.ndarray, hit: np.ndarray) -> float:
    """Mean |predicted − observed frequency| over deciles of the predicted probability."""
    bins = np.clip((pred * 10).astype(int), 0, 9)
    full = [b for b in range(10) if (bins == b).sum() >= 100]
    gaps = [abs(pred[bins == b].mean() - hit[bins == b].mean()) for b in full]
    return float(np.mean(gaps))


def test_prob_demand_at_least_is_calibrated(clean_world: World, fitted_clean: PatternModel) -> None:
    """Predicted P(D >= k) over 8-hour windows vs what a simulated next month does."""
    rng = np.random.default_rng(99)
    future = clean_world.simulate(START + pd.Timedelta(weeks=8), 28, rng, stockouts=False)
    local = future["hour_start"].dt.tz_convert(TZ)
    window = future[local.dt.hour.between(12, 19)]
    demand = window.groupby(["store_id", "sku", local.dt.date])["demand"].sum()
    pred, poisson, hit = [], [], []
    for (store, sku, day), d in demand.items():
        start = datetime.combine(day, datetime.min.time(), LOCAL) + timedelta(hours=12)
        end = start + timedelta(hours=8)
        mu = fitted_clean.expected_units(store, sku, start, end)
        for factor in (0.5, 0.8, 1.0, 1.25, 1.6):
            k = max(int(np.ceil(mu * factor)), 1)
            pred.append(fitted_clean.prob_demand_at_least(store, sku, start, end, k))
            poisson.append(negbin.prob_at_least(mu, mu, k))
            hit.append(d >= k)
    p, pp, h = np.array(pred), np.array(poisson), np.array(hit, dtype=float)
    assert len(p) == 72 * 28 * 5
    assert abs(p.mean() - h.mean()) < 0.03
    error = _calibration_error(p, h)
    assert error < 0.05  # measured 0.023 (Poisson: 0.082); mean predicted 0.458 vs observed 0.452
    assert _calibration_error(pp, h) > 1.5 * error  # ignoring day-level dispersion is overconfident


def test_the_fit_and_backtest_do_not_depend_on_the_order_of_history_rows(stockout_world: World) -> None:
    """A hash join or a parallel scan hands the history over in any order: the fitted model (its
    serialised table, bit for bit) and the backtest figures must not change."""
    from abasto.ml.backtest import backtest  # noqa: PLC0415

    history = to_arrow(stockout_world.history)
    shuffled = history.take(np.random.default_rng(3).permutation(history.num_rows))
    assert not shuffled.equals(history)
    a = fit_pattern(history, timezone=TZ)
    b = fit_pattern(shuffled, timezone=TZ)
    assert a.to_table().equals(b.to_table())
    assert (
        backtest(history, timezone=TZ, holdout_days=7).to_metrics()
        == backtest(shuffled, timezone=TZ, holdout_days=7).to_metrics()
    )
