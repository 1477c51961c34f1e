"""The capture's column-at-a-time decoding (:mod:`abasto.cdc.vector_decode`) writes exactly the
files message-by-message decoding writes, and leaves every case it does not cover to that path
(which raises the same errors)."""

from __future__ import annotations

import random
import struct
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from abasto.cdc.capture import _BatchState
from abasto.cdc.change_files import ChangeFileWriter
from abasto.cdc.lsn import PG_EPOCH_OFFSET_US
from abasto.cdc.pgoutput import DecodeError, PgOutputDecoder
from abasto.cdc.pgtypes import INT4, INT8, NUMERIC, TEXT, TIMESTAMPTZ
from abasto.cdc.raw_zone import RawZone
from abasto.cdc.shapes import ShapeCatalog
from abasto.cdc.vector_decode import MessageChunk, TxnCursor, decode_run
from abasto.errors import TerminalError

ORDERS, LINES = 0x4D41, 0x4D42
DAY_US = 86_400_000_000
NUMERIC_10_2 = ((10 << 16) | 2) + 4


def _relation(rel: int, name: str, columns: list[tuple[str, int, int, bool]], identity: str = "d") -> bytes:
    out = b"R" + struct.pack(">I", rel) + b"s\x00" + name.encode() + b"\x00" + identity.encode()
    out += struct.pack(">h", len(columns))
    for col, oid, typmod, key in columns:
        out += bytes([1 if key else 0]) + col.encode() + b"\x00" + struct.pack(">Ii", oid, typmod)
    return out


ORDERS_REL = _relation(
    ORDERS,
    "orders",
    [
        ("id", INT8, -1, True),
        ("name", TEXT, -1, False),
        ("at", TIMESTAMPTZ, -1, False),
        ("v", NUMERIC, NUMERIC_10_2, False),
    ],
)
LINES_REL = _relation(
    LINES, "lines", [("id", INT8, -1, True), ("n", INT4, -1, True), ("q", INT4, -1, False)], "f"
)


def _tuple(*values: bytes | str | None) -> bytes:
    out = struct.pack(">h", len(values))
    for v in values:
        if v is None:
            out += b"n"
        elif v == "u":
            out += b"u"
        elif isinstance(v, bytes):
            out += b"t" + struct.pack(">i", len(v)) + v
    return out


def _begin(lsn: int, unix_us: int) -> bytes:
    return b"B" + struct.pack(">QqI", lsn, unix_us - PG_EPOCH_OFFSET_US, 7)


def _commit(lsn: int, end: int, unix_us: int) -> bytes:
    return b"C" + struct.pack(">BQQq", 0, lsn, end, unix_us - PG_EPOCH_OFFSET_US)


def _insert(rel: int, *values: bytes | str | None) -> bytes:
    return b"I" + struct.pack(">I", rel) + b"N" + _tuple(*values)


def _update(
    rel: int,
    new: tuple[bytes | str | None, ...],
    old: tuple[bytes | str | None, ...] | None = None,
    kind: str = "K",
) -> bytes:
    head = b"U" + struct.pack(">I", rel)
    if old is not None:
        head += kind.encode() + _tuple(*old)
    return head + b"N" + _tuple(*new)


def _delete(rel: int, *old: bytes | str | None, kind: str = "K") -> bytes:
    return b"D" + struct.pack(">I", rel) + kind.encode() + _tuple(*old)


def _truncate(*rels: int) -> bytes:
    return b"T" + struct.pack(">iB", len(rels), 0) + b"".join(struct.pack(">I", r) for r in rels)


def _stream(seed: int, transactions: int = 60) -> list[bytes]:
    """Relations, then transactions of mixed changes to two tables (multi-byte text, nulls, empty
    strings, key-changing updates, full-identity updates and deletes), a truncate and a schema
    change midway, and commit times that cross midnight (and step back across it once)."""
    rng = random.Random(seed)
    midnight = 1_790_000_000_000_000 // DAY_US * DAY_US
    out = [ORDERS_REL, LINES_REL]
    lsn = 0x1000
    times = [midnight - 5_000_000 + i * 200_000 for i in range(transactions)]
    times[transactions // 2] = midnight - 1  # commit times are not monotonic across commits
    z: tuple[bytes | None, ...] = ()  # the column added midway
    for t, at in enumerate(times):
        out.append(_begin(lsn + 900, at))
        for _ in range(rng.randint(0, 9)):
            i = str(rng.randint(1, 40)).encode()
            op = rng.random()
            name = rng.choice([b"limon \xe2\x98\x83", b"", None, b"x" * rng.randint(0, 300)])
            when = b"2026-10-01 12:00:00.5+00" if rng.random() < 0.8 else None
            if op < 0.35:
                out.append(_insert(ORDERS, i, name, when, b"12.50"))
            elif op < 0.5:
                out.append(_update(ORDERS, (i, name, when, None)))
            elif op < 0.55:
                out.append(_update(ORDERS, (i, name, when, b"-0.01"), old=(b"99", None, None, None)))
            elif op < 0.65:
                out.append(_delete(ORDERS, i, None, None, None))
            elif op < 0.8:
                out.append(_insert(LINES, i, b"1", str(rng.randint(-5, 5)).encode(), *z))
            elif op < 0.9:
                out.append(_update(LINES, (i, b"1", b"3", *z), old=(i, b"1", b"2", *z), kind="O"))
            else:
                out.append(_delete(LINES, i, b"1", b"2", *z, kind="O"))
        if t == 20:
            out.append(_truncate(LINES))
            out.append(_insert(LINES, b"7", b"1", None))
        if t == 40:  # a column added: a new Relation message mid-transaction
            out.append(
                _relation(
                    LINES,
                    "lines",
                    [
                        ("id", INT8, -1, True),
                        ("n", INT4, -1, True),
                        ("q", INT4, -1, False),
                        ("z", TEXT, -1, False),
                    ],
                    "f",
                )
            )
            out.append(_insert(LINES, b"8", b"1", b"4", b"new"))
            z = (None,)
        out.append(_commit(lsn + 900, lsn + 1000, at))
        lsn += 1000
    return out


def _write(messages: list[bytes], root: Path, *, fetch: int | None) -> dict[str, list[dict[str, object]]]:
    """Decode ``messages`` (``fetch`` at a time through the fast path, or one by one if None),
    publish, and return each file's records."""
    raw = RawZone(str(root))
    writer = ChangeFileWriter(raw)
    state = _BatchState(writer, ShapeCatalog(), PgOutputDecoder(1))
    if fetch is None:
        state._one_by_one(messages)
    else:
        for start in range(0, len(messages), fetch):
            state.feed(messages[start : start + fetch])
    assert not state.inside_transaction
    published = writer.publish()
    files = {name: pq.read_table(root / name).to_pylist() for name in published.names}
    files["outcome"] = [
        {
            "changes": state.outcome.changes,
            "transactions": state.outcome.transactions,
            "end": state.outcome.end_lsn,
        }
    ]
    return files


@pytest.mark.parametrize("fetch", [1, 3, 17, 5_000])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_fast_path_writes_what_message_by_message_writes(
    tmp_path: Path, seed: int, fetch: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    messages = _stream(seed)
    expected = _write(messages, tmp_path / "one", fetch=None)
    one_by_one: list[bytes] = []
    original = _BatchState._one_by_one

    def counted(self: _BatchState, batch: list[bytes]) -> None:
        one_by_one.extend(batch)
        original(self, batch)

    monkeypatch.setattr(_BatchState, "_one_by_one", counted)
    got = _write(messages, tmp_path / "fast", fetch=fetch)
    assert list(got) == list(expected)
    assert got == expected
    assert len(expected) > 4  # several tables, days and shapes
    assert {m[:1] for m in one_by_one} == {b"R", b"T"}  # only what the fast path leaves alone


def _run(messages: list[bytes], cursor: TxnCursor | None = None) -> object:
    chunk = MessageChunk(messages)
    catalog = ShapeCatalog()
    catalog.on_relation(PgOutputDecoder(1).decode(ORDERS_REL))  # type: ignore[arg-type]
    catalog.on_relation(PgOutputDecoder(1).decode(LINES_REL))  # type: ignore[arg-type]
    return decode_run(chunk, 0, chunk.count, cursor or TxnCursor(), catalog.shape)


def test_the_fast_path_declines_what_it_does_not_cover() -> None:
    at = 1_790_000_000_000_000
    row = (b"1", b"a", None, b"1.00")
    ok = [_begin(10, at), _insert(ORDERS, *row), _commit(10, 20, at)]
    assert _run(ok) is not None
    declined = {
        "outside a transaction": [_insert(ORDERS, *row)],
        "after a commit": [_begin(10, at), _commit(10, 20, at), _insert(ORDERS, *row)],
        "commit without begin": [_commit(10, 20, at)],
        "column count": [_begin(10, at), _insert(ORDERS, b"1", b"a"), _commit(10, 20, at)],
        "truncated": [_begin(10, at), _insert(ORDERS, *row)[:-2], _commit(10, 20, at)],
        "trailing bytes": [_begin(10, at), _insert(ORDERS, *row) + b"\x00", _commit(10, 20, at)],
        "binary value": [
            _begin(10, at),
            _insert(ORDERS, *row).replace(b"t\x00\x00\x00\x01a", b"b\x00\x00\x00\x01a"),
            _commit(10, 20, at),
        ],
        "unchanged toast": [_begin(10, at), _update(ORDERS, (b"1", "u", None, None)), _commit(10, 20, at)],
        "bad marker": [
            _begin(10, at),
            b"I" + struct.pack(">I", ORDERS) + b"X" + _tuple(*row),
            _commit(10, 20, at),
        ],
        "short begin": [_begin(10, at)[:-1], _insert(ORDERS, *row), _commit(10, 20, at)],
    }
    for reason, messages in declined.items():
        assert _run(messages) is None, reason
    # carried over from an earlier fetch: a change before any Begin belongs to the open transaction
    carried = _run([_insert(ORDERS, *row), _commit(10, 20, at)], TxnCursor(10, at, "2026-09-21", 4))
    assert carried is not None and carried.changes == 5 and carried.transactions == 1  # type: ignore[attr-defined]


def test_errors_are_the_message_by_message_ones(tmp_path: Path) -> None:
    at = 1_790_000_000_000_000
    row = (b"1", b"a", None, b"1.00")
    cases: list[tuple[list[bytes], type[Exception], str]] = [
        ([ORDERS_REL, _insert(ORDERS, *row)], DecodeError, "outside a transaction"),
        ([ORDERS_REL, _begin(10, at), _insert(ORDERS, b"1", b"a")], DecodeError, "2 values for 4 columns"),
        ([ORDERS_REL, _begin(10, at), _insert(ORDERS, *row)[:-2]], DecodeError, "truncated"),
        ([_begin(10, at), _insert(ORDERS, *row)], DecodeError, "before its Relation"),
        ([ORDERS_REL, _begin(10, at), _update(ORDERS, (b"1", "u", None, None))], TerminalError, "TOASTed"),
    ]
    for i, (messages, error, match) in enumerate(cases):
        for fetch in (None, 2, 100):
            state = _BatchState(
                ChangeFileWriter(RawZone(str(tmp_path / f"{i}-{fetch}"))), ShapeCatalog(), PgOutputDecoder(1)
            )
            with pytest.raises(error, match=match):
                if fetch is None:
                    state._one_by_one(messages)
                else:
                    for start in range(0, len(messages), fetch):
                        state.feed(messages[start : start + fetch])
            state.writer.discard()


def test_unchanged_toast_values_are_taken_from_the_old_row(tmp_path: Path) -> None:
    at = 1_790_000_000_000_000
    messages = [
        LINES_REL,
        _begin(10, at),
        _insert(LINES, b"1", b"1", b"5"),
        _update(LINES, (b"1", b"1", "u"), old=(b"1", b"1", b"5"), kind="O"),
        _insert(LINES, b"2", b"1", b"6"),
        _commit(10, 20, at),
    ]
    expected = _write(messages, tmp_path / "one", fetch=None)
    got = _write(messages, tmp_path / "fast", fetch=100)
    assert got == expected
    (records,) = [v for k, v in got.items() if k != "outcome"]
    assert [r["q"] for r in records] == [5, 5, 6]
