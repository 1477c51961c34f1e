"""The alerts the warehouse accepts: an Arrow table with the columns of :data:`ALERTS_SCHEMA`.

The stream processor publishes :class:`~abasto.contracts.alerts.Alert` events on the ``ALERTS``
JetStream stream; whoever collects them (a consumer, a replay, a test) hands the build an Arrow
table, e.g. ``alerts_table(alerts)``. Extra columns are ignored; missing ones are an error.
"""

from __future__ import annotations

from collections.abc import Iterable

import pyarrow as pa

from abasto.contracts.alerts import Alert
from abasto.errors import InvalidInputError

__all__ = ["ALERTS_SCHEMA", "alerts_table", "conform_alerts"]

_TS = pa.timestamp("us", tz="UTC")

ALERTS_SCHEMA = pa.schema(
    [
        ("alert_id", pa.string()),
        ("kind", pa.string()),
        ("store_id", pa.string()),
        ("sku", pa.string()),
        ("raised_at", _TS),
        ("risk", pa.float64()),
        ("suggested_qty", pa.int64()),
        ("projected_stockout_at", _TS),
        ("model_version", pa.string()),
        ("state", pa.string()),
    ]
)


def alerts_table(alerts: Iterable[Alert]) -> pa.Table:
    """The Arrow table of ``alerts`` (latest state per alert id wins, in iteration order)."""
    latest: dict[str, Alert] = {a.alert_id: a for a in alerts}
    rows = [{name: getattr(a, name) for name in ALERTS_SCHEMA.names} for a in latest.values()]
    return pa.Table.from_pylist(rows, schema=ALERTS_SCHEMA)


def conform_alerts(table: pa.Table) -> pa.Table:
    """``table`` reduced and cast to :data:`ALERTS_SCHEMA`.

    Raises:
        InvalidInputError: a column is missing or cannot be cast.
    """
    missing = [n for n in ALERTS_SCHEMA.names if n not in table.column_names]
    if missing:
        raise InvalidInputError(f"alerts table lacks columns {', '.join(missing)}")
    try:
        return table.select(ALERTS_SCHEMA.names).cast(ALERTS_SCHEMA)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise InvalidInputError(f"alerts table has wrong types: {exc}") from exc
