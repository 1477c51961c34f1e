"""KPL aggregation, envelopes and subject routing of the Kinesis backend (no server needed)."""

from __future__ import annotations

import hashlib
from typing import Any

import botocore.exceptions
import pytest

from abasto.errors import ConfigError, InvalidInputError, NotFoundError, ServiceUnavailableError
from abasto.stream.kinesis_agg import (
    KPL_MAGIC,
    Envelope,
    aggregate,
    aggregated_size,
    deaggregate,
    decode_envelope,
    encode_envelope,
)
from abasto.stream.kinesis_aws import translate
from abasto.stream.kinesis_publish import pack
from abasto.stream.kinesis_routing import partition_key, patterns_overlap, route, subject_matches


def _kpl_message_class() -> Any:
    """The KPL AggregatedRecord message built with the official protobuf runtime (reference)."""
    descriptor_pb2 = pytest.importorskip("google.protobuf.descriptor_pb2")
    descriptor_pool = pytest.importorskip("google.protobuf.descriptor_pool")
    message_factory = pytest.importorskip("google.protobuf.message_factory")

    f = descriptor_pb2.FileDescriptorProto(name="kpl_test.proto", package="kpltest", syntax="proto2")
    rec = f.message_type.add(name="Record")
    label_req, label_opt, label_rep = 2, 1, 3
    t_uint64, t_bytes, t_string, t_msg = 4, 12, 9, 11
    rec.field.add(name="partition_key_index", number=1, label=label_req, type=t_uint64)
    rec.field.add(name="explicit_hash_key_index", number=2, label=label_opt, type=t_uint64)
    rec.field.add(name="data", number=3, label=label_req, type=t_bytes)
    agg = f.message_type.add(name="AggregatedRecord")
    agg.field.add(name="partition_key_table", number=1, label=label_rep, type=t_string)
    agg.field.add(name="explicit_hash_key_table", number=2, label=label_rep, type=t_string)
    agg.field.add(name="records", number=3, label=label_rep, type=t_msg, type_name=".kpltest.Record")
    pool = descriptor_pool.DescriptorPool()
    pool.Add(f)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("kpltest.AggregatedRecord"))


def test_aggregate_is_the_documented_kpl_format() -> None:
    payloads = [b"one", b"", b"x" * 300]
    blob = aggregate("S0001", payloads)
    assert blob.startswith(KPL_MAGIC) and len(blob) == aggregated_size("S0001", payloads)
    body, digest = blob[4:-16], blob[-16:]
    assert hashlib.md5(body).digest() == digest
    msg = _kpl_message_class()()
    msg.ParseFromString(body)
    assert list(msg.partition_key_table) == ["S0001"]
    assert [r.data for r in msg.records] == payloads
    assert all(r.partition_key_index == 0 for r in msg.records)


def test_deaggregate_reads_records_written_by_the_protobuf_runtime() -> None:
    cls = _kpl_message_class()
    msg = cls(partition_key_table=["a", "b"])
    for i in range(3):
        msg.records.add(partition_key_index=i % 2, data=f"r{i}".encode())
    body = msg.SerializeToString()
    assert deaggregate(KPL_MAGIC + body + hashlib.md5(body).digest()) == [b"r0", b"r1", b"r2"]


def test_a_plain_or_corrupted_record_is_one_user_record() -> None:
    assert deaggregate(b"plain payload") == [b"plain payload"]
    blob = bytearray(aggregate("k", [b"a", b"b"]))
    blob[-1] ^= 0xFF  # MD5 no longer matches: the KCL treats it as a plain record
    assert deaggregate(bytes(blob)) == [bytes(blob)]


def test_envelope_round_trip_and_rejection() -> None:
    env = Envelope(
        seq=2**40,
        subject="pos.S1.D1",
        headers={"Nats-Msg-Id": "D1:7", "K": "v"},
        data=b"\x00\xff",
        published_ms=123,
    )
    assert decode_envelope(encode_envelope(env)) == env
    with pytest.raises(InvalidInputError):
        decode_envelope(b'{"a json": "payload from another producer"}')


def test_pack_groups_by_partition_key_in_order_and_splits_at_the_size_limit() -> None:
    items = [(i, "S1" if i % 2 else "S2", bytes(100)) for i in range(10)]
    records = pack(items, max_bytes=1_000_000, max_records=1000)
    assert [(r.partition_key, r.members) for r in records] == [
        ("S2", (0, 2, 4, 6, 8)),
        ("S1", (1, 3, 5, 7, 9)),
    ]
    small = pack(items, max_bytes=400, max_records=1000)
    assert all(len(r.data) + len(r.partition_key) <= 400 for r in small)
    assert sorted(i for r in small for i in r.members) == list(range(10))
    assert pack([(0, "S1", b"alone")], max_bytes=1000, max_records=10)[0].data == b"alone"


def test_subject_patterns_and_partition_keys() -> None:
    assert subject_matches("pos.>", "pos.S1.D1") and not subject_matches("pos.>", "pos")
    assert subject_matches("pos.*.D1", "pos.S1.D1") and not subject_matches("pos.*", "pos.S1.D1")
    assert patterns_overlap("pos.>", "pos.S1.*") and patterns_overlap("a.*", "*.b")
    assert not patterns_overlap("pos.>", "alerts.>") and not patterns_overlap("a", "a.>")
    assert route({"POS": ("pos.>",), "ALERTS": ("alerts.>",)}, "alerts.S9") == "ALERTS"
    assert route({"POS": ("pos.>",)}, "dlq.pos") is None
    assert partition_key("pos.S0042.D7") == "S0042"
    assert partition_key("alerts.S0042") == "S0042"
    assert partition_key("dlq.pos") == "dlq.pos"


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("ProvisionedThroughputExceededException", ServiceUnavailableError),
        ("ThrottlingException", ServiceUnavailableError),
        ("ResourceNotFoundException", NotFoundError),
        ("AccessDeniedException", ConfigError),
    ],
)
def test_aws_errors_become_abasto_errors(code: str, expected: type[Exception]) -> None:
    exc = botocore.exceptions.ClientError({"Error": {"Code": code, "Message": "m"}}, "PutRecords")
    assert type(translate(exc, "put")) is expected
    conn = botocore.exceptions.EndpointConnectionError(endpoint_url="http://127.0.0.1:1")
    assert isinstance(translate(conn, "put"), ServiceUnavailableError)
