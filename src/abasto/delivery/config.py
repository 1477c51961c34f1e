"""Tuning of the raw-zone delivery (Firehose-like buffering hints)."""

from __future__ import annotations

from dataclasses import dataclass

from abasto.errors import InvalidInputError
from abasto.stream.topology import POS_STREAM

__all__ = ["DEFAULT_WINDOW", "DeliveryConfig"]

#: default dedup horizon, in seqs per device
DEFAULT_WINDOW = 100_000


@dataclass(frozen=True, slots=True)
class DeliveryConfig:
    """``max_messages``/``max_bytes``/``max_age_s``: a batch is cut as soon as one is reached
    (``max_age_s`` counts from the first buffered message). ``ack_wait_s`` must exceed
    ``max_age_s``, or the stream would redeliver messages still waiting in the buffer.

    Raises:
        InvalidInputError: a non-positive limit, or ``ack_wait_s`` ≤ ``max_age_s``.
    """

    durable: str = "delivery-raw"
    stream: str = POS_STREAM
    max_messages: int = 50_000
    max_bytes: int = 64 * 1024 * 1024
    max_age_s: float = 60.0
    fetch_batch: int = 1_000
    fetch_timeout_s: float = 1.0
    ack_wait_s: float = 120.0
    #: where a *new* durable consumer starts (default: the stream's beginning)
    start_seq: int | None = None
    #: dedup horizon in seqs per device: a copy of an event is dropped across batches while its
    #: seq is above the device's highest written seq minus this (see :mod:`abasto.delivery.dedup`)
    dedup_window: int = DEFAULT_WINDOW

    def __post_init__(self) -> None:
        limits = {
            "max_messages": self.max_messages,
            "max_bytes": self.max_bytes,
            "max_age_s": self.max_age_s,
            "fetch_batch": self.fetch_batch,
            "fetch_timeout_s": self.fetch_timeout_s,
            "dedup_window": self.dedup_window,
        }
        bad = [name for name, value in limits.items() if value <= 0]
        if bad:
            raise InvalidInputError(f"delivery limits must be positive: {', '.join(bad)}")
        if self.ack_wait_s <= self.max_age_s:
            raise InvalidInputError(
                f"ack_wait_s ({self.ack_wait_s}) must exceed max_age_s ({self.max_age_s}): "
                "buffered messages would be redelivered before their batch is cut"
            )
        if self.start_seq is not None and self.start_seq < 1:
            raise InvalidInputError("start_seq starts at 1")

    @property
    def max_ack_pending(self) -> int:
        """Room for a full buffer, a batch being recovered and one more fetch."""
        return 2 * self.max_messages + self.fetch_batch
