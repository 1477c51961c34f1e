"""Mexican calendar effects: official rest days, big consumption days and the quincena (payday).

Official rest days follow the Ley Federal del Trabajo (art. 74); "events" are days that are not
rest days but move beverage demand (Noche del Grito, Día de Muertos, Dec 24 and 31 — the top
beverage days, DOMAIN.md §4). Pay lands on the 15th and the last day of the month; demand rises on
payday and the day after and dips in the days just before.
"""

from __future__ import annotations

import calendar as _cal
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Final

import numpy as np
from numpy.typing import NDArray

CHANNELS: Final = ("tienda", "minisuper", "supermarket", "on_premise")


@dataclass(frozen=True, slots=True)
class SpecialDay:
    name: str
    official: bool
    #: demand multiplier for (tienda, minisuper, supermarket, on_premise)
    factor: tuple[float, float, float, float]


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> date:
    first = date(year, month, 1)
    return first + timedelta(days=(weekday - first.weekday()) % 7 + 7 * (n - 1))


def _easter(year: int) -> date:
    """Gregorian Easter Sunday (anonymous Gregorian algorithm)."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = b // 4, b % 4
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = c // 4, c % 4
    l_ = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * l_) // 451
    month = (h + l_ - 7 * m + 114) // 31
    day = (h + l_ - 7 * m + 114) % 31 + 1
    return date(year, month, day)


def special_days(year: int) -> dict[date, SpecialDay]:
    easter = _easter(year)
    days = {
        date(year, 1, 1): SpecialDay("Año Nuevo", True, (0.85, 0.90, 0.80, 0.90)),
        _nth_weekday(year, 2, 0, 1): SpecialDay("Día de la Constitución", True, (1.05, 1.05, 1.05, 1.10)),
        _nth_weekday(year, 3, 0, 3): SpecialDay("Natalicio de Benito Juárez", True, (1.05, 1.05, 1.05, 1.10)),
        easter - timedelta(days=3): SpecialDay("Jueves Santo", False, (1.15, 1.10, 1.10, 1.20)),
        easter - timedelta(days=2): SpecialDay("Viernes Santo", False, (1.20, 1.10, 1.10, 1.25)),
        date(year, 4, 30): SpecialDay("Día del Niño", False, (1.05, 1.05, 1.05, 1.05)),
        date(year, 5, 1): SpecialDay("Día del Trabajo", True, (1.05, 1.05, 1.00, 1.10)),
        date(year, 5, 10): SpecialDay("Día de las Madres", False, (1.15, 1.10, 1.15, 1.35)),
        date(year, 9, 15): SpecialDay("Noche del Grito", False, (1.30, 1.25, 1.20, 1.45)),
        date(year, 9, 16): SpecialDay("Día de la Independencia", True, (1.20, 1.15, 1.10, 1.25)),
        date(year, 11, 1): SpecialDay("Día de Todos los Santos", False, (1.10, 1.05, 1.05, 1.05)),
        date(year, 11, 2): SpecialDay("Día de Muertos", False, (1.10, 1.05, 1.05, 1.05)),
        _nth_weekday(year, 11, 0, 3): SpecialDay("Día de la Revolución", True, (1.05, 1.05, 1.05, 1.10)),
        date(year, 12, 12): SpecialDay("Día de la Virgen de Guadalupe", False, (1.15, 1.10, 1.05, 1.15)),
        date(year, 12, 24): SpecialDay("Nochebuena", False, (1.60, 1.50, 1.55, 1.20)),
        date(year, 12, 25): SpecialDay("Navidad", True, (1.10, 1.05, 0.90, 1.00)),
        date(year, 12, 31): SpecialDay("Fin de Año", False, (1.60, 1.50, 1.55, 1.25)),
    }
    if year % 6 == 0:  # presidential inauguration every six years (2024, 2030, ...)
        days[date(year, 10, 1)] = SpecialDay("Transmisión del Poder Ejecutivo", True, (1.0, 1.0, 1.0, 1.0))
    return days


def is_payday(day: date) -> bool:
    """Quincena: the 15th and the last day of the month."""
    return day.day == 15 or day.day == _cal.monthrange(day.year, day.month)[1]


def payday_factor(day: date) -> float:
    """Demand multiplier of the pay cycle: up on payday and the day after, down just before."""
    if is_payday(day):
        return 1.15
    if is_payday(day - timedelta(days=1)):
        return 1.08
    if any(is_payday(day + timedelta(days=k)) for k in (1, 2, 3)):
        return 0.96
    return 1.0


@dataclass(frozen=True)
class CalendarEffects:
    dates: list[date]
    is_holiday: NDArray[np.bool_]
    is_payday: NDArray[np.bool_]
    holiday_name: list[str | None]
    #: [day] pay-cycle multiplier
    payday: NDArray[np.float64]
    #: [channel, day] special-day multiplier
    special: NDArray[np.float64]


def calendar_effects(dates: list[date]) -> CalendarEffects:
    by_year = {y: special_days(y) for y in {d.year for d in dates}}
    special = np.ones((len(CHANNELS), len(dates)))
    names: list[str | None] = []
    holiday = np.zeros(len(dates), dtype=np.bool_)
    for i, d in enumerate(dates):
        sd = by_year[d.year].get(d)
        names.append(sd.name if sd else None)
        if sd is not None:
            holiday[i] = sd.official
            special[:, i] = sd.factor
    payday = np.array([payday_factor(d) for d in dates])
    pays = np.array([is_payday(d) for d in dates], dtype=np.bool_)
    return CalendarEffects(dates, holiday, pays, names, payday, special)
