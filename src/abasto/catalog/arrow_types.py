"""Arrow types the curated zone stores: what Iceberg, Athena and DuckDB all read the same way.

Timestamps become microseconds (time zone kept, normalised to UTC), small and unsigned integers
become signed ``int32``/``int64`` (``uint64`` becomes ``decimal(20, 0)``), large/view strings
and dictionaries become plain values. Columns of type ``null`` carry no information and are
dropped: the column is added when a file carries real values for it.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.types as pat

from abasto.errors import InvalidInputError

__all__ = ["curated_type", "normalize_schema", "normalize_table"]

_MAX_DECIMAL_PRECISION = 38


def curated_type(t: pa.DataType) -> pa.DataType:
    """The curated-zone type for an incoming Arrow type.

    Raises:
        InvalidInputError: the type has no faithful Iceberg equivalent.
    """
    if pat.is_dictionary(t):
        return curated_type(t.value_type)
    if pat.is_int8(t) or pat.is_int16(t) or pat.is_uint8(t) or pat.is_uint16(t):
        return pa.int32()
    if pat.is_uint32(t):
        return pa.int64()
    if pat.is_uint64(t):
        return pa.decimal128(20, 0)
    if pat.is_float16(t):
        return pa.float32()
    if pat.is_timestamp(t):
        return pa.timestamp("us", tz="UTC" if t.tz is not None else None)
    if pat.is_date64(t):
        return pa.date32()
    if pat.is_time(t):
        return pa.time64("us")
    if pat.is_large_string(t) or pat.is_string_view(t):
        return pa.string()
    if pat.is_large_binary(t) or pat.is_binary_view(t):
        return pa.binary()
    if pat.is_decimal(t):
        if t.precision > _MAX_DECIMAL_PRECISION:
            raise InvalidInputError(f"decimal({t.precision}, {t.scale}) exceeds Iceberg's precision 38")
        return pa.decimal128(t.precision, t.scale)
    if pat.is_list(t) or pat.is_large_list(t) or pat.is_list_view(t) or pat.is_large_list_view(t):
        return pa.list_(_field(t.value_field))
    if pat.is_fixed_size_list(t):
        return pa.list_(_field(t.value_field))
    if pat.is_struct(t):
        return pa.struct([_field(t.field(i)) for i in range(t.num_fields)])
    if pat.is_map(t):
        return pa.map_(curated_type(t.key_type), _field(t.item_field))
    if pat.is_duration(t) or pat.is_interval(t):
        raise InvalidInputError(f"type {t} has no Iceberg equivalent; store it as a number of seconds")
    return t


def _field(f: pa.Field) -> pa.Field:
    return pa.field(f.name, curated_type(f.type), nullable=f.nullable)


def normalize_schema(schema: pa.Schema, *, required: tuple[str, ...] = ()) -> pa.Schema:
    """Curated types for every column, ``null``-typed columns dropped, ``required`` not nullable.

    Schema-level and field-level metadata are dropped (Parquet readers add their own).
    """
    fields = []
    for f in schema:
        if pat.is_null(f.type):
            continue
        fields.append(pa.field(f.name, curated_type(f.type), nullable=f.name not in required))
    return pa.schema(fields)


def normalize_table(table: pa.Table, *, required: tuple[str, ...] = ()) -> pa.Table:
    """``table`` cast to :func:`normalize_schema` (a zero-copy no-op when already normal).

    Raises:
        InvalidInputError: a value does not fit its curated type (e.g. a timestamp out of range).
    """
    target = normalize_schema(table.schema, required=required)
    table = table.select(target.names)
    if table.schema.equals(target):
        return table
    try:
        return table.cast(target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise InvalidInputError(f"cannot store columns as curated types: {exc}") from exc
