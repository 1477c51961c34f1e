"""Counters of the HTTP ingest gateway (exposed at its ``/metrics``)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from abasto.ingest.batch import EventResult

__all__ = ["IngestMetrics"]


@dataclass
class IngestMetrics:
    #: answered event posts by HTTP status
    requests: Counter[int] = field(default_factory=Counter)
    #: events of answered batches by result: accepted, duplicate, rejected
    events: Counter[str] = field(default_factory=Counter)
    #: rejected events by reason (malformed_json, store_mismatch…)
    rejected: Counter[str] = field(default_factory=Counter)

    def record(self, results: Iterable[EventResult]) -> None:
        """Count the per-event results of one acknowledged batch."""
        for result in results:
            self.events[result.status] += 1
            if result.status == "rejected":
                self.rejected[result.reason or "unknown"] += 1

    def as_dict(self) -> dict[str, object]:
        return {"requests": dict(self.requests), "events": dict(self.events), "rejected": dict(self.rejected)}
