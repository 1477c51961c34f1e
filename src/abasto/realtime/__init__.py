"""Stream analytics: per store×SKU state from POS events, compared with the demand pattern → alerts."""

from __future__ import annotations

from abasto.realtime.calendar import ReplenishmentCalendar, StoreSchedule
from abasto.realtime.engine import DeadLetter, Engine
from abasto.realtime.metrics import ProcessorMetrics
from abasto.realtime.processor import Processor
from abasto.realtime.reference import ReferenceData, StoreInfo
from abasto.realtime.tuning import DetectorTuning

__all__ = [
    "DeadLetter",
    "DetectorTuning",
    "Engine",
    "Processor",
    "ProcessorMetrics",
    "ReferenceData",
    "ReplenishmentCalendar",
    "StoreInfo",
    "StoreSchedule",
]
