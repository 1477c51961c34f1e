"""Duplicate detection by (device, seq): devices re-send, JetStream redelivers, MQTT retries."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class _DeviceSeqs:
    high: int = -1
    recent: set[int] = field(default_factory=set)


class SeqDeduper:
    """Remembers, per device, the sequence numbers seen within ``window`` of the highest one.

    A seq older than that window cannot be told apart from a duplicate and is treated as one.
    """

    def __init__(self, window: int = 50_000) -> None:
        self._window = window
        self._devices: dict[str, _DeviceSeqs] = {}

    def first_time(self, device_id: str, seq: int) -> bool:
        """True the first time (device_id, seq) is seen; records it."""
        dev = self._devices.get(device_id)
        if dev is None:
            dev = self._devices[device_id] = _DeviceSeqs()
        if seq <= dev.high - self._window or seq in dev.recent:
            return False
        dev.recent.add(seq)
        if seq > dev.high:
            dev.high = seq
            if len(dev.recent) > 2 * self._window:
                floor = dev.high - self._window
                dev.recent = {s for s in dev.recent if s > floor}
        return True

    # --- checkpoint ------------------------------------------------------------------------------
    def export(self) -> list[tuple[str, int, list[tuple[int, int]]]]:
        """Per device: (device_id, highest seq, remembered seqs as sorted inclusive ranges)."""
        return [(d, dev.high, _ranges(dev.recent)) for d, dev in self._devices.items()]

    def restore(self, devices: list[tuple[str, int, list[tuple[int, int]]]]) -> None:
        self._devices = {
            d: _DeviceSeqs(high, {s for lo, hi in ranges for s in range(lo, hi + 1)})
            for d, high, ranges in devices
        }


def _ranges(seqs: set[int]) -> list[tuple[int, int]]:
    """{1, 2, 3, 7} → [(1, 3), (7, 7)]: a device's seqs are mostly contiguous, so this stays small."""
    out: list[tuple[int, int]] = []
    for s in sorted(seqs):
        if out and s == out[-1][1] + 1:
            out[-1] = (out[-1][0], s)
        else:
            out.append((s, s))
    return out
