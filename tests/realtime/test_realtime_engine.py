"""The processor core with a test-double pattern: alerts, episodes, dead letters, counters."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec
import pytest
from realtime_doubles import OTHER, SKU, Device, FlatPattern, PoissonModelPattern, local, reference

from abasto.contracts.alerts import Alert, alert_id
from abasto.contracts.events import DeviceEvent, SaleScan, encode_event
from abasto.realtime.engine import DeadLetter, Engine, Output
from abasto.realtime.tuning import DetectorTuning


def alerts(outputs: list[Output]) -> list[Alert]:
    return [o for o in outputs if isinstance(o, Alert)]


def dead(outputs: list[Output]) -> list[DeadLetter]:
    return [o for o in outputs if isinstance(o, DeadLetter)]


def run(engine: Engine, msgs: list[tuple[str, bytes]]) -> list[Output]:
    out: list[Output] = []
    for subject, data in msgs:
        out += engine.process(subject, data)
    return out


def steady_sales(
    dev: Device, start: datetime, end: datetime, per_hour: float, qty: int = 1, sku: str = SKU
) -> list[tuple[str, bytes]]:
    """Evenly spaced sales of ``qty`` units at ``per_hour`` units/hour."""
    step = timedelta(hours=qty / per_hour)
    out, t = [], start + step / 2
    while t < end:
        out.append(dev.sale(t, qty, sku))
        t += step
    return out


def engine(pattern: FlatPattern | None = None, *, daily: bool = True, **tuning: float) -> Engine:
    return Engine(
        pattern or FlatPattern({("S1", SKU): 2.0, ("S1", OTHER): 2.0, ("S2", SKU): 2.0}),
        reference(daily=daily),
        DetectorTuning(**tuning),  # type: ignore[arg-type]
    )


# --- projected stockout ----------------------------------------------------------------------------


def test_fast_sales_raise_a_projected_stockout_before_the_shelf_is_empty() -> None:
    eng, dev = engine(), Device("S1")
    msgs = [dev.stock(local(14, 8), 40)]
    # the pattern expects 2/h; shoppers buy 6/h: 40 units last until ~14:40, the truck comes at 09:00
    msgs += steady_sales(dev, local(14, 8), local(14, 14, 30), per_hour=6)
    out: list[Output] = []
    raised_after: int | None = None
    for i, (subject, data) in enumerate(msgs):
        new = eng.process(subject, data)
        if alerts(new) and raised_after is None:
            raised_after = i
        out += new
    (alert,) = alerts(out)
    stockout_at = local(14, 8) + timedelta(hours=40 / 6)
    assert alert.kind == "projected_stockout"
    assert alert.raised_at < stockout_at - timedelta(hours=2)
    assert alert.risk >= 0.6
    assert alert.projected_stockout_at is not None
    assert alert.raised_at < alert.projected_stockout_at < local(15, 9)
    assert alert.next_delivery_at == local(15, 9)
    assert alert.observed_units_per_hour > alert.expected_units_per_hour > 0
    assert alert.suggested_qty > 0 and alert.suggested_qty % 12 == 0
    assert alert.on_hand_estimate == 40 - (raised_after or 0)
    assert (alert.model_version, alert.region_id, alert.route_id, alert.channel, alert.big_customer) == (
        "test-7",
        "RG1",
        "R01",
        "tienda",
        True,
    )
    assert alert.alert_id == alert_id("S1", SKU, alert.episode)
    assert eng.metrics.alerts["projected_stockout"] == 1


def test_projected_stockout_time_tracks_cumulative_expected_demand() -> None:
    eng, dev = engine(), Device("S1")
    out = run(eng, [dev.stock(local(14, 12), 6)])  # 2/h expected → 6 units last 3 hours
    (alert,) = alerts(out)
    assert alert.projected_stockout_at is not None
    assert abs(alert.projected_stockout_at - local(14, 15)) < timedelta(minutes=1)
    # suggested: 1.3 × demand until the delivery after next (today 10h×2 + tomorrow's 20+… ) − 6
    assert alert.suggested_qty % 12 == 0 and alert.suggested_qty >= 1.3 * 20 - 6


def test_no_alert_when_stock_lasts_until_the_next_delivery() -> None:
    eng, dev = engine(), Device("S1")
    msgs = [dev.stock(local(14, 8), 80)]
    msgs += steady_sales(dev, local(14, 8), local(14, 22), per_hour=2)
    msgs += [dev.heartbeat(local(15, 8, 30))]  # the watermark crosses the night's hours
    out = run(eng, msgs)
    assert alerts(out) == []
    assert eng.metrics.evaluations > 0
    st = eng.pair("S1", SKU)
    assert st is not None and st.on_hand == 80 - 28 and st.sales_today == 28


def test_slow_route_makes_the_same_stock_risky() -> None:
    """40 units at 2/h are enough until tomorrow's truck, not until next Tuesday's."""
    daily, weekly = engine(daily=True), engine(daily=False)
    assert alerts(run(daily, [Device("S1").stock(local(14, 8), 40)])) == []
    (alert,) = alerts(run(weekly, [Device("S1").stock(local(14, 8), 40)]))
    assert alert.next_delivery_at == local(20, 9)  # visit Monday 19th, delivered Tuesday 20th


def test_model_distribution_is_used_when_the_pattern_offers_it() -> None:
    pattern = PoissonModelPattern({("S1", SKU): 2.0})
    eng, dev = engine(pattern), Device("S1")
    out = run(eng, [dev.stock(local(14, 12), 6)])
    assert len(alerts(out)) == 1
    assert pattern.calls and pattern.calls[0][:2] == ("S1", SKU)


def test_stock_at_zero_is_a_stockout_now() -> None:
    eng, dev = engine(), Device("S1")
    (alert,) = alerts(run(eng, [dev.stock(local(14, 13), 0)]))
    assert alert.risk == 1.0 and alert.projected_stockout_at == local(14, 13)


def test_empty_shelf_right_before_the_truck_is_no_alert() -> None:
    """Nothing left, but the truck (09:00) likely comes before a shopper asks (0.5/h from 08:00)."""
    slow = FlatPattern({("S1", SKU): 0.5})
    assert alerts(run(engine(slow), [Device("S1").stock(local(14, 7, 50), 0)])) == []
    assert len(alerts(run(engine(slow), [Device("S1").stock(local(14, 13), 0)]))) == 1  # after the truck


def test_a_late_truck_is_still_expected_until_it_comes() -> None:
    """Due at 09:00 and not here at 09:30: expected within the hour, not tomorrow."""
    waiting = engine()
    assert alerts(run(waiting, [Device("S1").stock(local(14, 9, 30), 5)])) == []
    came = engine()  # the truck came at 09:05 (without this SKU): the next one is tomorrow
    dev = Device("S1")
    (alert,) = alerts(
        run(came, [dev.delivery(local(14, 9, 5), 12, sku=OTHER), dev.stock(local(14, 9, 30), 5)])
    )
    assert alert.next_delivery_at == local(15, 9)


# --- episodes and replays -------------------------------------------------------------------------


def test_one_alert_per_episode_despite_duplicates_and_replays() -> None:
    eng, dev = engine(), Device("S1")
    msgs = [dev.stock(local(14, 8), 30), *steady_sales(dev, local(14, 8), local(14, 13), per_hour=5)]
    first = alerts(run(eng, msgs))
    assert len(first) == 1
    assert alerts(run(eng, msgs)) == []  # every message again: duplicates
    assert eng.metrics.duplicates == len(msgs)
    assert eng.metrics.accepted == len(msgs)
    replay = alerts(run(engine(), msgs))  # a fresh processor replaying the stream
    assert [a.alert_id for a in replay] == [first[0].alert_id]


def test_a_delivery_starts_a_new_episode() -> None:
    eng, dev = engine(), Device("S1")
    msgs = [dev.stock(local(14, 8), 20), *steady_sales(dev, local(14, 8), local(14, 12), per_hour=5)]
    (first,) = alerts(run(eng, msgs))
    more = steady_sales(dev, local(14, 12), local(14, 14), per_hour=5)
    assert alerts(run(eng, more)) == []  # same episode: still one alert
    # the shelf was empty since 12:00 (sales beyond the estimate don't make it negative)
    refill = [dev.delivery(local(14, 14, 5), 12), dev.stock(local(14, 14, 6), 12)]
    after = steady_sales(dev, local(14, 14, 10), local(14, 16), per_hour=5)
    (second,) = alerts(run(eng, refill + after))
    assert second.episode != first.episode and second.alert_id != first.alert_id
    st = eng.pair("S1", SKU)
    assert st is not None and st.on_hand == 12 - len(after)


def test_a_higher_stock_reading_starts_a_new_episode_but_a_correction_down_does_not() -> None:
    eng, dev = engine(), Device("S1")
    (first,) = alerts(run(eng, [dev.stock(local(14, 12), 4)]))
    assert alerts(run(eng, [dev.stock(local(14, 12, 30), 2)])) == []
    (second,) = alerts(run(eng, [dev.stock(local(14, 13), 10)]))
    assert second.episode != first.episode


def test_episodes_are_per_store_and_sku() -> None:
    eng, dev = engine(), Device("S1")
    out = run(
        eng,
        [
            dev.stock(local(14, 12), 3),
            dev.stock(local(14, 12), 3, sku=OTHER),
            Device("S2").stock(local(14, 12), 3),
        ],
    )
    assert {(a.store_id, a.sku) for a in alerts(out)} == {("S1", SKU), ("S1", OTHER), ("S2", SKU)}


# --- stopped sales ---------------------------------------------------------------------------------


def test_sales_stopped_fires_on_phantom_stock() -> None:
    pattern = FlatPattern({("S1", SKU): 3.0, ("S1", OTHER): 3.0})
    eng, dev = engine(pattern), Device("S1")
    msgs = [dev.stock(local(14, 8), 200), dev.stock(local(14, 8), 200, sku=OTHER)]
    msgs += steady_sales(dev, local(14, 8), local(14, 14), per_hour=3, sku=OTHER)  # OTHER sells normally
    msgs += [dev.heartbeat(local(14, 8) + timedelta(minutes=10 * k)) for k in range(1, 40)]
    msgs.sort(key=lambda m: msgspec.json.decode(m[1])["event_time"])
    out = run(eng, msgs)
    (alert,) = alerts(out)
    assert (alert.kind, alert.sku) == ("sales_stopped", SKU)
    assert alert.on_hand_estimate == 200
    assert alert.observed_units_per_hour == 0 and alert.expected_units_per_hour == pytest.approx(3.0)
    assert local(14, 11) <= alert.raised_at <= local(14, 14)
    assert alert.risk > 0.99


def test_no_sales_stopped_when_the_pattern_expects_little() -> None:
    eng, dev = engine(FlatPattern({("S1", SKU): 0.3})), Device("S1")
    msgs = [dev.stock(local(14, 8), 50)] + [
        dev.heartbeat(local(14, 8) + timedelta(minutes=30 * k)) for k in range(1, 28)
    ]
    assert alerts(run(eng, msgs)) == []


# --- validation, dead letters, counters ---------------------------------------------------------------


def test_invalid_and_spoofed_events_become_dead_letters_with_reasons() -> None:
    eng, dev = engine(), Device("S1")
    good_subject, good = dev.stock(local(14, 8), 50)
    spoof = encode_event(
        DeviceEvent(
            device_id="dev-S2-1",
            store_id="S2",
            seq=1,
            event_time=local(14, 9),
            payload=SaleScan(sku=SKU, qty=1, price=16.0),
        )
    )
    msgs = [
        (good_subject, good),
        (good_subject, b"{not json"),
        (good_subject, b'{"device_id": 3}'),
        (good_subject, spoof),  # S2's event on S1's subject
        ("pos", good),
        (good_subject, b"x" * 70_000),
    ]
    out = run(eng, msgs)
    assert [d.reason for d in dead(out)] == [
        "malformed_json",
        "invalid_field",
        "store_mismatch",
        "bad_subject",
        "oversized",
    ]
    assert dead(out)[2].data == spoof and dead(out)[2].subject == good_subject
    m = eng.metrics
    assert (m.received, m.accepted, m.rejected_total, m.duplicates) == (6, 1, 5, 0)
    assert m.rejected["store_mismatch"] == 1
    assert eng.pair("S2", SKU) is None


def test_future_timestamps_are_rejected_against_the_clock() -> None:
    now = local(14, 10)
    eng = Engine(FlatPattern({}), reference(), clock=lambda: now)
    out = run(eng, [Device("S1").heartbeat(now + timedelta(hours=1))])
    assert [d.reason for d in dead(out)] == ["future_timestamp"]


def test_late_events_are_counted_and_still_applied() -> None:
    eng, dev = engine(), Device("S1")
    run(eng, [dev.stock(local(14, 8), 50), dev.heartbeat(local(14, 10))])
    assert eng.watermark("S1") == local(14, 10) - timedelta(seconds=300)
    assert eng.watermark("S2") is None
    run(eng, [dev.sale(local(14, 9), 3)])  # an hour late
    st = eng.pair("S1", SKU)
    assert eng.metrics.late == 1 and st is not None and st.on_hand == 47


def test_a_failing_model_dead_letters_the_event_and_the_worker_goes_on() -> None:
    class Broken(FlatPattern):
        def rate(self, store_id: str, sku: str, at: datetime) -> float:
            if sku == "BOOM":
                raise RuntimeError("model exploded")
            return super().rate(store_id, sku, at)

    eng, dev = engine(Broken({("S1", SKU): 2.0})), Device("S1")
    out = run(eng, [dev.stock(local(14, 8), 5, sku="BOOM"), dev.stock(local(14, 12), 3)])
    assert [d.reason for d in dead(out)] == ["processing_error"]
    assert len(alerts(out)) == 1  # the next event was processed normally
    assert eng.metrics.rejected["processing_error"] == 1


def test_counters_by_type() -> None:
    eng, dev = engine(), Device("S1")
    run(
        eng,
        [
            dev.stock(local(14, 8), 50),
            dev.sale(local(14, 9)),
            dev.delivery(local(14, 9, 5), 12),
            dev.cooler(local(14, 9, 15)),
            dev.heartbeat(local(14, 9, 30)),
        ],
    )
    assert eng.metrics.by_type == {
        "StockReading": 1,
        "SaleScan": 1,
        "DeliveryReceipt": 1,
        "CoolerTelemetry": 1,
        "Heartbeat": 1,
    }
    assert eng.metrics.as_dict()["accepted"] == 5


def test_day_rollover_resets_sales_today() -> None:
    eng, dev = engine(), Device("S1")
    run(eng, [dev.stock(local(14, 8), 100), dev.sale(local(14, 20), 5), dev.sale(local(15, 8, 30), 2)])
    st = eng.pair("S1", SKU)
    assert st is not None and st.sales_today == 2 and st.day == datetime(2026, 10, 15).date()
    assert st.last_event_at == local(15, 8, 30).astimezone(UTC)


def test_watermarks_are_per_store() -> None:
    """A store whose connection lags is neither late nor silent because another store is ahead."""
    pattern = FlatPattern({("S1", SKU): 3.0, ("S2", SKU): 3.0})
    eng, s1, s2 = engine(pattern), Device("S1"), Device("S2")
    ahead = [s2.stock(local(14, 8), 300), *steady_sales(s2, local(14, 8), local(14, 18), per_hour=3)]
    lagging = [s1.stock(local(14, 8), 300), *steady_sales(s1, local(14, 8), local(14, 18), per_hour=3)]
    out = run(eng, ahead + lagging)  # all of S2's day arrives before S1's
    assert alerts(out) == []
    assert eng.metrics.late == 0
    assert eng.watermark("S1") == eng.watermark("S2")
