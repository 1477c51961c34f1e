"""Expected demand over a window, integrating a DemandPattern's hourly rates with a cache.

The processor asks for expected units on every event; calling the model's own integration each
time costs a Python loop over datetimes. Rates per store×SKU and local hour are looked up once
(``pattern.rate``) into a cumulative series, so any window costs two lookups (the DemandPattern
protocol defines expected_units as the integral of rate).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from abasto.contracts.patterns import DemandPattern

_HOUR_S = 3600.0
#: a series starts this long before the first instant asked for (late events, watermark ticks)
_LEAD_S = 24 * _HOUR_S
#: ... and is rebuilt when asked beyond this span (bounded memory for long runs)
_MAX_SPAN_S = 21 * 24 * _HOUR_S


@dataclass(slots=True)
class _Series:
    origin: float  # epoch seconds of the first local hour
    rates: list[float] = field(default_factory=list)
    cum: list[float] = field(default_factory=lambda: [0.0])  # cum[i] = sum(rates[:i])


class ExpectedDemand:
    def __init__(self, pattern: DemandPattern, timezone: str) -> None:
        self._pattern = pattern
        self._tz = ZoneInfo(timezone)
        self._series: dict[tuple[str, str], _Series] = {}

    @property
    def pattern(self) -> DemandPattern:
        return self._pattern

    def units(self, store_id: str, sku: str, start: datetime, end: datetime) -> float:
        """Expected units sold in [start, end); partial hours pro rata."""
        a, b = start.timestamp(), end.timestamp()
        if b <= a:
            return 0.0
        series = self._covering(store_id, sku, a, b)
        return max(0.0, self._cum_at(series, b) - self._cum_at(series, a))

    def selling_hours(self, store_id: str, sku: str, start: datetime, end: datetime) -> float:
        """Hours of [start, end) in which the pattern expects any sale (the store's trading hours)."""
        a, b = start.timestamp(), end.timestamp()
        if b <= a:
            return 0.0
        series = self._covering(store_id, sku, a, b)
        total, t = 0.0, a
        while t < b:
            i = int((t - series.origin) // _HOUR_S)
            nxt = min(series.origin + (i + 1) * _HOUR_S, b)
            if series.rates[i] > 0:
                total += (nxt - t) / _HOUR_S
            t = nxt
        return total

    def rate(self, store_id: str, sku: str, at: datetime) -> float:
        """Expected units per hour in the local hour containing ``at``."""
        t = at.timestamp()
        series = self._covering(store_id, sku, t, t + 1.0)
        return series.rates[int((t - series.origin) // _HOUR_S)]

    def _covering(self, store_id: str, sku: str, a: float, b: float) -> _Series:
        key = (store_id, sku)
        series = self._series.get(key)
        if series is None or a < series.origin or b - series.origin > _MAX_SPAN_S:
            series = self._series[key] = _Series(self._local_hour_floor(a - _LEAD_S))
        need = int((b - series.origin) // _HOUR_S) + 1
        rates, cum = series.rates, series.cum
        while len(rates) < need:
            hour = series.origin + len(rates) * _HOUR_S
            r = float(self._pattern.rate(store_id, sku, datetime.fromtimestamp(hour, UTC)))
            rates.append(r)
            cum.append(cum[-1] + r)
        return series

    @staticmethod
    def _cum_at(series: _Series, t: float) -> float:
        x = (t - series.origin) / _HOUR_S
        i = int(x)
        return series.cum[i] + series.rates[i] * (x - i) if i < len(series.rates) else series.cum[i]

    def _local_hour_floor(self, ts: float) -> float:
        offset = datetime.fromtimestamp(ts, self._tz).utcoffset()
        off_s = offset.total_seconds() if offset is not None else 0.0
        return ((ts + off_s) // _HOUR_S) * _HOUR_S - off_s

    # --- checkpoint ------------------------------------------------------------------------------
    def origins(self) -> list[tuple[str, str, float]]:
        """Where each cached series starts: sums of the same rates from the same origin are the
        same floats, so restoring the origins (rates are looked up again) keeps results bit-identical."""
        return [(store, sku, s.origin) for (store, sku), s in self._series.items()]

    def restore_origins(self, origins: list[tuple[str, str, float]]) -> None:
        self._series = {(store, sku): _Series(origin) for store, sku, origin in origins}
