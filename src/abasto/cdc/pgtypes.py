"""PostgreSQL column types → Arrow types, and the text form of values → Python values for Arrow.

Mapping (the raw zone's image columns are typed like the source columns):

=========================================  ===========================================
PostgreSQL                                  Arrow
=========================================  ===========================================
smallint / integer / bigint / oid           int16 / int32 / int64 / int64
real / double precision                     float32 / float64
numeric(p, s) with p <= 38                  decimal128(p, s)
numeric without precision, or p > 38        float64 (documented loss: such values are rare here)
boolean                                     bool
text, varchar, char(n), name, "char"        string
json, jsonb                                 string (the JSON text)
uuid, interval, enums, anything else        string (the type's text output)
date                                        date32
timestamp with time zone                    timestamp[us, UTC]
timestamp without time zone                 timestamp[us]
time without time zone                      time64[us]
bytea                                       binary
one-dimensional arrays of the above         list<element>
domains                                     their base type
=========================================  ===========================================

Text values are what the types' output functions print with ``DateStyle=ISO`` and
``TimeZone=UTC`` (the capture session sets both). Values Arrow cannot hold (``infinity`` dates and
timestamps, ``NaN`` in a decimal column) become null.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal, InvalidOperation
from typing import Any

import pyarrow as pa

Parser = Callable[[str], Any]

_UTC_TS = pa.timestamp("us", tz="UTC")

# built-in type OIDs (pg_type.dat)
BOOL, BYTEA, CHAR, NAME, INT8, INT2, INT4, TEXT, OID = 16, 17, 18, 19, 20, 21, 23, 25, 26
JSON, FLOAT4, FLOAT8, BPCHAR, VARCHAR, DATE, TIME = 114, 700, 701, 1042, 1043, 1082, 1083
TIMESTAMP, TIMESTAMPTZ, NUMERIC, UUID, JSONB = 1114, 1184, 1700, 2950, 3802

#: built-in array type → element type
ARRAY_ELEMENTS: dict[int, int] = {
    1000: BOOL,
    1001: BYTEA,
    1002: CHAR,
    1003: NAME,
    1005: INT2,
    1007: INT4,
    1016: INT8,
    1009: TEXT,
    1028: OID,
    199: JSON,
    1021: FLOAT4,
    1022: FLOAT8,
    1014: BPCHAR,
    1015: VARCHAR,
    1182: DATE,
    1183: TIME,
    1115: TIMESTAMP,
    1185: TIMESTAMPTZ,
    1231: NUMERIC,
    2951: UUID,
    3807: JSONB,
}

_TEXT_TYPES = frozenset({TEXT, VARCHAR, BPCHAR, NAME, CHAR})


@dataclass(frozen=True, slots=True)
class ColumnType:
    """How one source column is typed in Arrow and how its text values are parsed.

    ``select_cast`` is the SQL cast the full load applies so that psycopg hands back Python values
    of the same shape as :attr:`parse` produces (None: select the column as it is).
    """

    arrow: pa.DataType
    parse: Parser
    select_cast: str | None = None


def _parse_bool(text: str) -> bool:
    return text == "t"


def _parse_float(text: str) -> float:
    return float(text)  # accepts NaN, Infinity, -Infinity


def _parse_decimal(text: str) -> Decimal | None:
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None
    return value if value.is_finite() else None


def _parse_date(text: str) -> date | None:
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None  # infinity, BC dates


def _parse_timestamp(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None  # infinity, BC


def _parse_bytea(text: str) -> bytes:
    if text.startswith("\\x"):
        return bytes.fromhex(text[2:])
    raise ValueError("bytea not in hex output format (set bytea_output = 'hex')")


def _identity(text: str) -> str:
    return text


SCALARS: dict[int, ColumnType] = {
    BOOL: ColumnType(pa.bool_(), _parse_bool),
    INT2: ColumnType(pa.int16(), int),
    INT4: ColumnType(pa.int32(), int),
    INT8: ColumnType(pa.int64(), int),
    OID: ColumnType(pa.int64(), int, "bigint"),
    FLOAT4: ColumnType(pa.float32(), _parse_float),
    FLOAT8: ColumnType(pa.float64(), _parse_float),
    TEXT: ColumnType(pa.string(), _identity),
    VARCHAR: ColumnType(pa.string(), _identity),
    BPCHAR: ColumnType(pa.string(), _identity),
    NAME: ColumnType(pa.string(), _identity),
    CHAR: ColumnType(pa.string(), _identity, "text"),
    JSON: ColumnType(pa.string(), _identity, "text"),
    JSONB: ColumnType(pa.string(), _identity, "text"),
    UUID: ColumnType(pa.string(), _identity, "text"),
    DATE: ColumnType(pa.date32(), _parse_date),
    TIME: ColumnType(pa.time64("us"), time.fromisoformat),
    TIMESTAMP: ColumnType(pa.timestamp("us"), _parse_timestamp),
    TIMESTAMPTZ: ColumnType(_UTC_TS, _parse_timestamp),
    BYTEA: ColumnType(pa.binary(), _parse_bytea),
}

FALLBACK = ColumnType(pa.string(), _identity, "text")


def numeric_type(type_modifier: int) -> ColumnType:
    """numeric(p, s) → decimal128(p, s) when 1 <= p <= 38, else float64."""
    if type_modifier >= 4:
        packed = type_modifier - 4
        precision, scale = (packed >> 16) & 0xFFFF, packed & 0xFFFF
        if 1 <= precision <= 38 and scale <= precision:
            return ColumnType(pa.decimal128(precision, scale), _parse_decimal)
    return ColumnType(pa.float64(), _parse_float, "double precision")


@dataclass(frozen=True, slots=True)
class CatalogType:
    """What pg_type says about a non-built-in type (domain, enum, array of them)."""

    oid: int
    typtype: str  # b base, d domain, e enum, c composite, r range, m multirange
    base_oid: int  # domains: the base type
    element_oid: int  # arrays: the element type (0 otherwise)
    base_modifier: int = -1


CatalogLookup = Callable[[int], CatalogType | None]


def column_type(type_oid: int, type_modifier: int, lookup: CatalogLookup | None = None) -> ColumnType:
    """Arrow type and text parser for a column of type ``type_oid`` (with ``type_modifier``).

    ``lookup`` resolves types that are not built in (domains → base type, arrays → element);
    without it, or for enums, composites and ranges, values stay text.
    """
    if type_oid == NUMERIC:
        return numeric_type(type_modifier)
    if type_oid in SCALARS:
        return SCALARS[type_oid]
    element = ARRAY_ELEMENTS.get(type_oid)
    if element is None and lookup is not None:
        info = lookup(type_oid)
        if info is not None:
            if info.typtype == "d" and info.base_oid:
                base = column_type(info.base_oid, info.base_modifier, lookup)
                return ColumnType(base.arrow, base.parse, _base_cast(info.base_oid, base))
            if info.element_oid:
                element = info.element_oid
    if element is not None:
        return _array_type(column_type(element, type_modifier, lookup))
    return FALLBACK


def _base_cast(base_oid: int, base: ColumnType) -> str:
    """A domain is selected as its base type, so psycopg loads it like the base."""
    if base.select_cast is not None:
        return base.select_cast
    if pa.types.is_decimal(base.arrow):
        return f"numeric({base.arrow.precision}, {base.arrow.scale})"
    return {
        BOOL: "boolean",
        INT2: "smallint",
        INT4: "integer",
        INT8: "bigint",
        FLOAT4: "real",
        FLOAT8: "double precision",
        DATE: "date",
        TIME: "time",
        TIMESTAMP: "timestamp",
        TIMESTAMPTZ: "timestamptz",
        BYTEA: "bytea",
    }.get(base_oid, "text")


def _array_type(element: ColumnType) -> ColumnType:
    def parse(text: str) -> list[Any]:
        return [None if item is None else element.parse(item) for item in parse_array(text)]

    cast = f"{element.select_cast}[]" if element.select_cast is not None else None
    return ColumnType(pa.list_(element.arrow), parse, cast)


def parse_array(text: str) -> list[str | None]:
    """Elements of a PostgreSQL array literal as text (None for NULL); nested arrays are flattened.

    Handles quoting (``{"a b","c\\"d"}``), NULL, and explicit bounds (``[0:1]={1,2}``).
    """
    if text.startswith("["):
        text = text[text.index("=") + 1 :]
    items: list[str | None] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch in "{},":
            i += 1
        elif ch == '"':
            i += 1
            chars: list[str] = []
            while text[i] != '"':
                if text[i] == "\\":
                    i += 1
                chars.append(text[i])
                i += 1
            items.append("".join(chars))
            i += 1
        elif ch.isspace():
            i += 1
        else:
            start = i
            while i < n and text[i] not in ",}":
                i += 1
            raw = text[start:i].strip()
            items.append(None if raw.upper() == "NULL" else raw)
    return items


def arrow_schema(names: list[str], types: Mapping[str, ColumnType]) -> pa.Schema:
    """Arrow schema of a row image, in column order."""
    return pa.schema([pa.field(name, types[name].arrow) for name in names])
