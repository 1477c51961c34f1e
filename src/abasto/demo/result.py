"""What a demo run produced: figures, where each artefact lives, and the step timings."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from abasto.demo.score import Score


@dataclass
class Step:
    name: str
    seconds: float
    detail: str = ""


@dataclass
class DemoResult:
    seed: int
    scale: float
    stores: int
    skus: int
    history_days: int
    live_day: str
    timezone: str
    score: Score
    events_published: int
    events_accepted: int
    events_rejected: int
    events_duplicate: int
    events_per_second: float
    mqtt_publish_per_second: float
    steps: list[Step] = field(default_factory=list)
    artefacts: dict[str, str] = field(default_factory=dict)
    backtest: dict[str, float] = field(default_factory=dict)
    model_version: str = ""
    notifications: dict[str, int] = field(default_factory=dict)
    sql_preview: dict[str, Any] = field(default_factory=dict)
    alert_rows: list[dict[str, Any]] = field(default_factory=list)
    missed_rows: list[dict[str, Any]] = field(default_factory=list)
    #: device tables, units check and data quality (:class:`abasto.demo.device_lake.LakehouseSummary`)
    lakehouse: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The machine-readable summary printed by ``abasto demo --json``."""
        s = self.score
        return {
            "alerts": s.alerts,
            "true_stockouts": s.true_stockouts,
            "true_positive_alerts": s.true_positive_alerts,
            "false_positive_alerts": s.alerts - s.true_positive_alerts,
            "warned": s.warned,
            "late": s.late,
            "missed": s.missed,
            "precision": s.precision,
            "recall": s.recall,
            "lead_time_minutes_median": s.lead_time_minutes_median,
            "lead_time_minutes_p25": s.lead_time_minutes_p25,
            "lead_time_minutes_p75": s.lead_time_minutes_p75,
            "events_published": self.events_published,
            "events_accepted": self.events_accepted,
            "events_rejected": self.events_rejected,
            "events_duplicate": self.events_duplicate,
            "events_per_second": self.events_per_second,
            "mqtt_publish_per_second": self.mqtt_publish_per_second,
            "seed": self.seed,
            "scale": self.scale,
            "stores": self.stores,
            "skus": self.skus,
            "history_days": self.history_days,
            "live_day": self.live_day,
            "model_version": self.model_version,
            "backtest": self.backtest,
            "notifications": self.notifications,
            "artefacts": self.artefacts,
            "lakehouse": self.lakehouse,
            "steps": {st.name: round(st.seconds, 3) for st in self.steps},
        }
