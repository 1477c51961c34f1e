"""The foundation's demand pattern: expected units per store×SKU×local hour of week.

:func:`fit_pattern` learns it from hourly sell-out history (stocked-out hours masked as censored
demand; see :mod:`abasto.ml._estimate` for the estimator). :class:`PatternModel` implements
:class:`abasto.contracts.patterns.DemandPattern` and adds what the stream processor needs to turn
expected units into a risk: :meth:`PatternModel.prob_demand_at_least` and
:meth:`PatternModel.quantile` (negative binomial with fitted dispersion).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
from operator import mul
from typing import Any, Final

import numpy as np
import pandas as pd
import pyarrow as pa

from abasto.errors import InvalidInputError
from abasto.ml import negbin
from abasto.ml._estimate import Estimate, FitConfig, estimate
from abasto.ml._frame import HOURS_PER_WEEK, prepare, to_pandas, zone
from abasto.ml._hours import HOUR_US, LocalHours, micros

__all__ = ["FitConfig", "PatternModel", "calendar_from_history", "fit_pattern"]

FORMAT = 1
_META_KEY = b"abasto.pattern"
UNREGISTERED = "unregistered"
#: rows of rates kept as lists by ``PatternModel._row`` (~5 KiB each: ~20 MiB at most)
_MAX_ROWS: Final = 4096


class PatternModel:
    """Hour-of-week demand rates per store×SKU, day multipliers and dispersion per group.

    Build with :func:`fit_pattern` or :meth:`from_table`; immutable (``with_*`` return copies).
    """

    def __init__(
        self,
        *,
        timezone: str,
        series: pd.DataFrame,
        rates: np.ndarray,
        groups: Sequence[str],
        dispersion: Mapping[str, tuple[float, float]],
        day_multipliers: Mapping[str, float] | None = None,
        calendar: Mapping[date, Iterable[str]] | None = None,
        version: str = UNREGISTERED,
        fit_info: Mapping[str, Any] | None = None,
    ) -> None:
        if rates.shape != (len(series), HOURS_PER_WEEK):
            raise InvalidInputError(f"rates must have shape ({len(series)}, 168), got {rates.shape}")
        self._tz_name = timezone
        self._tz = zone(timezone)
        self._series = series.reset_index(drop=True)[["store_id", "sku", "group", "level"]].copy()
        self._rates = np.asarray(rates, dtype=np.float64).copy()
        self._rates.setflags(write=False)
        self._groups = tuple(groups)
        self._dispersion = {g: (float(a), float(b)) for g, (a, b) in dispersion.items()}
        self._day_mult = dict(day_multipliers or {})
        self._calendar = {d: frozenset(f) for d, f in (calendar or {}).items()}
        self._version = version
        self._fit_info = dict(fit_info or {})
        self._index = {
            (str(s), str(k)): i
            for i, (s, k) in enumerate(zip(self._series["store_id"], self._series["sku"], strict=True))
        }
        self._alphas = [self._dispersion.get(str(g), (0.0, 0.0)) for g in self._series["group"]]
        self._hours = LocalHours(self._tz, self._day_factor)
        #: recently asked rows of ``_rates`` as lists (the same floats; bounded: see ``_row``)
        self._rows: dict[int, list[float]] = {}

    # --- DemandPattern ---------------------------------------------------------------------
    @property
    def version(self) -> str:
        return self._version

    def rate(self, store_id: str, sku: str, at: datetime) -> float:
        """Expected units per hour in the local hour containing ``at`` (0.0 for unknown pairs)."""
        i = self._index.get((str(store_id), str(sku)))
        local = _aware(at, "at").astimezone(self._tz)
        if i is None:
            return 0.0
        how = local.weekday() * 24 + local.hour
        return float(self._rates[i, how]) * self._day_factor(local.date())

    def expected_units(self, store_id: str, sku: str, start: datetime, end: datetime) -> float:
        """Expected units between two instants; partial hours count pro rata."""
        mu, _ = self._moments(store_id, sku, start, end)
        return mu

    def hourly_rates(self, store_id: str, sku: str, origin_s: float, first: int, last: int) -> list[float]:
        """``rate`` at ``origin_s + k·3600`` epoch seconds for ``first <= k < last``, the same floats.

        For callers tabulating a series hour by hour (the stream processor's expected demand).
        When those instants are all local-hour starts, their labels come as one run
        (``LocalHours.run``: the same labels) and the rates are ``row[how] * factor`` over it.
        """
        i = self._index.get((str(store_id), str(sku)))
        if i is None:
            return [0.0] * max(0, last - first)
        row = self._row(i)
        label = self._hours.label
        out: list[float] = []
        if origin_s.is_integer() and abs(origin_s) + last * 3600.0 < 2.0**53:
            # origin_s + k·3600 is an exact whole second: step exact microseconds instead
            base = int(origin_s) * 1_000_000
            if last > first:
                run = self._hours.run(base + first * HOUR_US, last - first)
                if run is not None:
                    return list(map(mul, map(row.__getitem__, run[0]), run[2]))
            get = self._hours.starts.get
            for k in range(first, last):
                t = base + k * HOUR_US
                hit = get(t)
                how, _, factor, _ = label(t) if hit is None else hit
                out.append(row[how] * factor)
            return out
        for k in range(first, last):
            how, _, factor, _ = label(micros(datetime.fromtimestamp(origin_s + k * 3600.0, UTC)))
            out.append(row[how] * factor)
        return out

    # --- uncertainty -----------------------------------------------------------------------
    def variance(self, store_id: str, sku: str, start: datetime, end: datetime) -> float:
        """Variance of units sold in the window (negative-binomial dispersion of the series' group)."""
        _, var = self._moments(store_id, sku, start, end)
        return var

    def prob_demand_at_least(
        self, store_id: str, sku: str, start: datetime, end: datetime, units: float
    ) -> float:
        """P(demand in [start, end) >= units): with ``units`` on hand, the chance of running out.

        Non-integer ``units`` are rounded up (demand is a count). 1.0 for ``units <= 0``.
        """
        mu, var = self._moments(store_id, sku, start, end)
        return negbin.prob_at_least(mu, var, _ceil(units))

    def prob_demand_at_least_or_bound(
        self, store_id: str, sku: str, start: datetime, end: datetime, units: float, below: float
    ) -> float:
        """:meth:`prob_demand_at_least`, or, when an upper bound of it is already under ``below``
        (Cantelli's, :func:`abasto.ml.negbin.upper_bound`), that bound: for a caller that only
        compares the probability with ``below`` (the stream processor's risk threshold), the same
        verdict without computing the distribution."""
        mu, var = self._moments(store_id, sku, start, end)
        k = _ceil(units)
        bound = negbin.upper_bound(mu, var, k)
        if bound is not None and bound < below:
            return bound
        return negbin.prob_at_least(mu, var, k)

    def quantile(self, store_id: str, sku: str, start: datetime, end: datetime, q: float) -> int:
        """Smallest unit count ``k`` with P(demand in the window <= k) >= q."""
        if not 0.0 <= q <= 1.0:
            raise InvalidInputError(f"quantile level must be in [0, 1], got {q}")
        mu, var = self._moments(store_id, sku, start, end)
        return negbin.quantile(mu, var, q)

    # --- vectorised and introspection --------------------------------------------------------
    def predict(self, frame: pa.Table | pd.DataFrame) -> np.ndarray:
        """Rates (units/hour) for rows with columns store_id, sku, hour_start (tz-aware)."""
        df = to_pandas(frame)
        ts = df["hour_start"]
        if not isinstance(ts.dtype, pd.DatetimeTZDtype):
            raise InvalidInputError("hour_start must be a tz-aware timestamp")
        keys = pd.MultiIndex.from_arrays(
            [self._series["store_id"].astype(str), self._series["sku"].astype(str)]
        )
        idx = keys.get_indexer(pd.MultiIndex.from_arrays([df["store_id"].astype(str), df["sku"].astype(str)]))
        local = ts.dt.tz_convert(self._tz)
        how = (local.dt.day_of_week * 24 + local.dt.hour).to_numpy(dtype=np.int64)
        out = np.where(idx >= 0, self._rates[np.maximum(idx, 0), how], 0.0)
        if self._day_mult and self._calendar:
            days = local.dt.tz_localize(None).dt.date
            factors = {d: self._day_factor(d) for d in set(days)}
            out = out * days.map(factors).to_numpy(dtype=np.float64)
        return np.asarray(out, dtype=np.float64)

    def hour_of_week_rates(self, store_id: str, sku: str) -> np.ndarray:
        """The 168 rates of a series (Monday 00h first, local time); zeros for unknown pairs."""
        i = self._index.get((str(store_id), str(sku)))
        return np.zeros(HOURS_PER_WEEK) if i is None else self._rates[i].copy()

    def level(self, store_id: str, sku: str) -> float:
        """Mean hourly rate of the series over a week (under the pooled shape)."""
        i = self._index.get((str(store_id), str(sku)))
        return 0.0 if i is None else float(self._series["level"].iat[i])

    @property
    def timezone(self) -> str:
        return self._tz_name

    @property
    def day_multipliers(self) -> dict[str, float]:
        return dict(self._day_mult)

    @property
    def dispersion(self) -> dict[str, tuple[float, float]]:
        """Per group: (α_hour, α_day) of ``Var = μ + α_hour·Σ μ_h² + α_day·Σ μ_day²``."""
        return dict(self._dispersion)

    @property
    def fit_info(self) -> dict[str, Any]:
        return dict(self._fit_info)

    def series_keys(self) -> list[tuple[str, str]]:
        return list(self._index)

    def __len__(self) -> int:
        return len(self._index)

    def __contains__(self, key: object) -> bool:
        return key in self._index

    def __repr__(self) -> str:
        return f"PatternModel(version={self._version!r}, series={len(self)}, timezone={self._tz_name!r})"

    # --- copies --------------------------------------------------------------------------------
    def with_version(self, version: str) -> PatternModel:
        return self._copy(version=version)

    def with_calendar(self, calendar: Mapping[date, Iterable[str]]) -> PatternModel:
        """A copy that knows the day flags of more dates (e.g. future holidays and paydays)."""
        merged: dict[date, Iterable[str]] = dict(self._calendar)
        merged.update(calendar)
        return self._copy(calendar=merged)

    def _copy(self, **changes: Any) -> PatternModel:
        kwargs: dict[str, Any] = {
            "timezone": self._tz_name,
            "series": self._series,
            "rates": self._rates,
            "groups": self._groups,
            "dispersion": self._dispersion,
            "day_multipliers": self._day_mult,
            "calendar": self._calendar,
            "version": self._version,
            "fit_info": self._fit_info,
        }
        kwargs.update(changes)
        return PatternModel(**kwargs)

    # --- artifact --------------------------------------------------------------------------------
    def to_table(self) -> pa.Table:
        """Long table (store_id, sku, group, level, hour_of_week, rate); the rest in schema metadata."""
        n = len(self._series)

        def per_hour(column: str, dtype: type) -> np.ndarray:
            return np.repeat(self._series[column].to_numpy(dtype=dtype), HOURS_PER_WEEK)

        table = pa.table(
            {
                "store_id": pa.array(per_hour("store_id", str), pa.string()),
                "sku": pa.array(per_hour("sku", str), pa.string()),
                "group": pa.array(per_hour("group", str), pa.string()),
                "level": pa.array(per_hour("level", np.float64)),
                "hour_of_week": pa.array(np.tile(np.arange(HOURS_PER_WEEK, dtype=np.int16), n)),
                "rate": pa.array(self._rates.reshape(-1)),
            }
        )
        meta = {
            "format": FORMAT,
            "version": self._version,
            "timezone": self._tz_name,
            "groups": list(self._groups),
            "dispersion": {g: list(v) for g, v in self._dispersion.items()},
            "day_multipliers": self._day_mult,
            "calendar": {d.isoformat(): sorted(f) for d, f in sorted(self._calendar.items()) if f},
            "fit_info": self._fit_info,
        }
        return table.replace_schema_metadata({_META_KEY: json.dumps(meta).encode()})

    @classmethod
    def from_table(cls, table: pa.Table) -> PatternModel:
        """Inverse of :meth:`to_table`."""
        raw = (table.schema.metadata or {}).get(_META_KEY)
        if raw is None:
            raise InvalidInputError("not a pattern table: schema metadata 'abasto.pattern' is missing")
        meta = json.loads(raw)
        if meta.get("format") != FORMAT:
            raise InvalidInputError(f"unsupported pattern table format {meta.get('format')!r}")
        df = table.to_pandas()
        if len(df) % HOURS_PER_WEEK:
            raise InvalidInputError("pattern table must hold 168 rows per series")
        df = df.sort_values(["store_id", "sku", "hour_of_week"], kind="stable")
        series = df.iloc[::HOURS_PER_WEEK][["store_id", "sku", "group", "level"]]
        rates = df["rate"].to_numpy(dtype=np.float64).reshape(-1, HOURS_PER_WEEK)
        return cls(
            timezone=meta["timezone"],
            series=series,
            rates=rates,
            groups=meta["groups"],
            dispersion={g: (v[0], v[1]) for g, v in meta["dispersion"].items()},
            day_multipliers=meta["day_multipliers"],
            calendar={date.fromisoformat(d): f for d, f in meta["calendar"].items()},
            version=meta["version"],
            fit_info=meta["fit_info"],
        )

    # --- internals -------------------------------------------------------------------------------
    def _row(self, i: int) -> list[float]:
        """Row ``i`` of the rates as a list of floats (``tolist``: the same values), kept for the
        next call: the stream processor asks the same pairs' rows over and over. At most
        ``_MAX_ROWS`` are kept (~5 KiB each), then the cache starts afresh."""
        row = self._rows.get(i)
        if row is None:
            if len(self._rows) >= _MAX_ROWS:
                self._rows.clear()
            row = self._rows[i] = self._rates[i].tolist()
        return row

    def _day_factor(self, day: date) -> float:
        factor = 1.0
        for flag in self._calendar.get(day, ()):
            factor *= self._day_mult.get(flag, 1.0)
        return factor

    def _moments(self, store_id: str, sku: str, start: datetime, end: datetime) -> tuple[float, float]:
        """Mean and variance of units sold in [start, end).

        Walks the local hours of the window (partial hours pro rata); for each, ``m`` = rate ×
        day factor × fraction of the hour; ``μ = Σ m``, ``Var = μ + α_hour·Σ m² + α_day·Σ_day (Σ m)²``.
        Instants are exact microseconds and local-hour labels come from a cache (see
        :mod:`abasto.ml._hours`), in the order and with the arithmetic of a datetime walk.

        After the first (possibly partial) hour, the walk steps from local-hour start to local-hour
        start, one hour apart: their labels come as one run (``LocalHours.run``) and the sums are
        added in one loop over it (the additions of the walk, in its order; a full hour's ``m`` is
        ``rate × factor × 1.0``, the same float as ``rate × factor``), each day's sum continuing a
        date met again, in the dict's first-visit order.
        """
        t = micros(_aware(start, "start"))
        stop = micros(_aware(end, "end"))
        i = self._index.get((str(store_id), str(sku)))
        if i is None or t >= stop:
            return 0.0, 0.0
        a_hour, a_day = self._alphas[i]
        row = self._row(i)
        how, cur, factor, into = self._hours.label(t)
        first = t - into + HOUR_US
        if first >= stop:  # within one local hour
            m = row[how] * factor * ((stop - t) / HOUR_US)
            mu, sq, in_day = 0.0 + m, 0.0 + m * m, 0.0 + m
            return mu, mu + a_hour * sq + a_day * sum(v * v for v in (in_day,))
        count = -(-(stop - first) // HOUR_US)  # hours from ``first`` on; the last ends at or after stop
        run = self._hours.run(first, count)
        if run is None:
            return self._moments_walk(row, a_hour, a_day, t, stop)
        hows, days, factors = run
        last = count - 1
        # one pass over the window's m's (the first hour's share, the full hours, the last hour's
        # share): μ, Σ m² and each day's sum are added up in the walk's order
        m = row[how] * factor * ((first - t) / HOUR_US)
        mu, sq = 0.0 + m, 0.0 + m * m
        per_day: dict[date, float] = {}
        in_day = 0.0 + m
        for k in range(count):
            m = row[hows[k]] * factors[k]
            if k == last:
                m *= (stop - (first + last * HOUR_US)) / HOUR_US
            mu += m
            sq += m * m
            day = days[k]
            if day != cur:
                per_day[cur] = in_day
                cur = day
                in_day = per_day.get(day, 0.0)
            in_day += m
        per_day[cur] = in_day
        var = mu + a_hour * sq + a_day * sum(v * v for v in per_day.values())
        return mu, var

    def _moments_walk(
        self, row: list[float], a_hour: float, a_day: float, t: int, stop: int
    ) -> tuple[float, float]:
        """``_moments`` as a walk of one local hour at a time (any zone)."""
        label, get = self._hours.label, self._hours.starts.get
        mu = sq = 0.0
        # per day, the running sum of its m's; the current day's sum is kept aside (``in_day``) and
        # stored when the walk leaves the day: the same additions in the same order as adding each
        # m into the dict, whose insertion order (first visit of each day) is also kept
        per_day: dict[date, float] = {}
        how, cur, factor, into = label(t)
        day, in_day = cur, 0.0
        while True:
            nxt = t - into + HOUR_US
            nxt = min(nxt, stop)
            m = row[how] * factor * ((nxt - t) / HOUR_US)
            mu += m
            sq += m * m
            if day != cur:
                per_day[cur] = in_day
                cur, in_day = day, per_day.get(day, 0.0)
            in_day += m
            if nxt >= stop:
                break
            t = nxt
            hit = get(t)
            how, day, factor, into = label(t) if hit is None else hit
        per_day[cur] = in_day
        var = mu + a_hour * sq + a_day * sum(v * v for v in per_day.values())
        return mu, var


def _aware(at: datetime, name: str) -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise InvalidInputError(f"{name} must be a tz-aware datetime, got naive {at.isoformat()}")
    return at


def _ceil(units: float) -> int:
    if math.isnan(units):
        raise InvalidInputError("units must be a number, got NaN")
    return math.ceil(units - 1e-9)


def calendar_from_history(
    days: np.ndarray, flags: np.ndarray, names: tuple[str, ...]
) -> dict[date, list[str]]:
    """Flags of each local date seen in history (a flag is on when most rows of that day have it)."""
    if not names:
        return {}
    df = pd.DataFrame(flags, columns=list(names))
    df["day"] = days
    share = df.groupby("day").mean()
    out: dict[date, list[str]] = {}
    for day, row in share.iterrows():
        on = [n for n in names if row[n] >= 0.5]
        if on:
            out[pd.Timestamp(day).date()] = on
    return out


def fit_pattern(
    history: pa.Table | pd.DataFrame,
    *,
    timezone: str,
    group_by: str | None = None,
    day_flags: Sequence[str] | None = None,
    calendar: Mapping[date, Iterable[str]] | None = None,
    unknown_stock_is_in_stock: bool = True,
    config: FitConfig | None = None,
) -> PatternModel:
    """Learn the hour-of-week pattern of every store×SKU in ``history``.

    ``history`` follows the contract in :mod:`abasto.ml._frame` (store_id, sku, hour_start
    (tz-aware), units_sold, out_of_stock; optional channel and boolean day flags).
    ``timezone``: local zone defining hour of week and calendar days.
    ``group_by``: column selecting the pooled shape (default ``channel`` if present, else one
    pool). ``day_flags``: boolean columns to learn day multipliers for (default: ``is_holiday``,
    ``is_payday`` when present). ``calendar``: day flags of dates beyond the history (future
    holidays/paydays), merged with those seen in history. ``unknown_stock_is_in_stock``: whether
    rows with a null ``out_of_stock`` count as in stock (default) or as censored.
    """
    cfg = config or FitConfig()
    prep = prepare(
        history,
        timezone=timezone,
        group_by=group_by,
        day_flags=day_flags,
        unknown_stock_is_in_stock=unknown_stock_is_in_stock,
    )
    if prep.n_series == 0:
        raise InvalidInputError("history is empty: nothing to fit")
    if not prep.observed.any():
        raise InvalidInputError("history has no in-stock hour with known sales: nothing to learn from")
    est: Estimate = estimate(prep, cfg)
    series = prep.series.assign(level=est.level)
    merged: dict[date, Iterable[str]] = dict(
        calendar_from_history(prep.local_date, prep.flags, prep.flag_names)
    )
    merged.update(calendar or {})
    observed_hours = int(prep.observed.sum())
    fit_info = {
        "rows": len(prep.units),
        "observed_hours": observed_hours,
        "censored_hours": len(prep.units) - observed_hours,
        "series": prep.n_series,
        "first_hour": str(prep.hour_start.min()),
        "last_hour": str(prep.hour_start.max()),
        "shape_prior_hours": est.shape_prior_hours,
        "level_prior_hours": cfg.level_prior_hours,
        "group_prior_hours": cfg.group_prior_hours,
        "day_flags": list(prep.flag_names),
    }
    return PatternModel(
        timezone=timezone,
        series=series,
        rates=est.rates,
        groups=est.groups,
        dispersion={g: (float(est.alpha_hour[j]), float(est.alpha_day[j])) for j, g in enumerate(est.groups)},
        day_multipliers=est.day_multipliers,
        calendar=merged,
        fit_info=fit_info,
    )
