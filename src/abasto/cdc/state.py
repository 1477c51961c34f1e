"""The capture's bookkeeping in the raw zone (``<raw>/_cdc/<slot>/``), next to the files it describes.

``full_load.json`` says a full load completed at an LSN (capture refuses to start without it).
``state.json`` holds ``confirmed`` — everything committed before it is durable in the raw zone —
and ``pending_end`` — a batch whose files are being renamed into place ends there. After a crash
with ``pending_end`` set, the same batch is read again up to exactly that LSN, which reproduces the
same file names, and files already present are skipped: no duplicates, no gaps.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from abasto.cdc.lsn import format_lsn
from abasto.cdc.raw_zone import CONTROL_DIR, RawZone


@dataclass(frozen=True, slots=True)
class CaptureState:
    confirmed: int
    pending_end: int | None = None


@dataclass(frozen=True, slots=True)
class FullLoadMarker:
    lsn: int
    tables: dict[str, int]
    completed_at: str


class StateStore:
    """Reads and atomically replaces the bookkeeping files of one slot."""

    def __init__(self, raw: RawZone, slot: str) -> None:
        self.raw = raw
        self.folder = f"{CONTROL_DIR}/{slot}"

    def state(self) -> CaptureState | None:
        data = self.raw.read_json(f"{self.folder}/state.json")
        if data is None:
            return None
        pending = data.get("pending_end")
        return CaptureState(confirmed=int(data["confirmed"]), pending_end=int(pending) if pending else None)

    def save_state(self, state: CaptureState) -> None:
        data: dict[str, Any] = {
            "confirmed": state.confirmed,
            "confirmed_lsn": format_lsn(state.confirmed),
            "pending_end": state.pending_end,
            "updated_at": datetime.now(UTC).isoformat(),
        }
        self.raw.write_json(f"{self.folder}/state.json", data)

    def full_load(self) -> FullLoadMarker | None:
        data = self.raw.read_json(f"{self.folder}/full_load.json")
        if data is None:
            return None
        return FullLoadMarker(
            lsn=int(data["lsn"]),
            tables=dict(data.get("tables", {})),
            completed_at=str(data.get("completed_at")),
        )

    def save_full_load(self, lsn: int, tables: dict[str, int]) -> None:
        self.raw.write_json(
            f"{self.folder}/full_load.json",
            {
                "lsn": lsn,
                "lsn_text": format_lsn(lsn),
                "tables": tables,
                "completed_at": datetime.now(UTC).isoformat(),
            },
        )

    def clear(self) -> None:
        for name in ("state.json", "full_load.json"):
            path = self.raw.path(f"{self.folder}/{name}")
            if self.raw.exists(f"{self.folder}/{name}"):
                self.raw.fs.delete_file(path)
