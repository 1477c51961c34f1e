"""What the stream processor needs from a demand model (today: the foundation's pattern model).

A richer model (LightGBM, covariates) can implement the same protocol later without any change
to the processor.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol, runtime_checkable


@runtime_checkable
class DemandPattern(Protocol):
    """Expected demand per store×SKU and hour, learned from history."""

    @property
    def version(self) -> str:
        """Registry version (e.g. MLflow model version) used for lineage in alerts."""
        ...

    def rate(self, store_id: str, sku: str, at: datetime) -> float:
        """Expected units sold per hour, for the local hour containing ``at`` (tz-aware).

        Returns 0.0 for pairs the model never saw.
        """
        ...

    def expected_units(self, store_id: str, sku: str, start: datetime, end: datetime) -> float:
        """Expected units sold between two tz-aware instants (integrates :meth:`rate`)."""
        ...
