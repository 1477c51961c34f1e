"""Stream port (durable event log) and its backends. Today: NATS JetStream."""

from __future__ import annotations

from abasto.services import nats_connect_options
from abasto.settings import Settings
from abasto.stream.jetstream import JetStreamEventStream
from abasto.stream.port import (
    MSG_ID_HEADER,
    Consumer,
    ConsumerState,
    EventStream,
    OutgoingMessage,
    PublishResult,
    StreamMessage,
    StreamSpec,
    StreamState,
)
from abasto.stream.topology import abasto_streams

__all__ = [
    "MSG_ID_HEADER",
    "Consumer",
    "ConsumerState",
    "EventStream",
    "OutgoingMessage",
    "PublishResult",
    "StreamMessage",
    "StreamSpec",
    "StreamState",
    "abasto_streams",
    "open_stream",
]


def open_stream(settings: Settings, *, name: str = "abasto") -> EventStream:
    """The configured event stream, logged in as abasto's service user.

    Not connected yet: ``async with open_stream(settings) as stream: ...``.
    """
    return JetStreamEventStream.from_connect_options(nats_connect_options(settings), name=name)
