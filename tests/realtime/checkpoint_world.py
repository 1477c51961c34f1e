"""A generated world's live day for the checkpoint and scale-out tests, and the fault-free reference."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

from abasto.contracts.alerts import Alert, decode_alert, encode_alert
from abasto.contracts.events import DeviceEvent
from abasto.devices.simulator import expand_live_day
from abasto.ml.pattern import PatternModel, fit_pattern
from abasto.realtime.bootstrap import engine_for_world
from abasto.realtime.engine import Engine
from abasto.settings import Settings, WorldSettings
from abasto.stream.port import EventStream, StreamMessage
from abasto.world import World, generate
from abasto.world.views import sellout_history

history = sellout_history  # the bottler's observable sell-out before the live day


@dataclass(frozen=True)
class LiveDay:
    world: World
    pattern: PatternModel
    events: list[DeviceEvent]

    @property
    def store_ids(self) -> list[str]:
        return [str(s) for s in self.world.stores.column("store_id").to_pylist()]

    def engine(self) -> Engine:
        return engine_for_world(self.world, self.pattern, Settings())

    def save(self, directory: Path) -> tuple[Path, Path]:
        """(world dir, pattern Parquet) for a worker process."""
        world_dir = self.world.save(directory / "world")
        pattern_path = directory / "pattern.parquet"
        pq.write_table(self.pattern.to_table(), pattern_path)
        return world_dir, pattern_path


@functools.cache
def live_day(stores: int, skus: int = 10, seed: int = 11) -> LiveDay:
    """A world's live day (cached per process: generation and fitting take a second or two)."""
    world = generate(WorldSettings(seed=seed, stores=stores, skus=skus, history_days=14))
    pattern = fit_pattern(history(world), timezone=world.timezone).with_version("ckpt-1")
    return LiveDay(world, pattern, expand_live_day(world, seed=3))


def alerts_by_id(alerts: list[Alert]) -> dict[str, bytes]:
    """Alert id → encoded alert (content compared byte for byte)."""
    return {a.alert_id: encode_alert(a) for a in alerts}


async def read_stream(stream: EventStream, name: str, reader: str) -> list[StreamMessage]:
    consumer = await stream.consumer(name, reader)
    out: list[StreamMessage] = []
    while batch := await consumer.fetch(2_000, timeout_s=0.3):
        for m in batch:
            await m.ack()  # or the consumer stops delivering at max_ack_pending
        out += batch
    assert (await consumer.state()).pending == 0, f"{name} not read to the end"
    return out


async def reference_alerts(stream: EventStream, day: LiveDay) -> list[Alert]:
    """Run A: every POS message, in stream order, through one engine, without faults."""
    engine = day.engine()
    out: list[Alert] = []
    for msg in await read_stream(stream, "POS", "reference-reader"):
        out += [a for a in engine.process(msg.subject, msg.data) if isinstance(a, Alert)]
    return out


async def stored_alerts(stream: EventStream, reader: str) -> list[Alert]:
    return [decode_alert(m.data) for m in await read_stream(stream, "ALERTS", reader)]
