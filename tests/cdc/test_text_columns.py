"""The capture's fast paths give what the per-value ones give: text columns typed by Arrow in one
call, row changes decoded without message objects, row images kept as text."""

from __future__ import annotations

import pyarrow as pa
import pytest

from abasto.cdc.change_files import TableShape
from abasto.cdc.pgoutput import (
    UNCHANGED,
    BinaryValue,
    DecodeError,
    Delete,
    Insert,
    PgOutputDecoder,
    Update,
    row_change,
)
from abasto.cdc.pgtypes import (
    BOOL,
    BYTEA,
    DATE,
    FLOAT8,
    INT4,
    INT8,
    JSONB,
    NUMERIC,
    TEXT,
    TIMESTAMP,
    TIMESTAMPTZ,
    ColumnType,
    column_type,
)
from abasto.cdc.shapes import text_image, text_key_image
from abasto.cdc.text_columns import text_column
from abasto.errors import TerminalError

NUMERIC_10_2 = ((10 << 16) | 2) + 4
INT4_ARRAY = 1007

CASES: list[tuple[int, int, list[bytes | None]]] = [
    (INT4, -1, [b"1", None, b"-2147483648", b"2147483647"]),
    (INT8, -1, [b"9223372036854775807", b"0"]),
    (FLOAT8, -1, [b"1.5", b"NaN", b"Infinity", b"-Infinity", b"1.0000000000000002", None]),
    (NUMERIC, NUMERIC_10_2, [b"12.50", b"-0.01", None, b"99999999.99"]),
    (NUMERIC, NUMERIC_10_2, [b"12.50", b"NaN"]),  # Arrow refuses NaN: each value parsed, NaN → null
    (NUMERIC, -1, [b"3.14159", b"NaN"]),
    (BOOL, -1, [b"t", b"f", None]),
    (DATE, -1, [b"2026-10-01", None]),
    (DATE, -1, [b"2026-10-01", b"infinity", b"-infinity"]),
    (TIMESTAMPTZ, -1, [b"2026-10-01 12:00:00.5+00", b"2026-10-01 23:59:59.123456+05:30", None]),
    (TIMESTAMPTZ, -1, [b"2026-10-01 12:00:00+00", b"infinity"]),
    (TIMESTAMP, -1, [b"2026-10-01 12:00:00.000001", None]),
    (TEXT, -1, ["limón ☃".encode(), b"", None]),
    (JSONB, -1, [b'{"a": [1, 2]}']),
    (BYTEA, -1, [b"\\x00ff", None]),
    (INT4_ARRAY, -1, [b"{1,NULL,3}", b"{}", None]),
]


def _reference(values: list[bytes | None], typ: ColumnType) -> list[str]:
    parsed = [None if v is None else typ.parse(v.decode()) for v in values]
    return [str(v) for v in pa.array(parsed, type=typ.arrow).to_pylist()]


@pytest.mark.parametrize(("oid", "modifier", "values"), CASES)
def test_text_column_equals_value_by_value_parsing(
    oid: int, modifier: int, values: list[bytes | None]
) -> None:
    typ = column_type(oid, modifier)
    got = text_column(values, typ, "sales.t.c")
    assert got.type == typ.arrow
    assert [str(v) for v in got.to_pylist()] == _reference(values, typ)
    # the same values as one Arrow binary array (how the column-at-a-time decoding hands them over)
    from_arrow = text_column(pa.array(values, pa.binary()), typ, "sales.t.c")
    assert from_arrow.type == typ.arrow
    assert [str(v) for v in from_arrow.to_pylist()] == [str(v) for v in got.to_pylist()]  # NaN too


def test_text_column_errors_name_the_column() -> None:
    with pytest.raises(DecodeError, match=r"sales\.t\.qty: cannot parse b'abc'"):
        text_column([b"1", b"abc"], column_type(INT4, -1), "sales.t.qty")
    with pytest.raises(DecodeError, match=r"sales\.t\.name"):
        text_column([b"\xff\xfe"], column_type(TEXT, -1), "sales.t.name")
    with pytest.raises(DecodeError, match=r"sales\.t\.qty: cannot parse b'abc'"):
        text_column(pa.array([b"1", b"abc"], pa.binary()), column_type(INT4, -1), "sales.t.qty")
    with pytest.raises(TerminalError, match="binary tuple data"):
        text_column([BinaryValue(b"\x00")], column_type(INT4, -1), "sales.t.qty")


def _tuple(*values: bytes | None) -> bytes:
    out = len(values).to_bytes(2, "big")
    for v in values:
        out += b"n" if v is None else b"t" + len(v).to_bytes(4, "big") + v
    return out


REL = (77).to_bytes(4, "big")


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (b"I" + REL + b"N" + _tuple(b"1", None, b"x"), Insert(77, (b"1", None, b"x"))),
        (b"U" + REL + b"N" + _tuple(b"1", b"y"), Update(77, (b"1", b"y"))),
        (
            b"U" + REL + b"K" + _tuple(b"0") + b"N" + _tuple(b"1", b"y"),
            Update(77, (b"1", b"y"), (b"0",), "K"),
        ),
        (
            b"U" + REL + b"O" + _tuple(b"1", b"x") + b"N" + _tuple(b"1", b"y"),
            Update(77, (b"1", b"y"), (b"1", b"x"), "O"),
        ),
        (b"D" + REL + b"K" + _tuple(b"1"), Delete(77, (b"1",), "K")),
        (b"D" + REL + b"O" + _tuple(b"1", b"x"), Delete(77, (b"1", b"x"), "O")),
    ],
)
def test_row_change_fast_path_matches_the_decoder(message: bytes, expected: Insert | Update | Delete) -> None:
    assert PgOutputDecoder().decode(message) == expected
    fields = row_change(message)
    assert fields is not None
    op, relation_id, new, old, old_kind = fields
    assert (op, relation_id) == (type(expected).__name__[0], 77)
    assert new == getattr(expected, "new", None)
    assert old == getattr(expected, "old", None)
    assert old_kind == getattr(expected, "old_kind", None)


@pytest.mark.parametrize(
    "message",
    [
        b"I" + REL + b"N" + _tuple(b"1")[:-1],  # truncated value
        b"I" + REL + b"N" + _tuple(b"1") + b"\x00",  # trailing byte
        b"U" + REL + b"K" + _tuple(b"1") + b"X" + _tuple(b"1"),  # no 'N' after the old key
        b"D" + REL + b"N" + _tuple(b"1"),  # a delete carries 'K' or 'O'
    ],
)
def test_malformed_row_changes_leave_the_fast_path_and_raise(message: bytes) -> None:
    assert row_change(message) is None
    with pytest.raises(DecodeError):
        PgOutputDecoder().decode(message)


def test_messages_other_than_row_changes_are_not_taken() -> None:
    begin = b"B" + (5).to_bytes(8, "big") + (6).to_bytes(8, "big") + (7).to_bytes(4, "big")
    assert row_change(begin) is None


SHAPE = TableShape(
    schema="sales",
    table="notes",
    columns=("id", "body", "tags"),
    types=(column_type(INT4, -1), column_type(TEXT, -1), column_type(TEXT, -1)),
    signature=("test",),
)


def test_text_image_takes_unchanged_toasted_values_from_the_old_row() -> None:
    new = (b"1", UNCHANGED, b"t2")
    assert text_image(SHAPE, new, old=(b"1", b"long body", b"t1")) == (b"1", b"long body", b"t2")
    assert text_image(SHAPE, (b"1", None, b"t")) == (b"1", None, b"t")
    with pytest.raises(TerminalError, match=r"sales\.notes\.body: an UPDATE left a large \(TOASTed\)") as err:
        text_image(SHAPE, new)
    assert "REPLICA IDENTITY FULL" in str(err.value.hint)
    with pytest.raises(TerminalError):
        text_image(SHAPE, new, old=(b"1",))  # only the key
    with pytest.raises(DecodeError, match="2 values for 3 columns"):
        text_image(SHAPE, (b"1", b"x"))


def test_text_key_image_nulls_what_the_delete_does_not_carry() -> None:
    assert text_key_image(SHAPE, (b"1", UNCHANGED, None)) == (b"1", None, None)
