"""Device event decoding: abasto's validating decoder vs an untyped JSON decode of the same bytes."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from abasto.benchmarks.harness import Figure, rate
from abasto.contracts.events import DeviceEvent, SaleScan, decode_event, encode_event


def run(*, quick: bool = False) -> list[Figure]:
    n = 20_000 if quick else 100_000
    t0 = datetime(2026, 10, 13, 12, tzinfo=UTC)
    payloads = [
        encode_event(
            DeviceEvent(device_id=f"dev-S{i % 500:04d}-1", store_id=f"S{i % 500:04d}", seq=i,
                        event_time=t0 + timedelta(seconds=i), payload=SaleScan(sku="COLA-600-NR", qty=2,
                                                                               price=16.0))
        )
        for i in range(n)
    ]

    def abasto_decode() -> int:
        for p in payloads:
            decode_event(p)
        return n

    def plain_json() -> int:
        for p in payloads:
            json.loads(p)
        return n

    return [Figure("decode_events_per_s", "events/s", rate(abasto_decode), "json.loads events/s",
                   rate(plain_json))]
