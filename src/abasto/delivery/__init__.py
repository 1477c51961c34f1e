"""Delivery to the raw zone (Kinesis Data Firehose): device events from the POS stream into
Parquet files partitioned by event date/hour, named by stream sequence ranges, exactly once.

See :mod:`abasto.delivery.consumer` for the commit protocol and crash semantics and
:mod:`abasto.delivery.layout` for the file layout, :mod:`abasto.delivery.dedup` for the cross-batch
dedup of (``device_id``, ``seq``) and its horizon.
"""

from __future__ import annotations

from abasto.delivery.config import DeliveryConfig
from abasto.delivery.consumer import FaultHook, RawDelivery
from abasto.delivery.dedup import WrittenKeys
from abasto.delivery.layout import POS_EVENTS_PATH, part_name, partition_of, pos_events_uri
from abasto.delivery.ledger import BatchManifest, Ledger
from abasto.delivery.metrics import DeliveryMetrics
from abasto.delivery.rows import POS_EVENTS_SCHEMA, decode_batch

__all__ = [
    "POS_EVENTS_PATH",
    "POS_EVENTS_SCHEMA",
    "BatchManifest",
    "DeliveryConfig",
    "DeliveryMetrics",
    "FaultHook",
    "Ledger",
    "RawDelivery",
    "WrittenKeys",
    "decode_batch",
    "part_name",
    "partition_of",
    "pos_events_uri",
]
