from datetime import UTC, datetime, timedelta

from abasto.contracts.alerts import Alert, alert_id
from abasto.demo.score import Episode, score_alerts

DAY = datetime(2026, 10, 13, 6, 0, tzinfo=UTC)
H = timedelta(hours=1)


def _alert(store: str, sku: str, at: datetime, next_delivery: datetime | None = None) -> Alert:
    return Alert(
        alert_id=alert_id(store, sku, at.isoformat()),
        kind="projected_stockout",
        store_id=store,
        sku=sku,
        raised_at=at,
        episode=at.isoformat(),
        risk=0.9,
        on_hand_estimate=2,
        expected_units_per_hour=1,
        observed_units_per_hour=2,
        projected_stockout_at=at + H,
        next_delivery_at=next_delivery,
        suggested_qty=12,
        model_version="1",
    )


def test_precision_recall_lead_and_late() -> None:
    eps = [
        Episode("S1", "A", DAY + 5 * H, None),  # warned 3h ahead
        Episode("S2", "A", DAY + 4 * H, DAY + 20 * H),  # alerted late (1h after start)
        Episode("S3", "A", DAY + 8 * H, None),  # missed
        Episode("S4", "A", DAY + 30 * H, None),  # after the live day: not a live episode
    ]
    alerts = [
        _alert("S1", "A", DAY + 2 * H, DAY + 26 * H),
        _alert("S2", "A", DAY + 5 * H, DAY + 26 * H),
        _alert("S5", "A", DAY + 5 * H, DAY + 26 * H),  # no episode at all: false positive
        _alert("S4", "A", DAY + 10 * H, DAY + 40 * H),  # points to tomorrow's episode before delivery
    ]
    s = score_alerts(alerts, eps, live_start=DAY, live_end=DAY + 18 * H, truth_end=DAY + 72 * H)
    assert s.alerts == 4
    assert s.true_stockouts == 3
    assert s.true_positive_alerts == 3
    assert s.precision == 0.75
    assert (s.warned, s.late, s.missed) == (1, 1, 1)
    assert s.recall == 1 / 3
    assert s.lead_time_minutes_median == 180.0
    assert [e.store_id for e in s.missed_episodes] == ["S3"]


def test_episode_beyond_projected_delivery_does_not_count() -> None:
    eps = [Episode("S1", "A", DAY + 30 * H, None)]
    alerts = [_alert("S1", "A", DAY + 2 * H, DAY + 20 * H)]  # delivery comes first, then it runs out
    s = score_alerts(alerts, eps, live_start=DAY, live_end=DAY + 18 * H, truth_end=DAY + 72 * H)
    assert s.precision == 0.0 and s.true_stockouts == 0 and s.recall is None


def test_no_alerts_no_episodes() -> None:
    s = score_alerts([], [], live_start=DAY, live_end=DAY + H, truth_end=DAY + H)
    assert s.precision is None and s.recall is None and s.lead_time_minutes_median is None
