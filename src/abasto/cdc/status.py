"""Where the capture stands: the slot's position and lag, and what the raw zone says it holds."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from abasto.cdc.lsn import format_lsn
from abasto.cdc.replication import current_wal_lsn, slot_info
from abasto.cdc.state import StateStore
from abasto.sources.pg import connect


@dataclass(frozen=True, slots=True)
class CdcStatus:
    """Where the capture stands. Lags are in bytes of WAL."""

    slot: str
    exists: bool
    active: bool
    confirmed_lsn: int | None
    restart_lsn: int | None
    current_lsn: int
    lag_bytes: int | None
    retained_bytes: int | None
    raw_confirmed_lsn: int | None
    pending_end_lsn: int | None
    full_load_lsn: int | None

    def as_dict(self) -> dict[str, Any]:
        def lsn(value: int | None) -> str | None:
            return None if value is None else format_lsn(value)

        return {
            "slot": self.slot,
            "exists": self.exists,
            "active": self.active,
            "confirmed_lsn": lsn(self.confirmed_lsn),
            "restart_lsn": lsn(self.restart_lsn),
            "current_lsn": lsn(self.current_lsn),
            "lag_bytes": self.lag_bytes,
            "retained_bytes": self.retained_bytes,
            "raw_confirmed_lsn": lsn(self.raw_confirmed_lsn),
            "pending_end_lsn": lsn(self.pending_end_lsn),
            "full_load_lsn": lsn(self.full_load_lsn),
        }


def read_status(dsn: str, slot: str, states: StateStore) -> CdcStatus:
    """Raises:
    ServiceUnavailableError: PostgreSQL cannot be reached.
    """
    with connect(dsn, autocommit=True) as conn:
        info = slot_info(conn, slot)
        current = current_wal_lsn(conn)
    state = states.state()
    marker = states.full_load()
    confirmed = info.confirmed_flush_lsn if info else None
    restart = info.restart_lsn if info else None
    return CdcStatus(
        slot=slot,
        exists=info is not None,
        active=bool(info and info.active),
        confirmed_lsn=confirmed,
        restart_lsn=restart,
        current_lsn=current,
        lag_bytes=None if confirmed is None else max(0, current - confirmed),
        retained_bytes=None if restart is None else max(0, current - restart),
        raw_confirmed_lsn=state.confirmed if state else None,
        pending_end_lsn=state.pending_end if state else None,
        full_load_lsn=marker.lsn if marker else None,
    )
