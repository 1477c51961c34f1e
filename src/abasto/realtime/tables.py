"""Read the world's tables (pyarrow, pandas or plain rows) as Python dicts."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any


def rows(table: Any) -> list[dict[str, Any]]:
    """Rows of a pyarrow Table, a pandas DataFrame or an iterable of mappings; NaN → None."""
    if table is None:
        return []
    if hasattr(table, "to_pylist"):
        out: list[dict[str, Any]] = table.to_pylist()
        return out
    if hasattr(table, "to_dict") and hasattr(table, "columns"):
        records: list[dict[str, Any]] = table.to_dict("records")
        return [{k: _clean(v) for k, v in r.items()} for r in records]
    if isinstance(table, Iterable):
        return [dict(r) for r in table if isinstance(r, Mapping)]
    raise TypeError(f"cannot read rows from {type(table).__name__}")


def _clean(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if value.__class__.__name__ == "NaTType":
        return None
    if hasattr(value, "to_pydatetime"):
        return value.to_pydatetime()
    if hasattr(value, "tolist") and not isinstance(value, str | bytes):
        return value.tolist()
    return value
