"""gaseosas SA's synthetic world, deterministic by seed.

``generate(settings.world)`` builds regions, reps, pre-sell routes, points of sale, SKUs and
assortments, weather, calendar and promotions, then simulates hourly demand, orders, D+1
deliveries, sales capped by stock and the ground truth of every stockout episode. The
result is a :class:`World` of pyarrow tables (docs/CONTRACTS.md) that saves to and loads from
Parquet.
"""

from __future__ import annotations

from abasto.world.generate import STAGES, generate
from abasto.world.model import DEFAULT_TIMEZONE, World, WorldMeta
from abasto.world.tables import SCHEMAS, TABLE_NAMES

__all__ = ["DEFAULT_TIMEZONE", "SCHEMAS", "STAGES", "TABLE_NAMES", "World", "WorldMeta", "generate"]
