"""Local hour labels of UTC instants, without a datetime conversion per hour.

Integrating an hour-of-week pattern over a window walks its local hours: for each, the hour of
week, the local date and where the instant falls inside the local hour. Converting every
instant with ``astimezone`` dominated the stream processor's model calls; the walk only ever
lands on local-hour starts after its first step, and the same starts recur from window to window
(windows slide forward with event time), so their labels are computed once and kept in a bounded
cache. Instants are integer microseconds since the Unix epoch, so every step is exact (the same
arithmetic ``timedelta`` does) and results match a walk over ``datetime`` objects bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Final
from zoneinfo import ZoneInfo

__all__ = ["EPOCH", "HOUR_US", "LocalHours", "micros"]

HOUR_US: Final = 3_600_000_000
EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO: Final = timedelta(microseconds=1)
#: labels kept before the cache starts afresh (~200 bytes each)
_MAX_CACHED: Final = 100_000

#: (hour of week 0..167 from Monday 00h local, local date, the date's demand factor,
#: microseconds into the local hour)
Label = tuple[int, date, float, int]


def micros(at: datetime) -> int:
    """Microseconds since the Unix epoch of a tz-aware instant (exact)."""
    return (at - EPOCH) // _MICRO


class LocalHours:
    """Labels of instants in one time zone; local-hour starts are cached.

    ``day_factor``: the demand factor of a local date (fixed for the life of this object).
    """

    __slots__ = ("_cache", "_day_factor", "_factors", "_tz")

    def __init__(self, tz: ZoneInfo, day_factor: Callable[[date], float]) -> None:
        self._tz = tz
        self._day_factor = day_factor
        self._factors: dict[date, float] = {}
        self._cache: dict[int, Label] = {}

    @property
    def starts(self) -> dict[int, Label]:
        """The cached labels, all of local-hour starts (``into`` 0): a hot loop's fast lookup."""
        return self._cache

    def label(self, t_us: int) -> Label:
        hit = self._cache.get(t_us)
        if hit is not None:
            return hit
        local = (EPOCH + timedelta(microseconds=t_us)).astimezone(self._tz)
        into = (local.minute * 60 + local.second) * 1_000_000 + local.microsecond
        day = local.date()
        factor = self._factors.get(day)
        if factor is None:
            factor = self._factors[day] = self._day_factor(day)
        out: Label = (local.weekday() * 24 + local.hour, day, factor, into)
        if into == 0:  # a local-hour start: windows walk through it again
            if len(self._cache) >= _MAX_CACHED:
                self._cache.clear()
            self._cache[t_us] = out
        return out
