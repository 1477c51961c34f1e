"""Wiring: the processor's engine for a world (reference tables) and a demand pattern."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from abasto.contracts.patterns import DemandPattern
from abasto.realtime.engine import Engine
from abasto.realtime.reference import ReferenceData
from abasto.realtime.tuning import DetectorTuning
from abasto.settings import Settings


def reference_from_world(world: Any) -> ReferenceData:
    """Stores, routes (visit calendar), SKUs (case sizes) and past deliveries of an ``abasto.world.World``."""
    return ReferenceData.from_tables(
        timezone=world.timezone,
        stores=world.stores,
        routes=world.routes,
        skus=world.skus,
        deliveries=world.deliveries,
    )


def engine_for_world(
    world: Any,
    pattern: DemandPattern,
    settings: Settings,
    *,
    clock: Callable[[], datetime] | None = None,
    **tuning: Any,
) -> Engine:
    """An Engine with the realtime settings (risk threshold, lateness) and optional tuning overrides.

    ``clock`` (e.g. ``lambda: datetime.now(UTC)``) rejects events from the future; leave it out to
    replay a simulated day whose event times are not today's.
    """
    tune = DetectorTuning.from_settings(settings.realtime, **tuning)
    return Engine(pattern, reference_from_world(world), tune, clock=clock)
