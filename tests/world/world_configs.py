"""World sizes the world tests use (importable, unlike conftest.py)."""

from __future__ import annotations

from datetime import date

from abasto.settings import WorldSettings

#: big enough for statistics (30 stores × 16 SKUs × 35 days + live + 3), ~1 s to generate
STATS_CFG = WorldSettings(seed=11, stores=30, skus=16, history_days=35, start_date=date(2026, 9, 1))
#: many stores and few SKUs over June–August (no holidays): for payday and heat effects
WIDE_CFG = WorldSettings(seed=21, stores=80, skus=8, history_days=70, start_date=date(2026, 6, 1))
#: the smallest useful world, for determinism, files and the CLI
TINY_CFG = WorldSettings(seed=3, stores=8, skus=6, history_days=7)
