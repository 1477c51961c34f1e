"""Decoder of PostgreSQL's ``pgoutput`` logical replication messages (protocol versions 1 and 2).

The format is PostgreSQL's "Logical Replication Message Formats" (protocol chapter of its docs).
One message per ``data`` value of ``pg_logical_slot_*_binary_changes`` or per XLogData payload of
``START_REPLICATION``. Integers are big-endian; strings are NUL-terminated UTF-8.

Tuple data arrive as text (the types' output functions) unless the ``binary`` option was asked for;
values are kept as raw bytes here and typed later (:mod:`abasto.cdc.pgtypes`). An unchanged TOASTed
value (``u``) is :data:`UNCHANGED`; binary values (``b``) are wrapped in :class:`BinaryValue`.

Protocol 2 adds streamed (in-progress) transactions: between Stream Start and Stream Stop every
change message carries the transaction id first. :class:`PgOutputDecoder` tracks that state.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import Enum
from typing import Final

from abasto.errors import InvalidInputError


class DecodeError(InvalidInputError):
    """A message is truncated, has an unknown type, or is not valid for the protocol version."""


class _Unchanged(Enum):
    UNCHANGED = "u"

    def __repr__(self) -> str:
        return "UNCHANGED"


#: an unchanged TOASTed value (not sent; the old tuple may carry it)
UNCHANGED: Final = _Unchanged.UNCHANGED


@dataclass(frozen=True, slots=True)
class BinaryValue:
    """A column value sent in the type's binary send format (only with option ``binary 'true'``)."""

    data: bytes


Value = bytes | None | _Unchanged | BinaryValue
Tuple = tuple[Value, ...]


@dataclass(frozen=True, slots=True)
class Begin:
    final_lsn: int
    commit_ts: int  # microseconds since 2000-01-01 UTC
    xid: int


@dataclass(frozen=True, slots=True)
class Commit:
    flags: int
    commit_lsn: int
    end_lsn: int
    commit_ts: int


@dataclass(frozen=True, slots=True)
class Origin:
    lsn: int
    name: str


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    type_oid: int
    type_modifier: int
    is_key: bool


@dataclass(frozen=True, slots=True)
class Relation:
    relation_id: int
    namespace: str
    name: str
    replica_identity: str  # 'd' default, 'n' nothing, 'f' full, 'i' index
    columns: tuple[Column, ...]
    xid: int | None = None


@dataclass(frozen=True, slots=True)
class TypeInfo:
    type_oid: int
    namespace: str
    name: str
    xid: int | None = None


@dataclass(frozen=True, slots=True)
class Insert:
    relation_id: int
    new: Tuple
    xid: int | None = None


@dataclass(frozen=True, slots=True)
class Update:
    relation_id: int
    new: Tuple
    #: the old key ('K', replica identity index) or whole old row ('O', REPLICA IDENTITY FULL)
    old: Tuple | None = None
    old_kind: str | None = None
    xid: int | None = None


@dataclass(frozen=True, slots=True)
class Delete:
    relation_id: int
    old: Tuple
    old_kind: str
    xid: int | None = None


@dataclass(frozen=True, slots=True)
class Truncate:
    relation_ids: tuple[int, ...]
    cascade: bool
    restart_identity: bool
    xid: int | None = None


@dataclass(frozen=True, slots=True)
class LogicalMessage:
    transactional: bool
    lsn: int
    prefix: str
    content: bytes
    xid: int | None = None


@dataclass(frozen=True, slots=True)
class StreamStart:
    xid: int
    first_segment: bool


@dataclass(frozen=True, slots=True)
class StreamStop:
    pass


@dataclass(frozen=True, slots=True)
class StreamCommit:
    xid: int
    flags: int
    commit_lsn: int
    end_lsn: int
    commit_ts: int


@dataclass(frozen=True, slots=True)
class StreamAbort:
    xid: int
    subxid: int


Message = (
    Begin
    | Commit
    | Origin
    | Relation
    | TypeInfo
    | Insert
    | Update
    | Delete
    | Truncate
    | LogicalMessage
    | StreamStart
    | StreamStop
    | StreamCommit
    | StreamAbort
)

_I8 = struct.Struct(">b")
_U8 = struct.Struct(">B")
_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
_U32 = struct.Struct(">I")
_I64 = struct.Struct(">q")
_U64 = struct.Struct(">Q")


class _Reader:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def _take(self, fmt: struct.Struct) -> int:
        try:
            (value,) = fmt.unpack_from(self.data, self.pos)
        except struct.error as exc:
            raise DecodeError(f"message truncated at byte {self.pos}") from exc
        self.pos += fmt.size
        return int(value)

    def i8(self) -> int:
        return self._take(_I8)

    def u8(self) -> int:
        return self._take(_U8)

    def i16(self) -> int:
        return self._take(_I16)

    def i32(self) -> int:
        return self._take(_I32)

    def u32(self) -> int:
        return self._take(_U32)

    def i64(self) -> int:
        return self._take(_I64)

    def u64(self) -> int:
        return self._take(_U64)

    def byte(self) -> str:
        return chr(self.u8())

    def string(self) -> str:
        end = self.data.find(b"\x00", self.pos)
        if end < 0:
            raise DecodeError(f"unterminated string at byte {self.pos}")
        text = self.data[self.pos : end].decode("utf-8")
        self.pos = end + 1
        return text

    def raw(self, length: int) -> bytes:
        if length < 0 or self.pos + length > len(self.data):
            raise DecodeError(f"value of {length} bytes truncated at byte {self.pos}")
        chunk = self.data[self.pos : self.pos + length]
        self.pos += length
        return chunk

    def tuple_data(self) -> Tuple:
        values, self.pos = _tuple_at(self.data, self.pos)
        return values

    def done(self) -> None:
        if self.pos != len(self.data):
            raise DecodeError(f"{len(self.data) - self.pos} unexpected trailing bytes")


def _tuple_at(data: bytes, pos: int) -> tuple[Tuple, int]:
    """TupleData starting at ``pos``: its values and the position after it.

    The hot path of decoding: one loop with local names, bounds checked by the indexing itself.
    """
    unpack_i32 = _I32.unpack_from
    values: list[Value] = []
    append = values.append
    try:
        count = (data[pos] << 8) | data[pos + 1]
        pos += 2
        for _ in range(count):
            kind = data[pos]
            if kind == 0x74:  # 't' text: Int32 length + bytes
                (length,) = unpack_i32(data, pos + 1)
                start = pos + 5
                pos = start + length
                if length < 0 or pos > len(data):
                    raise DecodeError(f"value of {length} bytes truncated at byte {start}")
                append(data[start:pos])
            elif kind == 0x6E:  # 'n' null
                append(None)
                pos += 1
            elif kind == 0x75:  # 'u' unchanged TOASTed value
                append(UNCHANGED)
                pos += 1
            elif kind == 0x62:  # 'b' binary: Int32 length + bytes
                (length,) = unpack_i32(data, pos + 1)
                start = pos + 5
                pos = start + length
                if length < 0 or pos > len(data):
                    raise DecodeError(f"value of {length} bytes truncated at byte {start}")
                append(BinaryValue(data[start:pos]))
            else:
                raise DecodeError(f"unknown tuple value kind {chr(kind)!r} at byte {pos}")
    except (IndexError, struct.error) as exc:
        raise DecodeError(f"message truncated at byte {pos}") from exc
    return tuple(values), pos


#: (op ``I``/``U``/``D``, relation id, new tuple, old tuple, old kind ``K``/``O``) of a row change
RowChange = tuple[str, int, Tuple | None, Tuple | None, str | None]


def row_change(data: bytes) -> RowChange | None:
    """An Insert, Update or Delete message outside a streamed transaction (nearly every message a
    capture reads) as plain fields, without building a message object. None: another message, or a
    malformed one (:meth:`PgOutputDecoder.decode` then names what is wrong)."""
    size = len(data)
    if size < 8:
        return None
    kind = data[0]
    relation_id = int.from_bytes(data[1:5], "big")
    marker = data[5]
    try:
        if kind == 0x49:  # 'I' 'N' new
            if marker != 0x4E:
                return None
            new, pos = _tuple_at(data, 6)
            return ("I", relation_id, new, None, None) if pos == size else None
        if kind == 0x44:  # 'D' ('K' key | 'O' old row)
            if marker not in (0x4B, 0x4F):
                return None
            old, pos = _tuple_at(data, 6)
            return ("D", relation_id, None, old, chr(marker)) if pos == size else None
        if kind != 0x55:
            return None
        old_tuple: Tuple | None = None  # 'U' [('K' | 'O') old] 'N' new
        old_kind: str | None = None
        pos = 6
        if marker in (0x4B, 0x4F):
            old_tuple, pos = _tuple_at(data, 6)
            old_kind = chr(marker)
            if pos >= size or data[pos] != 0x4E:
                return None
            pos += 1
        elif marker != 0x4E:
            return None
        new, pos = _tuple_at(data, pos)
        return ("U", relation_id, new, old_tuple, old_kind) if pos == size else None
    except DecodeError:
        return None


class PgOutputDecoder:
    """Decodes one message at a time, remembering whether a streamed transaction is open."""

    def __init__(self, proto_version: int = 1) -> None:
        """Raises:
        DecodeError: the protocol version is not 1 or 2.
        """
        if proto_version not in (1, 2):
            raise DecodeError(f"pgoutput protocol version {proto_version} is not supported (1 or 2)")
        self.proto_version = proto_version
        self.in_stream = False

    def decode(self, data: bytes) -> Message:
        """One message from its bytes.

        Raises:
            DecodeError: truncated or unknown message, or stream messages under protocol 1.
        """
        if not data:
            raise DecodeError("empty message")
        if not self.in_stream:
            change = row_change(data)
            if change is not None:
                op, relation_id, new, old, old_kind = change
                if op == "I" and new is not None:
                    return Insert(relation_id, new)
                if op == "U" and new is not None:
                    return Update(relation_id, new, old, old_kind)
                if old is not None and old_kind is not None:
                    return Delete(relation_id, old, old_kind)
        reader = _Reader(data)
        kind = reader.byte()
        message = self._decode(kind, reader)
        reader.done()
        return message

    def _stream_xid(self, reader: _Reader) -> int | None:
        return reader.u32() if self.in_stream else None

    def _decode(self, kind: str, r: _Reader) -> Message:
        if kind == "B":
            return Begin(final_lsn=r.u64(), commit_ts=r.i64(), xid=r.u32())
        if kind == "C":
            return Commit(flags=r.u8(), commit_lsn=r.u64(), end_lsn=r.u64(), commit_ts=r.i64())
        if kind == "O":
            return Origin(lsn=r.u64(), name=r.string())
        if kind == "R":
            xid = self._stream_xid(r)
            relation_id = r.u32()
            namespace = r.string()
            name = r.string()
            identity = r.byte()
            columns = []
            for _ in range(r.i16()):
                flags = r.u8()
                columns.append(
                    Column(name=r.string(), type_oid=r.u32(), type_modifier=r.i32(), is_key=bool(flags & 1))
                )
            return Relation(relation_id, namespace, name, identity, tuple(columns), xid)
        if kind == "Y":
            xid = self._stream_xid(r)
            return TypeInfo(type_oid=r.u32(), namespace=r.string(), name=r.string(), xid=xid)
        if kind == "I":
            xid = self._stream_xid(r)
            relation_id = r.u32()
            marker = r.byte()
            if marker != "N":
                raise DecodeError(f"insert: expected 'N', got {marker!r}")
            return Insert(relation_id, r.tuple_data(), xid)
        if kind == "U":
            xid = self._stream_xid(r)
            relation_id = r.u32()
            marker = r.byte()
            old: Tuple | None = None
            old_kind: str | None = None
            if marker in ("K", "O"):
                old_kind = marker
                old = r.tuple_data()
                marker = r.byte()
            if marker != "N":
                raise DecodeError(f"update: expected 'N', got {marker!r}")
            return Update(relation_id, r.tuple_data(), old, old_kind, xid)
        if kind == "D":
            xid = self._stream_xid(r)
            relation_id = r.u32()
            marker = r.byte()
            if marker not in ("K", "O"):
                raise DecodeError(f"delete: expected 'K' or 'O', got {marker!r}")
            return Delete(relation_id, r.tuple_data(), marker, xid)
        if kind == "T":
            xid = self._stream_xid(r)
            count = r.i32()
            options = r.u8()
            ids = tuple(r.u32() for _ in range(count))
            return Truncate(ids, cascade=bool(options & 1), restart_identity=bool(options & 2), xid=xid)
        if kind == "M":
            xid = self._stream_xid(r)
            flags = r.u8()
            lsn = r.u64()
            prefix = r.string()
            content = r.raw(r.i32())
            return LogicalMessage(bool(flags & 1), lsn, prefix, content, xid)
        if kind in ("S", "E", "c", "A"):
            return self._decode_stream(kind, r)
        raise DecodeError(f"unknown pgoutput message type {kind!r}")

    def _decode_stream(self, kind: str, r: _Reader) -> Message:
        if self.proto_version < 2:
            raise DecodeError(f"stream message {kind!r} needs protocol version 2")
        if kind == "S":
            self.in_stream = True
            return StreamStart(xid=r.u32(), first_segment=r.u8() == 1)
        if kind == "E":
            self.in_stream = False
            return StreamStop()
        if kind == "c":
            return StreamCommit(
                xid=r.u32(), flags=r.u8(), commit_lsn=r.u64(), end_lsn=r.u64(), commit_ts=r.i64()
            )
        return StreamAbort(xid=r.u32(), subxid=r.u32())
