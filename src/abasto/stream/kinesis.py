"""Amazon Kinesis Data Streams backend of the stream port (boto3).

Mapping of the port onto Kinesis:

- **Streams**: one Kinesis stream per abasto stream (``stream_prefix`` + name), created by
  :meth:`ensure_streams` with ``shard_count`` shards (per-stream override ``shards``);
  ``max_age_s`` sets the retention period (24 h to 365 days). Kinesis has no size limit:
  ``max_bytes`` is recorded, not enforced. Kinesis has no subjects: each stream's subject patterns
  are kept in the meta table (see :mod:`abasto.stream.kinesis_meta`) and form the subject → stream
  routing table; the subject travels inside each record.
- **Records**: every message is an envelope (subject, headers, abasto sequence, payload, publish
  time); the envelopes of one PutRecords call are aggregated KPL-style per partition key
  (:mod:`abasto.stream.kinesis_agg`). Partition key = the store id (``pos.<store>.…``,
  ``alerts.<store>``), else the subject: one store's events stay on one shard, in order.
- **Sequences**: Kinesis sequence numbers are per shard and not contiguous, so abasto allocates
  its own per stream, a range per batch, from an atomic counter in the meta table (``seq``
  of :class:`PublishResult` / ``stream_seq`` of a message). A batch that fails to store leaves a gap.
- **Dedup**: Kinesis stores duplicates. Publishers reserve each ``msg_id`` in the meta table with
  a conditional write for ``duplicate_window_s`` and report ``duplicate`` with the first sequence
  (like JetStream); consumers drop a msg id seen again within the window as a second line.
- **Consumers**: see :mod:`abasto.stream.kinesis_consumer` (checkpoints in the meta table).
- **stream_state**: ``messages``/``bytes`` are abasto's accounting of user records (payload bytes)
  stored by abasto publishers; Kinesis reports neither, and records it expires by retention are not
  subtracted. ``first_seq`` is 1 (or 0 when empty) for the same reason.

No AWS account is reachable from abasto's test machines: the backend is tested against moto in
server mode (``tests/stream``), with boto3 pointed at its endpoint.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, TypeVar

import botocore.exceptions

from abasto.errors import (
    ConfigError,
    InvalidInputError,
    NotFoundError,
    ServiceUnavailableError,
)
from abasto.stream.kinesis_agg import Envelope, encode_envelope
from abasto.stream.kinesis_aws import AwsCaller, AwsConnection, error_code
from abasto.stream.kinesis_consumer import KinesisConsumer
from abasto.stream.kinesis_meta import MetaStore, Reservation
from abasto.stream.kinesis_publish import MAX_RECORD_BYTES, pack, put_all
from abasto.stream.kinesis_routing import partition_key, patterns_overlap, route
from abasto.stream.port import (
    MSG_ID_HEADER,
    Consumer,
    EventStream,
    OutgoingMessage,
    PublishResult,
    StreamSpec,
    StreamState,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

_VALID_CONSUMER: Final = re.compile(r"^[A-Za-z0-9_-]{1,255}$")
_VALID_STREAM: Final = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
_MIN_RETENTION_H: Final = 24
_MAX_RETENTION_H: Final = 8760
#: room left in a Kinesis record for the envelope fields around the payload
_ENVELOPE_ROOM: Final = 4096


class KinesisEventStream(EventStream):
    """Event stream on Kinesis Data Streams, with a DynamoDB meta table (``table``)."""

    def __init__(
        self,
        connection: AwsConnection | None = None,
        *,
        table: str = "abasto-stream-meta",
        stream_prefix: str = "",
        shard_count: int = 1,
        shards: Mapping[str, int] | None = None,
        aggregate_max_bytes: int = MAX_RECORD_BYTES,
        aggregate_max_records: int = 5_000,
        dedup_lease_s: float = 30.0,
        poll_interval_s: float = 0.1,
        checkpoint_interval_s: float = 1.0,
        threads: int = 16,
    ) -> None:
        if shard_count < 1:
            raise ConfigError("shard_count must be at least 1")
        self._aws = AwsCaller(connection or AwsConnection(), threads=threads)
        self._table = table
        self._prefix = stream_prefix
        self._shard_count = shard_count
        self._shards = dict(shards or {})
        self._agg_max_bytes = min(aggregate_max_bytes, MAX_RECORD_BYTES)
        self._agg_max_records = aggregate_max_records
        self._lease_s = dedup_lease_s
        self._poll_interval = poll_interval_s
        self._checkpoint_interval = checkpoint_interval_s
        self._meta: MetaStore | None = None
        self._routes: dict[str, StreamSpec] | None = None
        self._consumers: list[KinesisConsumer] = []

    @property
    def meta(self) -> MetaStore:
        if self._meta is None:
            raise ServiceUnavailableError("Kinesis stream not connected: call connect() first")
        return self._meta

    def kinesis_name(self, stream: str) -> str:
        return self._prefix + stream

    # --- lifecycle ----------------------------------------------------------------------
    async def connect(self) -> None:
        if self._meta is not None:
            return
        self._aws.open()
        meta = MetaStore(self._aws.dynamodb, self._table)
        try:
            await self._aws.run(f"meta table {self._table}", meta.ensure_table)
        except BaseException:
            await asyncio.to_thread(self._aws.close)
            raise
        self._meta = meta

    async def close(self) -> None:
        if self._meta is None:
            return
        for consumer in self._consumers:
            try:
                await consumer.flush()
            except Exception as exc:  # noqa: BLE001 - closing must go on; acks are redelivered
                log.warning("checkpoint of %s on close failed: %r", consumer.durable, exc)
        self._consumers.clear()
        self._meta = None
        await asyncio.to_thread(self._aws.close)

    # --- streams ------------------------------------------------------------------------
    async def ensure_streams(self, specs: Sequence[StreamSpec]) -> None:
        registry = {
            name: rec.spec for name, rec in (await self._run("list streams", self.meta.streams)).items()
        }
        for spec in specs:
            if not _VALID_STREAM.match(self.kinesis_name(spec.name)):
                raise ConfigError(f"stream name {spec.name!r}: use letters, digits, '_', '-', '.'")
            for other in registry.values():
                if other.name == spec.name:
                    continue
                clash = [(a, b) for a in spec.subjects for b in other.subjects if patterns_overlap(a, b)]
                if clash:
                    mine, theirs = clash[0]
                    raise ConfigError(f"stream {spec.name}: {mine!r} overlaps {theirs!r} of {other.name}")
            shards = self._shards.get(spec.name, self._shard_count)
            await self._run(f"create Kinesis stream {spec.name}", self._ensure_kinesis_stream, spec, shards)
            await self._run(f"register stream {spec.name}", self.meta.put_stream, spec, shards)
            registry[spec.name] = spec
        self._routes = registry

    def _ensure_kinesis_stream(self, spec: StreamSpec, shards: int) -> None:
        kinesis = self._aws.kinesis
        name = self.kinesis_name(spec.name)
        try:
            summary = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) != "ResourceNotFoundException":
                raise
            try:
                kinesis.create_stream(StreamName=name, ShardCount=shards)
            except botocore.exceptions.ClientError as create_exc:
                if error_code(create_exc) != "ResourceInUseException":  # created concurrently
                    raise
            kinesis.get_waiter("stream_exists").wait(
                StreamName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 120}
            )
            summary = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
        current = int(summary.get("RetentionPeriodHours", _MIN_RETENTION_H))
        wanted = _retention_hours(spec.max_age_s)
        if wanted > current:
            kinesis.increase_stream_retention_period(StreamName=name, RetentionPeriodHours=wanted)
        elif wanted < current:
            kinesis.decrease_stream_retention_period(StreamName=name, RetentionPeriodHours=wanted)

    async def stream_state(self, stream: str) -> StreamState:
        rec = await self._run(f"stream {stream}", self.meta.stream, stream)
        if rec is None:
            raise NotFoundError(f"no stream {stream}")
        first = 1 if rec.messages else 0
        return StreamState(messages=rec.messages, bytes=rec.bytes, first_seq=first, last_seq=rec.last_seq)

    async def delete_stream(self, stream: str) -> bool:
        in_kinesis = await self._run(f"delete Kinesis stream {stream}", self._delete_kinesis_stream, stream)
        registered = await self._run(f"unregister stream {stream}", self.meta.delete_stream, stream)
        self._routes = None
        return in_kinesis or registered

    def _delete_kinesis_stream(self, stream: str) -> bool:
        name = self.kinesis_name(stream)
        try:
            self._aws.kinesis.delete_stream(StreamName=name, EnforceConsumerDeletion=True)
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) == "ResourceNotFoundException":
                return False
            raise
        self._aws.kinesis.get_waiter("stream_not_exists").wait(
            StreamName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 120}
        )
        return True

    # --- publishing ---------------------------------------------------------------------
    async def publish(
        self,
        subject: str,
        data: bytes,
        *,
        msg_id: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> PublishResult:
        msg = OutgoingMessage(subject, data, msg_id=msg_id, headers=dict(headers or {}))
        return (await self.publish_batch([msg]))[0]

    async def publish_batch(self, messages: Sequence[OutgoingMessage]) -> list[PublishResult]:
        results: list[PublishResult | None] = [None] * len(messages)
        errors: list[BaseException] = []
        groups: dict[str, list[int]] = {}
        for i, m in enumerate(messages):
            stream = await self._route(m.subject)
            if stream is None:
                errors.append(NotFoundError(f"no stream captures the subject {m.subject}"))
            elif len(m.data) > MAX_RECORD_BYTES - _ENVELOPE_ROOM:
                errors.append(InvalidInputError(f"message on {m.subject}: {len(m.data)} bytes is too large"))
            else:
                groups.setdefault(stream.name, []).append(i)
        for stream_name, indices in groups.items():
            spec = (self._routes or {})[stream_name]
            try:
                await self._publish_to(spec, messages, indices, results)
            except Exception as exc:  # noqa: BLE001 - the batch goes on; the first error is raised
                errors.append(exc)
                if isinstance(exc, NotFoundError):
                    self._routes = None
        if errors:
            raise errors[0]
        return [r for r in results if r is not None]

    async def _publish_to(
        self,
        spec: StreamSpec,
        messages: Sequence[OutgoingMessage],
        indices: list[int],
        results: list[PublishResult | None],
    ) -> None:
        """Store ``messages[indices]`` on one stream, filling ``results``."""
        now = time.time()
        first_of: dict[str, int] = {}
        later: list[tuple[int, int]] = []  # (index, index of the first message with its msg id)
        unique: list[int] = []
        for i in indices:
            mid = messages[i].msg_id
            if mid is not None and mid in first_of:
                later.append((i, first_of[mid]))
                continue
            if mid is not None:
                first_of[mid] = i
            unique.append(i)
        reservations = await asyncio.gather(
            *(self._reserve(spec, messages[i].msg_id, now) for i in unique if messages[i].msg_id is not None)
        )
        outcome = dict(zip([i for i in unique if messages[i].msg_id is not None], reservations, strict=True))
        to_store: list[int] = []
        busy = False
        for i in unique:
            res = outcome.get(i)
            if res is None or res.outcome == "new":
                to_store.append(i)
            elif res.outcome == "duplicate":
                results[i] = PublishResult(spec.name, res.seq, duplicate=True)
            else:
                busy = True
        try:
            await self._store(spec, messages, to_store, results, now)
        finally:
            for i, first in later:
                stored = results[first]
                if stored is not None:
                    results[i] = PublishResult(spec.name, stored.seq, duplicate=True)
        if busy:
            raise ServiceUnavailableError(f"{spec.name}: another publisher is storing the same msg id; retry")

    async def _reserve(self, spec: StreamSpec, msg_id: str | None, now: float) -> Reservation:
        assert msg_id is not None
        return await self._run(
            f"dedup {msg_id} on {spec.name}",
            self.meta.reserve,
            spec.name,
            msg_id,
            spec.duplicate_window_s,
            now,
            self._lease_s,
        )

    async def _store(
        self,
        spec: StreamSpec,
        messages: Sequence[OutgoingMessage],
        to_store: list[int],
        results: list[PublishResult | None],
        now: float,
    ) -> None:
        if not to_store:
            return
        reserved = [messages[i].msg_id for i in to_store if messages[i].msg_id is not None]
        try:
            first_seq = await self._run(
                f"sequences of {spec.name}", self.meta.allocate, spec.name, len(to_store)
            )
        except BaseException:
            await self._release(spec, [m for m in reserved if m is not None])
            raise
        seqs = {i: first_seq + n for n, i in enumerate(to_store)}
        published_ms = int(now * 1000)
        items = [
            (i, partition_key(messages[i].subject), _envelope(messages[i], seqs[i], published_ms))
            for i in to_store
        ]
        records = pack(items, max_bytes=self._agg_max_bytes, max_records=self._agg_max_records)
        try:
            codes = await self._run(
                f"put records on {spec.name}",
                put_all,
                self._aws.kinesis,
                self.kinesis_name(spec.name),
                records,
            )
        except BaseException:
            await self._release(spec, [m for m in reserved if m is not None])
            raise
        stored: list[int] = []
        failed: list[str] = []
        first_error: str | None = None
        for rec, code in zip(records, codes, strict=True):
            if code is None:
                stored.extend(rec.members)
            else:
                first_error = first_error or code
                failed.extend(m for i in rec.members if (m := messages[i].msg_id) is not None)
        for i in stored:
            results[i] = PublishResult(spec.name, seqs[i], duplicate=False)
        stored_ids = [(m, seqs[i]) for i in stored if (m := messages[i].msg_id) is not None]
        if stored_ids:
            await self._run(
                "mark stored", self.meta.mark_stored, spec.name, stored_ids, now, spec.duplicate_window_s
            )
        size = sum(len(messages[i].data) for i in stored)
        await self._run("count stored", self.meta.count_stored, spec.name, len(stored), size)
        if failed or first_error:
            await self._release(spec, failed)
            raise ServiceUnavailableError(f"{spec.name}: Kinesis did not store all records ({first_error})")

    async def _release(self, spec: StreamSpec, msg_ids: list[str]) -> None:
        if not msg_ids:
            return
        try:
            await self._run("release msg ids", self.meta.release, spec.name, msg_ids)
        except Exception as exc:  # noqa: BLE001 - the lease ends them anyway
            log.warning("could not release %d msg ids on %s: %r", len(msg_ids), spec.name, exc)

    async def _route(self, subject: str) -> StreamSpec | None:
        for refresh in (False, True):
            if self._routes is None or refresh:
                recs = await self._run("list streams", self.meta.streams)
                self._routes = {name: rec.spec for name, rec in recs.items()}
            name = route({n: s.subjects for n, s in self._routes.items()}, subject)
            if name is not None:
                return self._routes[name]
        return None

    # --- consuming ----------------------------------------------------------------------
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
        if not _VALID_CONSUMER.match(durable):
            raise InvalidInputError(f"consumer name {durable!r}: use letters, digits, '-' and '_'")
        rec = await self._run(f"stream {stream}", self.meta.stream, stream)
        if rec is None:
            raise NotFoundError(f"no stream {stream} for consumer {durable}")
        doc: dict[str, Any] | None = await self._run(
            f"consumer {durable}", self.meta.consumer, stream, durable
        )
        checkpoints: dict[str, tuple[str, int]] = {}
        if doc is not None:
            start_seq = doc.get("start_seq")
            checkpoints = {sid: (str(k), int(s)) for sid, (k, s) in doc.get("checkpoints", {}).items()}
        consumer = KinesisConsumer(
            aws=self._aws,
            meta=self.meta,
            stream=stream,
            kinesis_stream=self.kinesis_name(stream),
            durable=durable,
            filter_subject=filter_subject,
            start_seq=start_seq,
            checkpoints=checkpoints,
            ack_wait_s=ack_wait_s,
            max_ack_pending=max_ack_pending,
            duplicate_window_s=rec.spec.duplicate_window_s,
            poll_interval_s=self._poll_interval,
            checkpoint_interval_s=self._checkpoint_interval,
        )
        if doc is None or doc.get("filter_subject") != filter_subject:
            await self._run(
                f"consumer {durable}", self.meta.put_consumer, stream, durable, consumer.document()
            )
        self._consumers.append(consumer)
        return consumer

    async def _run(self, what: str, fn: Callable[..., T], *args: Any) -> T:
        return await self._aws.run(what, fn, *args)


def _envelope(m: OutgoingMessage, seq: int, published_ms: int) -> bytes:
    headers = dict(m.headers)
    if m.msg_id is not None:
        headers[MSG_ID_HEADER] = m.msg_id
    return encode_envelope(
        Envelope(seq=seq, subject=m.subject, headers=headers, data=m.data, published_ms=published_ms)
    )


def _retention_hours(max_age_s: float) -> int:
    if max_age_s <= 0:
        return _MIN_RETENTION_H
    return max(_MIN_RETENTION_H, min(_MAX_RETENTION_H, math.ceil(max_age_s / 3600)))
