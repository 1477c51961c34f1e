"""abasto's streams and subjects (docs/CONTRACTS.md): one place names them."""

from __future__ import annotations

from typing import Final

from abasto.settings import NatsSettings
from abasto.stream.port import StreamSpec

POS_STREAM: Final = "POS"
ALERTS_STREAM: Final = "ALERTS"
DLQ_STREAM: Final = "DLQ"

POS_SUBJECTS: Final = "pos.>"
ALERTS_SUBJECTS: Final = "alerts.>"
DLQ_SUBJECTS: Final = "dlq.>"
DLQ_POS_SUBJECT: Final = "dlq.pos"

#: why a message went to the dead-letter stream (a short code)
REASON_HEADER: Final = "Abasto-Reason"
#: the subject the dead letter was first published on
ORIGIN_SUBJECT_HEADER: Final = "Abasto-Origin-Subject"
#: human-readable detail of the reason (truncated)
DETAIL_HEADER: Final = "Abasto-Detail"


def pos_subject(store_id: str, device_id: str) -> str:
    """Subject of a device's events (= MQTT topic ``pos/<store_id>/<device_id>``)."""
    return f"pos.{store_id}.{device_id}"


def pos_topic(store_id: str, device_id: str) -> str:
    """MQTT topic a device publishes on; nats-server maps ``/`` to ``.``."""
    return f"pos/{store_id}/{device_id}"


def alerts_subject(store_id: str) -> str:
    return f"alerts.{store_id}"


def store_of_pos_subject(subject: str) -> str | None:
    """``pos.<store_id>.…`` → ``store_id``; None if the subject has another shape."""
    parts = subject.split(".")
    if len(parts) < 3 or parts[0] != "pos" or not parts[1]:
        return None
    return parts[1]


def abasto_streams(nats: NatsSettings) -> list[StreamSpec]:
    """POS (device events), ALERTS and DLQ with the limits from settings."""
    window = float(nats.duplicate_window_s)
    return [
        StreamSpec(
            name=POS_STREAM,
            subjects=(POS_SUBJECTS,),
            max_bytes=nats.stream_max_bytes,
            max_age_s=float(nats.stream_max_age_s),
            duplicate_window_s=window,
            description="POS device events (abasto.pos/v1)",
        ),
        StreamSpec(
            name=ALERTS_STREAM,
            subjects=(ALERTS_SUBJECTS,),
            duplicate_window_s=window,
            description="stockout alerts from the realtime processor",
        ),
        StreamSpec(
            name=DLQ_STREAM,
            subjects=(DLQ_SUBJECTS,),
            max_age_s=float(nats.stream_max_age_s),
            duplicate_window_s=window,
            description="dead letters: rejected input with header Abasto-Reason",
        ),
    ]
