"""Columns of text values (as pgoutput sends them) → typed Arrow arrays, one column at a time.

The capture keeps each change's values as the bytes PostgreSQL sent and types them here when a
row group is written. Common types are converted by Arrow in one call (``binary`` → ``string`` →
the column type); a column Arrow refuses as a whole (``infinity`` dates, ``NaN`` decimals, BC
timestamps, arrays, ``bytea``, ``time``…) is parsed value by value with the column type's own
parser (:mod:`abasto.cdc.pgtypes`), so the result is the same either way.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc

from abasto.cdc.pgoutput import BinaryValue, DecodeError
from abasto.cdc.pgtypes import ColumnType
from abasto.errors import TerminalError


def _castable(arrow: pa.DataType) -> bool:
    """Types whose PostgreSQL text output Arrow's string cast parses to the same value."""
    return bool(
        pa.types.is_integer(arrow)
        or pa.types.is_floating(arrow)
        or pa.types.is_decimal(arrow)
        or pa.types.is_date32(arrow)
        or (pa.types.is_timestamp(arrow) and arrow.unit == "us")
    )


def text_column(values: Sequence[object] | pa.Array, typ: ColumnType, column: str) -> pa.Array:
    """The Arrow array of one column's values: ``bytes`` text or None for null, or the same as one
    Arrow ``binary`` array.

    Raises:
        DecodeError: a value does not parse as the column's type (``column`` names it).
        TerminalError: a value arrived in binary form (the capture never asks for it).
    """
    arrow = typ.arrow
    if pa.types.is_string(arrow) or arrow == pa.bool_() or _castable(arrow):
        try:
            texts = values if isinstance(values, pa.Array) else pa.array(values, pa.binary())
            strings = texts.cast(pa.string())
            if pa.types.is_string(arrow):
                return strings
            if arrow == pa.bool_():  # boolean output is exactly 't' or 'f'
                return pc.equal(strings, "t")
            return strings.cast(arrow)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            pass  # some value Arrow does not take: parse each one below
    if isinstance(values, pa.Array):
        values = values.to_pylist()
    return pa.array([_parse(value, typ, column) for value in values], type=arrow)


def _parse(value: object, typ: ColumnType, column: str) -> object:
    if value is None:
        return None
    if isinstance(value, BinaryValue) or not isinstance(value, bytes):
        raise TerminalError(f"{column}: binary tuple data was not requested")
    try:
        return typ.parse(value.decode())
    except (ValueError, ArithmeticError) as exc:
        raise DecodeError(f"{column}: cannot parse {value[:60]!r} as {typ.arrow}") from exc
