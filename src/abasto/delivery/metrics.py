"""Counters of one delivery run."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

__all__ = ["DeliveryMetrics"]


@dataclass(slots=True)
class DeliveryMetrics:
    #: stream messages handled (a redelivery of a message already held is not counted again)
    messages: int = 0
    #: rows written to new files
    rows_written: int = 0
    #: invalid payloads left out, by reason (the processor dead-letters them)
    invalid: Counter[str] = field(default_factory=Counter)
    #: second copies of an event (same device_id, seq) inside one batch
    duplicates: int = 0
    #: copies of an event an earlier batch already wrote (within the dedup horizon), dropped
    duplicates_across_batches: int = 0
    #: rows written whose seq was at or below their device's dedup horizon (a copy, if any, of an
    #: event this old is not recognised)
    beyond_horizon: int = 0
    batches: int = 0
    files_written: int = 0
    #: files of a batch that were already present (crash recovery, replay)
    files_skipped: int = 0
    #: batches completed from their manifest after a crash
    batches_recovered: int = 0
    #: messages of batches whose files were all present: acknowledged, nothing written
    already_delivered: int = 0

    @property
    def duplicates_total(self) -> int:
        """Every copy dropped, inside a batch or across batches."""
        return self.duplicates + self.duplicates_across_batches

    @property
    def invalid_total(self) -> int:
        return sum(self.invalid.values())

    def as_dict(self) -> dict[str, object]:
        return {
            "messages": self.messages,
            "rows_written": self.rows_written,
            "invalid": dict(self.invalid),
            "duplicates": self.duplicates,
            "duplicates_across_batches": self.duplicates_across_batches,
            "beyond_horizon": self.beyond_horizon,
            "batches": self.batches,
            "files_written": self.files_written,
            "files_skipped": self.files_skipped,
            "batches_recovered": self.batches_recovered,
            "already_delivered": self.already_delivered,
        }
