"""Where delivered device events live in the raw zone, and how files are named.

```
<raw>/devices/pos_events/date=YYYY-MM-DD/hour=HH/part-<first_seq:020d>-<last_seq:020d>.parquet
<raw>/devices/pos_events/_delivery/batches/batch-<first_seq:020d>-<last_seq:020d>.json
<raw>/devices/pos_events/_delivery/dedup/written.json
```

``first_seq``/``last_seq`` are the lowest and highest stream sequence of the *batch* the file was
cut from; every partition file of one batch carries the batch's name, so the name says which batch
(and which manifest) it belongs to. Partitions are by the event's own time in UTC. The ``_delivery``
prefix (a hidden name for Hive-style readers, ``pyarrow.dataset`` and :func:`abasto.lake.storage.list_files`)
holds the batch manifests.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Final

from abasto.errors import InvalidInputError
from abasto.lake.storage import join_uri

__all__ = [
    "POS_EVENTS_PATH",
    "manifest_name",
    "parse_part_name",
    "part_name",
    "partition_of",
    "pos_events_uri",
]

#: the raw events table, relative to ``settings.raw_uri``
POS_EVENTS_PATH: Final = "devices/pos_events"
#: manifests of the batches, relative to the table root
LEDGER_DIR: Final = "_delivery/batches"
#: cross-batch dedup state folded from pruned manifests, relative to the table root
DEDUP_STATE: Final = "_delivery/dedup/written.json"

_PART: Final = re.compile(r"^part-(\d{20})-(\d{20})\.parquet$")


def pos_events_uri(raw_uri: str) -> str:
    """Root of the raw device-events table under the raw zone."""
    return join_uri(raw_uri, POS_EVENTS_PATH)


def partition_of(event_time: datetime) -> str:
    """``date=YYYY-MM-DD/hour=HH`` of an (aware) event time, in UTC.

    Raises:
        InvalidInputError: a naive timestamp.
    """
    if event_time.tzinfo is None:
        raise InvalidInputError("event_time must carry a time zone to be partitioned")
    utc = event_time.astimezone(UTC)
    return f"date={utc:%Y-%m-%d}/hour={utc:%H}"


def _check_range(first_seq: int, last_seq: int) -> None:
    if first_seq < 1 or last_seq < first_seq:
        raise InvalidInputError(f"bad stream sequence range {first_seq}..{last_seq}")


def part_name(first_seq: int, last_seq: int) -> str:
    """File name of a batch's file in one partition.

    Raises:
        InvalidInputError: ``first_seq`` < 1 or ``last_seq`` < ``first_seq``.
    """
    _check_range(first_seq, last_seq)
    return f"part-{first_seq:020d}-{last_seq:020d}.parquet"


def parse_part_name(name: str) -> tuple[int, int]:
    """``part-…-….parquet`` → (first_seq, last_seq).

    Raises:
        InvalidInputError: not a delivery file name.
    """
    match = _PART.match(name)
    if match is None:
        raise InvalidInputError(f"not a delivery file name: {name!r}")
    return int(match.group(1)), int(match.group(2))


def manifest_name(first_seq: int, last_seq: int) -> str:
    """File name of a batch manifest (under :data:`LEDGER_DIR`)."""
    _check_range(first_seq, last_seq)
    return f"batch-{first_seq:020d}-{last_seq:020d}.json"
