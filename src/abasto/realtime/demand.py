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

from array import array
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TypeAlias
from zoneinfo import ZoneInfo

from abasto.contracts.patterns import DemandPattern

_HOUR_S = 3600.0
#: a series starts this long before the first instant asked for (late events, watermark ticks)
_LEAD_S = 24 * _HOUR_S
#: ... and is rebuilt when asked beyond this span (bounded memory for long runs)
_MAX_SPAN_S = 21 * 24 * _HOUR_S


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
        if data is None or min(a1, a2) < data[0] or max(b1, b2) - data[0] > _MAX_SPAN_S:
            return self.units_ts(store_id, sku, a1, b1), self.units_ts(store_id, sku, a2, b2)
        data = self._covering(store_id, sku, min(a1, a2), max(b1, b2))
        n = ((len(data) - 2) * _BLOCK + _BLOCK - 1) // (_BLOCK + 1)  # _hours, inlined
        first = max(0.0, _cum_at(data, n, b1) - _cum_at(data, n, a1)) if b1 > a1 else 0.0
        second = max(0.0, _cum_at(data, n, b2) - _cum_at(data, n, a2)) if b2 > a2 else 0.0
        return first, second

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
        for k, r in enumerate(rates, start=have):
            total = total + r
            new.append(r)
            if (k + 1) % _BLOCK == 0:
                new.append(total)
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
