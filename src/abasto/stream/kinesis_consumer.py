"""Durable pull consumer of the Kinesis backend (KCL-like, in-process).

How it works:

- Reads every shard of the stream with GetRecords, deaggregates KPL records and decodes abasto's
  envelopes. Within a shard, records stay in Kinesis order (one store = one partition key = one
  shard); a fetch returns what is buffered sorted by abasto sequence.
- **Checkpoints** (per shard: Kinesis sequence number + index of the user record inside the
  aggregate) live in the DynamoDB meta table. A shard's checkpoint advances only over a contiguous
  prefix of acknowledged (or terminated, filtered, duplicate) records. Checkpoints are written at
  most every ``checkpoint_interval_s`` during fetches, and always by :meth:`state` and on close;
  after a crash, records acknowledged since the last write are delivered again (at least once).
- **Redelivery**: a delivered record not acknowledged within ``ack_wait_s`` (or nak'ed) is
  delivered again with ``delivered_count`` + 1. Counts restart at 1 in a new process.
- **Read-side dedup**: Kinesis cannot drop duplicates. Publishers deduplicate by msg id through
  the meta table; as a second line (a publisher that died between storing and marking an id), the
  consumer drops a record whose msg id it already saw with another sequence within the stream's
  duplicate window (by publish time), remembering at most ``dedup_max_ids`` ids.
- One process per durable consumer: there are no shard leases between processes (yet).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

import botocore.exceptions

from abasto.stream.kinesis_agg import Envelope, deaggregate, decode_envelope
from abasto.stream.kinesis_aws import AwsCaller, error_code
from abasto.stream.kinesis_meta import MetaStore
from abasto.stream.kinesis_routing import subject_matches
from abasto.stream.port import MSG_ID_HEADER, Consumer, ConsumerState, StreamMessage

log = logging.getLogger(__name__)

_GET_RECORDS_LIMIT = 1000


@dataclass(eq=False, slots=True)
class _Slot:
    """One user record of a shard, in shard order, until the checkpoint passes it."""

    kseq: str
    sub: int
    done: bool = False


@dataclass(eq=False, slots=True)
class _Entry:
    slot: _Slot
    shard: _Shard
    env: Envelope
    delivered: int = 0
    deadline: float = 0.0


@dataclass(eq=False, slots=True)
class _Shard:
    id: str
    #: last user record read: (Kinesis sequence number, index in aggregate); None = from the start
    position: tuple[str, int] | None
    checkpoint: tuple[str, int] | None
    iterator: str | None = None
    ended: bool = False
    slots: deque[_Slot] = field(default_factory=deque)


class KinesisMessage(StreamMessage):
    __slots__ = ("_consumer", "_entry", "data", "delivered_count", "headers", "stream_seq", "subject")

    def __init__(self, consumer: KinesisConsumer, entry: _Entry) -> None:
        self._consumer = consumer
        self._entry = entry
        self.subject = entry.env.subject
        self.data = entry.env.data
        self.headers = entry.env.headers
        self.stream_seq = entry.env.seq
        self.delivered_count = entry.delivered

    async def ack(self) -> None:
        self._consumer.finish(self._entry)

    async def nak(self, delay_s: float | None = None) -> None:
        self._consumer.nak(self._entry, delay_s)

    async def term(self) -> None:
        self._consumer.finish(self._entry)


class KinesisConsumer(Consumer):
    def __init__(
        self,
        *,
        aws: AwsCaller,
        meta: MetaStore,
        stream: str,
        kinesis_stream: str,
        durable: str,
        filter_subject: str | None,
        start_seq: int | None,
        checkpoints: dict[str, tuple[str, int]],
        ack_wait_s: float,
        max_ack_pending: int,
        duplicate_window_s: float,
        poll_interval_s: float = 0.1,
        checkpoint_interval_s: float = 1.0,
        max_buffer: int = 50_000,
        dedup_max_ids: int = 100_000,
    ) -> None:
        self._aws = aws
        self._meta = meta
        self.stream = stream
        self._kstream = kinesis_stream
        self.durable = durable
        self._filter = filter_subject
        self._start_seq = start_seq
        self._initial = dict(checkpoints)
        self._ack_wait = ack_wait_s
        self._max_ack_pending = max_ack_pending
        self._window_ms = int(duplicate_window_s * 1000)
        self._poll_interval = poll_interval_s
        self._checkpoint_interval = checkpoint_interval_s
        self._max_buffer = max_buffer
        self._dedup_max = dedup_max_ids
        self._shards: dict[str, _Shard] = {}
        self._ready: list[tuple[int, int, _Entry]] = []
        self._tie = itertools.count()
        self._inflight: dict[_Slot, _Entry] = {}
        self._seen: OrderedDict[str, tuple[int, int]] = OrderedDict()
        self._dirty = False
        self._last_flush = 0.0
        #: records dropped as duplicates by msg id / not decodable as abasto envelopes
        self.duplicates_dropped = 0
        self.undecodable = 0

    # --- the port -----------------------------------------------------------------------
    async def fetch(self, batch: int, timeout_s: float = 1.0) -> list[StreamMessage]:
        deadline = time.monotonic() + timeout_s
        polled = False
        while True:
            out = self._take(batch)
            if out or (polled and time.monotonic() >= deadline):
                await self._maybe_flush()
                return out
            polled = True
            if not await self._poll():
                remaining = deadline - time.monotonic()
                if remaining > 0:
                    await asyncio.sleep(min(self._poll_interval, remaining, self._next_redelivery_in()))

    async def state(self) -> ConsumerState:
        while await self._poll():
            pass
        await self.flush()
        return ConsumerState(
            pending=len(self._ready),
            ack_pending=len(self._inflight),
            redelivered=sum(1 for e in self._inflight.values() if e.delivered > 1),
        )

    # --- acknowledgements (called by KinesisMessage) ------------------------------------
    def finish(self, entry: _Entry) -> None:
        self._inflight.pop(entry.slot, None)
        self._done(entry.shard, entry.slot)

    def nak(self, entry: _Entry, delay_s: float | None) -> None:
        if entry.slot in self._inflight:
            entry.deadline = time.monotonic() + (delay_s or 0.0)

    def _done(self, shard: _Shard, slot: _Slot) -> None:
        if slot.done:
            return
        slot.done = True
        while shard.slots and shard.slots[0].done:
            first = shard.slots.popleft()
            shard.checkpoint = (first.kseq, first.sub)
            self._dirty = True

    # --- delivery -----------------------------------------------------------------------
    def _take(self, batch: int) -> list[StreamMessage]:
        now = time.monotonic()
        due = sorted((e for e in self._inflight.values() if e.deadline <= now), key=lambda e: e.env.seq)
        chosen = due[:batch]
        while len(chosen) < batch and self._ready and len(self._inflight) < self._max_ack_pending:
            _, _, entry = heapq.heappop(self._ready)
            self._inflight[entry.slot] = entry
            chosen.append(entry)
        for entry in chosen:
            entry.delivered += 1
            entry.deadline = now + self._ack_wait
        return [KinesisMessage(self, e) for e in chosen]

    def _next_redelivery_in(self) -> float:
        if not self._inflight:
            return self._poll_interval
        return max(0.0, min(e.deadline for e in self._inflight.values()) - time.monotonic())

    # --- reading shards -----------------------------------------------------------------
    async def _poll(self) -> bool:
        """One GetRecords per open shard (while the buffer has room); True if records came."""
        if not self._shards:
            await self._discover()
        if len(self._ready) >= self._max_buffer:
            return False
        open_shards = [s for s in self._shards.values() if not s.ended]
        results = await asyncio.gather(*(self._read(s) for s in open_shards))
        ended = False
        got = False
        for shard, (records, behind) in zip(open_shards, results, strict=True):
            for rec in records:
                self._accept(shard, rec)
            got = got or bool(records) or behind > 0
            ended = ended or shard.ended
        if ended:
            await self._discover()
        return got

    async def _discover(self) -> None:
        shard_ids = await self._aws.run(f"list shards of {self._kstream}", self._list_shards)
        for sid in shard_ids:
            if sid not in self._shards:
                cp = self._initial.get(sid)
                self._shards[sid] = _Shard(id=sid, position=cp, checkpoint=cp)

    def _list_shards(self) -> list[str]:
        ids: list[str] = []
        kwargs: dict[str, Any] = {"StreamName": self._kstream}
        while True:
            resp = self._aws.kinesis.list_shards(**kwargs)
            ids.extend(s["ShardId"] for s in resp.get("Shards", []))
            token = resp.get("NextToken")
            if not token:
                return ids
            kwargs = {"NextToken": token}

    async def _read(self, shard: _Shard) -> tuple[list[dict[str, Any]], int]:
        return await self._aws.run(f"get records of {self._kstream}/{shard.id}", self._get_records, shard)

    def _get_records(self, shard: _Shard) -> tuple[list[dict[str, Any]], int]:
        kinesis = self._aws.kinesis
        for _ in range(2):
            if shard.iterator is None:
                shard.iterator = self._iterator(shard)
            try:
                resp = kinesis.get_records(ShardIterator=shard.iterator, Limit=_GET_RECORDS_LIMIT)
            except botocore.exceptions.ClientError as exc:
                if error_code(exc) != "ExpiredIteratorException":
                    raise
                shard.iterator = None
                continue
            shard.iterator = resp.get("NextShardIterator")
            if shard.iterator is None:
                shard.ended = True
            return list(resp.get("Records", [])), int(resp.get("MillisBehindLatest", 0))
        return [], 0

    def _iterator(self, shard: _Shard) -> str:
        kwargs: dict[str, Any] = {"StreamName": self._kstream, "ShardId": shard.id}
        if shard.position is None:
            kwargs["ShardIteratorType"] = "TRIM_HORIZON"
        else:  # re-read the aggregate holding the position; _accept skips what was read
            kwargs["ShardIteratorType"] = "AT_SEQUENCE_NUMBER"
            kwargs["StartingSequenceNumber"] = shard.position[0]
        return str(self._aws.kinesis.get_shard_iterator(**kwargs)["ShardIterator"])

    def _accept(self, shard: _Shard, rec: dict[str, Any]) -> None:
        kseq = str(rec["SequenceNumber"])
        for sub, payload in enumerate(deaggregate(bytes(rec["Data"]))):
            if shard.position is not None and kseq == shard.position[0] and sub <= shard.position[1]:
                continue
            shard.position = (kseq, sub)
            slot = _Slot(kseq, sub)
            shard.slots.append(slot)
            entry = self._entry(shard, slot, payload)
            if entry is None:
                self._done(shard, slot)
            else:
                heapq.heappush(self._ready, (entry.env.seq, next(self._tie), entry))

    def _entry(self, shard: _Shard, slot: _Slot, payload: bytes) -> _Entry | None:
        """The record to deliver, or None if this consumer skips it."""
        try:
            env = decode_envelope(payload)
        except Exception as exc:  # noqa: BLE001 - any foreign record: counted and skipped
            self.undecodable += 1
            log.warning(
                "%s/%s: record %s is not an abasto envelope: %s", self._kstream, shard.id, slot.kseq, exc
            )
            return None
        if self._start_seq is not None and env.seq < self._start_seq:
            return None
        if self._filter is not None and not subject_matches(self._filter, env.subject):
            return None
        if self._is_duplicate(env):
            self.duplicates_dropped += 1
            return None
        return _Entry(slot=slot, shard=shard, env=env)

    def _is_duplicate(self, env: Envelope) -> bool:
        msg_id = env.headers.get(MSG_ID_HEADER)
        if msg_id is None:
            return False
        seen = self._seen.get(msg_id)
        if seen is not None and seen[0] != env.seq and abs(env.published_ms - seen[1]) <= self._window_ms:
            return True
        self._seen[msg_id] = (env.seq, env.published_ms)
        self._seen.move_to_end(msg_id)
        while len(self._seen) > self._dedup_max:
            self._seen.popitem(last=False)
        return False

    # --- checkpoints --------------------------------------------------------------------
    async def _maybe_flush(self) -> None:
        if self._dirty and time.monotonic() - self._last_flush >= self._checkpoint_interval:
            await self.flush()

    async def flush(self) -> None:
        """Write the checkpoints if they moved."""
        if not self._dirty:
            return
        self._dirty = False
        self._last_flush = time.monotonic()
        doc = self.document()
        try:
            await self._aws.run(
                f"checkpoint {self.durable} on {self.stream}",
                self._meta.put_consumer,
                self.stream,
                self.durable,
                doc,
            )
        except BaseException:
            self._dirty = True
            raise

    def document(self) -> dict[str, Any]:
        checkpoints = dict(self._initial)
        for sid, shard in self._shards.items():
            if shard.checkpoint is not None:
                checkpoints[sid] = shard.checkpoint
        return {
            "filter_subject": self._filter,
            "start_seq": self._start_seq,
            "checkpoints": {sid: [k, s] for sid, (k, s) in checkpoints.items()},
        }
