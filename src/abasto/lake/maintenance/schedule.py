"""When a table is due for maintenance: its last run is recorded as a table property.

``abasto.maintenance.last-run`` holds the ISO time of the last completed run and
``abasto.maintenance.interval`` (optional, e.g. ``12h``) overrides the default interval, so a
worker can call :func:`due` periodically and :func:`record_run` afterwards.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from pyiceberg.exceptions import CommitFailedException
from pyiceberg.table import Table

from abasto.errors import InvalidInputError, TransientError

__all__ = [
    "DEFAULT_INTERVAL",
    "INTERVAL_PROPERTY",
    "LAST_RUN_PROPERTY",
    "due",
    "last_run",
    "parse_duration",
    "record_run",
]

LAST_RUN_PROPERTY = "abasto.maintenance.last-run"
INTERVAL_PROPERTY = "abasto.maintenance.interval"
DEFAULT_INTERVAL = timedelta(hours=24)

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(text: str) -> timedelta:
    """``30s``, ``15m``, ``12h``, ``3d``, ``2w`` as a timedelta.

    Raises:
        InvalidInputError: not one of those forms.
    """
    m = _DURATION.match(text)
    if not m:
        raise InvalidInputError(
            f"invalid duration {text!r}", hint="use a number and a unit: 30m, 12h, 3d, 1w"
        )
    return timedelta(**{_UNITS[m.group(2)]: float(m.group(1))})


def last_run(table: Table) -> datetime | None:
    """When maintenance last completed on ``table`` (``None`` if never or unreadable)."""
    value = table.properties.get(LAST_RUN_PROPERTY)
    if not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def due(table: Table, now: datetime, *, interval: timedelta | None = None) -> bool:
    """Whether ``table`` should be maintained at ``now``.

    The interval is ``interval``, else the table's ``abasto.maintenance.interval``, else 24 h.
    """
    if interval is None:
        prop = table.properties.get(INTERVAL_PROPERTY)
        interval = parse_duration(prop) if prop else DEFAULT_INTERVAL
    previous = last_run(table)
    return previous is None or now - previous >= interval


def record_run(table: Table, now: datetime) -> Table:
    """Record ``now`` as the table's last maintenance (a metadata-only commit).

    Raises:
        TransientError: the property commit lost to a concurrent commit.
    """
    try:
        with table.transaction() as tx:
            tx.set_properties({LAST_RUN_PROPERTY: now.isoformat()})
    except CommitFailedException as exc:
        raise TransientError(f"cannot record the maintenance run: {exc}") from exc
    return table
