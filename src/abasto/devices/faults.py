"""Deterministic fault injection for the device simulator: what misbehaving devices send.

Takes the simulator's events (:func:`abasto.devices.simulator.expand_day` / ``expand_live_day``,
in send order) and returns the raw messages a faulty fleet would publish, with a ground-truth
manifest of what a correct processor must make of each one. Faults, each drawn per source event
with its own rate (at most one fault per event; seeded, so a seed always gives the same run):

* ``duplicate`` — the event is sent again (same device and seq, same bytes) a few messages later:
  the original is accepted, the copy counted as a duplicate;
* ``late`` — the event (event time unchanged) is held back and delivered only once its store's
  newest accepted event is more than the allowed lateness past it: accepted, counted late;
* ``malformed`` — the device sends broken bytes instead of the event: truncated JSON, non-JSON,
  wrong types, a missing field, an unknown schema or payload type, a timestamp without time zone,
  an oversized payload; rejected with the decoder's reason;
* ``skew`` — the device clock is ahead (within ``MAX_FUTURE_SKEW``) or behind by minutes: accepted
  (a clock behind can make the event late);
* ``far_future`` — the device clock is ahead by more than ``MAX_FUTURE_SKEW``: rejected as
  ``future_timestamp`` by a processor whose clock says when the message was sent (``sent_at``);
* ``spoof`` — the device claims another store in the payload while publishing on its own store's
  topic with its own credentials: rejected as ``store_mismatch``.

A malformed, far-future or spoofed message replaces the event (its seq is used up); a duplicate is
an extra message. Each message carries ``sent_at``: the fleet's true time when it was sent (the
newest true event time so far, or the later time a held-back event is finally sent), so a test can
drive the processor's clock with it.
"""

from __future__ import annotations

import bisect
import dataclasses
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final, Literal

import msgspec

from abasto.contracts.events import MAX_EVENT_BYTES, MAX_FUTURE_SKEW, DeviceEvent, encode_event
from abasto.stream.topology import pos_subject, pos_topic

Outcome = Literal["accepted", "duplicate", "rejected"]

FAULT_KINDS: Final = ("duplicate", "late", "malformed", "skew", "far_future", "spoof")
#: malformed variants and the decoder's reason for each (abasto.contracts.events.decode_event)
MALFORMED: Final[dict[str, str]] = {
    "truncated_json": "malformed_json",
    "not_json": "malformed_json",
    "wrong_type": "invalid_field",
    "missing_field": "invalid_field",
    "unknown_schema": "invalid_field",
    "unknown_payload_type": "invalid_field",
    "naive_timestamp": "naive_timestamp",
    "oversized": "oversized",
}
_MINUTE: Final = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class FaultRates:
    """Probability of each fault per source event (at most one fault per event; sum ≤ 1)."""

    duplicate: float = 0.0
    late: float = 0.0
    malformed: float = 0.0
    skew: float = 0.0
    far_future: float = 0.0
    spoof: float = 0.0

    def __post_init__(self) -> None:
        values = [getattr(self, k) for k in FAULT_KINDS]
        if any(not 0.0 <= v <= 1.0 for v in values) or sum(values) > 1.0 + 1e-9:
            raise ValueError(f"fault rates must be in [0, 1] and sum to at most 1: {self}")

    def pick(self, r: float) -> str:
        """The fault for a uniform draw ``r`` in [0, 1): ``"none"`` with the remaining probability."""
        acc = 0.0
        for kind in FAULT_KINDS:
            acc += getattr(self, kind)
            if r < acc:
                return kind
        return "none"


@dataclass(frozen=True, slots=True)
class FaultyMessage:
    """One message as a device publishes it: on its store's topic, with its own credentials."""

    #: the store whose topic (and credentials) the device uses; not necessarily the payload's
    store_id: str
    device_id: str
    data: bytes
    #: true time at which the device sends it (drive the processor's clock with this)
    sent_at: datetime

    @property
    def subject(self) -> str:
        return pos_subject(self.store_id, self.device_id)

    @property
    def topic(self) -> str:
        return pos_topic(self.store_id, self.device_id)


@dataclass(frozen=True, slots=True)
class Expected:
    """Ground truth for one message: what a correct processor makes of it."""

    #: ``none``, a kind of FAULT_KINDS, or ``malformed:<variant>``
    fault: str
    outcome: Outcome
    #: the rejection reason (dead-letter code) when ``outcome == "rejected"``
    reason: str | None = None
    #: accepted behind the store's watermark (the processor counts it late)
    late: bool = False
    #: ``device_id:seq`` of the event the message stands for
    msg_id: str = ""


@dataclass(frozen=True, slots=True)
class ExpectedCounts:
    accepted: int
    duplicates: int
    late: int
    rejected: Counter[str]


@dataclass(frozen=True, slots=True)
class FaultInjection:
    """Messages in send order, and one manifest entry per message."""

    messages: list[FaultyMessage]
    manifest: list[Expected]
    #: source events drawn for ``late`` that could not be held back far enough (sent on time)
    unplaced_late: int = 0
    #: faults drawn per kind (``malformed`` counted once, whatever the variant)
    drawn: Counter[str] = field(default_factory=Counter)

    def counts(self) -> ExpectedCounts:
        return ExpectedCounts(
            accepted=sum(e.outcome == "accepted" for e in self.manifest),
            duplicates=sum(e.outcome == "duplicate" for e in self.manifest),
            late=sum(e.late for e in self.manifest),
            rejected=Counter(e.reason for e in self.manifest if e.reason is not None),
        )

    def faults(self) -> Counter[str]:
        """Messages per injected fault kind (``malformed:*`` folded into ``malformed``)."""
        return Counter(e.fault.split(":", 1)[0] for e in self.manifest if e.fault != "none")


@dataclass(slots=True)
class _Slot:
    key: tuple[int, int, int]
    message: FaultyMessage
    expected: Expected
    #: event time the processor applies (accepted messages only)
    applied_at: datetime | None = None


def inject_faults(
    events: Sequence[DeviceEvent],
    rates: FaultRates,
    *,
    seed: int = 0,
    allowed_lateness: timedelta = timedelta(seconds=300),
    late_margin: timedelta = _MINUTE,
    late_spread: timedelta = timedelta(minutes=30),
    max_skew_behind: timedelta = timedelta(minutes=30),
    duplicate_max_gap: int = 50,
    clocked: bool = True,
) -> FaultInjection:
    """Faulty messages for ``events`` (in send order) with their manifest.

    ``allowed_lateness`` must be the processor's (``DetectorTuning.allowed_lateness_s``): late
    events are held back until their store's newest accepted event is at least
    ``allowed_lateness + late_margin`` (plus up to ``late_spread``) past them. ``clocked``: the
    processor rejects far-future events (it has a clock); without one they are accepted.
    """
    rng = random.Random(seed)
    stores = sorted({e.store_id for e in events})
    sent_at: list[datetime] = []
    for e in events:
        sent_at.append(e.event_time if not sent_at or e.event_time > sent_at[-1] else sent_at[-1])
    last = len(events) - 1
    slots: list[_Slot] = []
    held: list[tuple[int, DeviceEvent]] = []
    drawn: Counter[str] = Counter()
    extra = 0

    def add(key: tuple[int, int, int], event: DeviceEvent, data: bytes, expected: Expected, at: int) -> None:
        msg = FaultyMessage(event.store_id, event.device_id, data, sent_at[at])
        accepted = expected.outcome == "accepted"
        slots.append(_Slot(key, msg, expected, event.event_time if accepted else None))

    for i, event in enumerate(events):
        kind = rates.pick(rng.random())
        drawn[kind] += kind != "none"
        data = encode_event(event)
        if kind == "none":
            add((i, 0, 0), event, data, Expected("none", "accepted", msg_id=event.msg_id), i)
        elif kind == "duplicate":
            add((i, 0, 0), event, data, Expected("none", "accepted", msg_id=event.msg_id), i)
            anchor = min(i + rng.randint(1, max(1, duplicate_max_gap)), last)
            extra += 1
            add(
                (anchor, 1, extra),
                event,
                data,
                Expected("duplicate", "duplicate", msg_id=event.msg_id),
                anchor,
            )
        elif kind == "late":
            held.append((i, event))
        elif kind == "malformed":
            variant = rng.choice(sorted(MALFORMED))
            bad = _malformed(event, variant, rng)
            expected = Expected(f"malformed:{variant}", "rejected", MALFORMED[variant], msg_id=event.msg_id)
            add((i, 0, 0), event, bad, expected, i)
        elif kind == "skew":
            if rng.random() < 0.5:
                offset = _uniform(rng, _MINUTE, MAX_FUTURE_SKEW - _MINUTE)
            else:
                offset = -_uniform(rng, _MINUTE, max(max_skew_behind, _MINUTE))
            skewed = msgspec.structs.replace(event, event_time=event.event_time + offset)
            add((i, 0, 0), skewed, encode_event(skewed), Expected("skew", "accepted", msg_id=event.msg_id), i)
        elif kind == "far_future":
            ahead = sent_at[i] + MAX_FUTURE_SKEW + _uniform(rng, _MINUTE, timedelta(hours=6))
            future = msgspec.structs.replace(event, event_time=ahead)
            expected = (
                Expected("far_future", "rejected", "future_timestamp", msg_id=event.msg_id)
                if clocked
                else Expected("far_future", "accepted", msg_id=event.msg_id)
            )
            add((i, 0, 0), future, encode_event(future), expected, i)
        else:  # spoof: the payload names another store; topic and credentials stay its own
            others = [s for s in stores if s != event.store_id] or [f"{event.store_id}-X"]
            lie = msgspec.structs.replace(event, store_id=rng.choice(others))
            msg = FaultyMessage(event.store_id, event.device_id, encode_event(lie), sent_at[i])
            expected = Expected("spoof", "rejected", "store_mismatch", msg_id=event.msg_id)
            slots.append(_Slot((i, 0, 0), msg, expected))

    unplaced = _hold_back(
        held, slots, sent_at, rng, allowed_lateness + late_margin, late_spread, start_extra=extra
    )
    slots.sort(key=lambda s: s.key)
    manifest = _with_lateness(slots, allowed_lateness)
    return FaultInjection(
        messages=[s.message for s in slots], manifest=manifest, unplaced_late=unplaced, drawn=drawn
    )


def _hold_back(
    held: list[tuple[int, DeviceEvent]],
    slots: list[_Slot],
    sent_at: list[datetime],
    rng: random.Random,
    min_delay: timedelta,
    spread: timedelta,
    *,
    start_extra: int,
) -> int:
    """Place each held event after the first message that puts its store far enough ahead.

    Only accepted messages at their own position move a store's watermark, so the running maximum
    of those is a lower bound of what the processor has seen there: beyond it the event is late.
    Events with no such position (the store's end of day) are sent on time, unfaulted.
    """
    by_store: dict[str, tuple[list[datetime], list[int]]] = {}
    for s in sorted(slots, key=lambda s: s.key):
        if s.applied_at is None or s.key[1] != 0:
            continue
        maxima, positions = by_store.setdefault(s.message.store_id, ([], []))
        maxima.append(s.applied_at if not maxima or s.applied_at > maxima[-1] else maxima[-1])
        positions.append(s.key[0])
    unplaced, extra = 0, start_extra
    for i, event in held:
        maxima, positions = by_store.get(event.store_id, ([], []))
        target = event.event_time + min_delay + _uniform(rng, timedelta(0), spread)
        k = bisect.bisect_right(maxima, target)
        # the first position (after i) where the store's newest event is past the target
        while k < len(positions) and positions[k] <= i:
            k += 1
        extra += 1
        data = encode_event(event)
        if k >= len(positions):
            unplaced += 1
            expected = Expected("none", "accepted", msg_id=event.msg_id)
            msg = FaultyMessage(event.store_id, event.device_id, data, sent_at[i])
            slots.append(_Slot((i, 0, 0), msg, expected, event.event_time))
            continue
        anchor = positions[k]
        msg = FaultyMessage(event.store_id, event.device_id, data, sent_at[anchor])
        slots.append(
            _Slot(
                (anchor, 2, extra), msg, Expected("late", "accepted", msg_id=event.msg_id), event.event_time
            )
        )
    return unplaced


def _with_lateness(slots: list[_Slot], lateness: timedelta) -> list[Expected]:
    """The manifest, with ``late`` set where the store's watermark (newest accepted − lateness)
    is already past the event when it arrives — as the processor's per-store watermark sees it."""
    newest: dict[str, datetime] = {}
    out: list[Expected] = []
    for s in slots:
        at = s.applied_at
        if at is None:
            out.append(s.expected)
            continue
        store = s.message.store_id
        top = newest.get(store)
        late = top is not None and at < top - lateness
        if top is None or at > top:
            newest[store] = at
        out.append(dataclasses.replace(s.expected, late=late) if late else s.expected)
    return out


def _uniform(rng: random.Random, low: timedelta, high: timedelta) -> timedelta:
    return low + (high - low) * rng.random()


def _malformed(event: DeviceEvent, variant: str, rng: random.Random) -> bytes:
    """Bytes that fail decoding with MALFORMED[variant] as the reason."""
    raw = encode_event(event)
    doc: dict[str, Any] = msgspec.json.decode(raw)
    if variant == "truncated_json":
        return raw[: rng.randint(1, len(raw) - 1)]
    if variant == "not_json":
        return b"POS " + str(rng.getrandbits(64)).encode()
    if variant == "wrong_type":
        field_name = rng.choice(["seq", "event_time", "store_id"])
        doc[field_name] = str(doc[field_name]) if field_name == "seq" else rng.randint(1, 10**9)
    elif variant == "missing_field":
        del doc[rng.choice(["device_id", "store_id", "seq", "event_time", "payload"])]
    elif variant == "unknown_schema":
        doc["schema"] = f"abasto.pos/v{rng.randint(2, 9)}"
    elif variant == "unknown_payload_type":
        doc["payload"] = {"type": "coupon", "code": "2X1"}
    elif variant == "naive_timestamp":
        doc["event_time"] = event.event_time.replace(tzinfo=None).isoformat()
    elif variant == "oversized":
        doc["padding"] = "x" * (MAX_EVENT_BYTES + rng.randint(1, 4096))
    else:
        raise ValueError(f"unknown malformed variant {variant!r}")
    return msgspec.json.encode(doc)
