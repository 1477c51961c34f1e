"""Event-time watermark: the newest event time seen minus the allowed lateness.

The processor keeps one per store: a store's devices publish in order over one connection, while
stores reach the stream interleaved (one lagging connection must not make every other store's
events late, nor make the lagging store look silent).
"""

from __future__ import annotations

from datetime import datetime, timedelta

_HOUR = timedelta(hours=1)


class Watermark:
    def __init__(self, allowed_lateness: timedelta) -> None:
        self._lateness = allowed_lateness
        self._max: datetime | None = None
        #: ``_max − lateness``, kept with ``_max``
        self._current: datetime | None = None
        self._last_hour: datetime | None = None

    @property
    def current(self) -> datetime | None:
        return self._current

    def is_late(self, event_time: datetime) -> bool:
        wm = self._current
        return wm is not None and event_time < wm

    def observe(self, event_time: datetime) -> None:
        if self._max is None or event_time > self._max:
            self._max = event_time
            self._current = event_time - self._lateness

    def hours_crossed(self, max_hours: int) -> list[datetime]:
        """Hour boundaries the watermark passed since the last call (at most the last ``max_hours``).

        The first call only sets the starting hour.
        """
        wm = self._current
        if wm is None:
            return []
        hour = wm.replace(minute=0, second=0, microsecond=0)
        last, self._last_hour = self._last_hour, max(hour, self._last_hour or hour)
        if last is None or hour <= last:
            return []
        n = int((hour - last) / _HOUR)
        return [last + k * _HOUR for k in range(max(1, n - max_hours + 1), n + 1)]

    def crossing_from(self) -> datetime | None:
        """The newest event time from which :meth:`hours_crossed` can report an hour again (None:
        any event may); an event older than it cannot move the watermark across an hour."""
        if self._last_hour is None:
            return None
        return self._last_hour + _HOUR + self._lateness

    # --- checkpoint ------------------------------------------------------------------------------
    def export(self) -> tuple[datetime | None, datetime | None]:
        """(newest event time, last hour reported): all the watermark remembers."""
        return self._max, self._last_hour

    def restore(self, newest: datetime | None, last_hour: datetime | None) -> None:
        self._max, self._last_hour = newest, last_hour
        self._current = None if newest is None else newest - self._lateness
