"""The engine's state as plain data: everything that decides its future outputs.

Keyed state per store×SKU, the per-device dedup memory, the per-store watermarks, the last delivery
per store, the detector's model-call spacing, the origins of the expected-demand series (so restored
float sums are bit-identical) and the counters. Encoded with msgspec MessagePack (typed, no pickle):
datetimes travel as MessagePack timestamps and come back as UTC-aware datetimes.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Final

import msgspec

from abasto.realtime.metrics import ProcessorMetrics

SNAPSHOT_VERSION: Final = 1


class PairSnapshot(msgspec.Struct, array_like=True, frozen=True):
    store_id: str
    sku: str
    first_seen_at: datetime
    velocity_mass: float
    velocity_at: datetime | None
    on_hand: float | None
    last_reading_at: datetime | None
    last_event_at: datetime | None
    last_sale_at: datetime | None
    day: date | None
    counting_since: datetime | None
    sales_today: int
    episode: str
    alerted: list[str]


class MetricsSnapshot(msgspec.Struct, frozen=True):
    received: int = 0
    accepted: int = 0
    rejected: dict[str, int] = {}
    duplicates: int = 0
    late: int = 0
    alerts: dict[str, int] = {}
    by_type: dict[str, int] = {}

    @classmethod
    def of(cls, m: ProcessorMetrics) -> MetricsSnapshot:
        return cls(
            received=m.received,
            accepted=m.accepted,
            rejected=dict(m.rejected),
            duplicates=m.duplicates,
            late=m.late,
            alerts=dict(m.alerts),
            by_type=dict(m.by_type),
        )

    def restore_into(self, m: ProcessorMetrics) -> None:
        m.received, m.accepted = self.received, self.accepted
        m.duplicates, m.late = self.duplicates, self.late
        m.rejected.clear()
        m.rejected.update(self.rejected)
        m.alerts.clear()
        m.alerts.update(self.alerts)
        m.by_type.clear()
        m.by_type.update(self.by_type)


class EngineSnapshot(msgspec.Struct, frozen=True):
    version: int
    #: pairs in creation order (a store's pairs are evaluated in this order)
    pairs: list[PairSnapshot]
    #: (device_id, highest seq, remembered seqs as inclusive ranges)
    dedup: list[tuple[str, int, list[tuple[int, int]]]]
    #: (store_id, newest event time, last hour the watermark reported)
    watermarks: list[tuple[str, datetime | None, datetime | None]]
    store_deliveries: dict[str, datetime]
    #: (store, sku, at, episode, evidence, horizon) of the last model call per pair
    model_calls: list[tuple[str, str, datetime, str, datetime | None, datetime]]
    #: (store, sku, origin epoch seconds) of the expected-demand series
    demand_origins: list[tuple[str, str, float]]
    evaluations: int
    metrics: MetricsSnapshot


_encoder: Final = msgspec.msgpack.Encoder()
_decoder: Final = msgspec.msgpack.Decoder(EngineSnapshot)


def encode_snapshot(snap: EngineSnapshot) -> bytes:
    return _encoder.encode(snap)


def decode_snapshot(data: bytes) -> EngineSnapshot:
    """Raises ``msgspec.ValidationError`` / ``msgspec.DecodeError`` on a damaged or foreign payload."""
    return _decoder.decode(data)
