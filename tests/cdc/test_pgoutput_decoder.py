"""pgoutput decoder on bytes captured from a real PostgreSQL 18 server.

The hex strings were read with ``pg_logical_slot_peek_binary_changes`` from this workload::

    CREATE TYPE s.mood AS ENUM ('ok', 'sad');
    CREATE TABLE s.t (id int PRIMARY KEY, name text, m s.mood, v numeric(6,2));
    CREATE TABLE s.f (a int, b text);  ALTER TABLE s.f REPLICA IDENTITY FULL;
    INSERT INTO s.t VALUES (1, 'a', 'ok', 1.25);
    UPDATE s.t SET id = 2, name = NULL WHERE id = 1;          -- key changes: old key sent ('K')
    INSERT INTO s.f VALUES (1, 'x'); UPDATE s.f SET b = 'y'; DELETE FROM s.f;   -- full old row ('O')
    DELETE FROM s.t;
    SELECT pg_logical_emit_message(true, 'abasto', 'hello');
    TRUNCATE s.t, s.f;
    -- protocol 2, streaming on, logical_decoding_work_mem = 64kB: a 2000-row INSERT is streamed

A live test at the end decodes whatever the server sends today, so a format change shows up.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import psycopg
import pytest

from abasto.cdc.lsn import PG_EPOCH_OFFSET_US, format_lsn, lsn16, parse_lsn, pg_time_to_unix_us
from abasto.cdc.pgoutput import (
    UNCHANGED,
    Begin,
    BinaryValue,
    Column,
    Commit,
    DecodeError,
    Delete,
    Insert,
    LogicalMessage,
    PgOutputDecoder,
    Relation,
    StreamCommit,
    StreamStart,
    StreamStop,
    Truncate,
    TypeInfo,
    Update,
)
from abasto.errors import InvalidInputError
from abasto.sources.pg import create_database, drop_database

BEGIN = "42000000010b3090480003041c73c15a5b000003e3"
TYPE_MOOD = "5900004d3d73006d6f6f6400"
RELATION_T = (
    "5200004d41730074006400040169640000000017ffffffff006e616d650000000019ffffffff006d0000004d3dffffffff"
    "007600000006a400060006"
)
INSERT_T = "4900004d414e000474000000013174000000016174000000026f6b7400000004312e3235"
COMMIT = "4300000000010b309048000000010b3090780003041c73c15a5b"
UPDATE_KEY_CHANGE = "5500004d414b00047400000001316e6e6e4e00047400000001326e74000000026f6b7400000004312e3235"
RELATION_F_FULL = "5200004d497300660066000201610000000017ffffffff01620000000019ffffffff"
UPDATE_FULL = "5500004d494f00027400000001317400000001784e0002740000000131740000000179"
DELETE_FULL = "4400004d494f0002740000000131740000000179"
DELETE_KEY = "4400004d414b00047400000001326e6e6e"
MESSAGE = "4d01000000010b30936861626173746f000000000568656c6c6f"
TRUNCATE = "54000000020000004d4100004d49"
STREAM_START_FIRST = "53000003eb01"
STREAM_START_NEXT = "53000003eb00"
STREAM_STOP = "45"
STREAM_INSERT = "49000003eb00004d494e00027400000001317400000064" + "78" * 100
STREAM_RELATION = "52000003eb00004d497300660066000201610000000017ffffffff01620000000019ffffffff"
STREAM_COMMIT = "63000003eb00000000010b35af90000000010b35afc00003041c73c1982e"

REL_T, REL_F = 0x4D41, 0x4D49


def decode(hex_text: str, proto: int = 1) -> object:
    return PgOutputDecoder(proto).decode(bytes.fromhex(hex_text))


def test_begin_and_commit() -> None:
    begin = decode(BEGIN)
    assert begin == Begin(final_lsn=0x1_0B309048, commit_ts=0x3041C73C15A5B, xid=995)
    commit = decode(COMMIT)
    assert commit == Commit(flags=0, commit_lsn=0x1_0B309048, end_lsn=0x1_0B309078, commit_ts=0x3041C73C15A5B)
    assert isinstance(begin, Begin) and isinstance(commit, Commit)
    assert begin.final_lsn == commit.commit_lsn and commit.end_lsn > commit.commit_lsn
    when = datetime.fromtimestamp(pg_time_to_unix_us(commit.commit_ts) / 1e6, UTC)
    assert when.year >= 2025


def test_relation_with_key_flags_and_typmods() -> None:
    rel = decode(RELATION_T)
    assert rel == Relation(
        relation_id=REL_T,
        namespace="s",
        name="t",
        replica_identity="d",
        columns=(
            Column("id", 23, -1, is_key=True),
            Column("name", 25, -1, is_key=False),
            Column("m", 0x4D3D, -1, is_key=False),
            Column("v", 1700, (6 << 16 | 2) + 4, is_key=False),
        ),
    )
    full = decode(RELATION_F_FULL)
    assert isinstance(full, Relation) and full.replica_identity == "f"
    assert all(c.is_key for c in full.columns)  # REPLICA IDENTITY FULL: every column is the key


def test_type_message_names_the_enum() -> None:
    assert decode(TYPE_MOOD) == TypeInfo(type_oid=0x4D3D, namespace="s", name="mood")


def test_insert_tuple_values_are_text_bytes() -> None:
    assert decode(INSERT_T) == Insert(REL_T, (b"1", b"a", b"ok", b"1.25"))


def test_update_that_changes_the_key_carries_the_old_key() -> None:
    update = decode(UPDATE_KEY_CHANGE)
    assert update == Update(
        REL_T, new=(b"2", None, b"ok", b"1.25"), old=(b"1", None, None, None), old_kind="K"
    )


def test_update_and_delete_with_full_identity_carry_the_old_row() -> None:
    assert decode(UPDATE_FULL) == Update(REL_F, new=(b"1", b"y"), old=(b"1", b"x"), old_kind="O")
    assert decode(DELETE_FULL) == Delete(REL_F, old=(b"1", b"y"), old_kind="O")


def test_delete_by_key() -> None:
    assert decode(DELETE_KEY) == Delete(REL_T, old=(b"2", None, None, None), old_kind="K")


def test_logical_message_and_truncate() -> None:
    assert decode(MESSAGE) == LogicalMessage(
        transactional=True, lsn=0x1_0B309368, prefix="abasto", content=b"hello"
    )
    assert decode(TRUNCATE) == Truncate(relation_ids=(REL_T, REL_F), cascade=False, restart_identity=False)


def test_streamed_transaction_protocol_2() -> None:
    decoder = PgOutputDecoder(2)
    assert decoder.decode(bytes.fromhex(STREAM_START_FIRST)) == StreamStart(xid=1003, first_segment=True)
    assert decoder.in_stream
    rel = decoder.decode(bytes.fromhex(STREAM_RELATION))
    assert isinstance(rel, Relation) and rel.xid == 1003 and rel.name == "f"
    insert = decoder.decode(bytes.fromhex(STREAM_INSERT))
    assert insert == Insert(REL_F, (b"1", b"x" * 100), xid=1003)
    assert decoder.decode(bytes.fromhex(STREAM_STOP)) == StreamStop()
    assert not decoder.in_stream
    assert decoder.decode(bytes.fromhex(STREAM_START_NEXT)) == StreamStart(xid=1003, first_segment=False)
    decoder.decode(bytes.fromhex(STREAM_STOP))
    commit = decoder.decode(bytes.fromhex(STREAM_COMMIT))
    assert commit == StreamCommit(
        xid=1003, flags=0, commit_lsn=0x1_0B35AF90, end_lsn=0x1_0B35AFC0, commit_ts=0x3041C73C1982E
    )


def test_unchanged_toast_and_binary_values() -> None:
    # hand-built: Insert of (u, b'\x00\x01', n) for relation 7
    data = (
        b"I" + (7).to_bytes(4, "big") + b"N" + (3).to_bytes(2, "big") + b"u" + b"b" + (2).to_bytes(4, "big")
    )
    data += b"\x00\x01" + b"n"
    assert decode(data.hex()) == Insert(7, (UNCHANGED, BinaryValue(b"\x00\x01"), None))


@pytest.mark.parametrize(
    ("hex_text", "proto", "match"),
    [
        (BEGIN[:-4], 1, "truncated"),
        (INSERT_T[:-2], 1, "truncated"),
        (BEGIN + "00", 1, "trailing"),
        ("5a00", 1, "unknown pgoutput message type 'Z'"),
        (STREAM_START_FIRST, 1, "protocol version 2"),
        ("4900004d41580000", 1, "expected 'N'"),
        ("4900004d414e00017a", 1, "unknown tuple value kind"),
        ("4f0000000000000001616263", 1, "unterminated"),
        ("", 1, "empty"),
    ],
)
def test_malformed_messages_raise_decode_error(hex_text: str, proto: int, match: str) -> None:
    with pytest.raises(DecodeError, match=match):
        decode(hex_text, proto)


def test_unsupported_protocol_version() -> None:
    with pytest.raises(DecodeError):
        PgOutputDecoder(3)
    assert issubclass(DecodeError, InvalidInputError)


def test_lsn_helpers() -> None:
    assert parse_lsn("16/B374D848") == 0x16_B374D848
    assert format_lsn(0x16_B374D848) == "16/B374D848"
    assert lsn16(0x16_B374D848) == "00000016B374D848"
    assert parse_lsn(format_lsn(0)) == 0
    assert sorted([lsn16(2**40), lsn16(255)]) == [lsn16(255), lsn16(2**40)]
    assert (
        pg_time_to_unix_us(0) == PG_EPOCH_OFFSET_US == int(datetime(2000, 1, 1, tzinfo=UTC).timestamp() * 1e6)
    )
    with pytest.raises(InvalidInputError):
        parse_lsn("nope")


@pytest.fixture
def scratch_dsn(pg_dsn: str) -> Iterator[str]:
    dsn = create_database(pg_dsn, "t_pgoutput_live")
    yield dsn
    drop_database(pg_dsn, "t_pgoutput_live")


@pytest.mark.services
@pytest.mark.parametrize("proto", [1, 2])
def test_decodes_everything_a_live_server_sends(scratch_dsn: str, proto: int) -> None:
    with psycopg.connect(scratch_dsn, autocommit=True) as conn:
        conn.execute(
            "CREATE SCHEMA s; "
            "CREATE TABLE s.t (id bigint PRIMARY KEY, tags text[], doc jsonb, at timestamptz); "
            "CREATE PUBLICATION p FOR TABLES IN SCHEMA s"
        )
        conn.execute("SELECT pg_create_logical_replication_slot('live', 'pgoutput')")
        conn.execute(
            "INSERT INTO s.t SELECT g, ARRAY['a', 'b c'], '{\"k\": 1}', now() FROM generate_series(1, 50) g"
        )
        conn.execute("UPDATE s.t SET tags = NULL WHERE id % 2 = 0")
        conn.execute("DELETE FROM s.t WHERE id > 40")
        conn.execute("TRUNCATE s.t")
        rows = conn.execute(
            "SELECT lsn::text, data FROM pg_logical_slot_peek_binary_changes('live', NULL, NULL, "
            "'proto_version', %s, 'publication_names', 'p')",
            (str(proto),),
        ).fetchall()
        conn.execute("SELECT pg_drop_replication_slot('live')")
    decoder = PgOutputDecoder(proto)
    messages = [decoder.decode(bytes(data)) for _, data in rows]
    kinds = [type(m).__name__ for m in messages]
    assert kinds.count("Insert") == 50 and kinds.count("Update") == 25 and kinds.count("Delete") == 10
    assert kinds.count("Truncate") == 1 and kinds.count("Begin") == kinds.count("Commit") == 4
    # the Commit row's lsn is the transaction's end LSN: what the slot is advanced to
    commits = [
        (parse_lsn(lsn), m) for (lsn, _), m in zip(rows, messages, strict=True) if isinstance(m, Commit)
    ]
    assert all(lsn == m.end_lsn for lsn, m in commits)
    assert [m.end_lsn for _, m in commits] == sorted(m.end_lsn for _, m in commits)
