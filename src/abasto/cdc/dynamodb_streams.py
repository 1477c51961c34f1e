"""Change capture of the DynamoDB document store through DynamoDB Streams, into the raw zone.

AWS DMS cannot read DynamoDB, so abasto does what DMS would do (full load + ongoing replication)
and writes the same DMS-like raw files as the PostgreSQL capture (docs/CONTRACTS.md)::

    <raw>/behavior/documents/full_load/LOAD-<lsn16>-<nnnnn>.parquet
    <raw>/behavior/documents/cdc/<YYYY-MM-DD>/CDC-<first16>-<last16>.parquet
    <raw>/_cdc/dynamodb-<table>/state.json        (per-shard checkpoint, see below)

Columns: ``Op`` (I/U/D), ``_lsn``, ``_commit_ts``, ``_seq``, then ``pk``, ``sk``, ``doc`` (JSON text),
``updated_at``. A REMOVE carries the keys and nulls elsewhere.

**_lsn.** DynamoDB sequence numbers are decimal strings of 21+ digits, unique and increasing only
within one shard, so they cannot be the int64 ``_lsn``. The capture assigns its own, monotone per
capture: records of one batch are ordered by (ApproximateCreationDateTime in µs, clamped so it never
decreases along a shard and its descendants; then shard depth; shard id; position in the shard), and
record *i* gets ``_lsn = max(previous _lsn + 1, its time in µs)``. ``_lsn`` thus increases strictly
across records and files (the last one is persisted in the checkpoint) and stays close to wall time;
``_seq`` is 0 (each DynamoDB write is its own transaction). Ordering guarantee: all changes of one
item are in one shard (its partition's) or, after a split, in a child shard whose records all come
after its parent's; a shard's records keep their order and a child shard is only read once its
parent is drained, so per item the (``_lsn``, ``_seq``) order is the order DynamoDB applied the
writes, which is all the curated merge (latest image per key) needs. Across different items the
order is only approximate, as with the stream itself.

**Full load.** :meth:`DynamoStreamsCapture.full_load` records every shard's starting point
*before* scanning (a LATEST iterator for open shards; closed shards are marked drained, all their
changes predate the scan), then writes a strongly consistent Scan as ``LOAD`` files at
``_lsn`` = L, and every later change gets ``_lsn`` > L. A write racing the scan may appear both in
the load and in the stream: harmless, since the stream image is applied after the load. A LATEST
iterator expires after 15 minutes; if it has expired when first used, that shard is read from
TRIM_HORIZON instead (older changes replayed after the load — the final image per key is still the
current one, because the stream holds every change since then).

**Checkpoint, crash safety.** A batch is first recorded as *pending* (file name + the shard
positions it ends at) in ``state.json``, then the Parquet file is written atomically (temporary
name, fsync, rename: :class:`~abasto.cdc.raw_zone.RawZone`), and only then is the checkpoint
advanced. After a crash between the file and the checkpoint, the next run finds the pending file
already durable, writes nothing again and advances to the recorded positions; if the file is not
there, the pending batch is dropped and read again from the old checkpoint. File names come from
the record range (first and last ``_lsn``), so a rewritten batch has the same name, and
:meth:`~abasto.cdc.raw_zone.RawZone.publish` never replaces an existing file.

**Shards.** DynamoDB rolls shards over (about every 4 hours) and splits them; a closed shard ends
without a next iterator. Shards are read parent first; a child is read only after its parent is
drained (or the parent has aged out of the stream). An expired iterator is re-acquired from the
last sequence number read; reading past the stream's 24-hour retention
(TrimmedDataAccessException) cannot be repaired by the capture and raises, asking for a new full
load.

No AWS account is reachable where abasto is developed: this is tested against moto's DynamoDB and
DynamoDB Streams in server mode (tests/cdc/test_dynamodb_streams.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final, NoReturn

import botocore.exceptions
import pyarrow as pa
from boto3.dynamodb.types import TypeDeserializer

from abasto.cdc.raw_zone import CONTROL_DIR, RawZone, cdc_name, full_load_name
from abasto.errors import ConfigError, NotFoundError, TerminalError
from abasto.sources.behavior.dynamodb import aws_client, call_aws
from abasto.stream.kinesis_aws import AwsConnection, error_code, translate

__all__ = ["RAW_SCHEMA", "CaptureResult", "DynamoStreamsCapture", "LoadResult"]

SCHEMA_DIR: Final = "behavior"  # raw folder behavior/documents (docs/CONTRACTS.md)
TABLE_DIR: Final = "documents"
OPS: Final = {"INSERT": "I", "MODIFY": "U", "REMOVE": "D"}
TS: Final = pa.timestamp("us", tz="UTC")
RAW_SCHEMA: Final = pa.schema(
    [
        pa.field("Op", pa.string()),
        pa.field("_lsn", pa.int64()),
        pa.field("_commit_ts", TS),
        pa.field("_seq", pa.int64()),
        pa.field("pk", pa.string()),
        pa.field("sk", pa.string()),
        pa.field("doc", pa.string()),
        pa.field("updated_at", TS),
    ]
)
_STATE_VERSION: Final = 1
_deserializer = TypeDeserializer()
_AWS_ERRORS: Final = (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError)


@dataclass(frozen=True)
class LoadResult:
    """A full load: its ``_lsn``, the files written and the rows in them."""

    lsn: int
    files: tuple[str, ...]
    rows: int


@dataclass(frozen=True)
class CaptureResult:
    """One :meth:`DynamoStreamsCapture.capture_once`: the file written (None if no change), its
    records, whether a pending file of a crashed run was found and adopted, and whether every
    readable shard was read to its current end."""

    file: str | None
    records: int
    recovered: str | None
    caught_up: bool


@dataclass
class _Shard:
    parent: str | None
    after: str | None = None  # last sequence number captured
    iterator: str | None = None  # a LATEST iterator from the full load, until the first record
    done: bool = False  # closed and read to its end

    def to_json(self) -> dict[str, Any]:
        return {"parent": self.parent, "after": self.after, "iterator": self.iterator, "done": self.done}


@dataclass
class _Read:
    """What one batch read from one shard."""

    shard_id: str
    depth: int
    records: list[dict[str, Any]] = field(default_factory=list)
    iterator: str | None = None
    drained: bool = False


class DynamoStreamsCapture:
    """DMS-like capture of one DynamoDB table (a :class:`DynamoDocumentStore` table) into ``raw_uri``."""

    def __init__(
        self, table: str, raw_uri: str, connection: AwsConnection, *, max_records: int = 10_000
    ) -> None:
        """``max_records`` bounds the records of one CDC file.

        Raises:
            ConfigError: the raw zone URI cannot be opened.
        """
        self.table = table
        self.raw = RawZone(raw_uri)
        self.max_records = max_records
        self.state_name = f"{CONTROL_DIR}/dynamodb-{table}/state.json"
        self._ddb: Any = aws_client(connection, "dynamodb")
        self._streams: Any = aws_client(connection, "dynamodbstreams")

    def close(self) -> None:
        self._ddb.close()
        self._streams.close()

    def __enter__(self) -> DynamoStreamsCapture:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- full load ----------------------------------------------------------------------------

    def full_load(self, *, rows_per_file: int = 100_000) -> LoadResult:
        """Record each shard's position, then Scan the table into ``LOAD`` files (see module doc).

        Running it again is a reload: a newer ``LOAD`` set that supersedes the older one.

        Raises:
            ConfigError: the table has no stream of NEW_AND_OLD_IMAGES.
            ServiceUnavailableError: DynamoDB is throttling or unreachable (run again).
        """
        arn = self._stream_arn()
        shards: dict[str, _Shard] = {}
        for desc in self._describe_shards(arn):
            shard = _Shard(parent=desc.get("ParentShardId"))
            if "EndingSequenceNumber" in desc["SequenceNumberRange"]:
                shard.done = True  # closed: every change in it precedes the scan
            else:
                shard.iterator = self._iterator(arn, desc["ShardId"], "LATEST")
            shards[desc["ShardId"]] = shard
        previous = self._read_state()
        started = datetime.now(UTC)
        lsn = max(int(previous["last_lsn"]) + 1 if previous else 0, _micros(started))
        self.raw.remove_stale_temporaries(f"{SCHEMA_DIR}/{TABLE_DIR}")
        files: list[str] = []
        rows = 0
        buffer: list[dict[str, Any]] = []
        request: dict[str, Any] = {"TableName": self.table, "ConsistentRead": True}
        while True:
            page = call_aws(f"scan {self.table}", self._ddb.scan, **request)
            buffer += page.get("Items", [])
            last = page.get("LastEvaluatedKey")
            while len(buffer) >= rows_per_file or (buffer and not last):
                chunk, buffer = buffer[:rows_per_file], buffer[rows_per_file:]
                files.append(self._write_load(chunk, lsn, started, len(files) + 1, rows))
                rows += len(chunk)
            if not last:
                break
            request["ExclusiveStartKey"] = last
        if not files:  # an empty table still gets one LOAD file (docs/CONTRACTS.md)
            files.append(self._write_load([], lsn, started, 1, 0))
        self._write_state(arn, lsn, shards, pending=None)
        return LoadResult(lsn=lsn, files=tuple(files), rows=rows)

    def _write_load(
        self, items: list[dict[str, Any]], lsn: int, started: datetime, part: int, offset: int
    ) -> str:
        name = full_load_name(SCHEMA_DIR, TABLE_DIR, lsn, part)
        images = [_row_image(item, started) for item in items]
        table = _table(
            ops=["I"] * len(items),
            lsns=[lsn] * len(items),
            stamps=[started] * len(items),
            seqs=list(range(offset, offset + len(items))),
            images=images,
        )
        self._publish(name, table)
        return name

    # --- ongoing replication ------------------------------------------------------------------

    def capture_once(self) -> CaptureResult:
        """Read every shard from its checkpoint and write the changes as one CDC file, then advance
        the checkpoint (file durable first). At most ``max_records`` records per call.

        Raises:
            NotFoundError: no full load has been recorded for this table yet.
            ConfigError: the table's stream changed (disabled/re-enabled) since the full load.
            TerminalError: the checkpoint lies beyond the stream's retention (run a new full load).
            ServiceUnavailableError: DynamoDB is throttling or unreachable (run again).
        """
        state = self._read_state()
        if state is None:
            raise NotFoundError(
                f"no change-capture state for DynamoDB table {self.table}",
                hint="run the full load first (DynamoStreamsCapture.full_load)",
            )
        arn = self._stream_arn()
        if state["stream_arn"] != arn:
            raise ConfigError(
                f"the stream of {self.table} changed since the full load ({state['stream_arn']} → {arn})",
                hint="run a new full load (reload)",
            )
        last_lsn = int(state["last_lsn"])
        shards = {sid: _Shard(**s) for sid, s in state["shards"].items()}
        recovered = None
        pending = state.get("pending")
        if pending is not None and self.raw.exists(pending["file"]):
            # crashed after the file, before the checkpoint: adopt it (else: read the batch again)
            recovered = pending["file"]
            last_lsn = int(pending["last_lsn"])
            shards = {sid: _Shard(**s) for sid, s in pending["shards"].items()}
            self._write_state(arn, last_lsn, shards, pending=None)
        base_lsn = last_lsn
        self.raw.remove_stale_temporaries(f"{SCHEMA_DIR}/{TABLE_DIR}")

        for desc in self._describe_shards(arn):
            if desc["ShardId"] not in shards:
                shards[desc["ShardId"]] = _Shard(parent=desc.get("ParentShardId"))
        reads, caught_up = self._read_shards(arn, shards)
        records = _ordered(reads, shards)
        new_shards = _advance(shards, reads)
        if not records:
            if new_shards != {sid: s.to_json() for sid, s in shards.items()} or pending is not None:
                self._write_state(arn, last_lsn, {sid: _Shard(**s) for sid, s in new_shards.items()}, None)
            return CaptureResult(file=None, records=0, recovered=recovered, caught_up=caught_up)

        lsns: list[int] = []
        for key_us, _record in records:
            last_lsn = max(last_lsn + 1, key_us)
            lsns.append(last_lsn)
        stamps = [_created(r) for _, r in records]
        ops = [OPS[r["eventName"]] for _, r in records]
        images = [
            _row_image(r["dynamodb"]["NewImage"], stamp) if op != "D" else _key_image(r["dynamodb"]["Keys"])
            for (_, r), op, stamp in zip(records, ops, stamps, strict=True)
        ]
        day = stamps[-1].date().isoformat()
        name = cdc_name(SCHEMA_DIR, TABLE_DIR, day, lsns[0], lsns[-1])
        batch = _table(ops=ops, lsns=lsns, stamps=stamps, seqs=[0] * len(ops), images=images)
        new_state = {sid: _Shard(**s) for sid, s in new_shards.items()}
        # 1. intent, 2. durable file, 3. checkpoint: never the checkpoint before the file
        self._write_state(
            arn, base_lsn, shards, pending={"file": name, "last_lsn": last_lsn, "shards": new_shards}
        )
        self._publish(name, batch)
        self._commit(arn, last_lsn, new_state)
        return CaptureResult(file=name, records=len(records), recovered=recovered, caught_up=caught_up)

    def capture_until_idle(self, *, max_files: int = 1000) -> list[CaptureResult]:
        """:meth:`capture_once` until it writes nothing more (or ``max_files`` files)."""
        results: list[CaptureResult] = []
        for _ in range(max_files):
            result = self.capture_once()
            results.append(result)
            if result.file is None or result.caught_up:
                break
        return results

    def _commit(self, arn: str, last_lsn: int, shards: dict[str, _Shard]) -> None:
        """Advance the checkpoint (a separate step so tests can crash right before it)."""
        self._write_state(arn, last_lsn, shards, pending=None)

    # --- shards -------------------------------------------------------------------------------

    def _read_shards(self, arn: str, shards: dict[str, _Shard]) -> tuple[list[_Read], bool]:
        """Read ready shards (parents drained first) up to ``max_records`` records in total."""
        budget = self.max_records
        drained = {sid for sid, s in shards.items() if s.done}
        reads: list[_Read] = []
        started: set[str] = set()
        caught_up = True
        while True:
            ready = sorted(
                sid
                for sid, s in shards.items()
                if sid not in drained
                and sid not in started
                and (s.parent is None or s.parent in drained or s.parent not in shards)
            )
            if not ready or budget <= 0:
                caught_up = caught_up and not ready
                return reads, caught_up
            for sid in ready:
                started.add(sid)
                read = self._read_shard(arn, sid, shards[sid], _depth(sid, shards), budget)
                budget -= len(read.records)
                reads.append(read)
                if read.drained:
                    drained.add(sid)
                elif budget <= 0:
                    caught_up = False

    def _read_shard(self, arn: str, sid: str, shard: _Shard, depth: int, budget: int) -> _Read:
        read = _Read(shard_id=sid, depth=depth)
        iterator = self._start(arn, sid, shard)
        while budget > len(read.records):
            try:
                page = self._streams.get_records(
                    ShardIterator=iterator, Limit=min(1000, budget - len(read.records))
                )
            except _AWS_ERRORS as exc:
                if error_code(exc) == "ExpiredIteratorException":
                    last = read.records[-1]["dynamodb"]["SequenceNumber"] if read.records else shard.after
                    iterator = (
                        self._iterator(arn, sid, "AFTER_SEQUENCE_NUMBER", last)
                        if last
                        else self._iterator(arn, sid, "TRIM_HORIZON")
                    )
                    continue
                self._raise(exc, sid)
            read.records += page.get("Records", [])
            nxt = page.get("NextShardIterator")
            if nxt is None:
                read.drained = True
                break
            iterator = nxt
            if not page.get("Records"):
                break  # caught up with an open shard
        read.iterator = iterator
        return read

    def _start(self, arn: str, sid: str, shard: _Shard) -> str:
        if shard.after is not None:
            return self._iterator(arn, sid, "AFTER_SEQUENCE_NUMBER", shard.after)
        if shard.iterator is not None:  # the full load's LATEST iterator; if it expired, _read_shard
            return shard.iterator  # falls back to TRIM_HORIZON (replay: see the module doc)
        return self._iterator(arn, sid, "TRIM_HORIZON")

    def _iterator(self, arn: str, sid: str, kind: str, sequence: str | None = None) -> str:
        kwargs: dict[str, Any] = {"StreamArn": arn, "ShardId": sid, "ShardIteratorType": kind}
        if sequence is not None:
            kwargs["SequenceNumber"] = sequence
        try:
            response = self._streams.get_shard_iterator(**kwargs)
        except _AWS_ERRORS as exc:
            self._raise(exc, sid)
        return str(response["ShardIterator"])

    def _raise(self, exc: Exception, sid: str) -> NoReturn:
        if error_code(exc) == "TrimmedDataAccessException":
            raise TerminalError(
                f"shard {sid} of {self.table}'s stream no longer holds the checkpointed position "
                "(older than the 24-hour retention)",
                hint="run a new full load (reload)",
            ) from exc
        translated = translate(exc, f"read shard {sid} of {self.table}'s stream")
        raise translated from exc

    def _describe_shards(self, arn: str) -> list[dict[str, Any]]:
        shards: list[dict[str, Any]] = []
        request: dict[str, Any] = {"StreamArn": arn}
        while True:
            desc = call_aws("describe stream", self._streams.describe_stream, **request)["StreamDescription"]
            shards += desc.get("Shards", [])
            last = desc.get("LastEvaluatedShardId")
            if not last:
                return shards
            request["ExclusiveStartShardId"] = last

    def _stream_arn(self) -> str:
        table = call_aws(f"describe {self.table}", self._ddb.describe_table, TableName=self.table)["Table"]
        spec = table.get("StreamSpecification") or {}
        arn = table.get("LatestStreamArn")
        if not spec.get("StreamEnabled") or not arn or spec.get("StreamViewType") != "NEW_AND_OLD_IMAGES":
            raise ConfigError(
                f"DynamoDB table {self.table} has no stream of NEW_AND_OLD_IMAGES",
                hint="enable StreamSpecification StreamViewType=NEW_AND_OLD_IMAGES on the table",
            )
        return str(arn)

    # --- raw zone -----------------------------------------------------------------------------

    def _publish(self, name: str, table: pa.Table) -> bool:
        staged = self.raw.stage(name, RAW_SCHEMA)
        try:
            staged.write(table)
        except BaseException:
            self.raw.discard(staged)
            raise
        return self.raw.publish(staged)

    def _read_state(self) -> dict[str, Any] | None:
        return self.raw.read_json(self.state_name)

    def _write_state(
        self, arn: str, last_lsn: int, shards: dict[str, _Shard], pending: dict[str, Any] | None
    ) -> None:
        self.raw.write_json(
            self.state_name,
            {
                "version": _STATE_VERSION,
                "table": self.table,
                "stream_arn": arn,
                "last_lsn": last_lsn,
                "shards": {sid: s.to_json() for sid, s in shards.items()},
                "pending": pending,
            },
        )


def _depth(sid: str, shards: dict[str, _Shard]) -> int:
    depth, parent = 0, shards[sid].parent
    while parent is not None and parent in shards and depth < 10_000:
        depth, parent = depth + 1, shards[parent].parent
    return depth


def _ordered(reads: list[_Read], shards: dict[str, _Shard]) -> list[tuple[int, dict[str, Any]]]:
    """All records of a batch with their ordering time (µs), in capture order (module doc)."""
    floor: dict[str, int] = {}  # last ordering time of each shard read in this batch
    keyed: list[tuple[int, int, str, int, dict[str, Any]]] = []
    for read in sorted(reads, key=lambda r: (r.depth, r.shard_id)):  # parents before children
        parent = shards[read.shard_id].parent
        running = floor.get(parent, 0) if parent is not None else 0
        for index, record in enumerate(read.records):
            running = max(running, _micros(_created(record)))
            keyed.append((running, read.depth, read.shard_id, index, record))
        floor[read.shard_id] = running
    keyed.sort(key=lambda k: k[:4])
    return [(k[0], k[4]) for k in keyed]


def _advance(shards: dict[str, _Shard], reads: list[_Read]) -> dict[str, dict[str, Any]]:
    """The per-shard checkpoint after the batch's records are durable."""
    after = {sid: s.to_json() for sid, s in shards.items()}
    for read in reads:
        entry = after[read.shard_id]
        if read.records:
            entry["after"] = read.records[-1]["dynamodb"]["SequenceNumber"]
            entry["iterator"] = None
        elif entry["after"] is None:
            entry["iterator"] = read.iterator  # still at the full load's position, refreshed
        entry["done"] = read.drained
    return after


def _micros(stamp: datetime) -> int:
    return int(stamp.timestamp() * 1_000_000)


def _created(record: dict[str, Any]) -> datetime:
    value = record["dynamodb"]["ApproximateCreationDateTime"]
    stamp = value if isinstance(value, datetime) else datetime.fromtimestamp(float(value), UTC)
    return stamp.astimezone(UTC)


def _key_image(keys: dict[str, Any]) -> dict[str, Any]:
    return {"pk": keys["pk"]["S"], "sk": keys["sk"]["S"], "doc": None, "updated_at": None}


def _row_image(item: dict[str, Any], fallback_ts: datetime) -> dict[str, Any]:
    """(pk, sk, doc JSON text, updated_at) of an item in DynamoDB JSON. Items written by other tools
    (``doc`` a Map, or attributes beside the keys) become a JSON object of their other attributes."""
    doc = item.get("doc", {})
    if set(item) <= {"pk", "sk", "doc", "updated_at"} and "S" in doc:
        text = doc["S"]
    else:
        plain = {
            k: _deserializer.deserialize(v) for k, v in item.items() if k not in ("pk", "sk", "updated_at")
        }
        if set(plain) == {"doc"} and isinstance(plain["doc"], dict):
            plain = plain["doc"]
        text = json.dumps(plain, ensure_ascii=False, separators=(",", ":"), default=_json_default)
    stamp = item.get("updated_at", {}).get("S")
    updated = datetime.fromisoformat(stamp.replace("Z", "+00:00")) if stamp else fallback_ts
    return {"pk": item["pk"]["S"], "sk": item["sk"]["S"], "doc": text, "updated_at": updated}


def _json_default(value: object) -> object:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    if isinstance(value, bytes | bytearray):
        return value.hex()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _table(
    *, ops: list[str], lsns: list[int], stamps: list[datetime], seqs: list[int], images: list[dict[str, Any]]
) -> pa.Table:
    columns: dict[str, list[Any]] = {
        "Op": ops,
        "_lsn": lsns,
        "_commit_ts": stamps,
        "_seq": seqs,
        **{name: [image[name] for image in images] for name in ("pk", "sk", "doc", "updated_at")},
    }
    return pa.Table.from_pydict(columns, schema=RAW_SCHEMA)
