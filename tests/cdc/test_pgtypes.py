"""PostgreSQL types → Arrow types and text parsing."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from decimal import Decimal

import pyarrow as pa
import pytest

from abasto.cdc.pgtypes import CatalogType, column_type, numeric_type, parse_array


def test_scalar_mapping() -> None:
    assert column_type(21, -1).arrow == pa.int16()
    assert column_type(23, -1).arrow == pa.int32()
    assert column_type(20, -1).arrow == pa.int64()
    assert column_type(700, -1).arrow == pa.float32()
    assert column_type(701, -1).arrow == pa.float64()
    assert column_type(16, -1).arrow == pa.bool_()
    assert column_type(25, -1).arrow == pa.string()
    assert column_type(3802, -1).arrow == pa.string()
    assert column_type(1082, -1).arrow == pa.date32()
    assert column_type(1184, -1).arrow == pa.timestamp("us", tz="UTC")
    assert column_type(1114, -1).arrow == pa.timestamp("us")
    assert column_type(1005, -1).arrow == pa.list_(pa.int16())
    assert column_type(1009, -1).arrow == pa.list_(pa.string())


def test_numeric_precision_decides_decimal_or_double() -> None:
    assert numeric_type((10 << 16 | 2) + 4).arrow == pa.decimal128(10, 2)
    assert numeric_type(-1).arrow == pa.float64()  # unconstrained numeric
    assert numeric_type((60 << 16 | 4) + 4).arrow == pa.float64()  # beyond decimal128
    assert numeric_type((10 << 16 | 2) + 4).parse("14.50") == Decimal("14.50")
    assert numeric_type((10 << 16 | 2) + 4).parse("NaN") is None


def test_text_parsers() -> None:
    assert column_type(16, -1).parse("t") is True and column_type(16, -1).parse("f") is False
    assert column_type(1184, -1).parse("2026-09-01 05:30:00.25+00") == datetime(
        2026, 9, 1, 5, 30, 0, 250000, UTC
    )
    assert column_type(1082, -1).parse("2026-09-01") == date(2026, 9, 1)
    assert column_type(1082, -1).parse("infinity") is None
    assert column_type(1083, -1).parse("07:15:00") == time(7, 15)
    assert column_type(701, -1).parse("NaN") != column_type(701, -1).parse("NaN")  # NaN
    assert column_type(701, -1).parse("-Infinity") == float("-inf")
    assert column_type(17, -1).parse("\\x0aff") == b"\n\xff"
    assert column_type(1005, -1).parse("{1,NULL,3}") == [1, None, 3]


@pytest.mark.parametrize(
    ("literal", "items"),
    [
        ("{}", []),
        ("{1,2,3}", ["1", "2", "3"]),
        ('{"a b","c\\"d",NULL,"NULL",""}', ["a b", 'c"d', None, "NULL", ""]),
        ("[0:1]={5,6}", ["5", "6"]),
        ("{{1,2},{3,4}}", ["1", "2", "3", "4"]),
        ('{"x,y","\\\\"}', ["x,y", "\\"]),
    ],
)
def test_parse_array(literal: str, items: list[str | None]) -> None:
    assert parse_array(literal) == items


def test_domains_and_custom_arrays_resolve_through_the_catalog() -> None:
    catalog = {
        90001: CatalogType(oid=90001, typtype="d", base_oid=23, element_oid=0),  # domain over integer
        90002: CatalogType(oid=90002, typtype="b", base_oid=0, element_oid=90003),  # array of an enum
        90003: CatalogType(oid=90003, typtype="e", base_oid=0, element_oid=0),
    }
    domain = column_type(90001, -1, catalog.get)
    assert domain.arrow == pa.int32() and domain.parse("7") == 7 and domain.select_cast == "integer"
    enum_array = column_type(90002, -1, catalog.get)
    assert enum_array.arrow == pa.list_(pa.string()) and enum_array.parse("{ok,sad}") == ["ok", "sad"]
    assert column_type(99999, -1, catalog.get).arrow == pa.string()  # unknown: text
