"""Record formats of the Kinesis backend: KPL aggregation and abasto's user-record envelope.

**KPL aggregated record** (the format of the Kinesis Producer Library, read by the KCL and by
``aws-kinesis-agg``): ``MAGIC (F3 89 9A C2) ‖ protobuf(AggregatedRecord) ‖ MD5(protobuf)``::

    message AggregatedRecord {
      repeated string partition_key_table     = 1;
      repeated string explicit_hash_key_table = 2;
      repeated Record records                 = 3;
    }
    message Record {
      required uint64 partition_key_index     = 1;
      optional uint64 explicit_hash_key_index = 2;
      required bytes  data                    = 3;
      repeated Tag    tags                    = 4;   // not written; skipped on read
    }

A Kinesis record that does not start with the magic, or whose MD5 does not match, is one plain
user record (as the KCL does).

**Envelope** (the ``data`` of each user record), protobuf as well::

    message Envelope {
      uint64 seq = 1;              // abasto stream sequence (contiguous per stream)
      string subject = 2;
      repeated Header headers = 3; // msg id travels as header Nats-Msg-Id
      bytes data = 4;
      uint64 published_ms = 5;     // publisher's clock, for the read-side dedup window
    }
    message Header { string key = 1; string value = 2; }

Hand-written protobuf wire encoding (varints and length-delimited fields only): no dependency.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from abasto.errors import InvalidInputError

KPL_MAGIC: Final = b"\xf3\x89\x9a\xc2"
_DIGEST_LEN: Final = 16
_VARINT: Final = 0
_LEN: Final = 2
_I64: Final = 1
_I32: Final = 5


@dataclass(frozen=True, slots=True)
class Envelope:
    seq: int
    subject: str
    headers: Mapping[str, str]
    data: bytes
    published_ms: int


# --- protobuf wire format ------------------------------------------------------------------
def _varint(n: int) -> bytes:
    if n < 0:
        raise ValueError("negative varint")
    out = bytearray()
    while True:
        low = n & 0x7F
        n >>= 7
        if n:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def _key(field: int, wire: int) -> bytes:
    return _varint(field << 3 | wire)


def _bytes_field(field: int, value: bytes) -> bytes:
    return _key(field, _LEN) + _varint(len(value)) + value


def _uint_field(field: int, value: int) -> bytes:
    return _key(field, _VARINT) + _varint(value)


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise InvalidInputError("truncated or oversized protobuf varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def _fields(buf: bytes) -> Iterator[tuple[int, int | bytes]]:
    """(field number, value) of a protobuf message; unknown wire types are skipped."""
    pos = 0
    while pos < len(buf):
        key, pos = _read_varint(buf, pos)
        field, wire = key >> 3, key & 7
        if wire == _VARINT:
            value, pos = _read_varint(buf, pos)
            yield field, value
        elif wire == _LEN:
            size, pos = _read_varint(buf, pos)
            if pos + size > len(buf):
                raise InvalidInputError("truncated protobuf field")
            yield field, buf[pos : pos + size]
            pos += size
        elif wire == _I64:
            pos += 8
        elif wire == _I32:
            pos += 4
        else:
            raise InvalidInputError(f"unsupported protobuf wire type {wire}")


# --- envelope ------------------------------------------------------------------------------
def encode_envelope(env: Envelope) -> bytes:
    parts = [_uint_field(1, env.seq), _bytes_field(2, env.subject.encode())]
    for k, v in env.headers.items():
        parts.append(_bytes_field(3, _bytes_field(1, k.encode()) + _bytes_field(2, v.encode())))
    parts.append(_bytes_field(4, env.data))
    parts.append(_uint_field(5, env.published_ms))
    return b"".join(parts)


def decode_envelope(buf: bytes) -> Envelope:
    """Raises InvalidInputError if ``buf`` is not an envelope (no seq or subject)."""
    seq: int | None = None
    subject: str | None = None
    headers: dict[str, str] = {}
    data = b""
    published_ms = 0
    try:
        for field, value in _fields(buf):
            if field == 1 and isinstance(value, int):
                seq = value
            elif field == 2 and isinstance(value, bytes):
                subject = value.decode()
            elif field == 3 and isinstance(value, bytes):
                kv = {f: v for f, v in _fields(value) if isinstance(v, bytes)}
                headers[kv.get(1, b"").decode()] = kv.get(2, b"").decode()
            elif field == 4 and isinstance(value, bytes):
                data = value
            elif field == 5 and isinstance(value, int):
                published_ms = value
    except UnicodeDecodeError as exc:
        raise InvalidInputError(f"envelope text is not UTF-8: {exc}") from exc
    if seq is None or not subject:
        raise InvalidInputError("not an abasto envelope (no seq or subject)")
    return Envelope(seq=seq, subject=subject, headers=headers, data=data, published_ms=published_ms)


# --- KPL aggregation -----------------------------------------------------------------------
#: bytes an aggregated record adds around its user records (magic + digest + table)
AGG_OVERHEAD: Final = len(KPL_MAGIC) + _DIGEST_LEN


def aggregated_size(partition_key: str, payloads: Sequence[bytes]) -> int:
    """Exact size of :func:`aggregate` (for packing records under a size limit)."""
    return AGG_OVERHEAD + len(_agg_body(partition_key, payloads))


def record_cost(payload: bytes) -> int:
    """Bytes one more user record adds to an aggregate (upper bound)."""
    inner = len(payload) + 2 + len(_varint(len(payload))) + 2
    return inner + 1 + len(_varint(inner))


def _agg_body(partition_key: str, payloads: Sequence[bytes]) -> bytes:
    parts = [_bytes_field(1, partition_key.encode())]
    for p in payloads:
        parts.append(_bytes_field(3, _uint_field(1, 0) + _bytes_field(3, p)))
    return b"".join(parts)


def aggregate(partition_key: str, payloads: Sequence[bytes]) -> bytes:
    """One KPL aggregated record holding ``payloads`` (all under ``partition_key``)."""
    body = _agg_body(partition_key, payloads)
    return KPL_MAGIC + body + hashlib.md5(body, usedforsecurity=False).digest()


def deaggregate(record: bytes) -> list[bytes]:
    """User records of one Kinesis record (a plain record is one user record)."""
    if len(record) < AGG_OVERHEAD or not record.startswith(KPL_MAGIC):
        return [record]
    body, digest = record[len(KPL_MAGIC) : -_DIGEST_LEN], record[-_DIGEST_LEN:]
    if hashlib.md5(body, usedforsecurity=False).digest() != digest:
        return [record]
    out: list[bytes] = []
    for field, value in _fields(body):
        if field == 3 and isinstance(value, bytes):
            out.extend(v for f, v in _fields(value) if f == 3 and isinstance(v, bytes))
    return out
