"""Device gateway (IoT Core's role): HTTP batch ingest and counting of refused MQTT publishes.

MQTT ingest is nats-server's own MQTT listener (per-store and per-device users, see
:mod:`abasto.services.nats_config`); this package adds the HTTP path into the same POS stream
(:mod:`abasto.ingest.http`) and the count of publishes the broker refused
(:mod:`abasto.ingest.refusals`).
"""

from __future__ import annotations

from abasto.ingest.batch import EventResult, ingest_batch, split_batch
from abasto.ingest.http import EVENTS_PATH, IngestLimits, create_app
from abasto.ingest.refusals import Refusal, RefusalCounter, refused_publishes

__all__ = [
    "EVENTS_PATH",
    "EventResult",
    "IngestLimits",
    "Refusal",
    "RefusalCounter",
    "create_app",
    "ingest_batch",
    "refused_publishes",
    "split_batch",
]
