"""Expected demand over a window, integrating a DemandPattern's hourly rates with a cache.

The processor asks for expected units on every event; calling the model's own integration each
time costs a Python loop over datetimes. Rates per store×SKU and local hour are looked up once
(``pattern.rate``) into a cumulative series, so any window costs two lookups (the DemandPattern
protocol defines expected_units as the integral of rate).

Memory: a pair's series is one ``array('d')``: its origin, then blocks of a running sum followed by
the next 4 rates — 10 bytes an hour instead of two lists of float objects (64 bytes an hour), no
object around it — in a dict per store keyed by SKU (no tuple key per pair). A sum inside a block
is the block's running sum plus its rates added in order: the very additions the running sum
made, so the same float. The ``*_ts`` methods take epoch seconds,
so a caller converting an instant once can ask several windows.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from itertools import accumulate
from operator import add
from typing import TypeAlias
from zoneinfo import ZoneInfo

from abasto.contracts.patterns import DemandPattern

_HOUR_S = 3600.0
#: a series starts this long before the first instant asked for (late events, watermark ticks)
_LEAD_S = 24 * _HOUR_S
#: ... and is rebuilt when asked beyond this span (bounded memory for long runs)
_MAX_SPAN_S = 21 * 24 * _HOUR_S
#: hours ``below_until`` looks ahead
_BELOW_SCAN_H = 48


#: a series: [origin, cum[0], rates[0..3], cum[4], rates[4..7], cum[8], …] with origin the epoch
#: seconds of its first local hour, rates[i] the rate of hour i and cum[i] = sum(rates[:i]) summed in
#: order; cum[4k] is at 1 + 5k, rates[i] at 2 + i + i // 4, and cum[n] is stored when 4 divides n
_Series: TypeAlias = "array[float]"
#: (store_id, sku, origin_s, first, last) → the rates at ``origin_s + k·3600`` epoch seconds for
#: ``first <= k < last``
_Tabulate: TypeAlias = Callable[[str, str, float, int, int], list[float]]
_BLOCK = 4


def _new_series(origin: float) -> _Series:
    return array("d", (origin, 0.0))


def _hours(data: _Series) -> int:
    """How many rates the series holds (len = 2 + n + n // 4)."""
    return ((len(data) - 2) * _BLOCK + _BLOCK - 1) // (_BLOCK + 1)


def _cum_at(data: _Series, n: int, t: float) -> float:
    """sum(rates) from the origin to ``t``, the hour containing ``t`` pro rata."""
    x = (t - data[0]) / _HOUR_S
    i = int(x)
    k, m = divmod(i, _BLOCK)
    j = 1 + (_BLOCK + 1) * k
    c = data[j]
    if m:
        c += data[j + 1]
        if m > 1:
            c += data[j + 2]
            if m > 2:
                c += data[j + 3]
    return c + data[j + 1 + m] * (x - i) if i < n else c


class ExpectedDemand:
    def __init__(self, pattern: DemandPattern, timezone: str) -> None:
        self._pattern = pattern
        #: the pattern's own tabulation (``PatternModel.hourly_rates``: the same floats as ``rate``
        #: at each hour, without a datetime conversion per hour), when it offers one
        tabulate = getattr(pattern, "hourly_rates", None)
        self._tabulate: _Tabulate | None = tabulate if callable(tabulate) else None
        self._tz = ZoneInfo(timezone)
        self._series: dict[str, dict[str, _Series]] = {}

    @property
    def pattern(self) -> DemandPattern:
        return self._pattern

    def units(self, store_id: str, sku: str, start: datetime, end: datetime) -> float:
        """Expected units sold in [start, end); partial hours pro rata."""
        return self.units_ts(store_id, sku, start.timestamp(), end.timestamp())

    def units_ts(self, store_id: str, sku: str, a: float, b: float) -> float:
        """:meth:`units` between two epoch-second instants."""
        if b <= a:
            return 0.0
        data = self._covering(store_id, sku, a, b)
        n = ((len(data) - 2) * _BLOCK + _BLOCK - 1) // (_BLOCK + 1)  # _hours, inlined
        return max(0.0, _cum_at(data, n, b) - _cum_at(data, n, a))

    def units_two_ts(
        self, store_id: str, sku: str, a1: float, b1: float, a2: float, b2: float
    ) -> tuple[float, float]:
        """(``units_ts(a1, b1)``, then ``units_ts(a2, b2)``): the same floats and the same series.

        When neither window is outside the pair's series (no rebuild either way), the series is
        looked up once, extended for both (the same rates summed in order; results inside the
        first window do not depend on how far the series goes); otherwise the two calls as such.
        """
        per = self._series.get(store_id)
        data = None if per is None else per.get(sku)
        lo, hi = min(a1, a2), max(b1, b2)
        if data is None or lo < data[0] or hi - data[0] > _MAX_SPAN_S:
            return self.units_ts(store_id, sku, a1, b1), self.units_ts(store_id, sku, a2, b2)
        need = int((hi - data[0]) // _HOUR_S) + 1  # _covering without a rebuild, inlined
        if len(data) < 2 + need + need // _BLOCK:
            self._extend(store_id, sku, data, need)
        n = ((len(data) - 2) * _BLOCK + _BLOCK - 1) // (_BLOCK + 1)  # _hours, inlined
        first = second = 0.0
        if b1 > a1:
            end1 = _cum_at(data, n, b1)
            first = max(0.0, end1 - _cum_at(data, n, a1))
            if b2 > a2:  # the second window often starts where the first ends: the same float
                start2 = end1 if a2 == b1 else _cum_at(data, n, a2)
                second = max(0.0, _cum_at(data, n, b2) - start2)
        elif b2 > a2:
            second = max(0.0, _cum_at(data, n, b2) - _cum_at(data, n, a2))
        return first, second

    def steps_ts(self, store_id: str, sku: str, points: Iterator[float]) -> Iterator[float]:
        """``units_ts(p0, p1)``, ``units_ts(p1, p2)``, … for the instants of ``points``, each
        computed when asked for (the same floats and the same series as those calls in turn):
        while the series stays the same one, an instant's cumulative sum is looked up once (the
        end of a window is the start of the next), extending the series as the calls would; a
        window the series does not cover (a rebuild) is asked as such."""
        a = next(points, None)
        if a is None:
            return
        data: _Series | None = None
        cum_a = 0.0
        for b in points:
            if b <= a:
                units = 0.0
            else:
                per = self._series.get(store_id)
                cur = None if per is None else per.get(sku)
                if cur is None or a < cur[0] or b - cur[0] > _MAX_SPAN_S:
                    units = self.units_ts(store_id, sku, a, b)
                    data = None
                else:
                    need = int((b - cur[0]) // _HOUR_S) + 1  # _covering without a rebuild
                    if len(cur) < 2 + need + need // _BLOCK:
                        self._extend(store_id, sku, cur, need)
                    n = ((len(cur) - 2) * _BLOCK + _BLOCK - 1) // (_BLOCK + 1)  # _hours, inlined
                    if cur is not data:
                        data, cum_a = cur, _cum_at(cur, n, a)
                    cum_b = _cum_at(cur, n, b)
                    units = max(0.0, cum_b - cum_a)
                    cum_a = cum_b
            yield units
            if b <= a:
                data = None
            a = b

    def selling_hours(self, store_id: str, sku: str, start: datetime, end: datetime) -> float:
        """Hours of [start, end) in which the pattern expects any sale (the store's trading hours)."""
        a, b = start.timestamp(), end.timestamp()
        if b <= a:
            return 0.0
        data = self._covering(store_id, sku, a, b)
        origin = data[0]
        total, t = 0.0, a
        while t < b:
            i = int((t - origin) // _HOUR_S)
            nxt = min(origin + (i + 1) * _HOUR_S, b)
            if data[2 + i + i // _BLOCK] > 0:
                total += (nxt - t) / _HOUR_S
            t = nxt
        return total

    def rate(self, store_id: str, sku: str, at: datetime) -> float:
        """Expected units per hour in the local hour containing ``at``."""
        t = at.timestamp()
        data = self._covering(store_id, sku, t, t + 1.0)
        i = int((t - data[0]) // _HOUR_S)
        return data[2 + i + i // _BLOCK]

    def series(self, store_id: str, sku: str) -> object | None:
        """The pair's series as it stands (an identity: a rebuilt series is another object)."""
        per = self._series.get(store_id)
        return None if per is None else per.get(sku)

    def covers(self, store_id: str, sku: str, a: float, b: float) -> bool:
        """Whether asking for [a, b) keeps the pair's series where it starts (no rebuild)."""
        per = self._series.get(store_id)
        series = None if per is None else per.get(sku)
        return series is not None and a >= series[0] and b - series[0] <= _MAX_SPAN_S

    def still_covers(self, store_id: str, sku: str, series: object, b: float) -> bool:
        """Whether the pair's series is still ``series`` and asking up to ``b`` does not rebuild it
        (for a caller whose windows start no earlier than one already asked of this series)."""
        per = self._series.get(store_id)
        data = None if per is None else per.get(sku)
        return data is not None and data is series and b - data[0] <= _MAX_SPAN_S

    def span_start(self, store_id: str, sku: str, series: object) -> float:
        """Where the pair's series starts (epoch s) if it is still ``series``; +inf otherwise."""
        per = self._series.get(store_id)
        data = None if per is None else per.get(sku)
        return data[0] if data is not None and data is series else math.inf

    def span_end(self, store_id: str, sku: str, series: object) -> float:
        """An instant (epoch s) up to which a window may end without rebuilding the pair's series,
        if it is still ``series`` (``still_covers`` holds for any ``b`` up to it: ``b − origin``
        is no more than ``reach − origin``); -inf otherwise."""
        per = self._series.get(store_id)
        data = None if per is None or series is None else per.get(sku)
        if data is None or data is not series:
            return -math.inf
        origin = data[0]
        reach = origin + _MAX_SPAN_S
        while reach - origin > _MAX_SPAN_S:  # (only if the sum was rounded up)
            reach = math.nextafter(reach, -math.inf)
        return reach

    def below_until(self, store_id: str, sku: str, a: float, b: float, limit: float) -> float:
        """The latest instant ``T >= b`` (epoch seconds) known to give ``units_ts(a, t) < limit``
        for every ``t`` in [b, T] while the pair's series stays this one; ``b`` itself when no
        later one is known; -inf when [a, b] is not inside the series (nothing is known).

        For the caller that just found ``units_ts(a, b) < limit``. Only hours already tabulated
        are scanned (no extension, no rebuild), up to the span whose asking does not rebuild the
        series (so asking ``units_ts(a, t)`` for such ``t`` is only a lookup). ``T`` is an hour
        boundary ``H`` with ``max(0, cum(H) − cum(a)) < limit`` (the very arithmetic of
        ``units_ts``) and non-negative rates in every hour from b's to H: the cumulative sum is
        then non-decreasing on [b, H] in floating point too (each hour adds ``rate × fraction``,
        rounded no higher than the ``rate`` the next hour's sum adds; rounding is monotone), so
        is the subtraction, and every ``t`` in [b, H] gives no more than H does. ``cum`` at the
        next boundary is the running sum plus the hour's rate: the very addition ``_cum_at``
        (and the block sums of ``_extend``) made.
        """
        per = self._series.get(store_id)
        data = None if per is None else per.get(sku)
        if data is None or b < a:
            return -math.inf
        origin = data[0]
        if a < origin or b - origin > _MAX_SPAN_S:
            return -math.inf
        n = ((len(data) - 2) * _BLOCK + _BLOCK - 1) // (_BLOCK + 1)  # _hours, inlined
        i = int((b - origin) // _HOUR_S)
        if i >= n:
            return -math.inf
        base = _cum_at(data, n, a)
        cum = _cum_at(data, n, origin + i * _HOUR_S)  # at the start of b's hour
        last = min(n - 1, int(_MAX_SPAN_S // _HOUR_S), i + _BELOW_SCAN_H)  # boundaries i + 1 <= last
        until = b
        while i < last:
            rate = data[2 + i + i // _BLOCK]
            if rate < 0.0:
                break
            cum = cum + rate
            if max(0.0, cum - base) >= limit:
                break
            i += 1
            until = origin + i * _HOUR_S
        return until

    def _covering(self, store_id: str, sku: str, a: float, b: float) -> _Series:
        per = self._series.get(store_id)
        if per is None:
            per = self._series[store_id] = {}
        data = per.get(sku)
        if data is None or a < data[0] or b - data[0] > _MAX_SPAN_S:
            data = per[sku] = _new_series(self._local_hour_floor(a - _LEAD_S))
        need = int((b - data[0]) // _HOUR_S) + 1
        # enough rates (len = 2 + n + n // 4 is increasing in n)
        if len(data) < 2 + need + need // _BLOCK:
            self._extend(store_id, sku, data, need)
        return data

    def _extend(self, store_id: str, sku: str, data: _Series, need: int) -> None:
        """Tabulate the series up to ``need`` hours (the rates, and each block's running sum)."""
        rate, origin = self._pattern.rate, data[0]
        have = _hours(data)
        # the running sum: the last block's sum plus its rates so far, in order
        total = data[len(data) - 1 - have % _BLOCK]
        for r in data[len(data) - have % _BLOCK :]:
            total = total + r
        new: _Series = array("d")
        if self._tabulate is not None:
            rates = self._tabulate(store_id, sku, origin, have, need)
        else:
            at = [datetime.fromtimestamp(origin + k * _HOUR_S, UTC) for k in range(have, need)]
            rates = [float(rate(store_id, sku, t)) for t in at]
        # the running sums after each rate (``accumulate``: the same additions, in order); a block's
        # sum follows its 4th rate
        sums = list(accumulate(rates, add, initial=total))
        j, count = 0, len(rates)
        step = _BLOCK - have % _BLOCK  # rates until the current block is full
        while j + step <= count:
            new.extend(rates[j : j + step])
            j += step
            new.append(sums[j])
            step = _BLOCK
        new.extend(rates[j:])
        data.extend(new)  # one resize of the series

    def _local_hour_floor(self, ts: float) -> float:
        offset = datetime.fromtimestamp(ts, self._tz).utcoffset()
        off_s = offset.total_seconds() if offset is not None else 0.0
        return ((ts + off_s) // _HOUR_S) * _HOUR_S - off_s

    # --- checkpoint ------------------------------------------------------------------------------
    def origins(self) -> list[tuple[str, str, float]]:
        """Where each cached series starts: sums of the same rates from the same origin are the
        same floats, so restoring the origins (rates are looked up again) keeps results bit-identical."""
        return [(store, sku, s[0]) for store, per in self._series.items() for sku, s in per.items()]

    def restore_origins(self, origins: list[tuple[str, str, float]]) -> None:
        self._series = {}
        for store, sku, origin in origins:
            self._series.setdefault(store, {})[sku] = _new_series(origin)
