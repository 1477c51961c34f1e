"""Scale-out: worker ``index`` of ``count`` owns the stores hashed to it, through JetStream itself.

Each worker reads with its own durable pull consumer whose ``filter_subjects`` (nats-server ≥ 2.10)
are ``pos.<store>.>`` for its stores: JetStream delivers each worker only its stores' events, in
stream order, and keeps its position. No coordinator: the partition of a store is a pure function
(crc32 of the id, mod ``count``) that every worker computes alike.

Stores are taken from the reference data (the registered stores). With ``count`` = 1 the worker
reads ``pos.>`` whole, so nothing is filtered out; with ``count`` > 1 a store unknown to the
reference is read by no worker: devices of unregistered stores cannot publish (broker permissions),
and registering stores means restarting the workers (their filters are computed at start).
"""

from __future__ import annotations

import contextlib
import zlib
from collections.abc import Iterable
from dataclasses import dataclass

import nats.errors
import nats.js.errors
from nats.js import api

from abasto.errors import ConfigError, InvalidInputError, NotFoundError, ServiceUnavailableError
from abasto.stream.jetstream import JetStreamConsumer, JetStreamEventStream
from abasto.stream.port import Consumer
from abasto.stream.topology import POS_SUBJECTS

_STREAM_NOT_FOUND = 10059


def partition_of(store_id: str, count: int) -> int:
    """The partition (0 … count-1) owning ``store_id``; stable across processes and versions."""
    return zlib.crc32(store_id.encode()) % count


@dataclass(frozen=True, slots=True)
class Partition:
    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise InvalidInputError(f"worker {self.index} of {self.count}: need 0 <= worker < count")

    @property
    def whole(self) -> bool:
        return self.count == 1

    def durable(self, base: str) -> str:
        """Consumer (and checkpoint) name of this worker."""
        return base if self.whole else f"{base}-p{self.index}of{self.count}"

    def owns(self, store_id: str) -> bool:
        return self.whole or partition_of(store_id, self.count) == self.index

    def filter_subjects(self, stores: Iterable[str]) -> list[str]:
        """``pos.>`` for the whole keyspace, else ``pos.<store>.>`` for each owned store (sorted)."""
        if self.whole:
            return [POS_SUBJECTS]
        return [f"pos.{s}.>" for s in sorted(set(stores)) if self.owns(s)]


async def open_consumer(
    stream: JetStreamEventStream,
    source: str,
    durable: str,
    filters: list[str],
    *,
    start_seq: int | None,
    reset: bool,
    ack_wait_s: float,
    max_ack_pending: int,
) -> Consumer:
    """Bind to ``durable`` on ``source`` filtered to ``filters``.

    ``reset``: delete the durable first and start it at ``start_seq`` (None = the beginning). A
    checkpointing worker does this on every start: its checkpoint, not the consumer's ack floor, is
    the position, and a fresh consumer redelivers in stream order at once (a surviving consumer
    would hold the unacknowledged messages until ``ack_wait`` and deliver newer ones first).
    """
    if not filters:
        raise ConfigError(f"consumer {durable}: no stores in this partition", hint="use fewer workers")
    config = api.ConsumerConfig(
        durable_name=durable,
        ack_policy=api.AckPolicy.EXPLICIT,
        deliver_policy=api.DeliverPolicy.ALL if start_seq is None else api.DeliverPolicy.BY_START_SEQUENCE,
        opt_start_seq=start_seq,
        ack_wait=ack_wait_s,
        max_ack_pending=max_ack_pending,
        filter_subject=filters[0] if len(filters) == 1 else None,
        filter_subjects=filters if len(filters) > 1 else None,
    )
    js = stream.js
    try:
        if reset:
            with contextlib.suppress(nats.js.errors.NotFoundError):
                await js.delete_consumer(source, durable)
        await js.add_consumer(source, config)
        sub = await js.pull_subscribe_bind(durable=durable, stream=source)
    except nats.js.errors.NotFoundError as exc:
        raise NotFoundError(f"no stream {source} for consumer {durable}") from exc
    except nats.js.errors.APIError as exc:
        if exc.err_code == _STREAM_NOT_FOUND:
            raise NotFoundError(f"no stream {source} for consumer {durable}") from exc
        raise ConfigError(f"consumer {durable} on {source}: {exc.description}") from exc
    except (TimeoutError, nats.errors.Error) as exc:
        raise ServiceUnavailableError(f"consumer {durable} on {source}: {exc!r}") from exc
    return JetStreamConsumer(sub)
