"""The delivery's buffer: stream messages waiting to be cut into a batch, with its size and age."""

from __future__ import annotations

from dataclasses import dataclass, field

from abasto.delivery.rows import RawMessage
from abasto.stream.port import StreamMessage

__all__ = ["Pending"]


@dataclass(slots=True)
class Pending:
    """Messages keyed by stream sequence (a redelivery of a held message replaces nothing), with
    every delivery handle kept so each one is acknowledged."""

    messages: dict[int, RawMessage] = field(default_factory=dict)
    handles: list[StreamMessage] = field(default_factory=list)
    bytes: int = 0
    #: monotonic time the first message was buffered
    started: float = 0.0

    def add(self, msg: StreamMessage, now: float) -> None:
        self.handles.append(msg)
        if msg.stream_seq in self.messages:
            return
        if not self.messages:
            self.started = now
        self.messages[msg.stream_seq] = RawMessage(msg.stream_seq, msg.subject, msg.data)
        self.bytes += len(msg.data)

    def __len__(self) -> int:
        return len(self.messages)

    def age(self, now: float) -> float:
        return now - self.started if self.messages else 0.0
