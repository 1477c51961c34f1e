"""Kinesis-specific behaviour of the Kinesis backend, against moto in server mode."""

from __future__ import annotations

import itertools
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from abasto.errors import ServiceUnavailableError
from abasto.stream.kinesis import KinesisEventStream
from abasto.stream.kinesis_agg import KPL_MAGIC, Envelope, deaggregate, decode_envelope, encode_envelope
from abasto.stream.kinesis_aws import AwsConnection
from abasto.stream.kinesis_consumer import KinesisConsumer
from abasto.stream.port import MSG_ID_HEADER, OutgoingMessage, StreamSpec

_n = itertools.count(1)


@pytest.fixture
def kspec() -> StreamSpec:
    """abasto's POS stream (``pos.>``): each test has its own meta table and stream prefix."""
    return StreamSpec(name="POS", subjects=("pos.>",), duplicate_window_s=60)


@pytest.fixture
def kopts() -> dict[str, Any]:
    n = next(_n)
    return {
        "table": f"abasto-kinesis-{n}",
        "stream_prefix": f"k{n}-",
        "shard_count": 4,
        "poll_interval_s": 0.05,
    }


@pytest.fixture
async def kstream(moto_connection: AwsConnection, kopts: dict[str, Any]) -> AsyncIterator[KinesisEventStream]:
    async with KinesisEventStream(moto_connection, **kopts) as s:
        yield s


def _raw_records(s: KinesisEventStream, stream: str) -> list[dict[str, Any]]:
    kinesis = s._aws.kinesis
    out: list[dict[str, Any]] = []
    for shard in kinesis.list_shards(StreamName=s.kinesis_name(stream))["Shards"]:
        it = kinesis.get_shard_iterator(
            StreamName=s.kinesis_name(stream), ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        out.extend(kinesis.get_records(ShardIterator=it, Limit=10_000)["Records"])
    return out


async def test_a_batch_is_stored_as_one_kpl_aggregate_per_store(
    kstream: KinesisEventStream, kspec: StreamSpec
) -> None:
    await kstream.ensure_streams([kspec])
    prefix = "pos."
    batch = [OutgoingMessage(f"{prefix}S{i % 3}.D{i}", f"e{i}".encode()) for i in range(30)]
    results = await kstream.publish_batch(batch)
    records = _raw_records(kstream, kspec.name)
    assert sorted(r["PartitionKey"] for r in records) == ["S0", "S1", "S2"]
    for rec in records:
        assert bytes(rec["Data"]).startswith(KPL_MAGIC)
        envs = [decode_envelope(p) for p in deaggregate(bytes(rec["Data"]))]
        assert len(envs) == 10 and {e.subject.split(".")[1] for e in envs} == {rec["PartitionKey"]}
        assert [e.seq for e in envs] == sorted(e.seq for e in envs)
    assert [r.seq for r in results] == list(range(results[0].seq, results[0].seq + 30))


async def test_several_shards_keep_each_store_in_order(
    kstream: KinesisEventStream, kspec: StreamSpec
) -> None:
    await kstream.ensure_streams([kspec])
    prefix = "pos."
    for round_ in range(3):
        await kstream.publish_batch(
            [
                OutgoingMessage(f"{prefix}S{s}.D1", f"{s}:{round_}:{i}".encode())
                for s in range(8)
                for i in range(5)
            ]
        )
    consumer = await kstream.consumer(kspec.name, "multi")
    got: list[bytes] = []
    while msgs := await consumer.fetch(1000, timeout_s=0.5):
        got.extend(m.data for m in msgs)
        for m in msgs:
            await m.ack()
    assert len(got) == 120
    for s in range(8):
        mine = [g for g in got if g.startswith(f"{s}:".encode())]
        assert mine == [f"{s}:{r}:{i}".encode() for r in range(3) for i in range(5)]
    assert (await consumer.state()).idle


async def test_checkpoint_advances_only_over_acknowledged_records(
    moto_connection: AwsConnection, kopts: dict[str, Any], kstream: KinesisEventStream, kspec: StreamSpec
) -> None:
    await kstream.ensure_streams([kspec])
    subject = "pos.S1.D1"
    await kstream.publish_batch([OutgoingMessage(subject, str(i).encode()) for i in range(3)])
    consumer = await kstream.consumer(kspec.name, "gappy")
    m0, m1, _m2 = await consumer.fetch(3, timeout_s=1)
    await m1.ack()  # m0 not acknowledged: the checkpoint cannot pass it
    await consumer.state()  # writes the checkpoint

    async def replay() -> list[bytes]:
        async with KinesisEventStream(moto_connection, **kopts) as other:
            c = await other.consumer(kspec.name, "gappy")
            return [m.data for m in await c.fetch(10, timeout_s=0.5)]

    assert await replay() == [b"0", b"1", b"2"]  # at least once: m1 comes again
    await m0.ack()
    await consumer.state()
    assert await replay() == [b"2"]


async def test_consumer_drops_a_duplicate_the_publisher_could_not_catch(
    kstream: KinesisEventStream, kspec: StreamSpec
) -> None:
    """A publisher that died after PutRecords but before marking its msg id: the record is stored
    twice (here: written raw); the consumer delivers it once."""
    await kstream.ensure_streams([kspec])
    subject = "pos.S1.D1"
    first = await kstream.publish(subject, b"sale", msg_id="D1:1")
    copy = Envelope(
        seq=first.seq + 100,
        subject=subject,
        headers={MSG_ID_HEADER: "D1:1"},
        data=b"sale",
        published_ms=int(time.time() * 1000),
    )
    kstream._aws.kinesis.put_record(
        StreamName=kstream.kinesis_name(kspec.name), PartitionKey="S1", Data=encode_envelope(copy)
    )
    kstream._aws.kinesis.put_record(
        StreamName=kstream.kinesis_name(kspec.name), PartitionKey="S1", Data=b"{}"
    )
    await kstream.publish(subject, b"next", msg_id="D1:2")
    consumer = await kstream.consumer(kspec.name, "dedup")
    assert isinstance(consumer, KinesisConsumer)
    msgs = await consumer.fetch(10, timeout_s=1)
    assert [(m.data, m.msg_id) for m in msgs] == [(b"sale", "D1:1"), (b"next", "D1:2")]
    assert (consumer.duplicates_dropped, consumer.undecodable) == (1, 1)
    for m in msgs:
        await m.ack()
    assert (await consumer.state()).idle


async def test_a_stale_reservation_of_a_dead_publisher_is_taken_over(
    kstream: KinesisEventStream, kspec: StreamSpec
) -> None:
    await kstream.ensure_streams([kspec])
    meta = kstream.meta
    assert meta.reserve(kspec.name, "D9:1", 60, now=1000.0, lease_s=30).outcome == "new"
    assert meta.reserve(kspec.name, "D9:1", 60, now=1010.0, lease_s=30).outcome == "busy"
    assert meta.reserve(kspec.name, "D9:1", 60, now=1040.0, lease_s=30).outcome == "new"
    meta.mark_stored(kspec.name, [("D9:1", 5)], now=1040.0, window_s=60)
    dup = meta.reserve(kspec.name, "D9:1", 60, now=1050.0, lease_s=30)
    assert (dup.outcome, dup.seq) == ("duplicate", 5)
    assert meta.reserve(kspec.name, "D9:1", 60, now=1200.0, lease_s=30).outcome == "new"  # window over


async def test_an_unreachable_endpoint_is_service_unavailable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    conn = AwsConnection(
        endpoint_url=f"http://127.0.0.1:{port}",
        access_key_id="x",
        secret_access_key="x",
        timeout_s=1,
        max_attempts=1,
    )
    with pytest.raises(ServiceUnavailableError):
        async with KinesisEventStream(conn):
            pass
