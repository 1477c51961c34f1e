"""One HTTP batch of device events → stream messages and per-event results (no HTTP here).

Each event is validated with :func:`~abasto.contracts.events.decode_event` and checked against the
login that sent it:

* invalid → ``rejected`` with the decoder's reason (``malformed_json``, ``invalid_field``,
  ``oversized``, ``future_timestamp``…), ``code`` 400, and published to ``dlq.pos``;
* another store than the login's → ``rejected``/``store_mismatch``, ``code`` 403, dead-lettered;
* another device than the URL's (or, for a device login, its own) → ``device_mismatch``, 403,
  dead-lettered;
* valid → published on ``pos.<store_id>.<device_id>`` with ``Nats-Msg-Id`` = ``device_id:seq``:
  ``accepted``, or ``duplicate`` if the stream already held it (a re-sent batch).

Dead letters carry ``Abasto-Reason``, ``Abasto-Detail``, ``Abasto-Origin-Subject`` and
``Abasto-Principal`` (the login) and a msg id derived from the login and the event's bytes, so a
re-sent batch does not dead-letter the same bytes twice.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, Literal

import msgspec

from abasto.contracts.events import decode_event
from abasto.devices.registry import DeviceCredentials, Principal
from abasto.errors import InvalidEventError, InvalidInputError
from abasto.stream.port import EventStream, OutgoingMessage
from abasto.stream.topology import (
    DETAIL_HEADER,
    DLQ_POS_SUBJECT,
    ORIGIN_SUBJECT_HEADER,
    REASON_HEADER,
    pos_subject,
)

PRINCIPAL_HEADER: Final = "Abasto-Principal"
Status = Literal["accepted", "duplicate", "rejected"]
_DETAIL_MAX: Final = 200
_raw_list: Final = msgspec.json.Decoder(list[msgspec.Raw])


@dataclass(frozen=True, slots=True)
class EventResult:
    index: int
    status: Status
    reason: str | None = None
    code: int = 200
    detail: str | None = None

    def to_dict(self) -> dict[str, object]:
        doc: dict[str, object] = {"index": self.index, "status": self.status, "code": self.code}
        if self.reason is not None:
            doc["reason"] = self.reason
        if self.detail is not None:
            doc["detail"] = self.detail
        return doc


def split_batch(body: bytes) -> list[bytes]:
    """The events of a body: a JSON array of events, or NDJSON (one event per non-blank line; a
    single JSON object is a one-line NDJSON). Raises InvalidInputError for a malformed array."""
    stripped = body.lstrip()
    if stripped.startswith(b"["):
        try:
            return [bytes(raw) for raw in _raw_list.decode(stripped)]
        except msgspec.DecodeError as exc:
            raise InvalidInputError(
                f"the body is not a valid JSON array: {exc}",
                hint="send a JSON array of abasto.pos/v1 events, or NDJSON (one event per line)",
            ) from exc
    return [line.strip() for line in body.split(b"\n") if line.strip()]


@dataclass(frozen=True, slots=True)
class _Plan:
    result: EventResult
    message: OutgoingMessage


def _dead_letter(raw: bytes, reason: str, detail: str, origin: str, principal: Principal) -> OutgoingMessage:
    digest = hashlib.sha256(raw).hexdigest()[:32]
    return OutgoingMessage(
        subject=DLQ_POS_SUBJECT,
        data=raw,
        msg_id=f"dlq:http:{principal.username}:{digest}",
        headers={
            REASON_HEADER: reason,
            DETAIL_HEADER: detail[:_DETAIL_MAX],
            ORIGIN_SUBJECT_HEADER: origin,
            PRINCIPAL_HEADER: principal.username,
        },
    )


def plan_event(index: int, raw: bytes, principal: Principal, device_id: str, *, now: datetime) -> _Plan:
    """What to publish for one event, and its result if the publish succeeds."""
    origin = pos_subject(principal.store_id, device_id)
    try:
        event = decode_event(raw, now=now)
    except InvalidEventError as exc:
        result = EventResult(index, "rejected", exc.reason, 400, exc.detail[:_DETAIL_MAX])
        return _Plan(result, _dead_letter(raw, exc.reason, exc.detail, origin, principal))
    mismatch: tuple[str, str] | None = None
    if event.store_id != principal.store_id:
        mismatch = (
            "store_mismatch",
            f"event store {event.store_id!r} is not the login's {principal.store_id!r}",
        )
    elif event.device_id != device_id:
        mismatch = ("device_mismatch", f"event device {event.device_id!r} is not {device_id!r}")
    if mismatch is not None:
        reason, detail = mismatch
        return _Plan(
            EventResult(index, "rejected", reason, 403, detail),
            _dead_letter(raw, reason, detail, origin, principal),
        )
    message = OutgoingMessage(pos_subject(event.store_id, event.device_id), raw, msg_id=event.msg_id)
    return _Plan(EventResult(index, "accepted"), message)


async def ingest_batch(
    stream: EventStream,
    principal: Principal,
    device_id: str,
    events: Sequence[bytes],
    *,
    now: datetime | None = None,
) -> list[EventResult]:
    """Validate, publish (valid → POS, rejected → DLQ) and wait for the stream's acknowledgements.

    Raises whatever :meth:`EventStream.publish_batch` raises (after the whole batch was attempted):
    then nothing may be reported as stored, and the device re-sends (deduplication makes it safe).
    """
    if isinstance(principal, DeviceCredentials) and principal.device_id != device_id:
        raise ValueError("the caller checks the URL's device against a device login")
    now = now or datetime.now(UTC)
    plans = [plan_event(i, raw, principal, device_id, now=now) for i, raw in enumerate(events)]
    published = await stream.publish_batch([p.message for p in plans])
    results = []
    for plan, stored in zip(plans, published, strict=True):
        result = plan.result
        if result.status == "accepted" and stored.duplicate:
            result = EventResult(result.index, "duplicate")
        results.append(result)
    return results
