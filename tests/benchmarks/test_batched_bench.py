"""The batched end-to-end figure: batched records → processor + raw delivery, vs a plain consume."""

from __future__ import annotations

import asyncio
import math

import pytest

from abasto.benchmarks._services import embedded
from abasto.benchmarks.realtime import TARGET_EVENTS_PER_S, _batched_end_to_end
from abasto.devices.simulator import expand_day
from abasto.ml.pattern import fit_pattern
from abasto.settings import WorldSettings
from abasto.world import generate
from abasto.world.views import sellout_history

pytestmark = [pytest.mark.slow, pytest.mark.services]


def test_batched_end_to_end_figure_is_measured_beside_the_plain_consume_and_the_target() -> None:
    world = generate(WorldSettings(seed=42, stores=12, skus=10, history_days=14))
    pattern = fit_pattern(sellout_history(world), timezone=world.timezone).with_version("bench")
    events = expand_day(
        hourly=world.hourly,
        stores=world.stores,
        skus=world.skus,
        day_start=world.live_start,
        day_end=world.live_end,
        seed=1,
    )
    with embedded("batched-test", only=("nats",)) as settings:
        # raises if the processor did not accept every event or the delivery did not write every row
        figures = asyncio.run(_batched_end_to_end(settings, world, pattern, events, 2))
    by_name = {f.name: f for f in figures}
    e2e = by_name["batched_end_to_end_events_per_s"]
    assert e2e.limit_name.startswith("batched_jetstream_consume_events_per_s")
    assert e2e.value > 0 and e2e.limit > 0 and math.isfinite(e2e.ratio)
    target = by_name["batched_end_to_end_vs_target_events_per_s"]
    assert (target.value, target.limit) == (e2e.value, TARGET_EVENTS_PER_S)
    assert "events a message" in e2e.unit
