"""Packing user records into KPL aggregates and storing them with PutRecords (blocking, retried)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from abasto.stream.kinesis_agg import AGG_OVERHEAD, aggregate, record_cost

#: Kinesis limits: a record's data + partition key ≤ 1 MiB; PutRecords ≤ 500 records and ≤ 5 MiB
MAX_RECORD_BYTES: Final = 1024 * 1024
_PUT_MAX_RECORDS: Final = 500
_PUT_MAX_BYTES: Final = 5 * 1024 * 1024
_RETRYABLE: Final = frozenset({"ProvisionedThroughputExceededException", "InternalFailure"})


@dataclass(frozen=True, slots=True)
class KinesisRecord:
    """One Kinesis record: ``members`` are the caller's indices of the user records inside."""

    partition_key: str
    data: bytes
    members: tuple[int, ...]


def pack(items: Sequence[tuple[int, str, bytes]], *, max_bytes: int, max_records: int) -> list[KinesisRecord]:
    """Aggregate ``(index, partition key, payload)`` per partition key, in order, under the limits.

    A partition key's user records stay in their order; a lone record is sent plain.
    """
    by_key: dict[str, list[tuple[int, bytes]]] = {}
    for index, key, payload in items:
        by_key.setdefault(key, []).append((index, payload))
    out: list[KinesisRecord] = []
    for key, members in by_key.items():
        limit = max_bytes - len(key.encode()) - AGG_OVERHEAD - len(key.encode()) - 8
        group: list[tuple[int, bytes]] = []
        size = 0
        for index, payload in members:
            cost = record_cost(payload)
            if group and (size + cost > limit or len(group) >= max_records):
                out.append(_record(key, group))
                group, size = [], 0
            group.append((index, payload))
            size += cost
        if group:
            out.append(_record(key, group))
    return out


def _record(key: str, group: list[tuple[int, bytes]]) -> KinesisRecord:
    members = tuple(i for i, _ in group)
    if len(group) == 1:
        return KinesisRecord(key, group[0][1], members)
    return KinesisRecord(key, aggregate(key, [p for _, p in group]), members)


def put_all(
    kinesis: Any, stream_name: str, records: Sequence[KinesisRecord], *, attempts: int = 5
) -> list[str | None]:
    """PutRecords in chunks, retrying throttled entries with backoff.

    Returns, per record, None if stored or the error code of its last attempt. Errors of a whole
    call (stream missing, access denied, connection) propagate.
    """
    errors: list[str | None] = ["NotAttempted"] * len(records)
    for chunk in _chunks(records):
        pending = chunk
        for attempt in range(attempts):
            resp = kinesis.put_records(
                StreamName=stream_name,
                Records=[
                    {"Data": records[i].data, "PartitionKey": records[i].partition_key} for i in pending
                ],
            )
            retry: list[int] = []
            for i, entry in zip(pending, resp["Records"], strict=True):
                code = entry.get("ErrorCode")
                errors[i] = code
                if code in _RETRYABLE:
                    retry.append(i)
            if not retry:
                break
            pending = retry
            if attempt + 1 < attempts:
                time.sleep(min(1.0, 0.05 * 2**attempt))
    return errors


def _chunks(records: Sequence[KinesisRecord]) -> list[list[int]]:
    chunks: list[list[int]] = []
    current: list[int] = []
    size = 0
    for i, rec in enumerate(records):
        rec_size = len(rec.data) + len(rec.partition_key.encode())
        if current and (len(current) >= _PUT_MAX_RECORDS or size + rec_size > _PUT_MAX_BYTES):
            chunks.append(current)
            current, size = [], 0
        current.append(i)
        size += rec_size
    if current:
        chunks.append(current)
    return chunks
