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
MAX_CACHED: Final = 100_000
#: consecutive local hours kept by :meth:`LocalHours.run` before it starts afresh (one week: 168)
_MAX_RUN: Final = 24 * 42

#: (hour of week 0..167 from Monday 00h local, local date, the date's demand factor,
#: microseconds into the local hour)
Label = tuple[int, date, float, int]


def micros(at: datetime) -> int:
    """Microseconds since the Unix epoch of a tz-aware instant (exact)."""
    return (at - EPOCH) // _MICRO


class LocalHours:
    """Labels of instants in one time zone; local-hour starts are cached.

    ``day_factor``: the demand factor of a local date (fixed for the life of this object);
    ``max_cached``: labels kept before the cache starts afresh.
    """

    __slots__ = (
        "_cache",
        "_day_factor",
        "_factors",
        "_max_cached",
        "_run_base",
        "_run_days",
        "_run_factors",
        "_run_hows",
        "_tz",
    )

    def __init__(
        self, tz: ZoneInfo, day_factor: Callable[[date], float], *, max_cached: int = MAX_CACHED
    ) -> None:
        self._tz = tz
        self._max_cached = max_cached
        self._day_factor = day_factor
        self._factors: dict[date, float] = {}
        self._cache: dict[int, Label] = {}
        #: labels of the local-hour starts ``_run_base + k·1h`` (k = 0, 1, …), by column
        self._run_base: int | None = None
        self._run_hows: list[int] = []
        self._run_days: list[date] = []
        self._run_factors: list[float] = []

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
            if len(self._cache) >= self._max_cached:
                self._cache.clear()
            self._cache[t_us] = out
        return out

    def run(self, start_us: int, count: int) -> tuple[list[int], list[date], list[float]] | None:
        """(hours of week, dates, factors) of the ``count`` instants ``start_us + k·1h``, each a
        local-hour start (``label`` with ``into`` 0, the same values); None when one is not (a
        zone whose offset moves by less than an hour): walk those with ``label``.

        Kept as one run of consecutive hours (columns, so a window's are three slices), started
        afresh when asked before it, off its hour grid or too far beyond it.
        """
        base = self._run_base
        if (
            base is None
            or start_us < base
            or (start_us - base) % HOUR_US
            or (start_us - base) // HOUR_US + count > _MAX_RUN
        ):
            base = self._run_base = start_us
            self._run_hows, self._run_days, self._run_factors = [], [], []
        first = (start_us - base) // HOUR_US
        end = first + count
        hows, days, factors = self._run_hows, self._run_days, self._run_factors
        while len(hows) < end:
            how, day, factor, into = self.label(base + len(hows) * HOUR_US)
            if into:
                return None
            hows.append(how)
            days.append(day)
            factors.append(factor)
        return hows[first:end], days[first:end], factors[first:end]
