"""Schema inference for raw datasets: union of the files' schemas with type widening, Hive type
names as Glue shows them, and PII detection by column name.

Widening follows Arrow's permissive promotion (``int32`` + ``int64`` → ``int64``, ``int64`` +
``double`` → ``double``, ``null`` + anything → that type, decimals to the wider precision); types
that cannot be promoted (``int64`` vs ``string``, naive vs zoned timestamps) become ``string``, as a
crawler does with conflicting files.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.types as pat

__all__ = ["SchemaMerge", "detect_pii", "hive_type", "merge_schema", "widen"]

_PII_NAME = re.compile(
    r"^(name|(owner|customer|contact|client|first|last|full|legal)_?name|"
    r".*(phone|mobile|e_?mail|address|tax_id|rfc|curp).*)$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class SchemaMerge:
    """The union schema and what changed: new columns, and columns whose type was widened."""

    schema: pa.Schema
    added: tuple[str, ...]
    widened: tuple[str, ...]

    @property
    def changed(self) -> bool:
        return bool(self.added or self.widened)


def widen(old: pa.DataType, new: pa.DataType) -> pa.DataType:
    """The narrowest type holding values of both ``old`` and ``new``."""
    if old.equals(new) or pat.is_null(new):
        return old
    if pat.is_null(old):
        return new
    try:
        merged = pa.unify_schemas(
            [pa.schema([pa.field("c", old)]), pa.schema([pa.field("c", new)])], promote_options="permissive"
        )
    except (pa.ArrowTypeError, pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return pa.string()
    return merged.field("c").type


def merge_schema(current: pa.Schema, incoming: pa.Schema) -> SchemaMerge:
    """``current`` united by name with ``incoming``: known columns keep their place, new ones follow."""
    fields = {f.name: f for f in current}
    widened: list[str] = []
    added: list[str] = []
    for f in incoming:
        known = fields.get(f.name)
        if known is None:
            fields[f.name] = pa.field(f.name, f.type)
            added.append(f.name)
            continue
        wide = widen(known.type, f.type)
        if not wide.equals(known.type):
            fields[f.name] = pa.field(f.name, wide)
            widened.append(f.name)
    return SchemaMerge(pa.schema(list(fields.values())), tuple(added), tuple(widened))


def hive_type(t: pa.DataType) -> str:
    """The Hive/Glue type name of an Arrow type (what Athena's DDL would declare)."""
    simple = {
        pa.bool_(): "boolean",
        pa.int8(): "tinyint",
        pa.int16(): "smallint",
        pa.int32(): "int",
        pa.int64(): "bigint",
        pa.uint8(): "smallint",
        pa.uint16(): "int",
        pa.uint32(): "bigint",
        pa.float16(): "float",
        pa.float32(): "float",
        pa.float64(): "double",
        pa.date32(): "date",
        pa.date64(): "date",
    }
    if t in simple:
        return simple[t]
    if pat.is_string(t) or pat.is_large_string(t) or pat.is_string_view(t):
        return "string"
    if pat.is_binary(t) or pat.is_large_binary(t) or pat.is_fixed_size_binary(t):
        return "binary"
    if pat.is_timestamp(t):
        return "timestamp"
    if pat.is_decimal(t):
        return f"decimal({t.precision},{t.scale})"
    if pat.is_uint64(t):
        return "decimal(20,0)"
    if pat.is_dictionary(t):
        return hive_type(t.value_type)
    if pat.is_list(t) or pat.is_large_list(t) or pat.is_fixed_size_list(t):
        return f"array<{hive_type(t.value_type)}>"
    if pat.is_map(t):
        return f"map<{hive_type(t.key_type)},{hive_type(t.item_type)}>"
    if pat.is_struct(t):
        inner = ",".join(f"{t.field(i).name}:{hive_type(t.field(i).type)}" for i in range(t.num_fields))
        return f"struct<{inner}>"
    return str(t)


def detect_pii(columns: Iterable[str], declared: Iterable[str] = ()) -> tuple[str, ...]:
    """Columns holding personal data: those ``declared`` (a table spec's) plus those whose name
    says so (``name``, ``owner_name``, ``phone``, ``email``, ``address``…), in column order."""
    declared_set = set(declared)
    return tuple(c for c in columns if c in declared_set or _PII_NAME.match(c))
