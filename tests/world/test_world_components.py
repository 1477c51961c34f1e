"""Building blocks of the world: calendar, catalogue, weather response, shapes, random streams."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest

from abasto.errors import ConfigError
from abasto.world.calendar import is_payday, payday_factor, special_days
from abasto.world.catalog import CATALOGUE, select_skus
from abasto.world.demand import CHANNEL_ORDER, dow_factors, hour_shapes
from abasto.world.rng import golden_sequence, stream
from abasto.world.timegrid import build_grid
from abasto.world.weather import temperature_effect


def test_mexican_calendar() -> None:
    days = special_days(2026)
    assert days[date(2026, 9, 16)].official and days[date(2026, 9, 16)].name == "Día de la Independencia"
    assert not days[date(2026, 9, 15)].official  # Noche del Grito: a big day, not a rest day
    assert date(2026, 4, 3) in days  # Good Friday 2026 (Easter is April 5)
    assert days[date(2026, 11, 16)].name == "Día de la Revolución"  # third Monday of November
    assert days[date(2026, 2, 2)].name == "Día de la Constitución"  # first Monday of February


def test_quincena() -> None:
    assert is_payday(date(2026, 9, 15)) and is_payday(date(2026, 9, 30)) and is_payday(date(2026, 2, 28))
    assert not is_payday(date(2026, 9, 29))
    assert payday_factor(date(2026, 9, 30)) > payday_factor(date(2026, 10, 1)) > 1.0
    assert payday_factor(date(2026, 9, 28)) < 1.0 == payday_factor(date(2026, 9, 22))


def test_catalogue_prefix_is_stable_and_bounded() -> None:
    assert select_skus(5) == select_skus(20)[:5]
    assert select_skus(1)[0].sku == "COLA-600-NR"
    assert len({s.sku for s in CATALOGUE}) == len(CATALOGUE)
    core = {s.sku: s for s in select_skus(20)}
    assert core["COLA-2500-RET"].returnable and core["COLA-1250-RETG"].returnable
    assert not core["COLA-600-NR"].returnable
    assert 10 <= core["COLA-600-NR"].price <= 25 and core["COLA-3000-NR"].price > core["COLA-2500-RET"].price
    with pytest.raises(ConfigError, match=r"world\.skus"):
        select_skus(len(CATALOGUE) + 1)


def test_temperature_effect_saturates_and_water_is_more_elastic() -> None:
    temps = np.array([18.0, 24.5, 28.0, 32.0, 40.0, 45.0])
    water = temperature_effect(temps, 24.5, 1.3)
    cola = temperature_effect(temps, 24.5, 0.45)
    assert water[1] == pytest.approx(1.0) and cola[1] == pytest.approx(1.0)
    assert np.all(np.diff(water) > 0) and np.all(np.diff(cola) > 0)
    assert water[3] > cola[3] > 1.1  # hot: both up, water more
    assert water[0] < 1.0  # cool days sell less
    assert water[5] - water[4] < 0.02  # saturation


def test_hour_shapes_and_weekly_factors() -> None:
    shapes = hour_shapes()
    assert np.allclose(shapes.sum(axis=2), 1.0)
    tienda = shapes[CHANNEL_ORDER.index("tienda"), 0]
    assert tienda[12:15].mean() > 2 * tienda[6:9].mean()
    assert tienda[17:20].mean() > 2 * tienda[6:9].mean()
    dow = dow_factors()[CHANNEL_ORDER.index("tienda")]
    assert np.argmax(dow) == 6 and np.argmin(dow) == 3  # Sunday strongest, Thursday weakest
    assert np.allclose(dow_factors().mean(axis=1), 1.0)


def test_random_streams_depend_only_on_their_keys() -> None:
    assert stream(1, "store", 5).random() == stream(1, "store", 5).random()
    assert stream(1, "store", 5).random() != stream(1, "store", 6).random()
    assert stream(1, "store", 5).random() != stream(2, "store", 5).random()
    assert np.array_equal(golden_sequence(5, 9, "channel"), golden_sequence(12, 9, "channel")[:5])


def test_time_grid_local_hours() -> None:
    grid = build_grid("America/Mexico_City", date(2026, 9, 1), 2)
    assert grid.n_hours == 48
    assert int(grid.local_hour[0]) == 0 and int(grid.weekday[0]) == 1  # Tuesday local midnight
    assert int(grid.hour_us[0]) == 1_788_242_400_000_000  # 2026-09-01T06:00Z
    # a zone with daylight saving time gets its 23-hour day
    ny = build_grid("America/New_York", date(2026, 3, 8), 1)
    assert ny.n_hours == 23 and int(ny.index[0, 2]) == -1
