"""The stream port: what abasto needs from a durable, replayable event log.

Backends (JetStream today; Kinesis later) implement :class:`EventStream`. Messages are bytes on a
subject; a stream captures a set of subjects; publishers may pass a ``msg_id`` that the backend uses
to drop duplicates inside the stream's duplicate window; consumers are durable and pull batches,
acknowledging each message after its effects are safe.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self


@dataclass(frozen=True, slots=True)
class StreamSpec:
    """A stream to create or update: a name and the subjects it captures."""

    name: str
    subjects: tuple[str, ...]
    max_bytes: int = -1
    max_age_s: float = 0.0
    duplicate_window_s: float = 120.0
    description: str = ""
    #: copies kept by a clustered backend (JetStream R1/R3); backends without replication ignore it
    replicas: int = 1


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """One message to publish."""

    subject: str
    data: bytes
    msg_id: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PublishResult:
    """Where a message was stored. ``duplicate`` = the backend dropped it as already stored."""

    stream: str
    seq: int
    duplicate: bool


@dataclass(frozen=True, slots=True)
class StreamState:
    messages: int
    bytes: int
    first_seq: int
    last_seq: int


@dataclass(frozen=True, slots=True)
class ConsumerState:
    """``pending``: stored but not yet delivered; ``ack_pending``: delivered, not acknowledged."""

    pending: int
    ack_pending: int
    redelivered: int

    @property
    def idle(self) -> bool:
        return self.pending == 0 and self.ack_pending == 0


class StreamMessage(ABC):
    """A message delivered by a consumer. Acknowledge it once its effects are safe."""

    subject: str
    data: bytes
    headers: Mapping[str, str]
    #: position in the stream (stable across redeliveries)
    stream_seq: int
    #: 1 on first delivery, more on redelivery
    delivered_count: int

    @property
    def msg_id(self) -> str | None:
        return self.headers.get(MSG_ID_HEADER)

    @abstractmethod
    async def ack(self) -> None:
        """Done with it: never deliver again to this consumer."""

    @abstractmethod
    async def nak(self, delay_s: float | None = None) -> None:
        """Not processed: deliver again (after ``delay_s``)."""

    @abstractmethod
    async def term(self) -> None:
        """Never deliver again, even though it was not processed (poison message)."""


class Consumer(ABC):
    """A durable pull consumer bound to one stream."""

    @abstractmethod
    async def fetch(self, batch: int, timeout_s: float = 1.0) -> list[StreamMessage]:
        """Up to ``batch`` messages; an empty list if none arrived within ``timeout_s``.

        Raises:
            ServiceUnavailableError: the backend cannot be reached.
        """

    @abstractmethod
    async def state(self) -> ConsumerState:
        """What is left for this consumer."""


class EventStream(ABC):
    """A durable event log with subjects, deduplication and durable consumers."""

    @abstractmethod
    async def connect(self) -> None:
        """Open the connection.

        Raises:
            ServiceUnavailableError: the backend cannot be reached.
        """

    @abstractmethod
    async def close(self) -> None:
        """Flush pending publishes and close; idempotent."""

    @abstractmethod
    async def ensure_streams(self, specs: Sequence[StreamSpec]) -> None:
        """Create each stream, or update its limits if it exists (idempotent).

        Raises:
            ConfigError: a spec conflicts with existing streams (e.g. overlapping subjects).
        """

    @abstractmethod
    async def publish(
        self,
        subject: str,
        data: bytes,
        *,
        msg_id: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> PublishResult:
        """Store one message and wait for the backend's acknowledgement.

        A ``msg_id`` already stored within the duplicate window is not stored again
        (``PublishResult.duplicate``).

        Raises:
            NotFoundError: no stream captures ``subject``.
            ServiceUnavailableError: the backend did not acknowledge in time.
        """

    @abstractmethod
    async def publish_batch(self, messages: Sequence[OutgoingMessage]) -> list[PublishResult]:
        """Store many messages, pipelined; returns one result per message, in order.

        Raises:
            NotFoundError / ServiceUnavailableError: as :meth:`publish`, after the whole batch
            was attempted.
        """

    @abstractmethod
    async def consumer(
        self,
        stream: str,
        durable: str,
        *,
        filter_subject: str | None = None,
        ack_wait_s: float = 30.0,
        max_ack_pending: int = 20_000,
        start_seq: int | None = None,
    ) -> Consumer:
        """Create (or bind to) the durable consumer ``durable`` on ``stream``.

        A consumer with the same name resumes where it left off: acknowledged messages are not
        delivered again, unacknowledged ones are redelivered after ``ack_wait_s``. A new consumer
        starts at the beginning of the stream, or at stream sequence ``start_seq``.
        """

    @abstractmethod
    async def stream_state(self, stream: str) -> StreamState:
        """Counters of one stream.

        Raises:
            NotFoundError: no such stream.
        """

    @abstractmethod
    async def delete_stream(self, stream: str) -> bool:
        """Delete a stream with its messages and consumers; False if it did not exist."""

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


#: header carrying the deduplication id (JetStream's name; other backends map it)
MSG_ID_HEADER = "Nats-Msg-Id"
