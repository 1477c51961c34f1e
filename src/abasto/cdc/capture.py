"""One capture batch: peek whole transactions from the slot, decode them, stage and publish raw files.

The slot is read with ``pg_logical_slot_peek_binary_changes`` (pgoutput, protocol 1), which never
moves it; :class:`~abasto.cdc.pipeline.CdcPipeline` advances it only after this module has published
the files. Rows are fetched through a server-side cursor, and change records stream into staged
Parquet files, so memory stays bounded even for a transaction of a million rows.

Each fetch is decoded column by column over all its rows (:mod:`abasto.cdc.vector_decode`: the
runs of Begin, Commit, Insert, Update and Delete messages); Relation, Truncate and other messages,
and any run that path leaves alone (malformed, unchanged TOASTed values…), are decoded one message
at a time, with the same result.

Only whole transactions are written: PostgreSQL returns changes in commit order and stops at a
commit boundary; should a batch still end inside a transaction, that tail is dropped and the batch
re-read up to the last complete commit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from abasto.cdc.change_files import ChangeFileWriter, PublishedFiles, TableShape, Transaction
from abasto.cdc.lsn import format_lsn, pg_time_to_unix_us
from abasto.cdc.pgoutput import (
    Begin,
    Commit,
    DecodeError,
    Delete,
    Insert,
    Message,
    PgOutputDecoder,
    Relation,
    RowChange,
    Truncate,
    Update,
    row_change,
)
from abasto.cdc.raw_zone import RawZone
from abasto.cdc.shapes import ShapeCatalog, text_image, text_key_image
from abasto.cdc.vector_decode import MessageChunk, TxnCursor, decode_run

PROTO_VERSION = 1
FETCH_ROWS = 5_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass
class BatchOutcome:
    """What one batch read and wrote."""

    changes: int = 0
    transactions: int = 0
    #: end LSN of the last complete transaction (what the slot may be advanced to), if any
    end_lsn: int | None = None
    #: True when the slot had nothing more to give (the read did not stop at ``max_changes``)
    drained: bool = True
    files: PublishedFiles = field(default_factory=lambda: PublishedFiles([], []))


class _BatchState:
    """Decoding state of one pass over the slot."""

    def __init__(self, writer: ChangeFileWriter, shapes: ShapeCatalog, decoder: PgOutputDecoder) -> None:
        self.writer = writer
        self.shapes = shapes
        self.decoder = decoder
        self.txn: Transaction | None = None
        self.seq = 0
        self.changes_in_txn = 0
        self.outcome = BatchOutcome()

    def handle(self, message: Message) -> None:
        if isinstance(message, Insert | Update | Delete):  # the common case first
            self._change(message)
        elif isinstance(message, Begin):
            ts = pg_time_to_unix_us(message.commit_ts)
            day = (_EPOCH + timedelta(microseconds=ts)).date().isoformat()
            self.txn = Transaction(lsn=message.final_lsn, commit_ts_us=ts, day=day)
            self.seq = 0
            self.changes_in_txn = 0
        elif isinstance(message, Commit):
            self.outcome.transactions += 1
            self.outcome.changes += self.changes_in_txn
            self.outcome.end_lsn = message.end_lsn
            self.txn = None
        elif isinstance(message, Relation):
            self.shapes.on_relation(message)
        elif isinstance(message, Truncate):
            self._change(message)
        # Origin, Type and logical messages carry nothing the raw zone keeps

    def feed(self, messages: Sequence[bytes]) -> None:
        """Decode and write a fetch of messages in stream order: runs of Begin/Commit/Insert/
        Update/Delete all at once (:mod:`abasto.cdc.vector_decode`), anything else — and any run
        that path declines — message by message."""
        if not messages:
            return
        chunk = MessageChunk(messages)
        first = 0
        for stop in [*chunk.special(), chunk.count]:
            if stop > first:
                if self.decoder.in_stream:  # protocol 2, inside a streamed transaction: other layouts
                    self._one_by_one(messages[first:stop])
                else:
                    self._run(chunk, messages, first, stop)
            if stop < chunk.count:
                self._one_by_one(messages[stop : stop + 1])
            first = stop + 1

    def _run(self, chunk: MessageChunk, messages: Sequence[bytes], first: int, stop: int) -> None:
        txn = self.txn
        cursor = (
            TxnCursor(txn.lsn, txn.commit_ts_us, txn.day, self.seq)
            if txn is not None
            else TxnCursor(seq=self.seq)
        )
        result = decode_run(chunk, first, stop, cursor, self.shapes.shape)
        if result is None:
            self._one_by_one(messages[first:stop])
            return
        for block in result.blocks:
            self.writer.add_block(block)
        self.outcome.transactions += result.transactions
        self.outcome.changes += result.changes
        if result.end_lsn is not None:
            self.outcome.end_lsn = result.end_lsn
        after = result.cursor
        self.txn = (
            Transaction(lsn=after.lsn, commit_ts_us=after.commit_ts_us, day=after.day)
            if after.lsn is not None
            else None
        )
        self.seq = self.changes_in_txn = after.seq

    def _one_by_one(self, messages: Sequence[bytes]) -> None:
        for data in messages:
            change = None if self.decoder.in_stream else row_change(data)
            if change is not None:  # the common case, without a message object
                self.row(change)
                continue
            self.handle(self.decoder.decode(bytes(data)))

    def row(self, change: RowChange) -> None:
        """An Insert, Update or Delete decoded by :func:`~abasto.cdc.pgoutput.row_change`."""
        txn = self.txn
        if txn is None:
            raise DecodeError(f"{change[0]} of relation {change[1]} outside a transaction")
        op, relation_id, new, old, _old_kind = change
        shape = self.shapes.shape(relation_id)
        if new is not None:  # I, U
            self._emit(shape, op, txn, text_image(shape, new, old=old))
        elif old is not None:  # D
            self._emit(shape, op, txn, text_key_image(shape, old))

    def _change(self, message: Insert | Update | Delete | Truncate) -> None:
        txn = self.txn
        if txn is None:
            raise DecodeError(f"{type(message).__name__} outside a transaction")
        if isinstance(message, Truncate):
            for relation_id in message.relation_ids:
                shape = self.shapes.shape(relation_id)
                self._emit(shape, "T", txn, (None,) * len(shape.columns))
            return
        shape = self.shapes.shape(message.relation_id)
        if isinstance(message, Insert):
            self._emit(shape, "I", txn, text_image(shape, message.new))
        elif isinstance(message, Update):
            self._emit(shape, "U", txn, text_image(shape, message.new, old=message.old))
        else:
            self._emit(shape, "D", txn, text_key_image(shape, message.old))

    def _emit(self, shape: TableShape, op: str, txn: Transaction, row: tuple[Any, ...]) -> None:
        self.writer.add(shape, op, txn, self.seq, row)
        self.seq += 1
        self.changes_in_txn += 1

    @property
    def inside_transaction(self) -> bool:
        return self.txn is not None


def run_batch(
    conn: psycopg.Connection[Any],
    raw: RawZone,
    *,
    slot: str,
    publication: str,
    shapes: ShapeCatalog,
    max_changes: int | None,
    upto_lsn: int | None = None,
    before_publish: Callable[[int], None] = lambda _end: None,
) -> BatchOutcome:
    """Read the slot from its confirmed position (up to ``max_changes`` rows, rounded up to whole
    transactions, or up to ``upto_lsn``), write the raw files, and return what was done.

    ``before_publish(end_lsn)`` runs after every file is staged and before any is renamed into
    place (the pipeline records its intent there). The slot is not moved.

    Raises:
        DecodeError: a message cannot be decoded or a value not parsed (nothing is published).
        TerminalError: a change lacks data the raw image needs (see :func:`abasto.cdc.shapes.image`).
        psycopg.Error: the database failed (nothing is published).
    """
    writer = ChangeFileWriter(raw)
    state = _BatchState(writer, shapes, PgOutputDecoder(PROTO_VERSION))
    rows = 0
    try:
        with conn.transaction(), conn.cursor(name="abasto_cdc_peek", binary=True) as cur:
            cur.execute(
                "SELECT data FROM pg_logical_slot_peek_binary_changes("
                "%s, %s::pg_lsn, %s, 'proto_version', %s, 'publication_names', %s)",
                (
                    slot,
                    format_lsn(upto_lsn) if upto_lsn is not None else None,
                    max_changes,
                    str(PROTO_VERSION),
                    publication,
                ),
            )
            while batch := cur.fetchmany(FETCH_ROWS):
                rows += len(batch)
                state.feed([data for (data,) in batch])
        if state.inside_transaction:
            # never write part of a transaction: drop this pass and read up to the last whole one
            writer.discard()
            last_complete = state.outcome.end_lsn  # set by every Commit
            if last_complete is None:
                return BatchOutcome(drained=False)
            replay = run_batch(
                conn,
                raw,
                slot=slot,
                publication=publication,
                shapes=shapes,
                max_changes=None,
                upto_lsn=last_complete,
                before_publish=before_publish,
            )
            replay.drained = False
            return replay
        outcome = state.outcome
        outcome.drained = max_changes is None or rows < max_changes
        if outcome.end_lsn is not None:
            before_publish(outcome.end_lsn)
            outcome.files = writer.publish()
        else:
            writer.discard()
        return outcome
    except BaseException:
        writer.discard()
        raise
