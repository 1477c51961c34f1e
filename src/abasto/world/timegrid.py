"""The hour grid of the simulation: UTC instants and their local day, hour and weekday.

Local time (``America/Mexico_City`` by default) drives trading hours, hour-of-week shapes and route
days; instants are stored in UTC. The grid is built from real time-zone rules, so a zone with
daylight saving time gets 23- and 25-hour days right.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
from numpy.typing import NDArray

US_PER_HOUR = 3_600_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def local_midnight_utc(day: date, tz: ZoneInfo) -> datetime:
    """The UTC instant of local midnight starting ``day``."""
    return datetime(day.year, day.month, day.day, tzinfo=tz).astimezone(UTC)


def to_us(instant: datetime) -> int:
    """Microseconds since the epoch of a tz-aware instant."""
    delta = instant - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_us(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=int(us))


@dataclass(frozen=True)
class TimeGrid:
    """Every hour from local midnight of ``first_day`` for ``n_days`` local days."""

    timezone: str
    first_day: date
    n_days: int
    #: epoch microseconds of each hour's start (UTC)
    hour_us: NDArray[np.int64]
    #: local day index (0 = ``first_day``) of each hour
    day: NDArray[np.int32]
    #: local hour of day 0..23
    local_hour: NDArray[np.int8]
    #: weekday of the local day, 0 = Monday
    weekday: NDArray[np.int8]
    #: [n_days, 24] hour index of (local day, local hour), -1 where that local hour does not exist
    index: NDArray[np.int32]

    @property
    def n_hours(self) -> int:
        return int(self.hour_us.shape[0])

    def date_of(self, day: int) -> date:
        return self.first_day + timedelta(days=day)

    @property
    def dates(self) -> list[date]:
        return [self.date_of(d) for d in range(self.n_days)]

    @property
    def day_weekday(self) -> NDArray[np.int8]:
        return np.array([self.date_of(d).weekday() for d in range(self.n_days)], dtype=np.int8)

    def day_start_us(self, day: int) -> int:
        return to_us(local_midnight_utc(self.date_of(day), ZoneInfo(self.timezone)))


def build_grid(timezone: str, first_day: date, n_days: int) -> TimeGrid:
    tz = ZoneInfo(timezone)
    start = local_midnight_utc(first_day, tz)
    end = local_midnight_utc(first_day + timedelta(days=n_days), tz)
    n_hours = int((end - start).total_seconds() // 3600)
    hour_us = to_us(start) + US_PER_HOUR * np.arange(n_hours, dtype=np.int64)
    day = np.empty(n_hours, dtype=np.int32)
    local_hour = np.empty(n_hours, dtype=np.int8)
    weekday = np.empty(n_hours, dtype=np.int8)
    index = np.full((n_days, 24), -1, dtype=np.int32)
    for h in range(n_hours):
        local = (start + timedelta(hours=h)).astimezone(tz)
        d = (local.date() - first_day).days
        day[h], local_hour[h], weekday[h] = d, local.hour, local.weekday()
        if index[d, local.hour] < 0:
            index[d, local.hour] = h
    return TimeGrid(timezone, first_day, n_days, hour_us, day, local_hour, weekday, index)
