"""The raw device-events files (``<raw>/devices/pos_events/date=…/hour=…/part-….parquet``) and the
ledger of those a curated device table already holds.

Unlike change-capture files, device files do not arrive in name order: a late event lands in an
old ``date=/hour=`` partition, after newer partitions were curated. The ledger is therefore the
*set* of applied files (relative paths), kept in the curated table's properties so it commits
atomically with the data: a file is pending iff it is not in the set. The set is stored
zlib-compressed and base64-encoded (the names are highly repetitive) under
:data:`PROP_APPLIED`, with its size under :data:`PROP_FILES`.
"""

from __future__ import annotations

import base64
import re
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Final

from abasto.delivery.layout import POS_EVENTS_PATH, parse_part_name, pos_events_uri
from abasto.errors import InvalidInputError
from abasto.lake.storage import list_files

__all__ = [
    "PROP_APPLIED",
    "PROP_FILES",
    "DeviceFile",
    "DeviceLedger",
    "discover_device_files",
]

PROP_APPLIED: Final = "abasto.devices.applied"
PROP_FILES: Final = "abasto.devices.files"

_PARTITION: Final = re.compile(r"^date=(\d{4}-\d{2}-\d{2})/hour=(\d{2})$")


@dataclass(frozen=True)
class DeviceFile:
    """One raw device-events file; ``relpath`` is relative to ``<raw>/devices/pos_events``;
    ``first_seq``/``last_seq`` are the stream sequences of the batch it was cut from."""

    relpath: str
    uri: str
    day: date
    hour: int
    first_seq: int
    last_seq: int

    @property
    def partition(self) -> str:
        """``date=YYYY-MM-DD/hour=HH``: the UTC hour of every event in the file."""
        return self.relpath.rsplit("/", 1)[0]

    @property
    def hour_start(self) -> datetime:
        """The UTC hour of the partition."""
        return datetime(self.day.year, self.day.month, self.day.day, self.hour, tzinfo=UTC)

    @property
    def key(self) -> str:
        """Path relative to the raw zone (``devices/pos_events/…``)."""
        return f"{POS_EVENTS_PATH}/{self.relpath}"

    @classmethod
    def parse(cls, relpath: str, uri: str = "") -> DeviceFile:
        """A file from its path relative to the events table root.

        Raises:
            InvalidInputError: the path is not ``date=YYYY-MM-DD/hour=HH/part-<seq>-<seq>.parquet``.
        """
        head, _, name = relpath.rpartition("/")
        match = _PARTITION.match(head)
        if match is None:
            raise InvalidInputError(
                f"not a device-events file path: {relpath!r}",
                hint="expected date=YYYY-MM-DD/hour=HH/part-<first_seq>-<last_seq>.parquet",
            )
        try:
            day = date.fromisoformat(match.group(1))
        except ValueError as exc:
            raise InvalidInputError(f"bad date in device-events path {relpath!r}: {exc}") from exc
        hour = int(match.group(2))
        if hour > 23:
            raise InvalidInputError(f"bad hour in device-events path {relpath!r}")
        first, last = parse_part_name(name)
        return cls(relpath, uri, day, hour, first, last)


def discover_device_files(raw_uri: str) -> list[DeviceFile]:
    """Every device-events file of the raw zone, sorted by path (hidden ``_delivery`` excluded).

    Raises:
        InvalidInputError: a stray file under the table root breaks the layout.
    """
    root = pos_events_uri(raw_uri)
    return [DeviceFile.parse(f.relpath, f.uri) for f in list_files(root, suffix=".parquet")]


@dataclass(frozen=True)
class DeviceLedger:
    """Relative paths of the device files a curated table holds."""

    applied: frozenset[str] = frozenset()

    @classmethod
    def from_properties(cls, props: Mapping[str, str]) -> DeviceLedger:
        """The ledger kept in a table's properties (empty when there is none).

        Raises:
            InvalidInputError: the property is not a ledger this module wrote.
        """
        raw = props.get(PROP_APPLIED)
        if not raw:
            return cls()
        try:
            text = zlib.decompress(base64.b64decode(raw)).decode()
        except (ValueError, zlib.error) as exc:
            raise InvalidInputError(
                f"table property {PROP_APPLIED} is not a device-files ledger: {exc}",
                hint="the property is written by abasto.lake.device_tables only; do not edit it",
            ) from exc
        return cls(frozenset(p for p in text.split("\n") if p))

    @property
    def files(self) -> int:
        return len(self.applied)

    def pending(self, files: Iterable[DeviceFile]) -> list[DeviceFile]:
        """Files not applied yet, sorted by path."""
        return sorted((f for f in files if f.relpath not in self.applied), key=lambda f: f.relpath)

    def advance(self, applied: Sequence[DeviceFile]) -> DeviceLedger:
        return DeviceLedger(self.applied | {f.relpath for f in applied})

    def as_properties(self) -> dict[str, str]:
        text = "\n".join(sorted(self.applied)).encode()
        return {
            PROP_APPLIED: base64.b64encode(zlib.compress(text, 6)).decode(),
            PROP_FILES: str(len(self.applied)),
        }
