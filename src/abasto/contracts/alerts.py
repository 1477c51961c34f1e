"""Stockout alert event: what the stream processor emits and the rules/notify layer consumes.

The id is derived from (store, sku, episode) so the same episode never produces two alerts,
whichever worker or replay emits it. State machine: open → acknowledged → resolved | expired.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Final, Literal

import msgspec

AlertKind = Literal["projected_stockout", "sales_stopped"]
AlertState = Literal["open", "acknowledged", "resolved", "expired"]
ALERT_SOURCE: Final = "abasto.realtime"
ALERT_DETAIL_TYPE: Final = "Stockout Risk"

_TRANSITIONS: Final[dict[str, frozenset[str]]] = {
    "open": frozenset({"acknowledged", "resolved", "expired"}),
    "acknowledged": frozenset({"resolved", "expired"}),
    "resolved": frozenset(),
    "expired": frozenset(),
}


def alert_id(store_id: str, sku: str, episode: str) -> str:
    digest = hashlib.sha256(f"{store_id}|{sku}|{episode}".encode()).hexdigest()
    return f"al-{digest[:20]}"


def can_transition(current: AlertState, new: AlertState) -> bool:
    return new in _TRANSITIONS[current]


class Alert(msgspec.Struct, frozen=True, kw_only=True):
    alert_id: str
    kind: AlertKind
    store_id: str
    sku: str
    #: event time at which the processor raised it
    raised_at: datetime
    #: key of the episode this alert belongs to (stable across replays)
    episode: str
    risk: float
    on_hand_estimate: float
    expected_units_per_hour: float
    observed_units_per_hour: float
    projected_stockout_at: datetime | None
    next_delivery_at: datetime | None
    suggested_qty: int
    model_version: str
    region_id: str | None = None
    route_id: str | None = None
    channel: str | None = None
    big_customer: bool | None = None
    state: AlertState = "open"

    def to_event(self) -> dict[str, object]:
        """EventBridge-shaped envelope that the rule engine matches patterns against."""
        return {
            "version": "0",
            "id": self.alert_id,
            "source": ALERT_SOURCE,
            "detail-type": ALERT_DETAIL_TYPE,
            "time": self.raised_at.isoformat(),
            "resources": [f"store/{self.store_id}", f"sku/{self.sku}"],
            "detail": msgspec.to_builtins(self),
        }


_alert_decoder: Final = msgspec.json.Decoder(Alert)


def encode_alert(alert: Alert) -> bytes:
    return msgspec.json.encode(alert)


def decode_alert(data: bytes) -> Alert:
    return _alert_decoder.decode(data)
