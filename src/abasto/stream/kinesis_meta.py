"""What Kinesis itself cannot keep, in one DynamoDB table (like the KCL's lease table).

Items (``pk``, ``sk``):

- ``REGISTRY`` / ``<stream>``: subject patterns, limits, shard count and the stream's counters:
  ``last_seq`` (abasto sequences are allocated here, atomically, a range per batch),
  ``messages`` and ``bytes`` (user records stored by abasto publishers: abasto's own accounting,
  since Kinesis reports neither a record count nor a size).
- ``DEDUP#<stream>`` / ``<msg id>``: publish-side deduplication. A publisher reserves the id with
  a conditional put (``pending``), stores the record, then marks it ``stored`` with its sequence.
  ``expires_at`` ends the window (DynamoDB TTL removes the item later; the condition checks it).
  A ``pending`` reservation older than ``lease_s`` (its publisher died) is taken over.
- ``CONSUMER#<stream>`` / ``<durable>``: a durable consumer's options and per-shard checkpoints
  (KCL style: Kinesis sequence number + index of the user record inside an aggregate).

All methods block (boto3); the backend runs them on its thread pool.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

import botocore.exceptions

from abasto.errors import NotFoundError, ServiceUnavailableError
from abasto.stream.kinesis_aws import error_code
from abasto.stream.port import StreamSpec

_REGISTRY: Final = "REGISTRY"
_PENDING: Final = "pending"
_STORED: Final = "stored"
_BATCH_WRITE_MAX: Final = 25


@dataclass(frozen=True, slots=True)
class StreamRecord:
    spec: StreamSpec
    shard_count: int
    last_seq: int
    messages: int
    bytes: int


@dataclass(frozen=True, slots=True)
class Reservation:
    """Outcome of reserving a msg id: ``new`` (go ahead), ``duplicate`` (stored as ``seq``),
    ``busy`` (another publisher is storing it right now)."""

    outcome: Literal["new", "duplicate", "busy"]
    seq: int = 0


def _s(v: str) -> dict[str, str]:
    return {"S": v}


def _n(v: float) -> dict[str, str]:
    return {"N": repr(v) if isinstance(v, float) else str(v)}


def _num(item: dict[str, Any], key: str, default: float = 0) -> float:
    attr = item.get(key)
    return float(attr["N"]) if attr else default


class MetaStore:
    def __init__(self, dynamodb: Any, table: str) -> None:
        self._db = dynamodb
        self.table = table

    # --- table --------------------------------------------------------------------------
    def ensure_table(self) -> None:
        try:
            self._db.describe_table(TableName=self.table)
            return
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) != "ResourceNotFoundException":
                raise
        try:
            self._db.create_table(
                TableName=self.table,
                AttributeDefinitions=[
                    {"AttributeName": "pk", "AttributeType": "S"},
                    {"AttributeName": "sk", "AttributeType": "S"},
                ],
                KeySchema=[
                    {"AttributeName": "pk", "KeyType": "HASH"},
                    {"AttributeName": "sk", "KeyType": "RANGE"},
                ],
                BillingMode="PAY_PER_REQUEST",
            )
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) != "ResourceInUseException":  # another client created it
                raise
        self._db.get_waiter("table_exists").wait(
            TableName=self.table, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
        )
        self._db.update_time_to_live(
            TableName=self.table,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"},
        )

    # --- registry -----------------------------------------------------------------------
    def streams(self) -> dict[str, StreamRecord]:
        out: dict[str, StreamRecord] = {}
        for item in self._query(_REGISTRY):
            rec = _stream_record(item)
            out[rec.spec.name] = rec
        return out

    def stream(self, name: str) -> StreamRecord | None:
        resp = self._db.get_item(TableName=self.table, Key=self._key(_REGISTRY, name), ConsistentRead=True)
        item = resp.get("Item")
        return None if item is None else _stream_record(item)

    def put_stream(self, spec: StreamSpec, shard_count: int) -> None:
        """Create or update a stream's entry; counters are kept."""
        self._db.update_item(
            TableName=self.table,
            Key=self._key(_REGISTRY, spec.name),
            UpdateExpression=(
                "SET subjects = :subjects, max_bytes = :mb, max_age_s = :ma, dup_window_s = :dw, "
                "description = :d, shard_count = :sc, last_seq = if_not_exists(last_seq, :zero), "
                "messages = if_not_exists(messages, :zero), #b = if_not_exists(#b, :zero)"
            ),
            ExpressionAttributeNames={"#b": "bytes"},
            ExpressionAttributeValues={
                ":subjects": _s(json.dumps(list(spec.subjects))),
                ":mb": _n(spec.max_bytes),
                ":ma": _n(float(spec.max_age_s)),
                ":dw": _n(float(spec.duplicate_window_s)),
                ":d": _s(spec.description),
                ":sc": _n(shard_count),
                ":zero": _n(0),
            },
        )

    def allocate(self, stream: str, n: int) -> int:
        """Reserve ``n`` consecutive sequences; returns the first."""
        try:
            resp = self._db.update_item(
                TableName=self.table,
                Key=self._key(_REGISTRY, stream),
                UpdateExpression="ADD last_seq :n",
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeValues={":n": _n(n)},
                ReturnValues="UPDATED_NEW",
            )
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                raise NotFoundError(f"no stream {stream}") from exc
            raise
        return int(resp["Attributes"]["last_seq"]["N"]) - n + 1

    def count_stored(self, stream: str, messages: int, size: int) -> None:
        self._db.update_item(
            TableName=self.table,
            Key=self._key(_REGISTRY, stream),
            UpdateExpression="ADD messages :m, #b :b",
            ExpressionAttributeNames={"#b": "bytes"},
            ExpressionAttributeValues={":m": _n(messages), ":b": _n(size)},
        )

    def delete_stream(self, stream: str) -> bool:
        """Remove the stream's entry, dedup ids and consumers; False if there was no entry."""
        resp = self._db.delete_item(
            TableName=self.table, Key=self._key(_REGISTRY, stream), ReturnValues="ALL_OLD"
        )
        for pk in (f"DEDUP#{stream}", f"CONSUMER#{stream}"):
            keys = [self._key(pk, item["sk"]["S"]) for item in self._query(pk, keys_only=True)]
            self._batch_write([{"DeleteRequest": {"Key": k}} for k in keys])
        return "Attributes" in resp

    # --- dedup --------------------------------------------------------------------------
    def reserve(self, stream: str, msg_id: str, window_s: float, now: float, lease_s: float) -> Reservation:
        key = self._key(f"DEDUP#{stream}", msg_id)
        condition = "attribute_not_exists(pk) OR expires_at < :now"
        values: dict[str, Any] = {":now": _n(now)}
        for _ in range(3):
            if self._conditional_put(key, now, window_s, condition, values):
                return Reservation("new")
            resp = self._db.get_item(TableName=self.table, Key=key, ConsistentRead=True)
            item = resp.get("Item")
            if item is None or _num(item, "expires_at") < now:
                continue
            if item["state"]["S"] == _STORED:
                return Reservation("duplicate", int(_num(item, "seq")))
            if now - _num(item, "at") < lease_s:
                return Reservation("busy")
            # the publisher that reserved it is gone: take over its reservation
            condition = "#at = :old_at"
            values = {":old_at": item["at"]}
        raise ServiceUnavailableError(f"msg id {msg_id!r} on {stream}: reservation keeps changing")

    def _conditional_put(
        self, key: dict[str, Any], now: float, window_s: float, condition: str, values: dict[str, Any]
    ) -> bool:
        names = {"#at": "at"} if "#at" in condition else None
        try:
            self._db.put_item(
                TableName=self.table,
                Item={
                    **key,
                    "state": _s(_PENDING),
                    "at": _n(now),
                    "expires_at": _n(int(now + window_s) + 1),
                },
                ConditionExpression=condition,
                ExpressionAttributeValues=values,
                **({"ExpressionAttributeNames": names} if names else {}),
            )
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def mark_stored(
        self, stream: str, stored: Sequence[tuple[str, int]], now: float, window_s: float
    ) -> None:
        expires = _n(int(now + window_s) + 1)
        self._batch_write(
            [
                {
                    "PutRequest": {
                        "Item": {
                            **self._key(f"DEDUP#{stream}", msg_id),
                            "state": _s(_STORED),
                            "seq": _n(seq),
                            "at": _n(now),
                            "expires_at": expires,
                        }
                    }
                }
                for msg_id, seq in stored
            ]
        )

    def release(self, stream: str, msg_ids: Sequence[str]) -> None:
        """Forget reservations whose records could not be stored (so a retry is not a duplicate)."""
        self._batch_write([{"DeleteRequest": {"Key": self._key(f"DEDUP#{stream}", m)}} for m in msg_ids])

    # --- consumers ----------------------------------------------------------------------
    def consumer(self, stream: str, durable: str) -> dict[str, Any] | None:
        resp = self._db.get_item(
            TableName=self.table, Key=self._key(f"CONSUMER#{stream}", durable), ConsistentRead=True
        )
        item = resp.get("Item")
        if item is None:
            return None
        doc: dict[str, Any] = json.loads(item["doc"]["S"])
        return doc

    def put_consumer(self, stream: str, durable: str, doc: dict[str, Any]) -> None:
        self._db.put_item(
            TableName=self.table,
            Item={**self._key(f"CONSUMER#{stream}", durable), "doc": _s(json.dumps(doc, sort_keys=True))},
        )

    # --- helpers ------------------------------------------------------------------------
    def _key(self, pk: str, sk: str) -> dict[str, Any]:
        return {"pk": _s(pk), "sk": _s(sk)}

    def _query(self, pk: str, *, keys_only: bool = False) -> Iterator[dict[str, Any]]:
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": _s(pk)},
            "ConsistentRead": True,
        }
        if keys_only:
            kwargs["ProjectionExpression"] = "sk"
        while True:
            resp = self._db.query(**kwargs)
            yield from resp.get("Items", [])
            if "LastEvaluatedKey" not in resp:
                return
            kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]

    def _batch_write(self, requests: list[dict[str, Any]]) -> None:
        for i in range(0, len(requests), _BATCH_WRITE_MAX):
            pending: dict[str, Any] = {self.table: requests[i : i + _BATCH_WRITE_MAX]}
            for _ in range(8):
                resp = self._db.batch_write_item(RequestItems=pending)
                pending = resp.get("UnprocessedItems") or {}
                if not pending:
                    break
            else:
                raise ServiceUnavailableError(f"DynamoDB {self.table}: batch write kept being throttled")


def _stream_record(item: dict[str, Any]) -> StreamRecord:
    spec = StreamSpec(
        name=item["sk"]["S"],
        subjects=tuple(json.loads(item["subjects"]["S"])),
        max_bytes=int(_num(item, "max_bytes", -1)),
        max_age_s=_num(item, "max_age_s"),
        duplicate_window_s=_num(item, "dup_window_s", 120.0),
        description=item.get("description", {}).get("S", ""),
    )
    return StreamRecord(
        spec=spec,
        shard_count=int(_num(item, "shard_count", 1)),
        last_seq=int(_num(item, "last_seq")),
        messages=int(_num(item, "messages")),
        bytes=int(_num(item, "bytes")),
    )
