"""Counters of the stream processor."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class ProcessorMetrics:
    #: messages read from the stream
    received: int = 0
    #: valid, first-seen events applied to the state
    accepted: int = 0
    #: invalid or refused input sent to the dead-letter stream, by reason
    rejected: Counter[str] = field(default_factory=Counter)
    #: events already seen (same device and seq)
    duplicates: int = 0
    #: accepted events older than the watermark (applied anyway; counted)
    late: int = 0
    #: alerts emitted, by kind
    alerts: Counter[str] = field(default_factory=Counter)
    #: accepted events by payload type
    by_type: Counter[str] = field(default_factory=Counter)
    #: risk evaluations of a store×SKU
    evaluations: int = 0

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())

    @property
    def alerts_total(self) -> int:
        return sum(self.alerts.values())

    def as_dict(self) -> dict[str, object]:
        return {
            "received": self.received,
            "accepted": self.accepted,
            "rejected": dict(self.rejected),
            "duplicates": self.duplicates,
            "late": self.late,
            "alerts": dict(self.alerts),
            "by_type": dict(self.by_type),
            "evaluations": self.evaluations,
        }
