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
