"""Turns a store×SKU state into alerts: projected stockout and stopped sales.

projected_stockout — demand from now until the next replenishment is the pattern's expected units
× today's velocity ratio (observed/expected so far, shrunk toward 1); the risk is P(demand ≥ on
hand), from the model's own distribution when it offers one (``prob_demand_at_least``), else
Poisson. At or above the threshold, one alert per episode, explaining expected vs observed
velocity, when stock runs out, when the truck comes and how much to order.

sales_stopped — stock on hand by the estimate, but no sale for hours in which the pattern expected
several units: phantom inventory, product not on the shelf, or a broken cooler.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from abasto.contracts.alerts import Alert, AlertKind, alert_id
from abasto.realtime.demand import ExpectedDemand
from abasto.realtime.reference import ReferenceData
from abasto.realtime.risk import (
    ProbAtLeast,
    ProbAtLeastOrBound,
    exhaustion_time,
    markov_bound,
    poisson_at_least,
    prob_running_out,
    round_up_to_case,
    velocity_ratio,
)
from abasto.realtime.state import PairState
from abasto.realtime.tuning import DetectorTuning

_HOUR: Final = timedelta(hours=1)
PROJECTED: Final = "projected_stockout"
STOPPED: Final = "sales_stopped"


#: (next delivery, end of the window to cover until it, end of the cycle after it)
_Upcoming = tuple[datetime | None, datetime, datetime]


@dataclass(frozen=True, slots=True)
class _ModelCall:
    at: datetime
    episode: str
    evidence: datetime | None
    horizon: datetime


def episode_key(kind: AlertKind, marker: str) -> str:
    return f"{kind}@{marker}"


class Detector:
    def __init__(
        self,
        demand: ExpectedDemand,
        reference: ReferenceData,
        tuning: DetectorTuning,
        store_deliveries: Mapping[str, datetime] | None = None,
    ) -> None:
        """``store_deliveries``: last DeliveryReceipt time per store (kept current by the engine)."""
        self._demand = demand
        self._store_deliveries = store_deliveries if store_deliveries is not None else {}
        self._ref = reference
        self._tuning = tuning
        prob = getattr(demand.pattern, "prob_demand_at_least", None)
        self._model_prob: ProbAtLeast | None = prob if callable(prob) else None
        #: the same probability, or a bound of it already under a given level (see _risk), when
        #: the model offers it (``PatternModel.prob_demand_at_least_or_bound``)
        bounded = getattr(demand.pattern, "prob_demand_at_least_or_bound", None)
        self._model_bounded: ProbAtLeastOrBound | None = bounded if callable(bounded) else None
        #: per pair: when the model was last asked, in which episode, knowing events up to when, for
        #: which horizon; its verdict was "below the threshold" (or the pair would have alerted)
        self._last_model_call: dict[tuple[str, str], _ModelCall] = {}
        self._model_spacing = timedelta(minutes=tuning.model_call_spacing_min)
        self._grace = timedelta(hours=tuning.delivery_grace_h)
        self._fallback = timedelta(hours=tuning.fallback_cycle_h)
        #: per store: the last _upcoming answer, for (now, last delivery received); a store's
        #: pairs are evaluated in a row at the same instant on every watermark hour
        self._upcoming_memo: dict[str, tuple[datetime, datetime | None, _Upcoming]] = {}
        #: per store: an answer of _upcoming that holds for every ``now`` in a range (see there):
        #: (from, before, at most, last delivery received, answer)
        self._upcoming_span: dict[str, tuple[datetime, datetime, datetime, datetime | None, _Upcoming]] = {}
        #: the Markov bound of a pair whose state is unchanged falls with time (see _still_calm)
        self._monotone = tuning.velocity_prior_units > 0
        #: whether a pair remembers until when its sales_stopped check stays quiet (see _stopped),
        #: and a store until when its hourly re-check changes nothing (see evaluate_store)
        self._timers = True
        #: per store: (until, evaluations per re-check, horizon relied on or None, newest event
        #: time of its pairs) left by its last hourly re-check (see evaluate_store)
        self.store_holds: dict[str, tuple[float, int, datetime | None, datetime]] = {}
        self.evaluations = 0

    @property
    def demand(self) -> ExpectedDemand:
        return self._demand

    def evaluate(
        self, st: PairState, now: datetime, *, projected: bool = True, stopped: bool = True
    ) -> list[Alert]:
        out: list[Alert] = []
        if projected and PROJECTED not in st.alerted:
            alert = self._projected(st, now)
            if alert is not None:
                out.append(alert)
        if stopped and STOPPED not in st.alerted:
            alert = self._stopped(st, now)
            if alert is not None:
                out.append(alert)
        if out:
            st.alerted = st.alerted.union(a.kind for a in out)
        return out

    def evaluate_store(self, store_id: str, pairs: Iterable[PairState], at: datetime) -> list[Alert]:
        """``evaluate(st, now)`` for each pair of a store in order, ``now`` = ``at`` or the pair's
        own newer event time: the hourly re-check (the same alerts, counters and memos).

        The two shortcuts that settle most unchanged pairs are tried inline, with what the full
        calls would compute for them anyway: the calm memo (``_still_calm``; the window's horizon
        from ``_upcoming``, asked once for ``at``) and the quiet memo of sales_stopped (see
        ``_stopped``); any other pair goes through ``_projected`` / ``_stopped`` as such.

        A pair's re-check that raised nothing leaves a timer (``PairState.hold``): the instant up to
        which a re-check at a later ``now`` (a later hour, no newer event of the pair) is known to
        end the same way — the smallest of what each check allows. ``_projected``: the calm memo
        (the same horizon; ``now`` within the series' span, ``span_end``) or the model's last
        verdict for the same evidence and horizon (``_projected_hold``); both count one
        evaluation. ``_stopped``: the silence stays below the minimum (until ``since`` + the
        minimum, a second to spare for the conversions), or the quiet memo answers until its end.
        A timer relying on the horizon holds only while ``_upcoming`` gives the same one for the
        hour. The pair's state and memos cannot change while no event touches it (PairState.touch
        forgets the timer; the skipped checks would only have read them, or refreshed the
        ``_upcoming`` caches), so until then the re-check only counts its evaluations. The store
        keeps the smallest of its pairs' timers and their evaluations (``store_holds``; the engine
        drops it when an event touches a pair of the store): an hour before it is not walked at all.
        """
        at_ts = at.timestamp()
        held = self.store_holds.get(store_id)
        if (
            held is not None
            and at_ts <= held[0]
            and held[3] < at
            and (held[2] is None or self._upcoming(store_id, at)[1] == held[2])
        ):
            self.evaluations += held[1]
            return []
        out: list[Alert] = []
        demand = self._demand
        min_silent_h = self._tuning.silent_min_hours
        timers = self._timers
        horizon_at: datetime | None = None
        # the store's timer: until when, evaluations per re-check, the horizon relied on, newest
        # event time of its pairs
        until, counted, relied, newest = math.inf, 0, False, at
        for st in pairs:
            last = st.last_event_at
            if last is not None and last > newest:
                newest = last
            on_hand = st.on_hand
            if on_hand is None:
                continue  # neither check asks anything of a pair without a stock estimate
            if last is None or last < at:
                now, now_ts = at, at_ts
                hold = st.hold
                if hold is not None and hold[3] < at_ts <= hold[0]:
                    if hold[2] is not None and horizon_at is None:
                        horizon_at = self._upcoming(st.store_id, at)[1]
                    if hold[2] is None or hold[2] == horizon_at:
                        # the pair's own timer (see PairState.hold): the re-check ends as before
                        self.evaluations += hold[1]
                        counted += hold[1]
                        relied = relied or hold[2] is not None
                        until = min(until, hold[0])
                        continue
            else:
                now, now_ts = last, last.timestamp()
            alerted = st.alerted
            found: list[Alert] = []
            #: until when each check of this pair is known to end as it did (epoch s)
            p_until = s_until = math.inf
            if PROJECTED not in alerted:
                calm = st.calm_now
                p_until = -math.inf
                if calm is not None and calm <= now:
                    if now is at:
                        if horizon_at is None:
                            horizon_at = self._upcoming(st.store_id, at)[1]
                        horizon = horizon_at
                    else:
                        horizon = self._upcoming(st.store_id, now)[1]
                    # what _projected does first: count, then find _still_calm holds
                    if horizon == st.calm_horizon:
                        reach = demand.span_end(st.store_id, st.sku, st.calm_series)
                        if now_ts <= reach:  # still_covers
                            self.evaluations += 1
                            p_until = reach
                if p_until == -math.inf:
                    alert = self._projected(st, now, now_ts)
                    if alert is not None:
                        found.append(alert)
                    elif timers:
                        if horizon_at is None:
                            horizon_at = self._upcoming(st.store_id, at)[1]
                        p_until = self._projected_hold(st, at_ts, horizon_at)
                elif horizon is not horizon_at:
                    p_until = -math.inf  # settled for another horizon than at's
            if STOPPED not in alerted and on_hand >= 1:
                # _stopped, inline up to its quiet memo
                since = st.last_sale_at or st.first_seen_at
                silent_h = (now - since).total_seconds() / 3600.0
                if silent_h < min_silent_h:
                    # the silence stays short until then (a second to spare for the roundings)
                    s_until = now_ts + (min_silent_h - silent_h) * 3600.0 - 1.0
                else:
                    quiet = st.quiet
                    if (
                        quiet is None
                        or not quiet[1] <= now_ts <= quiet[2]
                        or quiet[0] != since
                        or demand.series(st.store_id, st.sku) is not quiet[3]
                    ):
                        alert = self._silent(st, now, now_ts, since, silent_h)
                        if alert is not None:
                            found.append(alert)
                        quiet = st.quiet  # a new memo, or none
                        s_until = (
                            quiet[2]
                            if quiet is not None
                            and quiet[1] == now_ts
                            and quiet[0] == since
                            and demand.series(st.store_id, st.sku) is quiet[3]
                            else -math.inf
                        )
                    else:
                        s_until = quiet[2]
            if found:
                st.alerted = alerted.union(a.kind for a in found)
                out += found
                until = -math.inf
                continue
            mine = p_until if p_until < s_until else s_until
            counts = 0 if PROJECTED in alerted else 1
            counted += counts
            relied = relied or counts == 1
            until = min(until, mine)
            st.hold = (
                (mine, counts, horizon_at if counts else None, at_ts) if timers and mine > at_ts else None
            )
        if timers and until > at_ts:
            self.store_holds[store_id] = (until, counted, horizon_at if relied else None, newest)
        else:
            self.store_holds.pop(store_id, None)
        return out

    def _projected_hold(self, st: PairState, at_ts: float, horizon: datetime) -> float:
        """Until when (epoch s) ``_projected`` of this unchanged pair, at a later ``now`` whose
        window ends at the same ``horizon``, is known to count one evaluation and return None.

        By the calm memo (``_still_calm``: the memo is of this horizon and series, and a later
        ``now`` only has to stay within the series' span), or by the model's last verdict
        (``_verdict_settled``'s second case: a call of this episode that knew the same evidence for
        the same horizon; the windows from ``since`` and from ``now`` stay inside the series while
        ``since`` and ``now`` are not before its origin, ``now`` and the horizon within its span).
        -inf when neither holds.
        """
        demand = self._demand
        series = demand.series(st.store_id, st.sku)
        reach = demand.span_end(st.store_id, st.sku, series)
        if st.calm_now is not None and st.calm_horizon == horizon and st.calm_series is series:
            return reach
        if self._model_prob is None or self._tuning.risk_threshold <= 0.0:
            return -math.inf
        last = self._last_model_call.get((st.store_id, st.sku))
        if (
            last is None
            or last.episode != st.episode
            or last.evidence != st.last_event_at
            or last.horizon != horizon
        ):
            return -math.inf
        origin = demand.span_start(st.store_id, st.sku, series)
        since = st.counting_since
        if (
            at_ts < origin
            or (since is not None and since.timestamp() < origin)
            or horizon.timestamp() > reach
        ):
            return -math.inf
        return reach

    # --- projected stockout ----------------------------------------------------------------------
    def _projected(self, st: PairState, now: datetime, now_ts: float | None = None) -> Alert | None:
        """``now_ts``: ``now.timestamp()`` when the caller has it."""
        on_hand = st.on_hand
        if on_hand is None:
            return None
        self.evaluations += 1
        t = self._tuning
        next_delivery, horizon, cycle_end = self._upcoming(st.store_id, now)
        if now_ts is None:
            now_ts = now.timestamp()
        if st.calm_now is not None and self._still_calm(st, now, now_ts, horizon):
            return None
        horizon_ts = horizon.timestamp()
        since = st.counting_since
        since_ts = None if since is None else since.timestamp()
        if self._model_prob is not None and self._verdict_settled(
            st, now, now_ts, horizon, horizon_ts, since_ts
        ):
            return None
        demand = self._demand
        if since_ts is None:
            so_far = 0.0
            ahead = demand.units_ts(st.store_id, st.sku, now_ts, horizon_ts)
        else:
            so_far, ahead = demand.units_two_ts(st.store_id, st.sku, since_ts, now_ts, now_ts, horizon_ts)
        ratio = velocity_ratio(  # _ratio, inlined
            float(st.sales_today),
            so_far,
            t.velocity_prior_units,
            t.velocity_ratio_min,
            t.velocity_ratio_max,
        )
        expected = ratio * ahead
        # running out: demand reaches the units on hand; with none left, any demand is a lost sale
        units = max(on_hand, 1.0)
        if markov_bound(expected, units) < t.risk_threshold:
            if self._monotone:
                start = now_ts if since_ts is None else min(since_ts, now_ts)
                if demand.covers(st.store_id, st.sku, start, max(now_ts, horizon_ts)):
                    st.calm_now, st.calm_horizon = now, horizon
                    st.calm_series = demand.series(st.store_id, st.sku)
                else:  # a later ``now`` could not pass _still_calm either (see there)
                    st.calm_now = None
            return None  # no distribution of demand with this mean reaches the threshold
        risk = self._risk(st, now, horizon, expected=expected, ratio=ratio, units=units)
        if risk < t.risk_threshold:
            return None
        store_id, sku = st.store_id, st.sku
        projected_at = exhaustion_time(
            lambda a, b: demand.units(store_id, sku, a, b),
            now,
            on_hand,
            ratio,
            cycle_end,
            steps=lambda points: demand.steps_ts(store_id, sku, points),
        )
        cycle_demand = ratio * demand.units(st.store_id, st.sku, now, cycle_end)
        shortfall = t.cover_factor * cycle_demand - max(on_hand, 0.0)
        suggested = round_up_to_case(shortfall, self._ref.case_size(st.sku))
        expected_uph, observed_uph = self._rates(st, now, horizon, ratio)
        return self._alert(
            PROJECTED,
            st,
            now,
            risk=risk,
            expected_uph=expected_uph,
            observed_uph=observed_uph,
            projected_at=projected_at,
            next_delivery=next_delivery,
            suggested=suggested,
        )

    def _still_calm(self, st: PairState, now: datetime, now_ts: float, horizon: datetime) -> bool:
        """Whether the Markov bound is known to stay below the threshold, without computing it.

        It was below at ``calm_now``; since then the pair's stock and today's counters did not
        change (PairState forgets ``calm_now`` when they do), the window ends at the same horizon
        and the expected-demand series is the same (same origin: the same floats). Then a later
        ``now`` gives a velocity ratio no higher (expected-so-far only grew, with prior units > 0)
        times expected units until the horizon no higher, in floating point too (the cumulative
        series is non-decreasing and rounding is monotone): the bound cannot have risen. Asking
        the series must not rebuild it either (the skipped calls would have): the memo is only
        kept when the windows asked at ``calm_now`` (from ``min(since, calm_now)`` to
        ``max(calm_now, horizon)``) were inside the series; a later ``now`` starts its windows no
        earlier (``since`` is fixed while the memo lives) and ends them at the same horizon, so
        only ``now`` itself may reach beyond the series' span (``still_covers``). When they were
        not inside, no later ``now`` could pass either (the start stays before the origin or the
        end beyond the span), so not keeping the memo changes nothing.
        """
        calm = st.calm_now
        if calm is None or now < calm or horizon != st.calm_horizon:
            return False
        return self._demand.still_covers(st.store_id, st.sku, st.calm_series, now_ts)

    def _verdict_settled(
        self,
        st: PairState,
        now: datetime,
        now_ts: float,
        horizon: datetime,
        horizon_ts: float,
        since_ts: float | None,
    ) -> bool:
        """Whether ``_projected`` is known to return None here, without the demand arithmetic.

        With the model, a pair whose risk is not below the Markov bound's threshold asks
        ``_risk``, which answers 0.0 without asking the model when the last model call of the pair
        is of this episode and either was less than ``model_call_spacing_min`` ago or knew the same
        evidence (``last_event_at``) for the same horizon. Both conditions are read from the pair's
        state and ``now``/``horizon`` alone, not from the velocity ratio or the expected units. So
        when they hold, both branches end in None: the Markov bound below the threshold returns
        None, and a risk of 0.0 is below the threshold (> 0 by the settings' validation, checked
        here too). The only effects skipped are memos: the calm memo (set again by a later full
        evaluation; ``_still_calm`` is only a shortcut to the same outcome) and the expected-demand
        series, which the skipped ``units_ts`` calls would have rebuilt when asked outside it —
        hence the ``covers`` checks (a rebuild moves the series' origin, which is in the snapshot
        and decides later floats); extending it is invisible (the same rates, summed in order).
        """
        if self._model_prob is None or self._tuning.risk_threshold <= 0.0:
            return False
        last = self._last_model_call.get((st.store_id, st.sku))
        if last is None or last.episode != st.episode:
            return False
        if not (
            now - last.at < self._model_spacing
            or (last.evidence == st.last_event_at and last.horizon == horizon)
        ):
            return False
        demand = self._demand
        if (
            since_ts is not None
            and now_ts > since_ts
            and not demand.covers(st.store_id, st.sku, since_ts, now_ts)
        ):
            return False
        return horizon_ts <= now_ts or demand.covers(st.store_id, st.sku, now_ts, horizon_ts)

    def _upcoming(self, store_id: str, now: datetime) -> _Upcoming:
        """(next delivery, end of the window to cover until it, end of the cycle after it).

        A scheduled delivery up to ``delivery_grace_h`` in the past that has not shown up yet (no
        DeliveryReceipt at the store since) is still coming: trucks run late. It is assumed to
        arrive within the hour.
        """
        delivered = self._store_deliveries.get(store_id)
        memo = self._upcoming_memo.get(store_id)
        if memo is not None and memo[0] == now and memo[0].tzinfo is now.tzinfo and memo[1] == delivered:
            return memo[2]
        span = self._upcoming_span.get(store_id)
        if (
            span is not None
            and span[0] <= now < span[1]
            and now <= span[2]
            and span[0].tzinfo is now.tzinfo
            and span[3] == delivered
        ):
            return span[4]
        grace, fallback = self._grace, self._fallback
        scheduled = self._ref.calendar.deliveries_after(store_id, now - grace, 3)
        pending = [d for d in scheduled if delivered is None or delivered < d - grace]
        result: _Upcoming
        if not pending:
            result = None, now + fallback, now + 2 * fallback
        else:
            nxt = max(pending[0], min(now + _HOUR, pending[0] + grace))
            result = nxt, nxt, pending[1] if len(pending) > 1 else nxt + fallback
            if len(scheduled) == 3 and now + _HOUR <= pending[0]:
                # the same answer for a later ``now'`` (same zone, same last delivery) while the
                # three deliveries after ``now' − grace`` are these (now' − grace < the first; the
                # calendar looks further ahead, never less far) and ``now' + 1h <= pending[0]``
                # (then nxt = pending[0]: the answer does not involve ``now'``)
                first = scheduled[0] + grace
                self._upcoming_span[store_id] = (now, first, pending[0] - _HOUR, delivered, result)
        self._upcoming_memo[store_id] = (now, delivered, result)
        return result

    def _rates(self, st: PairState, now: datetime, horizon: datetime, ratio: float) -> tuple[float, float]:
        """(expected, observed) units per hour, for the explanation.

        After an hour of trading today: the observed exponentially weighted velocity and the
        pattern's rate weighted the same way. Just opened: the pattern's mean rate over the
        selling hours until ``horizon`` and the rate the projection assumes (× the velocity ratio).
        """
        since = st.counting_since or now
        if self._demand.selling_hours(st.store_id, st.sku, since, now) >= 1.0:
            return self._weighted_expected_rate(st, now), st.velocity.rate(now)
        hours = self._demand.selling_hours(st.store_id, st.sku, now, horizon)
        ahead = self._demand.units(st.store_id, st.sku, now, horizon) / hours if hours > 0 else 0.0
        return ahead, ahead * ratio

    def _ratio(self, st: PairState, expected_so_far: float) -> float:
        """Today's velocity ratio, ``expected_so_far`` the pattern's units since counting began."""
        t = self._tuning
        return velocity_ratio(
            float(st.sales_today),
            expected_so_far,
            t.velocity_prior_units,
            t.velocity_ratio_min,
            t.velocity_ratio_max,
        )

    def _risk(
        self, st: PairState, now: datetime, horizon: datetime, *, expected: float, ratio: float, units: float
    ) -> float:
        model = self._model_prob
        if model is None:
            return prob_running_out(expected, units, ratio, None)
        key = (st.store_id, st.sku)
        last = self._last_model_call.get(key)
        if last is not None and last.episode == st.episode:
            if now - last.at < self._model_spacing:
                return 0.0  # asked the model moments ago in this episode: wait for more evidence
            if last.evidence == st.last_event_at and last.horizon == horizon:
                # nothing happened since: same stock, the window only shrank and the velocity ratio
                # only fell, so the risk cannot have risen above the last (sub-threshold) verdict
                return 0.0
        self._last_model_call[key] = _ModelCall(now, st.episode, st.last_event_at, horizon)
        bounded = self._model_bounded
        threshold = self._tuning.risk_threshold

        def at_least(units: float) -> float:
            if bounded is not None:
                # the caller only compares the risk with the threshold: a bound of it already
                # under the threshold gives the same verdict (and is never returned otherwise)
                return bounded(st.store_id, st.sku, now, horizon, units, threshold)
            return model(st.store_id, st.sku, now, horizon, units)

        return prob_running_out(expected, units, ratio, at_least)

    def _weighted_expected_rate(self, st: PairState, now: datetime) -> float:
        """The pattern's units/hour, weighted like the observed velocity (exponential, same half-life)."""
        tau_h = self._tuning.velocity_half_life_h / math.log(2.0)
        total = 0.0
        for k in range(math.ceil(4 * tau_h)):
            a, b = now - timedelta(hours=k + 1), now - timedelta(hours=k)
            total += self._demand.units(st.store_id, st.sku, a, b) * math.exp(-(k + 0.5) / tau_h)
        return total / tau_h

    # --- stopped sales ---------------------------------------------------------------------------
    def _stopped(self, st: PairState, now: datetime, now_ts: float | None = None) -> Alert | None:
        """``now_ts``: ``now.timestamp()`` when the caller has it.

        Below the minimum of expected units, the pair remembers until when it stays below
        (``PairState.quiet``, from ``ExpectedDemand.below_until``): a later ``now`` inside that
        range, with the same start of the silence and the same series, returns None at once. The
        skipped ``units`` call would only have extended the series (no rebuild: the range stays
        inside its span), which no result can tell.
        """
        t = self._tuning
        if st.on_hand is None or st.on_hand < 1:
            return None
        since = st.last_sale_at or st.first_seen_at
        silent_h = (now - since).total_seconds() / 3600.0
        if silent_h < t.silent_min_hours:
            return None
        if now_ts is None:
            now_ts = now.timestamp()
        quiet = st.quiet
        if (
            quiet is not None
            and quiet[1] <= now_ts <= quiet[2]
            and quiet[0] == since
            and self._demand.series(st.store_id, st.sku) is quiet[3]
        ):
            return None
        return self._silent(st, now, now_ts, since, silent_h)

    def _silent(
        self, st: PairState, now: datetime, now_ts: float, since: datetime, silent_h: float
    ) -> Alert | None:
        """The rest of ``_stopped`` for a pair with stock, silent since ``since`` for ``silent_h``
        hours (at least the minimum), its quiet memo not answering."""
        t = self._tuning
        demand = self._demand
        since_ts = since.timestamp()
        expected = demand.units_ts(st.store_id, st.sku, since_ts, now_ts)
        if expected < t.silent_min_expected_units:
            if self._timers:
                limit = t.silent_min_expected_units
                until = demand.below_until(st.store_id, st.sku, since_ts, now_ts, limit)
                if until >= now_ts:
                    st.quiet = (since, now_ts, until, demand.series(st.store_id, st.sku))
            return None
        self.evaluations += 1
        if self._model_prob is not None:
            risk = float(self._model_prob(st.store_id, st.sku, since, now, 1.0))
        else:
            risk = poisson_at_least(expected, 1.0)
        if risk < max(t.risk_threshold, 1.0 - math.exp(-t.silent_min_expected_units)):
            return None
        return self._alert(
            STOPPED,
            st,
            now,
            risk=risk,
            expected_uph=expected / silent_h,
            observed_uph=0.0,
            projected_at=None,
            next_delivery=self._upcoming(st.store_id, now)[0],
            suggested=0,
        )

    # --- checkpoint ------------------------------------------------------------------------------
    def export_model_calls(self) -> list[tuple[str, str, datetime, str, datetime | None, datetime]]:
        """The spacing memory of model calls (it decides whether the model is asked again)."""
        return [
            (store, sku, c.at, c.episode, c.evidence, c.horizon)
            for (store, sku), c in self._last_model_call.items()
        ]

    def restore_model_calls(
        self, calls: list[tuple[str, str, datetime, str, datetime | None, datetime]]
    ) -> None:
        self._last_model_call = {
            (store, sku): _ModelCall(at, episode, evidence, horizon)
            for store, sku, at, episode, evidence, horizon in calls
        }

    # --- common ------------------------------------------------------------------------------------
    def _alert(
        self,
        kind: AlertKind,
        st: PairState,
        now: datetime,
        *,
        risk: float,
        expected_uph: float,
        observed_uph: float,
        projected_at: datetime | None,
        next_delivery: datetime | None,
        suggested: int,
    ) -> Alert:
        episode = episode_key(kind, st.episode)
        store = self._ref.store(st.store_id)
        return Alert(
            alert_id=alert_id(st.store_id, st.sku, episode),
            kind=kind,
            store_id=st.store_id,
            sku=st.sku,
            raised_at=now,
            episode=episode,
            risk=round(risk, 4),
            on_hand_estimate=float(st.on_hand or 0.0),
            expected_units_per_hour=round(expected_uph, 3),
            observed_units_per_hour=round(observed_uph, 3),
            projected_stockout_at=projected_at,
            next_delivery_at=next_delivery,
            suggested_qty=suggested,
            model_version=str(self._demand.pattern.version),
            region_id=store.region_id,
            route_id=store.route_id,
            channel=store.channel,
            big_customer=store.big_customer,
        )
