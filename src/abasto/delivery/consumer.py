"""The raw-zone delivery (Kinesis Data Firehose): a durable JetStream consumer → Parquet files.

Per batch, in this order (the commit protocol):

1. cut the buffer into a batch when it reaches ``max_messages`` or ``max_bytes``, or its first
   message is ``max_age_s`` old (or the stream is drained: ``run_until_idle``, stop);
2. decode it (one ``received_at`` instant for the batch), split the rows by event date/hour;
   drop the events an earlier batch already wrote (cross-batch dedup, :mod:`abasto.delivery.dedup`);
3. write the batch **manifest** durably (:mod:`abasto.delivery.ledger`): its sequence runs, the
   files it produces and the (device, seq) keys they hold;
4. write each file durably (fsync + rename + directory fsync), skipping a name already present
   (the batch's partition directories are made first, each new one durable);
5. acknowledge every message of the batch.

Crash semantics. A crash before 3 wrote nothing: the messages come back and start a new batch
(boundaries are free, since no file names were taken). A crash after 3 left a manifest: its
messages come back (they were not acknowledged), are re-assembled into *the same batch* by
sequence, decoded with the manifest's ``received_at``, reduced to the manifest's keys and give the
same rows and names (byte-identical files); the files
already present are skipped, the missing ones written, then all are acknowledged. A message of a
batch whose files all exist (acks lost, or a replay through a new consumer) is only acknowledged.
So batch boundaries are fixed once, at the first cut, by stream sequence, and every accepted
event is in exactly one file.

Dedup state. The keys written are rebuilt on start from the manifests held plus the state folded
from pruned ones, which equals what an uninterrupted run holds in memory (the state is a pruned
union, independent of the order batches were cut or read): batches cut after a restart drop the
same copies as they would have without it.

One worker per raw table: the ledger is not shared between concurrent writers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime

from abasto.delivery.buffer import Pending
from abasto.delivery.config import DeliveryConfig
from abasto.delivery.dedup import DedupStore, Selection, WrittenKeys, drop_written, keep_recorded, keys_of
from abasto.delivery.durable import exists, make_dirs_durable, write_parquet_durable
from abasto.delivery.layout import DEDUP_STATE, part_name, pos_events_uri
from abasto.delivery.ledger import BatchManifest, Ledger, digest, runs_of
from abasto.delivery.metrics import DeliveryMetrics
from abasto.delivery.rows import COMPRESSION, DICTIONARY_COLUMNS, DecodedBatch, decode_batch
from abasto.errors import TerminalError, is_transient
from abasto.lake.storage import join_uri
from abasto.stream.port import Consumer, EventStream, StreamMessage

__all__ = ["FaultHook", "RawDelivery"]

log = logging.getLogger(__name__)

#: called at ``"manifest"`` (manifest durable), ``"file"`` (after each file), ``"files"`` (all
#: files durable, before the acks) and ``"acked"`` (a new batch acknowledged, before the next
#: fetch); tests raise from it (or kill the process) to simulate a crash there
FaultHook = Callable[[str, BatchManifest], None]


class RawDelivery:
    """``async with open_stream(s) as stream: await RawDelivery(stream, s.raw_uri).run_until_idle()``."""

    def __init__(
        self,
        stream: EventStream,
        raw_uri: str,
        config: DeliveryConfig | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        fault_hook: FaultHook | None = None,
    ) -> None:
        self._stream = stream
        self.table_uri = pos_events_uri(raw_uri)
        self.config = config or DeliveryConfig()
        self._clock = clock
        self._wall_clock = wall_clock
        self._fault = fault_hook
        self.ledger = Ledger(self.table_uri)
        #: (device_id, seq) keys in the raw zone within the dedup horizon
        self.written = WrittenKeys(self.config.dedup_window)
        self._dedup_store = DedupStore(join_uri(self.table_uri, DEDUP_STATE))
        self.metrics = DeliveryMetrics()
        self._consumer: Consumer | None = None
        self._pending = Pending()
        #: manifests being re-assembled after a crash: name → held messages
        self._recovering: dict[str, Pending] = {}
        #: manifests whose files are known to be all present
        self._complete: set[str] = set()

    # --- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> Consumer:
        """Bind the durable consumer and load the ledger (idempotent).

        Raises:
            NotFoundError: the source stream does not exist.
            ServiceUnavailableError: the stream cannot be reached.
        """
        if self._consumer is None:
            cfg = self.config
            state = await self._stream.stream_state(cfg.stream)
            self.written = WrittenKeys(cfg.dedup_window)
            stored = self._dedup_store.load()
            if stored is not None:
                self.written.add_state(stored)
            loaded = self.ledger.load(stream_first_seq=state.first_seq, before_prune=self._fold)
            for manifest in self.ledger.manifests():
                self.written.add(manifest.written or {})
            self._consumer = await self._stream.consumer(
                cfg.stream,
                cfg.durable,
                ack_wait_s=cfg.ack_wait_s,
                max_ack_pending=cfg.max_ack_pending,
                start_seq=cfg.start_seq,
            )
            log.info("delivery %s → %s: %d batch manifests loaded", cfg.durable, self.table_uri, loaded)
        return self._consumer

    @property
    def buffered(self) -> int:
        """Messages waiting for the next cut."""
        return len(self._pending)

    async def poll(self) -> int:
        """Fetch once, route the messages, cut batches that are due. Returns messages fetched."""
        consumer = await self.start()
        timeout = self.config.fetch_timeout_s
        if self._pending:
            left = self.config.max_age_s - self._pending.age(self._clock())
            timeout = max(0.01, min(timeout, left))
        msgs = await consumer.fetch(self.config.fetch_batch, timeout_s=timeout)
        for msg in msgs:
            await self._route(msg)
        if self._pending and self._pending.age(self._clock()) >= self.config.max_age_s:
            await self.flush()
        return len(msgs)

    async def flush(self) -> BatchManifest | None:
        """Cut whatever is buffered into a batch now; the manifest, or None if nothing was written."""
        if not self._pending:
            return None
        pending, self._pending = self._pending, Pending()
        received_at = self._wall_clock()
        selection = drop_written(
            decode_batch(pending.messages.values(), received_at=received_at), self.written
        )
        self._count(selection)
        batch = selection.batch
        manifest: BatchManifest | None = None
        if batch.partitions:
            manifest = self._plan(pending, batch, received_at)
            self.ledger.record(manifest)
            self.written.add(manifest.written or {})
            self._hook("manifest", manifest)
            self._write(manifest, batch)
            self._complete.add(manifest.name)
        self.metrics.batches += 1
        await _ack_all(pending.handles)
        if manifest is not None:
            self._hook("acked", manifest)
        return manifest

    async def run_until_idle(self) -> DeliveryMetrics:
        """Deliver until the consumer has nothing pending or unacknowledged (cutting the last,
        partial batch when the stream is drained)."""
        consumer = await self.start()
        while True:
            if await self.poll():
                continue
            await self.flush()
            if not self._recovering and (await consumer.state()).idle:
                return self.metrics

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until ``stop`` is set, then cut the buffer; transient errors are retried."""
        backoff = 0.2
        while not stop.is_set():
            try:
                await self.poll()
                backoff = 0.2
            except Exception as exc:
                if not is_transient(exc):
                    raise
                log.warning("stream unavailable (%r); retrying in %.1fs", exc, backoff)
                try:
                    await asyncio.wait_for(stop.wait(), timeout=backoff)
                except TimeoutError:
                    backoff = min(backoff * 2, 5.0)
        await self.flush()

    # --- routing -----------------------------------------------------------------------------
    async def _route(self, msg: StreamMessage) -> None:
        manifest = self.ledger.find(msg.stream_seq)
        if manifest is None:
            if msg.stream_seq not in self._pending.messages:
                self.metrics.messages += 1
            self._pending.add(msg, self._clock())
            cfg = self.config
            if len(self._pending) >= cfg.max_messages or self._pending.bytes >= cfg.max_bytes:
                await self.flush()
            return
        if msg.stream_seq == manifest.first_seq and digest(msg.data) != manifest.first_digest:
            raise TerminalError(
                f"stream {self.config.stream} sequence {msg.stream_seq} differs from the batch "
                f"{manifest.name} already delivered to {self.table_uri}",
                hint="the stream was recreated; deliver it to a new raw zone (lake.raw_uri)",
            )
        if manifest.name in self._complete or self._all_files_present(manifest):
            self._complete.add(manifest.name)
            self.metrics.already_delivered += 1
            await msg.ack()
            return
        await self._recover(manifest, msg)

    def _all_files_present(self, manifest: BatchManifest) -> bool:
        return all(exists(join_uri(self.table_uri, rel)) for rel in manifest.files)

    async def _recover(self, manifest: BatchManifest, msg: StreamMessage) -> None:
        held = self._recovering.setdefault(manifest.name, Pending())
        if msg.stream_seq not in held.messages:
            self.metrics.messages += 1
        held.add(msg, self._clock())
        if len(held) < manifest.messages:
            return
        decoded = decode_batch(held.messages.values(), received_at=manifest.received_at)
        selection = (
            Selection(decoded, 0, 0) if manifest.written is None else keep_recorded(decoded, manifest.written)
        )
        self._count(selection)
        batch = selection.batch
        produced = {
            f"{part}/{part_name(manifest.first_seq, manifest.last_seq)}": t.num_rows
            for part, t in batch.partitions.items()
        }
        if produced != manifest.files:
            raise TerminalError(
                f"batch {manifest.name} decodes to other files than its manifest names "
                f"({sorted(produced)} vs {sorted(manifest.files)})",
                hint="the event decoder changed since the batch was cut",
            )
        self._write(manifest, batch)
        del self._recovering[manifest.name]
        self._complete.add(manifest.name)
        self.metrics.batches_recovered += 1
        await _ack_all(held.handles)

    # --- writing -----------------------------------------------------------------------------
    def _plan(self, pending: Pending, batch: DecodedBatch, received_at: datetime) -> BatchManifest:
        seqs = sorted(pending.messages)
        first, last = seqs[0], seqs[-1]
        name = part_name(first, last)
        return BatchManifest(
            first_seq=first,
            last_seq=last,
            runs=runs_of(seqs),
            messages=len(seqs),
            files={f"{part}/{name}": t.num_rows for part, t in batch.partitions.items()},
            received_at=received_at,
            first_digest=digest(pending.messages[first].data),
            written=keys_of(batch),
        )

    def _write(self, manifest: BatchManifest, batch: DecodedBatch) -> None:
        name = part_name(manifest.first_seq, manifest.last_seq)
        make_dirs_durable(join_uri(self.table_uri, part) for part in batch.partitions)
        for part, table in batch.partitions.items():
            uri = join_uri(self.table_uri, part, name)
            if exists(uri):
                self.metrics.files_skipped += 1
            else:
                write_parquet_durable(
                    table, uri, compression=COMPRESSION, use_dictionary=DICTIONARY_COLUMNS
                )
                self.metrics.files_written += 1
                self.metrics.rows_written += table.num_rows
            self._hook("file", manifest)
        self._hook("files", manifest)

    def _count(self, selection: Selection) -> None:
        m = self.metrics
        m.invalid.update(selection.batch.invalid)
        m.duplicates += selection.batch.duplicates
        m.duplicates_across_batches += selection.dropped
        m.beyond_horizon += selection.beyond_horizon

    def _fold(self, stale: list[BatchManifest]) -> None:
        """Keep the keys of manifests about to be pruned (the state is a union: folding the whole
        state, not only theirs, is the same once rebuilt)."""
        for manifest in stale:
            self.written.add(manifest.written or {})
        self._dedup_store.save(self.written.to_state())

    def _hook(self, stage: str, manifest: BatchManifest) -> None:
        if self._fault is not None:
            self._fault(stage, manifest)


async def _ack_all(handles: list[StreamMessage], chunk: int = 5_000) -> None:
    """Acknowledge in chunks started together: the client then sends them in few writes."""
    for i in range(0, len(handles), chunk):
        await asyncio.gather(*(h.ack() for h in handles[i : i + chunk]))
