"""Knobs of the stockout detector, with the defaults the foundation uses."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from abasto.settings import RealtimeSettings


@dataclass(frozen=True, slots=True)
class DetectorTuning:
    #: P(running out before the next delivery) that raises a projected_stockout alert
    risk_threshold: float = 0.6
    #: how far behind the newest event time the watermark trails
    allowed_lateness_s: float = 300.0
    #: half-life of the exponentially weighted sales velocity (event time)
    velocity_half_life_h: float = 2.0
    #: pseudo-units that shrink today's observed/expected ratio toward 1
    velocity_prior_units: float = 6.0
    velocity_ratio_min: float = 0.25
    velocity_ratio_max: float = 4.0
    #: target stock = expected demand until the delivery after next × this
    cover_factor: float = 1.3
    #: a stock reading this many units above the estimate counts as a replenishment
    replenish_tolerance_units: float = 1.0
    #: sales_stopped: at least this long without a sale ...
    silent_min_hours: float = 3.0
    #: ... while the pattern expected at least this many units (P(0 sales) = e^-6 ≈ 0.25 %)
    silent_min_expected_units: float = 6.0
    #: at most one call of the model's (costly) tail probability per pair in this much event time,
    #: unless the pair was replenished; between calls the pair keeps its last verdict (below threshold)
    model_call_spacing_min: float = 15.0
    #: a scheduled delivery this late, not yet received, is still expected
    delivery_grace_h: float = 3.0
    #: replenishment cycle assumed when a store has no route calendar
    fallback_cycle_h: float = 48.0
    #: sequence numbers remembered per device for deduplication
    dedup_window: int = 50_000
    #: at most this many hourly watermark evaluations to catch up after a gap
    max_catchup_hours: int = 48

    @classmethod
    def from_settings(cls, realtime: RealtimeSettings, **overrides: Any) -> DetectorTuning:
        base = cls(
            risk_threshold=realtime.risk_threshold,
            allowed_lateness_s=float(realtime.allowed_lateness_s),
        )
        return replace(base, **overrides)
