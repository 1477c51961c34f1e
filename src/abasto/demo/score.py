"""Score stockout alerts against the world's ground truth.

Matching (stated in the report):

* An alert *points to* the episode of the same store×SKU that is ongoing when the alert is
  raised, or else the first one that starts after it, no later than the alert's horizon (the
  next delivery it projected, capped by the end of the ground truth). An alert that points to no
  episode is a **false positive**. precision = alerts pointing to an episode / alerts.
* A live-day episode (start inside the live day) is **warned** when an alert points to it and was
  raised no later than its start; its lead time is start − raised_at. recall = warned / live-day
  episodes. Episodes pointed to only by alerts raised after their start count as *late*.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from abasto.contracts.alerts import Alert

#: without a projected next delivery, an alert looks this far ahead for its episode
DEFAULT_HORIZON = timedelta(hours=24)


@dataclass(frozen=True)
class Episode:
    store_id: str
    sku: str
    start_at: datetime
    end_at: datetime | None


@dataclass(frozen=True)
class AlertOutcome:
    alert: Alert
    episode: Episode | None

    @property
    def lead_minutes(self) -> float | None:
        if self.episode is None:
            return None
        return (self.episode.start_at - self.alert.raised_at).total_seconds() / 60


@dataclass
class Score:
    alerts: int
    true_stockouts: int
    true_positive_alerts: int
    warned: int
    late: int
    missed: int
    precision: float | None
    recall: float | None
    lead_time_minutes_median: float | None
    lead_time_minutes_p25: float | None
    lead_time_minutes_p75: float | None
    outcomes: list[AlertOutcome] = field(default_factory=list, repr=False)
    missed_episodes: list[Episode] = field(default_factory=list, repr=False)


def _quantile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(q * 100) - 1]


def score_alerts(
    alerts: Iterable[Alert],
    episodes: Iterable[Episode],
    *,
    live_start: datetime,
    live_end: datetime,
    truth_end: datetime,
) -> Score:
    """Match alerts to ground-truth episodes and compute precision, recall and lead times."""
    by_pair: dict[tuple[str, str], list[Episode]] = defaultdict(list)
    for ep in episodes:
        by_pair[(ep.store_id, ep.sku)].append(ep)
    for eps in by_pair.values():
        eps.sort(key=lambda e: e.start_at)

    outcomes: list[AlertOutcome] = []
    for alert in sorted(alerts, key=lambda a: a.raised_at):
        horizon = min(alert.next_delivery_at or alert.raised_at + DEFAULT_HORIZON, truth_end)
        horizon = max(horizon, alert.raised_at)
        match: Episode | None = None
        for ep in by_pair.get((alert.store_id, alert.sku), []):
            ongoing = ep.start_at <= alert.raised_at and (ep.end_at is None or ep.end_at > alert.raised_at)
            if ongoing or alert.raised_at < ep.start_at <= horizon:
                match = ep
                break
        outcomes.append(AlertOutcome(alert, match))

    live = [ep for eps in by_pair.values() for ep in eps if live_start <= ep.start_at < live_end]
    first_lead: dict[Episode, float] = {}
    pointed: set[Episode] = set()
    for out in outcomes:
        if out.episode is None:
            continue
        pointed.add(out.episode)
        lead = out.lead_minutes
        if lead is not None and lead >= 0:
            first_lead[out.episode] = max(first_lead.get(out.episode, lead), lead)
    warned = [ep for ep in live if ep in first_lead]
    late = [ep for ep in live if ep in pointed and ep not in first_lead]
    missed = [ep for ep in live if ep not in pointed]
    leads = sorted(first_lead[ep] for ep in warned)
    tp = sum(1 for o in outcomes if o.episode is not None)
    return Score(
        alerts=len(outcomes),
        true_stockouts=len(live),
        true_positive_alerts=tp,
        warned=len(warned),
        late=len(late),
        missed=len(missed),
        precision=tp / len(outcomes) if outcomes else None,
        recall=len(warned) / len(live) if live else None,
        lead_time_minutes_median=statistics.median(leads) if leads else None,
        lead_time_minutes_p25=_quantile(leads, 0.25),
        lead_time_minutes_p75=_quantile(leads, 0.75),
        outcomes=outcomes,
        missed_episodes=missed,
    )
